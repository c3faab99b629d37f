"""Path checks: jumbo frames end to end, stalls, what limited the streams, goodput against the wire limit, and
what jumbo frames bought (--jumbo-compare).

Remedies name the VIOS attribute (``chdev -dev entX -attr ...``, as padmin) and the Linux command, since MSPs
are VIOS partitions and test hosts are often Linux.
"""

from __future__ import annotations

from typing import Any

from lpmbench.analysis.checks.base import FAIL, PASS, UNKNOWN, WARN, check
from lpmbench.analysis.checks.causes import LIMITED_WARN_FRACTION, limited_share, tiny_window, window_text
from lpmbench.analysis.checks.transfer import cap_set_the_pace, rate_cap_text
from lpmbench.analysis.wire import JUMBO_MTU, MSS_HEADROOM, STANDARD_MTU, on_loopback

# A black hole lets the handshake and the first small segments through, then nothing full-size: a stream that
# moved this many full-size segments before stalling crossed the path with them.
BLACK_HOLE_MAX_SEGMENTS = 10
EFFICIENCY_WARN = 0.7  # goodput below 70 % of the wire limit: something other than the wire limits
RWND_BUFFER_REMEDY = ("raise the receiver's TCP buffers (Linux: sysctl net.ipv4.tcp_rmem max; AIX/VIOS: no -o "
                      "tcp_recvspace, rfc1323=1)")
RWND_REMEDY = f"{RWND_BUFFER_REMEDY}, or the receiving MSP is short of CPU"
SNDBUF_REMEDY = "raise the sender's TCP buffers (Linux: sysctl net.ipv4.tcp_wmem max; AIX/VIOS: no -o tcp_sendspace)"


def jumbo_check(result: dict[str, Any]) -> dict[str, str]:
    name = "jumbo frames end to end"
    path = result.get("path") or {}
    probed, tx_mtu, rx_mtu = path.get("mtu"), path.get("sender_mtu"), path.get("receiver_mtu")
    if on_loopback(result):
        return check(name, UNKNOWN, "both agents on one host (loopback): there is no switch path to judge")
    if probed is None and path.get("probe_unsupported"):
        return _without_probe(name, result, path)
    if probed is None or tx_mtu is None or rx_mtu is None:
        return check(name, UNKNOWN, f"path MTU not measured ({path.get('probe_error') or 'no probe result'})",
                     "make sure UDP to the receiver's data port range is allowed, then run again")
    if probed < min(tx_mtu, rx_mtu):
        return _path_below_interfaces(name, path)
    if tx_mtu != rx_mtu:
        return check(name, WARN, f"the MSPs disagree on the MTU ({tx_mtu} vs {rx_mtu}); the path passes {probed}",
                     "set the same MTU on both MSPs (VIOS: jumbo_frames=yes on both adapters and SEAs)")
    if probed >= JUMBO_MTU:
        mss = [s["mss"] for s in result.get("streams", []) if isinstance(s.get("mss"), int)]
        return _jumbo_path(name, probed, mss, path.get("mtu_source") == "tcp evidence", tiny_window(result))
    frames = "standard frames only" if probed <= STANDARD_MTU else f"frames of at most {probed} bytes, below jumbo size"
    return check(name, WARN, f"{frames} (path MTU {probed}); jumbo frames raise LPM throughput and cut CPU per GB "
                             f"moved",
                 "enable jumbo frames on both MSPs (VIOS: chdev -dev entX -attr jumbo_frames=yes on the physical "
                 "adapter and the SEA) and on every switch port between them, then run with --jumbo-compare")


def _path_below_interfaces(name: str, path: dict[str, Any]) -> dict[str, str]:
    """The path passes less than both MSPs send: a black hole, unless the probe ran out of time first."""
    probed, tx_mtu, rx_mtu = path["mtu"], path["sender_mtu"], path["receiver_mtu"]
    if path.get("probe_complete") is False:
        return check(name, WARN, f"the path probe ran out of time: at least {probed}-byte packets pass, larger ones "
                                 f"were not confirmed (interfaces at {tx_mtu} / {rx_mtu}); heavy loss slows the probe",
                     "run again; if it repeats, look for loss on the path (retransmit rate, NIC errors)")
    device = path.get("sender_interface") or "DEV"
    lower = (f"VIOS: chdev -dev entX -attr jumbo_frames=no on the adapter and SEA; Linux: ip link set {device} "
             f"mtu 1500" if probed == STANDARD_MTU else
             f"VIOS: chdev -dev enX -attr mtu={probed}; Linux: ip link set {device} mtu {probed}")
    detail = (f"the MSP interfaces are set to MTU {tx_mtu} / {rx_mtu} but the path passes only {probed}-byte "
              f"packets: full-size LPM segments vanish (black hole)")
    if min(tx_mtu, rx_mtu) > STANDARD_MTU:  # jumbo hosts: a switch port or VLAN in between drops the big frames
        return check(name, FAIL, f"{detail}; a switch port or VLAN on the path does not pass these jumbo frames",
                     f"enable jumbo frames (MTU {min(tx_mtu, rx_mtu)} or more) on every switch port and VLAN "
                     f"between the MSPs, or lower both MSPs to the path's {probed} ({lower})")
    # Standard frames that do not fit: a tunnel, VPN or router with a smaller MTU whose ICMP does not come back.
    return check(name, FAIL, f"{detail}; a tunnel, VPN or router on the path has a smaller MTU",
                 f"let ICMP 'fragmentation needed' through so TCP can adapt, or lower both MSPs to {probed} ({lower})")


def _jumbo_path(name: str, probed: int, mss: list[int], from_tcp: bool = False,
                window: tuple[int, int] | None = None) -> dict[str, str]:
    """The path passes jumbo frames: did the streams use them? (MSS unknown without TCP_INFO: not judged.)"""
    if mss and min(mss) < JUMBO_MTU - 100 and window:
        return _mss_of_a_small_window(name, f"the path passes {probed}-byte packets but the streams used MSS "
                                            f"{min(mss)}", window)
    if mss and min(mss) < JUMBO_MTU - 100:
        return check(name, WARN, f"the path passes {probed}-byte packets but the streams used MSS {min(mss)}: "
                                 f"something clamps the MSS (a firewall or tcp_mssdflt)",
                     "remove the MSS clamping on the path so LPM uses the jumbo frames")
    if from_tcp:
        return check(name, PASS, f"the streams' full-size segments (MSS {min(mss)}) crossed the path for the whole "
                                 f"run without a stall: it carries {probed}-byte jumbo frames end to end (TCP "
                                 f"evidence; this platform cannot run the UDP path probe)")
    used = f"; the streams used MSS {min(mss)}" if mss else ""
    return check(name, PASS, f"the path passes {probed}-byte jumbo frames end to end{used}")


def _mss_of_a_small_window(name: str, seen: str, window: tuple[int, int]) -> dict[str, str]:
    """A small MSS that the receiver's window explains: name the buffer, not a firewall (issue 19)."""
    return check(name, WARN, f"{seen} because {window_text(window)}: the receiving MSP's TCP receive buffer is "
                             f"tiny, nothing on the path clamps the MSS (see 'what limited the streams')",
                 f"{RWND_BUFFER_REMEDY}; the MSS grows with the window")


def _without_probe(name: str, result: dict[str, Any], path: dict[str, Any]) -> dict[str, str]:
    """The platform cannot probe (no don't-fragment on UDP, e.g. AIX): judge from the interfaces and from TCP.

    Never PASS here: the path MTU is set from TCP evidence before the checks run when the evidence holds."""
    tx_mtu, rx_mtu = path.get("sender_mtu"), path.get("receiver_mtu")
    reason = path["probe_unsupported"]
    if tx_mtu is None or rx_mtu is None:
        return check(name, UNKNOWN, f"path MTU not measured: {reason}; the interface MTUs are not known either")
    if tx_mtu != rx_mtu:
        return check(name, WARN, f"the MSPs disagree on the MTU ({tx_mtu} vs {rx_mtu}); {reason}",
                     "set the same MTU on both MSPs (VIOS: jumbo_frames=yes on both adapters and SEAs)")
    if tx_mtu <= STANDARD_MTU:
        return check(name, WARN, f"standard frames only (both MSPs at MTU {tx_mtu}); jumbo frames raise LPM "
                                 f"throughput and cut CPU per GB moved",
                     "enable jumbo frames on both MSPs (VIOS: chdev -dev entX -attr jumbo_frames=yes on the physical "
                     "adapter and the SEA) and on every switch port between them, then run with --jumbo-compare")
    streams = result.get("streams") or []
    if result.get("stalled"):
        return _stall_without_probe(name, streams, tx_mtu, reason)
    mss = [s["mss"] for s in streams if isinstance(s.get("mss"), int)]
    window = tiny_window(result)
    if mss and len(mss) == len(streams) and min(mss) < tx_mtu - MSS_HEADROOM and window:
        return _mss_of_a_small_window(name, f"the streams used MSS {min(mss)}, below what the MSPs' MTU {tx_mtu} "
                                            f"allows,", window)
    if mss and len(mss) == len(streams) and min(mss) < tx_mtu - MSS_HEADROOM:
        return check(name, WARN, f"the streams used MSS {min(mss)}, below what the MSPs' MTU {tx_mtu} allows: "
                                 f"something on the path limits segments (an MSS clamp, or a smaller MTU that TCP "
                                 f"found by path MTU discovery); {reason} to measure it",
                     "find the clamp or the smaller MTU between the MSPs (firewall MSS clamping, a router or VLAN "
                     "at a smaller MTU) so LPM uses the jumbo frames")
    return check(name, UNKNOWN, f"path MTU not measured: {reason}, and the run gave no TCP evidence (every stream "
                                f"moving full-size segments for the whole run, with its MSS known)",
                 "run longer (e.g. --duration 10) so the streams' full-size segments prove the path")


def _stall_without_probe(name: str, streams: list[dict[str, Any]], mtu: int, reason: str) -> dict[str, str]:
    """A stall right after connecting, with jumbo MTUs, is a black hole's signature: the handshake's small
    packets cross, full-size segments vanish. A stall after a stream moved plenty of full-size segments is not:
    the path carried them, and something else stopped (a link, a LAG member, a receiver that stopped reading)."""
    least = min((s.get("bytes") or 0 for s in streams), default=0)
    if least < BLACK_HOLE_MAX_SEGMENTS * (mtu - MSS_HEADROOM):
        return check(name, FAIL, f"both MSPs send {mtu}-byte frames and the streams stalled as soon as full-size "
                                 f"segments flowed: the signature of a switch port or VLAN that drops jumbo frames "
                                 f"(black hole); {reason} to confirm the size",
                     f"enable jumbo frames (MTU {mtu} or more) on every switch port and VLAN between the MSPs, "
                     f"or set both MSPs to 1500 (VIOS: chdev -dev entX -attr jumbo_frames=no on the adapter and SEA)")
    return check(name, UNKNOWN, f"the streams stalled after each moved full-size segments, so the path carried "
                                f"{mtu}-byte frames for a while: the stall is not explained by the MTU; {reason}",
                 "see the stall check: a link or LAG member that went down, or a receiving MSP that stopped reading")


def _stall_mtu_cause(path: dict[str, Any]) -> str:
    """Why a stalled run stalled, when the path MTU explains it: the sender's frames do not fit the path."""
    probed, tx_mtu, rx_mtu = path.get("mtu"), path.get("sender_mtu"), path.get("receiver_mtu")
    if not probed or not tx_mtu or probed >= min(tx_mtu, rx_mtu or tx_mtu):
        return ""  # the MSS is the smaller MTU of the two ends: frames that fit both ends fit this path
    frames = min(tx_mtu, rx_mtu or tx_mtu)
    if path.get("probe_complete") is False:
        return (f"the path probe confirmed only {probed}-byte packets before it ran out of time, and the MSPs send "
                f"{frames}-byte frames")
    return f"full-size frames ({frames}) do not cross a path that passes only {probed}"


def stall_check(result: dict[str, Any]) -> dict[str, str] | None:
    if not result.get("stalled"):
        return None
    name, detail = "streams kept moving", "the streams stalled (nothing acknowledged)"
    cause = _stall_mtu_cause(result.get("path") or {})
    if cause:
        return check(name, FAIL, f"{detail}: {cause}",
                     "fix the MTU mismatch on the path (see the jumbo frames check); LPM would stall the same way")
    return check(name, FAIL, detail,
                 "find what stopped the acknowledgements: a link or LAG member that went down, a path that drops "
                 "full-size frames (see the jumbo frames check), a middlebox that cuts streams mid-run, or a "
                 "receiving MSP that stopped reading (CPU, memory); LPM would stall the same way")




def stream_limits_check(result: dict[str, Any]) -> dict[str, str]:
    """Why streams were slow: receive window, send buffer (both can), or the network (congestion)."""
    name = "what limited the streams"
    rwnd, sndbuf = limited_share(result, "rwnd_limited_us"), limited_share(result, "sndbuf_limited_us")
    if rwnd is None or sndbuf is None:
        return check(name, UNKNOWN, "no TCP_INFO busy times (not Linux)")
    shares = f"receive window {rwnd:.0%}, send buffer {sndbuf:.0%} of busy time"
    limits = [(what, remedy) for what, share, remedy in (("the receiver's window", rwnd, RWND_REMEDY),
                                                         ("the sender's buffer", sndbuf, SNDBUF_REMEDY))
              if share >= LIMITED_WARN_FRACTION]
    window = tiny_window(result)
    if window:  # the window also shrank the MSS: its size is known, and it is the buffer, not the CPU
        return check(name, WARN, f"{' and '.join(w for w, _ in limits)} held the streams back ({shares}): "
                                 f"{window_text(window)}, so the receiving MSP's TCP receive buffer is tiny",
                     "; ".join(RWND_BUFFER_REMEDY if r == RWND_REMEDY else r for _, r in limits))
    if limits:
        return check(name, WARN, f"{' and '.join(w for w, _ in limits)} held the streams back ({shares})",
                     "; ".join(r for _, r in limits))
    if cap_set_the_pace(result):
        return check(name, PASS, f"{rate_cap_text(result)}: the cap set the pace, not the network ({shares})")
    return check(name, PASS, f"the network set the pace, not the hosts ({shares})")


def efficiency_check(result: dict[str, Any]) -> dict[str, str]:
    name = "goodput against the wire limit"
    efficiency, limit = result.get("efficiency"), result.get("wire_limit_bps")
    if efficiency is None or not limit:
        return check(name, UNKNOWN, "wire limit unknown: the link speeds, the path MTU or the streams' MSS "
                                    "(no TCP_INFO on AIX) not known, or loopback")
    detail = f"{efficiency:.0%} of the {limit / 1e9:.2f} Gbit/s the slowest link can carry at this MTU"
    if cap_set_the_pace(result):
        return check(name, UNKNOWN, f"{detail}; {rate_cap_text(result)}, so the run did not try to fill the link")
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
    jumbo_mss, standard_mss = compare["jumbo"].get("mss"), compare["standard"].get("mss")
    mss_known = isinstance(jumbo_mss, int) and isinstance(standard_mss, int)
    mss_text = f"MSS {jumbo_mss} vs {standard_mss}" if mss_known else "MSS not reported (no TCP_INFO)"
    cpu_text = f", CPU per GB {cpu:+.0%}" if cpu is not None else ""
    detail = f"{mss_text}: goodput {gain:+.0%}{cpu_text} against standard frames"
    if mss_known and jumbo_mss <= standard_mss:
        return check(name, WARN, detail + "; the streams did not use jumbo frames",
                     "enable jumbo frames end to end (see the jumbo frames check)")
    if gain < 0 and (cpu is None or cpu > 0):
        return check(name, WARN, detail + "; jumbo frames do not help on this path",
                     "check offloads (large_send / large_receive) and the NIC's ring sizes on both MSPs")
    return check(name, PASS, detail)
