"""Facts about the path and the wire, derived from the agents' reports: interfaces, path MTU, wire limit.

The wire limit at a path MTU is the slowest link x payload fraction MSS / (MTU + 38): 38 bytes of Ethernet
preamble, header, FCS and inter-frame gap per frame.
"""

from __future__ import annotations

import ipaddress
from typing import Any

ETHERNET_OVERHEAD = 38  # preamble 8 + header 14 + FCS 4 + inter-frame gap 12 bytes per frame on the wire
STANDARD_MTU = 1500
JUMBO_MTU = 9000
# IP + TCP headers with the timestamp option (Linux's default, so its MSS is MTU minus these) per packet.
IPV4_TCP_HEADERS = 20 + 20 + 12
IPV6_TCP_HEADERS = 40 + 20 + 12
LOOPBACK_NAMES = ("lo", "lo0")


def interfaces(result: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    both = result.get("interfaces") or {}
    return both.get("sender") or {}, both.get("receiver") or {}


def on_loopback(result: dict[str, Any]) -> bool:
    tx, rx = interfaces(result)
    return tx.get("name") in LOOPBACK_NAMES or rx.get("name") in LOOPBACK_NAMES


def path_facts(sender_result: dict[str, Any], receiver_result: dict[str, Any]) -> dict[str, Any]:
    tx, rx = sender_result.get("interface") or {}, receiver_result.get("interface") or {}
    probe = sender_result.get("path_probe") or {}
    data_address = sender_result.get("address")  # the receiver address the sender resolved and connected to
    return {"mtu": probe.get("mtu"), "mtu_source": "udp probe" if probe.get("mtu") else None,
            "probe_complete": probe.get("complete"), "probe_error": probe.get("error"),
            "probe_elapsed_s": probe.get("elapsed_s"), "probe_unsupported": probe.get("unsupported"),
            "sender_interface": tx.get("name"), "receiver_interface": rx.get("name"),
            "sender_mtu": tx.get("mtu"), "receiver_mtu": rx.get("mtu"),
            "data_address": data_address if isinstance(data_address, str) else None}


# TCP evidence that the path carries the interfaces' MTU: every stream moved at least this many full-size
# segments, beyond TCP's initial window (10 segments), and nothing stalled.
TCP_EVIDENCE_SEGMENTS = 100
MIN_TCP_IP_HEADERS = 40
MSS_HEADROOM = 100  # IP + TCP headers and options take at most this much of the MTU (IPv6 + timestamps: 72)


def apply_tcp_evidence(result: dict[str, Any]) -> None:
    """Where the UDP probe cannot run (a platform without don't-fragment on UDP, e.g. AIX), take the path MTU
    from what TCP did: full-size segments that crossed for a whole run without a stall prove the path carries
    the interfaces' MTU. A black hole drops exactly those segments and stalls the streams, so this evidence
    sees it (the path MTU then stays unknown, never the interface MTU)."""
    path = result.get("path") or {}
    if path.get("mtu") is not None or not path.get("probe_unsupported") or result.get("stalled"):
        return
    mtus = [m for m in (path.get("sender_mtu"), path.get("receiver_mtu")) if isinstance(m, int)]
    streams = result.get("streams") or []
    mss = [s.get("mss") for s in streams]
    if len(mtus) < 2 or not streams or not all(isinstance(m, int) and m > 0 for m in mss):
        return
    # Full-size for the smaller end; an MSS above what that end's MTU leaves after the 40 bytes of IPv4 and TCP
    # headers is not a fact (a broken or hostile report) and proves nothing.
    full_size = min(mtus) - MSS_HEADROOM <= min(mss) and max(mss) <= min(mtus) - MIN_TCP_IP_HEADERS
    moved = all((s.get("bytes") or 0) >= TCP_EVIDENCE_SEGMENTS * s["mss"] for s in streams)
    if full_size and moved and not result.get("partial"):
        path["mtu"], path["mtu_source"] = min(mtus), "tcp evidence"


def slowest_link_mbps(result: dict[str, Any]) -> int | None:
    speeds = [i.get("speed_mbps") for i in interfaces(result)]
    known = [s for s in speeds if isinstance(s, int) and s > 0]
    return min(known) if len(known) == 2 else None


def is_ipv6(address: Any) -> bool:
    """An IPv6 address on the wire (an IPv4-mapped one travels as IPv4); a host name counts as IPv4."""
    try:
        ip = ipaddress.ip_address(str(address).split("%", 1)[0])  # drop a link-local zone (fe80::1%en4)
    except ValueError:
        return False
    return isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is None


def ip_tcp_headers(result: dict[str, Any]) -> int:
    """Header bytes per packet of the data streams, from the address they went to.

    Older results lack ``path.data_address``: the receiver's control address stands in, as the streams go
    to the receiver's host unless --data-host says otherwise. (The sender's address says nothing about them.)
    """
    address = (result.get("path") or {}).get("data_address") or (result.get("receiver") or {}).get("address")
    return IPV6_TCP_HEADERS if is_ipv6(address) else IPV4_TCP_HEADERS


def wire_limit_bps(result: dict[str, Any]) -> float | None:
    """Slowest link x payload fraction MSS / (MTU + 38), at the probed path MTU and the streams' MSS."""
    speed = slowest_link_mbps(result)
    mtu = (result.get("path") or {}).get("mtu")
    mss = [s["mss"] for s in result.get("streams", []) if isinstance(s.get("mss"), int)]
    if speed is None or not mtu or not mss or on_loopback(result):
        return None
    # The frames the streams sent: their MSS plus IP and TCP headers with timestamps, at most the path MTU.
    headers = ip_tcp_headers(result)
    payload = min(min(mss), mtu - headers)
    frame = min(mtu, payload + headers)
    return speed * 1e6 * payload / (frame + ETHERNET_OVERHEAD)
