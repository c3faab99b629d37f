"""LPM validation reachability: does the peer MSP answer ICMP echo?

The HMC's partition-mobility validation has the MSPs ping each other, and the VIOS firewall blocks ICMP by
default (IBM, "Configuring the VIOS firewall for partition mobility"), so a path that carries the streams can
still fail validation. The agent runs the system ``ping`` (both AIX and Linux have one; the agent opens no raw
socket), bounded: 3 echoes in at most 1.4 s on Linux, about 3 s on AIX (its interval is whole seconds).

The parser reads both summaries: AIX prints "3 packets transmitted, 3 packets received, 0% packet loss" and
"round-trip min/avg/max = 0/0/1 ms"; Linux (iputils) "3 packets transmitted, 3 received, 0% packet loss" and
"rtt min/avg/max/mdev = 0.04/0.05/0.06/0.01 ms".
"""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import subprocess
from typing import Any

ECHOES = 3
PING_BOUND_S = 10.0  # a hard stop well past ping's own bound (about 3 s on AIX): a wedged ping never holds the audit
_SUMMARY_RE = re.compile(r"(\d+) packets? transmitted, (\d+) (?:packets? )?received", re.I)
_RTT_RE = re.compile(r"(?:round-trip|rtt) min/avg/max(?:/\S+)? = [\d.]+/([\d.]+)/", re.I)


def ping_argv(address: str, aix: bool) -> list[str]:
    """The bounded ping command line of this platform for ``address``."""
    bare = address.split("%", 1)[0]
    ipv6 = ipaddress.ip_address(bare).version == 6
    if aix:  # AIX: -w seconds to wait for each reply, the interval stays its default 1 s; -a picks IPv6
        return ["ping", "-n", "-c", str(ECHOES), "-w", "1", *(["-a", "inet6"] if ipv6 else []), address]
    # iputils: 0.2 s apart (the least a non-root user may ask), then 1 s for the last reply: 1.4 s at most.
    # No -w: with a deadline, iputils counts -c in replies and keeps sending until the deadline.
    return ["ping", "-n", *(["-6"] if ipv6 else ["-4"]), "-c", str(ECHOES), "-i", "0.2", "-W", "1", address]


def parse_ping(text: str) -> dict[str, Any] | None:
    """{"sent", "received", "rtt_ms"} from ping's summary, or None when the text has none."""
    summary = _SUMMARY_RE.search(text)
    if not summary:
        return None
    rtt = _RTT_RE.search(text)
    return {"sent": int(summary.group(1)), "received": int(summary.group(2)),
            "rtt_ms": float(rtt.group(1)) if rtt else None}


def judge(address: str, returncode: int | None, stdout: str, stderr: str) -> dict[str, Any]:
    """The reach fact from what ping did: reachable True (replies), False (echoes sent, none answered) or None
    (ping could not run, with the reason)."""
    out: dict[str, Any] = {"tool": "ping", "address": address, "sent": None, "received": None, "rtt_ms": None,
                           "reachable": None, "error": None}
    parsed = parse_ping(stdout)
    if parsed is None or parsed["sent"] == 0:
        reason = (stderr or stdout).strip().splitlines()
        out["error"] = (f"ping could not run (exit {returncode}): {reason[-1][:200] if reason else 'no output'}")
        return out
    out.update(parsed)
    out["reachable"] = parsed["received"] > 0
    return out


def ping_peer(address: str, aix: bool) -> dict[str, Any]:
    """Ping the peer MSP; never raises (a missing or unusable ping is a reason, not a failure)."""
    if shutil.which("ping") is None:
        return {**judge(address, None, "", ""), "error": "no ping command on this host (PATH has none)"}
    try:
        argv = ping_argv(address, aix)
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=PING_BOUND_S,
                              env={**os.environ, "LC_ALL": "C"}, check=False)
    except ValueError:
        return {**judge(address, None, "", ""), "error": f"not an IP address: {address!r}"}
    except subprocess.TimeoutExpired:
        return {**judge(address, None, "", ""), "error": f"ping did not end within {PING_BOUND_S:.0f} s"}
    except OSError as exc:
        return {**judge(address, None, "", ""), "error": f"ping could not start: {exc}"}
    return judge(address, proc.returncode, proc.stdout, proc.stderr)
