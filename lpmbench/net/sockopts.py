"""Socket options that keep a silent peer from hanging a run: keepalive, TCP_USER_TIMEOUT, pacing.

Without these, a link that goes silent (cable pulled, switch port down: no FIN, no RST) is only noticed
after the kernel's retransmission timeout of about 15 minutes (tcp_retries2). Options missing on a platform
(AIX has no TCP_USER_TIMEOUT) are skipped: the interval deadlines still bound every wait.
"""

from __future__ import annotations

import errno
import logging
import socket
import struct

from lpmbench.platform import capabilities

# Seconds of unacknowledged data after which the kernel fails the connection with ETIMEDOUT.
DATA_USER_TIMEOUT_S = 10.0
CONTROL_USER_TIMEOUT_S = 30.0
KEEPALIVE_IDLE_S, KEEPALIVE_INTERVAL_S, KEEPALIVE_COUNT = 10, 5, 3
# Linux only (47 is its value on every Linux architecture lpmbench builds on); AIX cannot cap a socket's rate.
PACING_AVAILABLE = bool(capabilities.HAS_PACING)
SO_MAX_PACING_RATE = capabilities.option("SO_MAX_PACING_RATE")
MAX_PACING_BYTES_PER_S = 2**32 - 2  # the kernel reads a u32; ~0U means "unlimited"

log = logging.getLogger(__name__)
_warned: set[str] = set()  # options whose refusal was logged already


def _set(sock: socket.socket, level: int, name: int | None, value: int, label: str) -> bool:
    """Set one option; False (logged once per option, with the errno) when the kernel refuses it."""
    if name is None:
        return False
    try:
        sock.setsockopt(level, name, value)
    except OSError as exc:
        _warn_once(label, exc)
        return False
    return True


def _warn_once(label: str, exc: OSError) -> None:
    # Every data socket of every run would repeat the same refusal: once per option is enough to act on.
    if label in _warned:
        return
    _warned.add(label)
    code = errno.errorcode.get(exc.errno, exc.errno) if exc.errno is not None else "?"
    log.warning("socket option %s refused by this system (%s: %s); sockets go on without it",
                label, code, exc.strerror or exc)


def keepalive(sock: socket.socket, user_timeout_s: float) -> bool:
    """Probe an idle connection and fail it when data stays unacknowledged for ``user_timeout_s``.

    True when every option this platform has took; options the platform lacks (AIX: TCP_USER_TIMEOUT)
    are not failures, the run's own deadlines cover for them.
    """
    wanted = [(socket.SOL_SOCKET, "SO_KEEPALIVE", 1), (socket.IPPROTO_TCP, "TCP_KEEPIDLE", KEEPALIVE_IDLE_S),
              (socket.IPPROTO_TCP, "TCP_KEEPINTVL", KEEPALIVE_INTERVAL_S),
              (socket.IPPROTO_TCP, "TCP_KEEPCNT", KEEPALIVE_COUNT),
              (socket.IPPROTO_TCP, "TCP_USER_TIMEOUT", int(user_timeout_s * 1000))]
    took = True
    for level, label, value in wanted:
        name = getattr(socket, label, None)
        if name is not None and not _set(sock, level, name, value, label):
            took = False
    return took


def pace(sock: socket.socket, bytes_per_second: int) -> bool:
    """Cap one socket's send rate (Linux SO_MAX_PACING_RATE); False where the platform cannot.

    Rates above what the kernel's u32 holds (34 Gbit/s per stream) are left unpaced: no NIC an MSP has
    reaches them on one stream. The value is packed as an unsigned int (Python's int form is signed).
    """
    if not PACING_AVAILABLE:
        return False
    if bytes_per_second > MAX_PACING_BYTES_PER_S:
        return True
    value = struct.pack("=I", max(1, int(bytes_per_second)))
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_MAX_PACING_RATE, value)
    except OSError as exc:
        _warn_once("SO_MAX_PACING_RATE", exc)
        return False
    return True


# Control connections clamp their MSS below any path's MTU (IPv6's minimum 1280 less 80 bytes of headers): their
# traffic is small, and a report must cross the very jumbo black hole the run is diagnosing. Without the clamp a
# result frame larger than a standard segment vanishes there and the agent reads as "went silent".
CONTROL_MSS = 1200


def maxseg(sock: socket.socket, mss: int) -> bool:
    """Clamp the MSS before connecting (TCP_MAXSEG), e.g. to standard-frame size for a jumbo comparison."""
    return _set(sock, socket.IPPROTO_TCP, getattr(socket, "TCP_MAXSEG", None), mss, "TCP_MAXSEG")
