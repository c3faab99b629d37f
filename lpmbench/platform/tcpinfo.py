"""Linux ``TCP_INFO``: what the kernel knows about one TCP socket.

Offsets follow ``struct tcp_info`` in include/uapi/linux/tcp.h. Older kernels return a shorter struct;
fields beyond what the kernel returned are left out rather than reported as zero.
"""

from __future__ import annotations

import socket
import struct
from typing import Any

from lpmbench.platform import capabilities

TCP_INFO = capabilities.option("TCP_INFO")
TCP_INFO_LEN = 232

# (name, offset, struct format)
_FIELDS: tuple[tuple[str, int, str], ...] = (
    ("state", 0, "B"),
    ("ca_state", 1, "B"),
    ("rto_us", 8, "I"),
    ("snd_mss", 16, "I"),
    ("rcv_mss", 20, "I"),
    ("unacked", 24, "I"),
    ("lost", 32, "I"),
    ("retrans", 36, "I"),
    ("last_data_sent_ms", 44, "I"),
    ("last_ack_recv_ms", 56, "I"),
    ("pmtu", 60, "I"),
    ("rtt_us", 68, "I"),
    ("rttvar_us", 72, "I"),
    ("snd_cwnd", 80, "I"),
    ("advmss", 84, "I"),
    ("total_retrans", 100, "I"),
    ("pacing_rate", 104, "Q"),
    ("bytes_acked", 120, "Q"),
    ("bytes_received", 128, "Q"),
    ("segs_out", 136, "I"),
    ("segs_in", 140, "I"),
    ("notsent_bytes", 144, "I"),
    ("min_rtt_us", 148, "I"),
    ("data_segs_out", 156, "I"),
    ("delivery_rate", 160, "Q"),
    ("busy_time_us", 168, "Q"),
    ("rwnd_limited_us", 176, "Q"),
    ("sndbuf_limited_us", 184, "Q"),
    ("bytes_sent", 200, "Q"),
    ("bytes_retrans", 208, "Q"),
    ("snd_wnd", 228, "I"),
)

AVAILABLE = bool(capabilities.HAS_TCP_INFO)  # the struct layout below is Linux's


def decode(raw: bytes) -> dict[str, int]:
    """Decode the bytes getsockopt(TCP_INFO) returned (native byte order)."""
    info: dict[str, int] = {}
    for name, offset, fmt in _FIELDS:
        size = struct.calcsize(fmt)
        if offset + size <= len(raw):
            (info[name],) = struct.unpack_from("=" + fmt, raw, offset)
    return info


def read(sock: socket.socket) -> dict[str, Any] | None:
    """TCP_INFO of ``sock``; where the platform has none (AIX), only ``snd_mss`` from TCP_MAXSEG (the MSS is
    what the jumbo check's TCP evidence needs); None when neither can be read or the socket is closed."""
    if not AVAILABLE:
        return _maxseg_only(sock)
    try:
        raw = sock.getsockopt(socket.IPPROTO_TCP, TCP_INFO, TCP_INFO_LEN)
    except OSError:
        return None
    return decode(raw)


def _maxseg_only(sock: socket.socket) -> dict[str, Any] | None:
    if not capabilities.HAS_TCP_MAXSEG:
        return None
    try:
        mss = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG)
    except OSError:
        return None
    return {"snd_mss": mss} if mss > 0 else None
