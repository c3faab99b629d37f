"""Adapter checks on both MSPs: link speed, same speed or flow control, offloads, physical adapter, errors.

Remedies name the VIOS attribute (``chdev -dev entX -attr ...``, as padmin) and the Linux command.
"""

from __future__ import annotations

from typing import Any

from lpmbench.analysis.checks.base import FAIL, PASS, UNKNOWN, WARN, check
from lpmbench.analysis.wire import interfaces, on_loopback

LPM_MIN_LINK_MBPS = 10_000  # IBM's LPM networking best practice: 10 Gb or faster between the MSPs


def link_speed_check(result: dict[str, Any]) -> dict[str, str]:
    name = "link speed at least 10 Gb"
    if on_loopback(result):
        return check(name, UNKNOWN, "loopback: no link speed")
    tx, rx = interfaces(result)
    speeds = {"sender": tx.get("speed_mbps"), "receiver": rx.get("speed_mbps")}
    unknown = [k for k, v in speeds.items() if not v]
    if unknown:
        return check(name, UNKNOWN, f"the {' and '.join(unknown)} interface reports no link speed "
                                    f"(virtual adapter?)", "")
    slow = {k: v for k, v in speeds.items() if v < LPM_MIN_LINK_MBPS}
    if slow:
        status = FAIL if min(slow.values()) < 1000 else WARN
        return check(name, status, ", ".join(f"{k} at {v} Mb/s" for k, v in slow.items()),
                     "IBM recommends 10 Gb or faster adapters between MSPs; at 1 GbE a 256 GB partition takes "
                     "about an hour to move")
    return check(name, PASS, f"{speeds['sender']} / {speeds['receiver']} Mb/s")


def speed_match_check(result: dict[str, Any]) -> dict[str, str]:
    name = "same speed at both MSPs"
    tx, rx = interfaces(result)
    a, b = tx.get("speed_mbps"), rx.get("speed_mbps")
    if on_loopback(result) or not a or not b:
        return check(name, UNKNOWN, "link speed not known at both ends")
    if a == b:
        return check(name, PASS, f"both at {a} Mb/s")
    slower = rx if b < a else tx
    flow = (slower.get("flow_control") or {})
    if flow.get("rx") and flow.get("tx"):
        return check(name, PASS, f"{a} vs {b} Mb/s, with flow control on at the slower side")
    return check(name, WARN, f"sender at {a} Mb/s feeds receiver at {b} Mb/s" if b < a else
                 f"sender at {a} Mb/s, receiver at {b} Mb/s",
                 "a faster MSP overruns the slower one: retransmissions, slow LPM, stalls. Use the same speed at "
                 "both ends, or turn on flow control on the switch port of the slower side (VIOS: chdev -dev "
                 f"entX -attr flow_ctrl=yes; Linux: ethtool -A {slower.get('name') or 'DEV'} rx on tx on)")


def offload_check(result: dict[str, Any]) -> dict[str, str]:
    name = "large_send and large_receive on"
    if on_loopback(result):
        return check(name, UNKNOWN, "loopback: no adapter offloads to judge")
    off = []
    for role, facts in zip(("sender", "receiver"), interfaces(result)):
        for key in ("large_send", "large_receive"):
            if facts.get(key) is False:
                off.append(f"{key} off on the {role} ({facts.get('name')})")
    if not any(f for f in interfaces(result)):
        return check(name, UNKNOWN, "no interface facts")
    if off:
        return check(name, WARN, "; ".join(off),
                     "turn segmentation and receive offloads on: VIOS: chdev -dev entX -attr large_send=yes "
                     "large_receive=yes (and largesend=1 large_receive=yes on the SEA); Linux: ethtool -K DEV tso on "
                     "gso on gro on")
    return check(name, PASS, "segmentation and receive offloads on at both MSPs")


def physical_adapter_check(result: dict[str, Any]) -> dict[str, str]:
    name = "IP on a physical adapter"
    if on_loopback(result):
        return check(name, UNKNOWN, "loopback")
    virtual = [f"{role} ({facts.get('name')})" for role, facts in zip(("sender", "receiver"), interfaces(result))
               if facts.get("virtual") is True]
    if not any(interfaces(result)):
        return check(name, UNKNOWN, "no interface facts")
    if virtual:
        return check(name, WARN, f"the MSP address sits on a virtual adapter at the {', '.join(virtual)}",
                     "IBM recommends the MSP IP on the en interface of a physical adapter (or of the SEA on it), "
                     "not on a virtual Ethernet adapter, so LPM traffic skips the hypervisor switch")
    return check(name, PASS, "the MSP addresses sit on physical adapters")


def nic_errors_check(result: dict[str, Any]) -> dict[str, str]:
    name = "NIC errors and drops during the run"
    parts, known = [], False
    for role, facts in zip(("sender", "receiver"), interfaces(result)):
        delta = facts.get("counters_delta") or {}
        if delta:
            known = True
        bad = {k: v for k, v in delta.items() if isinstance(v, int) and v > 0}
        if bad:
            parts.append(f"{role} {facts.get('name')}: " + ", ".join(f"{k} +{v}" for k, v in sorted(bad.items())))
    if not known:
        return check(name, UNKNOWN, "interface counters not available")
    if parts:
        errors = any("errors" in p for p in parts)
        return check(name, FAIL if errors else WARN, "; ".join(parts),
                     "errors point at cabling, SFPs or a duplex/speed mismatch (VIOS: entstat -d entX; Linux: "
                     "ethtool -S DEV); drops at full rings or buffers (raise rx/tx queue sizes)")
    return check(name, PASS, "no errors or drops on either interface")
