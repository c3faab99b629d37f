"""Facts that explain what other checks see, shared by the checks that must not blame the wrong thing.

A tiny receive window: Linux bounds each segment at half the largest window its peer ever advertised
(``tcp_bound_to_half_wnd``), so a receiver whose TCP buffer is a few KiB makes the sender use a small MSS on a
jumbo path. A firewall or ``tcp_mssdflt`` clamps the MSS too, but leaves the window alone: only a small window
holds the streams back (receive-window-limited time) *and* shrinks the MSS to half of it.
"""

from __future__ import annotations

from typing import Any

from lpmbench.analysis.wire import MSS_HEADROOM, ip_tcp_headers

LIMITED_WARN_FRACTION = 0.2  # share of busy time a stream spent limited by a window or buffer


def limited_share(result: dict[str, Any], key: str) -> float | None:
    """The streams' share of busy time limited by ``rwnd_limited_us`` or ``sndbuf_limited_us``; None unknown."""
    streams = [s for s in result.get("streams") or [] if isinstance(s, dict)]
    busy = sum(s.get("busy_us") or 0 for s in streams)
    return sum(s.get(key) or 0 for s in streams) / busy if busy else None


def _full_mss(result: dict[str, Any]) -> int | None:
    """The MSS the path and both interfaces allow: the smallest MTU known minus the IP and TCP headers."""
    path = result.get("path") or {}
    mtus = [m for m in (path.get("mtu"), path.get("sender_mtu"), path.get("receiver_mtu"))
            if isinstance(m, int) and not isinstance(m, bool) and m > 0]
    return min(mtus) - ip_tcp_headers(result) if mtus else None


def tiny_window(result: dict[str, Any]) -> tuple[int, int] | None:
    """(MSS, window) when the receiver's window both held the streams back and shrank their MSS: the MSS is
    then half the largest window the receiver advertised, so the window was about twice the MSS. None
    otherwise (the MSS the path allows, no TCP_INFO, or streams that were not window-limited)."""
    mss = [s.get("mss") for s in result.get("streams") or [] if isinstance(s, dict)]
    full, share = _full_mss(result), limited_share(result, "rwnd_limited_us")
    if not mss or not all(isinstance(m, int) and m > 0 for m in mss) or full is None or share is None:
        return None
    smallest = min(mss)
    if share < LIMITED_WARN_FRACTION or smallest >= full - MSS_HEADROOM:
        return None
    return smallest, 2 * smallest


def window_text(found: tuple[int, int]) -> str:
    mss, window = found
    return (f"the receiver advertised a window of only about {window} bytes, and Linux bounds a segment at half "
            f"the largest window its peer advertised (MSS {mss})")
