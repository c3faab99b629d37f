"""Adapter checks on both MSPs: link speed, same speed or flow control, offloads, physical adapter, errors.

Remedies name the VIOS attribute (``chdev -dev entX -attr ...``, as padmin) and the Linux command.
"""

from __future__ import annotations

from typing import Any

from lpmbench.analysis.checks.base import FAIL, PASS, UNKNOWN, WARN, check
from lpmbench.analysis.wire import interfaces, on_loopback

LPM_MIN_LINK_MBPS = 10_000  # IBM's LPM networking best practice: 10 Gb or faster between the MSPs
ROLES = ("sender", "receiver")


def _speed_unknown(result: dict[str, Any]) -> str:
    """Why the link speed of one side or both is not known; empty when both are."""
    both = result.get("interfaces") or {}
    missing = [role for role in ROLES if not both.get(role)]
    if missing:
        return f"no interface facts from the {' and '.join(missing)}"
    silent = [role for role in ROLES if not both[role].get("speed_mbps")]
    if silent:
        verb = "interfaces report" if len(silent) == 2 else "interface reports"
        return f"the {' and '.join(silent)} {verb} no link speed (virtual adapter?)"
    return ""


def link_speed_check(result: dict[str, Any]) -> dict[str, str]:
    name = "link speed at least 10 Gb"
    if on_loopback(result):
        return check(name, UNKNOWN, "loopback: no link speed")
    unknown = _speed_unknown(result)
    if unknown:
        return check(name, UNKNOWN, unknown)
    tx, rx = interfaces(result)
    speeds = {"sender": tx["speed_mbps"], "receiver": rx["speed_mbps"]}
    slow = {k: v for k, v in speeds.items() if v < LPM_MIN_LINK_MBPS}
    if slow:
        status = FAIL if min(slow.values()) < 1000 else WARN
        return check(name, status, ", ".join(f"{k} at {v} Mb/s" for k, v in slow.items()),
                     "IBM recommends 10 Gb or faster adapters between MSPs; at 1 GbE a 256 GB partition takes "
                     "about an hour to move")
    return check(name, PASS, f"{speeds['sender']} / {speeds['receiver']} Mb/s")


def speed_match_check(result: dict[str, Any]) -> dict[str, str]:
    name = "same speed at both MSPs"
    if on_loopback(result):
        return check(name, UNKNOWN, "loopback: no link speed")
    tx, rx = interfaces(result)
    a, b = tx.get("speed_mbps"), rx.get("speed_mbps")
    if not a or not b:
        return check(name, UNKNOWN, "link speed not known at both ends")
    if a == b:
        return check(name, PASS, f"both at {a} Mb/s")
    slower = rx if b < a else tx
    flow = (slower.get("flow_control") or {})
    if flow.get("rx") and flow.get("tx"):
        return check(name, PASS, f"{a} vs {b} Mb/s, with flow control on at the slower side")
    # LPM moves partitions both ways between a pair: a slower sender is overrun when they move back.
    return check(name, WARN, f"sender at {a} Mb/s feeds receiver at {b} Mb/s" if b < a else
                 f"sender at {a} Mb/s, receiver at {b} Mb/s: moving partitions the other way, the receiver "
                 f"overruns the sender",
                 "a faster MSP overruns the slower one: retransmissions, slow LPM, stalls. Use the same speed at "
                 "both ends, or turn on flow control on the switch port of the slower side (VIOS: chdev -dev "
                 f"entX -attr flow_ctrl=yes; Linux: ethtool -A {slower.get('name') or 'DEV'} rx on tx on)")


# Per offload: the physical adapter's attribute, the SEA's, and the Linux ethtool features.
OFFLOADS = {"large_send": ("large_send=yes", "largesend=1", "tso on gso on"),
            "large_receive": ("large_receive=yes", "large_receive=yes", "gro on")}


def _offload_states(result: dict[str, Any], state: bool | None) -> list[tuple[str, str, list[str]]]:
    """(role, interface, offloads) for each side with offloads in ``state`` (False: off, None: not known)."""
    found = []
    for role, facts in zip(ROLES, interfaces(result)):
        keys = [key for key in OFFLOADS if facts.get(key) is state]
        if keys:
            found.append((role, str(facts.get("name")), keys))
    return found


def _describe(sides: list[tuple[str, str, list[str]]], what: str) -> str:
    return "; ".join(f"{' and '.join(keys)} {what} on the {role} ({device})" for role, device, keys in sides)


def _offload_remedy(off: list[tuple[str, str, list[str]]]) -> str:
    keys = [key for key in OFFLOADS if any(key in k for _, _, k in off)]
    adapter, sea, linux = (" ".join(OFFLOADS[key][i] for key in keys) for i in range(3))
    device = off[0][1] if len(off) == 1 else "DEV"
    return (f"turn the offloads on: VIOS: chdev -dev entX -attr {adapter} on the physical adapter (and {sea} on "
            f"the SEA); Linux: ethtool -K {device} {linux}")


def offload_check(result: dict[str, Any]) -> dict[str, str]:
    name = "large_send and large_receive on"
    if on_loopback(result):
        return check(name, UNKNOWN, "loopback: no adapter offloads to judge")
    if not any(interfaces(result)):
        return check(name, UNKNOWN, "no interface facts")
    off, unknown = _offload_states(result, False), _offload_states(result, None)
    if off:
        detail = "; ".join(filter(None, (_describe(off, "off"), _describe(unknown, "not known"))))
        return check(name, WARN, detail, _offload_remedy(off))
    if unknown:  # never PASS on facts the platform did not give
        return check(name, UNKNOWN, _describe(unknown, "not known"))
    return check(name, PASS, "segmentation and receive offloads on at both MSPs")


def physical_adapter_check(result: dict[str, Any]) -> dict[str, str]:
    name = "IP on a physical adapter"
    if on_loopback(result):
        return check(name, UNKNOWN, "loopback")
    sides = list(zip(ROLES, interfaces(result)))
    if not any(facts for _, facts in sides):
        return check(name, UNKNOWN, "no interface facts")
    virtual = [f"{role} ({', '.join(filter(None, (facts.get('name'), facts.get('driver'))))})"
               for role, facts in sides if facts.get("virtual") is True]
    unknown = [role for role, facts in sides if facts.get("virtual") is None]
    if virtual:
        return check(name, WARN, f"the MSP address sits on a virtual adapter at the {', '.join(virtual)}",
                     "IBM's LPM networking best practice highly recommends the MSP IP address on a physical "
                     "adapter, not on a virtual Ethernet adapter or a Shared Ethernet Adapter, so LPM traffic "
                     "skips the hypervisor switch")
    if unknown:  # never PASS on facts the platform did not give
        return check(name, UNKNOWN, f"not known whether the {' and '.join(unknown)} address sits on a physical "
                                    f"adapter")
    return check(name, PASS, "the MSP addresses sit on physical adapters")


def _grown_counters(facts: dict[str, Any]) -> dict[str, int]:
    """Counters that grew during the run (a negative delta is a reset or wrap, not an event)."""
    delta = facts.get("counters_delta") or {}
    return {k: v for k, v in sorted(delta.items()) if isinstance(v, int) and v > 0}


_COUNTER_WORDS = {"rx_errors": "receive errors", "tx_errors": "transmit errors", "rx_dropped": "receive drops",
                  "tx_dropped": "transmit drops"}


def _counter_text(counter: str, grown: int) -> str:
    """``rx_dropped`` +310 reads "receive drops +310" (a counter this table does not know keeps its own name)."""
    return f"{_COUNTER_WORDS.get(counter, counter)} +{grown}"


def nic_errors_check(result: dict[str, Any]) -> dict[str, str]:
    name = "NIC errors and drops during the run"
    sides = list(zip(ROLES, interfaces(result)))
    known = [role for role, facts in sides if facts.get("counters_delta")]
    if not known:
        return check(name, UNKNOWN, "interface counters not available")
    grown = [(role, facts.get("name"), _grown_counters(facts)) for role, facts in sides if _grown_counters(facts)]
    if grown:
        errors = any("error" in counter for _, _, counters in grown for counter in counters)
        return check(name, FAIL if errors else WARN,
                     "; ".join(f"{role} {device}: " + ", ".join(_counter_text(k, v) for k, v in counters.items())
                               for role, device, counters in grown),
                     "errors point at cabling, SFPs or a duplex/speed mismatch (VIOS: entstat -d entX; Linux: "
                     "ethtool -S DEV); drops at full rings or buffers (raise rx/tx queue sizes)")
    if len(known) == 1:
        other = "receiver" if known == ["sender"] else "sender"
        return check(name, PASS, f"no errors or drops on the {known[0]} ({other}'s counters not available)")
    return check(name, PASS, "no errors or drops on either interface")
