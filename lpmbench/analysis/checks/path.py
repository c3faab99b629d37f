"""Path checks: jumbo frames end to end, stalls, what limited the streams, goodput against the wire limit, and
what jumbo frames bought (--jumbo-compare).

Remedies name the VIOS attribute (``chdev -dev entX -attr ...``, as padmin) and the Linux command, since MSPs
are VIOS partitions and test hosts are often Linux.
"""

from __future__ import annotations

from typing import Any

from lpmbench.analysis.checks.base import FAIL, PASS, UNKNOWN, WARN, check
from lpmbench.analysis.wire import JUMBO_MTU, on_loopback

LIMITED_WARN_FRACTION = 0.2  # share of busy time a stream spent limited by a window or buffer
EFFICIENCY_WARN = 0.7  # goodput below 70 % of the wire limit: something other than the wire limits


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
