"""MSP CPU: LPM's mover is CPU-bound on the MSPs (IBM: about one processor per side at 1 Gb, more at 10 Gb and
up). When an MSP ran out of CPU while the link still had room, the MSP, not the network, set the pace: the
remedy is entitlement, not a switch.

CPU used over the run: the agent's own CPU seconds over the run's duration (the mover's analogue) and the whole
host's busy share; the limit is the MSP's entitlement (``msp.cpu.limit_cores``: lparstat -i on AIX, the CPU
count or the agent's cgroup quota on Linux). Agents that share a host share its CPUs: no verdict then.
"""

from __future__ import annotations

import math
from typing import Any

from lpmbench.analysis.checks.base import FAIL, INFO, PASS, UNKNOWN, WARN, check
from lpmbench.analysis.checks.causes import tiny_window, window_text
from lpmbench.analysis.checks.msp import ROLES, host_label, msp_fact, number
from lpmbench.analysis.wire import on_loopback

NAME = "MSP CPU headroom"
SATURATED = 0.9  # CPU at 90 % of what the MSP may use: the mover is out of CPU
LINK_ROOM = 0.9  # goodput below 90 % of the wire limit: the link could carry more
FAR_BELOW_WIRE = 0.7  # below 70 % (the efficiency check's warning line) a CPU-starved MSP fails the pair


def cpu_use(result: dict[str, Any], role: str) -> dict[str, float] | None:
    """{"used_cores", "limit_cores", "utilisation", "headroom"} of one MSP over the run, or None when unknown."""
    side, facts = result.get(role) or {}, msp_fact(result, role, "cpu") or {}
    limit, duration = number(facts.get("limit_cores")), number(result.get("duration_s"))
    process_s, busy = number(side.get("process_cpu_s")), number(side.get("cpu_percent"))
    if not limit or not duration or (process_s is None and busy is None):
        return None
    util = process_s / duration / limit if process_s is not None else 0.0
    if busy is not None and number(facts.get("quota_cores")) is None:  # a cgroup quota: the host's busy is others'
        util = max(util, busy / 100)
    return {"used_cores": round(util * limit, 3), "limit_cores": limit, "utilisation": round(util, 3),
            "headroom": round(max(0.0, 1 - util), 3)}


def shared_host(result: dict[str, Any]) -> bool:
    """Both agents on one host: loopback, the same host id, or (without ids) the same host name."""
    if on_loopback(result):
        return True
    ids = [(msp_fact(result, role, "cpu") or {}).get("host_id") for role in ROLES]
    if all(isinstance(i, str) and i for i in ids):
        return ids[0] == ids[1]
    names = [(result.get(role) or {}).get("hostname") for role in ROLES]
    return bool(names[0]) and names[0] == names[1]


def _link_room(result: dict[str, Any]) -> bool | None:
    efficiency = number(result.get("efficiency"))
    return None if efficiency is None else efficiency < LINK_ROOM


def _entitlement_to_add(result: dict[str, Any], use: dict[str, float]) -> str:
    """Processors that would let the mover fill the link: the CPU it used, scaled by wire limit / goodput."""
    wire, goodput = number(result.get("wire_limit_bps")), number(result.get("goodput_bps"))
    if wire and goodput:
        need = use["used_cores"] * wire / goodput
        add = math.ceil(max(0.1, need - use["limit_cores"]) * 10) / 10
        return f"about {add:.1f} more processor(s) (to about {need:.1f})"
    return "about one processor per side per 1 Gb/s it must move"


def _remedy(result: dict[str, Any], saturated: list[tuple[str, dict[str, float]]]) -> str:
    role, use = saturated[0]
    facts = msp_fact(result, role, "cpu") or {}
    what = ("raise the cgroup's CPU quota (cpu.max) or give it more CPUs" if facts.get("quota_cores") else
            "on the HMC raise the partition's entitled capacity (chhwres -r proc -o a --procunits N, then the "
            "profile) or make it uncapped with enough virtual processors")
    return (f"give {host_label(result, role)} {_entitlement_to_add(result, use)}: {what}; IBM sizes an MSP at about "
            f"one processor per side at 1 Gb, more at 10 Gb and up")


def msp_cpu_check(result: dict[str, Any]) -> dict[str, str]:
    if shared_host(result):
        return check(NAME, UNKNOWN, "both agents run on one host: their CPU is one host's, so it says nothing about "
                                    "two MSPs")
    uses = [(role, cpu_use(result, role)) for role in ROLES]
    known = [(role, use) for role, use in uses if use is not None]
    if not known:
        return check(NAME, UNKNOWN, "CPU use or entitlement not known on either MSP (psutil missing, lparstat "
                                    "unreadable, or an older agent)")
    figures = "; ".join(f"{host_label(result, role)} used {use['used_cores']:.2f} of {use['limit_cores']:.2f} "
                        f"processors" for role, use in known)
    saturated = [(role, use) for role, use in known if use["utilisation"] >= SATURATED]
    window = tiny_window(result)
    if window and [role for role, _ in saturated] == ["receiver"]:
        # A window of a few KiB hands the receiver a few KiB per read: it spends its CPU on per-read work, and
        # would do so with any entitlement. The buffer is the fix (issue 19: the first finding is the cause).
        return check(NAME, INFO, f"{figures}: the receiver ran out of CPU because {window_text(window)}: each read "
                                 f"returns a few KiB, so it spends its CPU per read; raise its TCP receive buffer "
                                 f"first (see 'what limited the streams')", "")
    room, efficiency = _link_room(result), number(result.get("efficiency")) or 0.0
    if saturated and room:
        status = FAIL if efficiency < FAR_BELOW_WIRE else WARN
        return check(NAME, status, f"{figures}: out of CPU while the link had room (goodput {efficiency:.0%} of the "
                                   f"wire limit)", _remedy(result, saturated))
    if saturated and room is None:
        return check(NAME, WARN, f"{figures}: out of CPU (the wire limit is unknown, so whether the link had room "
                                 f"is not)", _remedy(result, saturated))
    if saturated:
        return check(NAME, PASS, f"{figures}: CPU near the limit, but the link was full")
    return check(NAME, PASS, f"{figures}: headroom left")
