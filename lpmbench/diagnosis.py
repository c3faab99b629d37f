"""Path and NIC diagnosis: what the probe, the interface audits and TCP_INFO say is wrong, and the fix.

Pure functions over the result document. Remedies name the VIOS attribute (``chdev -dev entX -attr ...``,
as padmin) and the Linux command, since MSPs are VIOS partitions and test hosts are often Linux.
"""

from __future__ import annotations

from typing import Any

from .verdict import FAIL, PASS, UNKNOWN, WARN, check

ETHERNET_OVERHEAD = 38  # preamble 8 + header 14 + FCS 4 + inter-frame gap 12 bytes per frame on the wire
STANDARD_MTU = 1500
JUMBO_MTU = 9000
LPM_MIN_LINK_MBPS = 10_000  # IBM's LPM networking best practice: 10 Gb or faster between the MSPs
LIMITED_WARN_FRACTION = 0.2  # share of busy time a stream spent limited by a window or buffer
EFFICIENCY_WARN = 0.7  # goodput below 70 % of the wire limit: something other than the wire limits
LOOPBACK_NAMES = ("lo", "lo0")


def _interfaces(result: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    interfaces = result.get("interfaces") or {}
    return interfaces.get("sender") or {}, interfaces.get("receiver") or {}


def on_loopback(result: dict[str, Any]) -> bool:
    tx, rx = _interfaces(result)
    return tx.get("name") in LOOPBACK_NAMES or rx.get("name") in LOOPBACK_NAMES


def path_facts(sender_result: dict[str, Any], receiver_result: dict[str, Any]) -> dict[str, Any]:
    tx, rx = sender_result.get("interface") or {}, receiver_result.get("interface") or {}
    probe = sender_result.get("path_probe") or {}
    return {"mtu": probe.get("mtu"), "probe_complete": probe.get("complete"), "probe_error": probe.get("error"),
            "probe_elapsed_s": probe.get("elapsed_s"),
            "sender_interface": tx.get("name"), "receiver_interface": rx.get("name"),
            "sender_mtu": tx.get("mtu"), "receiver_mtu": rx.get("mtu")}


def slowest_link_mbps(result: dict[str, Any]) -> int | None:
    speeds = [i.get("speed_mbps") for i in _interfaces(result)]
    known = [s for s in speeds if isinstance(s, int) and s > 0]
    return min(known) if len(known) == 2 else None


def wire_limit_bps(result: dict[str, Any]) -> float | None:
    """Slowest link x payload fraction MSS / (MTU + 38), at the probed path MTU and the streams' MSS."""
    speed = slowest_link_mbps(result)
    mtu = (result.get("path") or {}).get("mtu")
    mss = [s["mss"] for s in result.get("streams", []) if isinstance(s.get("mss"), int)]
    if speed is None or not mtu or not mss or on_loopback(result):
        return None
    # The frames the streams sent: their MSS plus IP and TCP headers with timestamps, at most the path MTU.
    headers = 72 if ":" in str((result.get("sender") or {}).get("address") or "") else 52
    payload = min(min(mss), mtu - headers)
    frame = min(mtu, payload + headers)
    return speed * 1e6 * payload / (frame + ETHERNET_OVERHEAD)


def jumbo_check(result: dict[str, Any]) -> dict[str, str]:
    name = "jumbo frames end to end"
    path = result.get("path") or {}
    probed, tx_mtu, rx_mtu = path.get("mtu"), path.get("sender_mtu"), path.get("receiver_mtu")
    if on_loopback(result):
        return check(name, UNKNOWN, "both agents on one host (loopback): there is no switch path to judge")
    if probed is None or tx_mtu is None or rx_mtu is None:
        return check(name, UNKNOWN, f"path MTU not measured ({path.get('probe_error') or 'no probe result'})",
                     "make sure UDP to the receiver's data port range is allowed, then run again")
    smaller = min(tx_mtu, rx_mtu)
    mss = [s["mss"] for s in result.get("streams", []) if isinstance(s.get("mss"), int)]
    if probed < smaller and path.get("probe_complete") is False:
        return check(name, WARN, f"the path probe ran out of time: at least {probed}-byte packets pass, larger ones "
                                 f"were not confirmed (interfaces at {tx_mtu} / {rx_mtu}); heavy loss slows the probe",
                     "run again; if it repeats, look for loss on the path (retransmit rate, NIC errors)")
    if probed < smaller:
        return check(name, FAIL, f"the MSP interfaces are set to MTU {tx_mtu} / {rx_mtu} but the path passes "
                                 f"only {probed}-byte packets: a switch port or VLAN on the path does not pass "
                                 f"jumbo frames, so full-size LPM segments vanish (black hole)",
                     "enable jumbo frames (MTU 9000 or more) on every switch port and VLAN between the MSPs, or set "
                     "both MSPs to 1500 (VIOS: chdev -dev entX -attr jumbo_frames=no on the adapter and SEA; "
                     f"Linux: ip link set {path.get('sender_interface') or 'DEV'} mtu 1500)")
    if tx_mtu != rx_mtu:
        return check(name, WARN, f"the MSPs disagree on the MTU ({tx_mtu} vs {rx_mtu}); the path passes {probed}",
                     "set the same MTU on both MSPs (VIOS: jumbo_frames=yes on both adapters and SEAs)")
    if probed >= JUMBO_MTU:
        used = f"; the streams used MSS {min(mss)}" if mss else ""
        if mss and min(mss) < JUMBO_MTU - 100:
            return check(name, WARN, f"the path passes {probed}-byte packets but the streams used MSS {min(mss)}: "
                                     f"something clamps the MSS (a firewall or tcp_mssdflt)",
                         "remove the MSS clamping on the path so LPM uses the jumbo frames")
        return check(name, PASS, f"the path passes {probed}-byte jumbo frames end to end{used}")
    return check(name, WARN, f"standard frames only (path MTU {probed}); jumbo frames raise LPM throughput and "
                             f"cut CPU per GB moved",
                 "enable jumbo frames on both MSPs (VIOS: chdev -dev entX -attr jumbo_frames=yes on the physical "
                 "adapter and the SEA) and on every switch port between them, then run with --jumbo-compare")


def stall_check(result: dict[str, Any]) -> dict[str, str] | None:
    if not result.get("stalled"):
        return None
    path = result.get("path") or {}
    cause = ""
    if path.get("mtu") and path.get("sender_mtu") and path["mtu"] < min(path["sender_mtu"],
                                                                          path.get("receiver_mtu") or 65536):
        cause = f": full-size frames ({path['sender_mtu']}) do not cross a path that passes only {path['mtu']}"
    return check("streams kept moving", FAIL, f"the streams stalled (nothing acknowledged){cause}",
                 "fix the MTU mismatch on the path (see the jumbo frames check) or the link that went down; "
                 "LPM would stall the same way")


def link_speed_check(result: dict[str, Any]) -> dict[str, str]:
    name = "link speed at least 10 Gb"
    if on_loopback(result):
        return check(name, UNKNOWN, "loopback: no link speed")
    tx, rx = _interfaces(result)
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
    tx, rx = _interfaces(result)
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
    for role, facts in zip(("sender", "receiver"), _interfaces(result)):
        for key in ("large_send", "large_receive"):
            if facts.get(key) is False:
                off.append(f"{key} off on the {role} ({facts.get('name')})")
    if not any(f for f in _interfaces(result)):
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
    virtual = [f"{role} ({facts.get('name')})" for role, facts in zip(("sender", "receiver"), _interfaces(result))
               if facts.get("virtual") is True]
    if not any(_interfaces(result)):
        return check(name, UNKNOWN, "no interface facts")
    if virtual:
        return check(name, WARN, f"the MSP address sits on a virtual adapter at the {', '.join(virtual)}",
                     "IBM recommends the MSP IP on the en interface of a physical adapter (or of the SEA on it), "
                     "not on a virtual Ethernet adapter, so LPM traffic skips the hypervisor switch")
    return check(name, PASS, "the MSP addresses sit on physical adapters")


def nic_errors_check(result: dict[str, Any]) -> dict[str, str]:
    name = "NIC errors and drops during the run"
    parts, known = [], False
    for role, facts in zip(("sender", "receiver"), _interfaces(result)):
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


def stream_limits_check(result: dict[str, Any]) -> dict[str, str]:
    """Why streams were slow: receive window, send buffer, or the network (congestion)."""
    name = "what limited the streams"
    busy = sum(s.get("busy_us") or 0 for s in result.get("streams", []))
    if not busy:
        return check(name, UNKNOWN, "no TCP_INFO busy times (not Linux)")
    rwnd = sum(s.get("rwnd_limited_us") or 0 for s in result.get("streams", [])) / busy
    sndbuf = sum(s.get("sndbuf_limited_us") or 0 for s in result.get("streams", [])) / busy
    shares = f"receive window {rwnd:.0%}, send buffer {sndbuf:.0%} of busy time"
    if rwnd >= LIMITED_WARN_FRACTION:
        return check(name, WARN, f"the receiver's window held the streams back ({shares})",
                     "raise the receiver's TCP buffers (Linux: sysctl net.ipv4.tcp_rmem max; AIX/VIOS: no -o "
                     "tcp_recvspace, rfc1323=1), or the receiving MSP is short of CPU")
    if sndbuf >= LIMITED_WARN_FRACTION:
        return check(name, WARN, f"the sender's buffer held the streams back ({shares})",
                     "raise the sender's TCP buffers (Linux: sysctl net.ipv4.tcp_wmem max; AIX/VIOS: no -o "
                     "tcp_sendspace)")
    return check(name, PASS, f"the network set the pace, not the hosts ({shares})")


def efficiency_check(result: dict[str, Any]) -> dict[str, str]:
    name = "goodput against the wire limit"
    efficiency, limit = result.get("efficiency"), result.get("wire_limit_bps")
    if efficiency is None or not limit:
        return check(name, UNKNOWN, "wire limit unknown (link speed or path MTU not known, or loopback)")
    detail = f"{efficiency:.0%} of the {limit / 1e9:.2f} Gbit/s the slowest link can carry at this MTU"
    if efficiency < EFFICIENCY_WARN:
        return check(name, WARN, detail, "see the other checks for the cause: retransmits, windows, offloads, CPU")
    return check(name, PASS, detail)


def jumbo_gain_check(result: dict[str, Any]) -> dict[str, str] | None:
    """What jumbo frames bought, from --jumbo-compare (same run with the MSS clamped to standard frames)."""
    compare = result.get("jumbo_compare")
    if not compare:
        return None
    name = "jumbo frame effectiveness"
    gain, cpu = compare.get("goodput_gain"), compare.get("cpu_per_gb_change")
    if gain is None or compare["standard"]["partial"] or compare["jumbo"]["partial"]:
        return check(name, UNKNOWN, "the comparison run did not complete")
    cpu_text = f", CPU per GB {cpu:+.0%}" if cpu is not None else ""
    detail = (f"MSS {compare['jumbo']['mss']} vs {compare['standard']['mss']}: goodput {gain:+.0%}{cpu_text} "
              f"against standard frames")
    if (compare["jumbo"]["mss"] or 0) <= (compare["standard"]["mss"] or 0):
        return check(name, WARN, detail + "; the streams did not use jumbo frames",
                     "enable jumbo frames end to end (see the jumbo frames check)")
    if gain < 0 and (cpu is None or cpu > 0):
        return check(name, WARN, detail + "; jumbo frames do not help on this path",
                     "check offloads (large_send / large_receive) and the NIC's ring sizes on both MSPs")
    return check(name, PASS, detail)


def evaluate(result: dict[str, Any]) -> list[dict[str, str]]:
    stall = stall_check(result)
    gain = jumbo_gain_check(result)
    checks = [jumbo_check(result), link_speed_check(result), speed_match_check(result), offload_check(result),
              physical_adapter_check(result), nic_errors_check(result), stream_limits_check(result),
              efficiency_check(result)]
    return ([stall] if stall else []) + checks + ([gain] if gain else [])
