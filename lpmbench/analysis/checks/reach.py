"""LPM validation reachability: HMC validation of a migration has the MSPs ping each other, and the VIOS
firewall blocks ICMP by default (IBM: "Configuring the VIOS firewall for partition mobility"). Each agent pings
its peer with the system ping and reports it (``msp.reach``)."""

from __future__ import annotations

from typing import Any

from lpmbench.analysis.checks.base import FAIL, PASS, UNKNOWN, check
from lpmbench.analysis.checks.msp import ROLES, host_label, msp_fact

NAME = "LPM validation reachability (ICMP)"
# IBM's genfilt rules for the VIOS firewall (run after oem_setup_env), then mkfilt activates the filter table.
GENFILT = ("/usr/sbin/genfilt -v 4 -n 16 -a P -s 0.0.0.0 -m 0.0.0.0 -d 0.0.0.0 -M 0.0.0.0 -g n -c icmp -o eq "
           "-p {type} -O any -P 0 -r L -w I -l N -t 0 -i all -D {label}")
REMEDY = ("let ICMP echo through between the MSPs, or HMC validation fails the migration: on each VIOS whose "
          "firewall is on (viosecure -firewall view lists its rules; ICMP is not among the defaults), as padmin "
          "run oem_setup_env, then " + GENFILT.format(type=0, label="echo_reply") + " and "
          + GENFILT.format(type=8, label="echo_request") + ", then mkfilt -v 4 -u to activate them (IPv6 peers: "
          "the same with -v 6); open ICMP echo request and reply in every firewall between the MSPs too (Linux: "
          "nft / iptables accept icmp echo-request and echo-reply)")


def _describe(reach: dict[str, Any]) -> str:
    return f"{reach.get('received')} of {reach.get('sent')} echoes to {reach.get('address')} answered"


def reach_check(result: dict[str, Any]) -> dict[str, str]:
    sides = [(role, msp_fact(result, role, "reach")) for role in ROLES]
    blocked = [(role, r) for role, r in sides if r is not None and r.get("reachable") is False]
    if blocked:
        return check(NAME, FAIL, "; ".join(f"{host_label(result, role)}: {_describe(r)} (ICMP blocked or the peer "
                                           f"does not answer)" for role, r in blocked), REMEDY)
    good = [(role, r) for role, r in sides if r is not None and r.get("reachable") is True]
    unknown = [f"{host_label(result, role)}: {r.get('error') if r else 'no ping result reported (older agent?)'}"
               for role, r in sides if r is None or r.get("reachable") is not True]
    if not good:
        return check(NAME, UNKNOWN, "; ".join(unknown),
                     "install ping on the MSPs (Linux: iputils-ping) so the agents can test what HMC validation does")
    rtt = [r.get("rtt_ms") for _, r in good if isinstance(r.get("rtt_ms"), (int, float))]
    detail = " and ".join(f"{role} -> peer" for role, _ in good) + " answered ICMP echo"
    detail += f" (round trip {min(rtt):.2f} ms)" if rtt else ""
    return check(NAME, PASS, detail + (f"; {'; '.join(unknown)}" if unknown else ""))
