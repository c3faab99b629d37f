"""What this platform's sockets can do, decided once at import (psutil's ``HAS_*`` style), with the reason
when they cannot.

Every platform-specific socket feature lpmbench uses is listed here, and nowhere else decides it. Linux
option numbers that CPython does not export (IP_MTU_DISCOVER, TCP_INFO, SO_MAX_PACING_RATE, ...) are used on
Linux only: on AIX the same numbers name other options (IP-level 10 is IP_MULTICAST_TTL there, TCP-level 18
is TCP_KEEPINTVL, IPv6-level 62 is MCAST_JOIN_GROUP), so a call with them would succeed and do the wrong
thing. Where the socket module lacks a constant and the platform is not Linux, the capability is missing,
and the check that needs it says UNKNOWN with :attr:`Capability.reason`, never PASS and never a failed run.

Sources for the AIX side: AIX 7.2's netinet/in.h, netinet/tcp.h and sys/socket.h as mirrored by
golang.org/x/sys (unix/zerrors_aix_ppc64.go), CPython's #ifdef guards in Modules/socketmodule.c.
"""

from __future__ import annotations

import os
import platform
import socket
import sys
from dataclasses import dataclass

LINUX = sys.platform.startswith("linux")
AIX = sys.platform.startswith("aix")

# Linux ABI numbers (include/uapi/linux/in.h, in6.h, tcp.h, asm-generic/socket.h) for options CPython does not
# export on every version. Used only where LINUX is true.
_LINUX_NUMBERS = {
    "IP_MTU_DISCOVER": 10, "IP_PMTUDISC_PROBE": 3, "IPV6_MTU_DISCOVER": 23, "IPV6_PMTUDISC_PROBE": 3,
    "IPV6_DONTFRAG": 62, "TCP_INFO": 11, "TCP_USER_TIMEOUT": 18, "SO_MAX_PACING_RATE": 47,
}


def option(name: str) -> int | None:
    """The number of socket option ``name`` here: the socket module's own, else Linux's on Linux, else None."""
    value = getattr(socket, name, None)
    if value is None and LINUX:
        value = _LINUX_NUMBERS.get(name)
    return value


@dataclass(frozen=True)
class Capability:
    available: bool
    reason: str = ""  # why not, in words an admin reads: the UNKNOWN detail of the check that needs it

    def __bool__(self) -> bool:
        return self.available


def _have(available: bool, reason: str) -> Capability:
    return Capability(True) if available else Capability(False, reason)


def _df_probe(family: str) -> Capability:
    if family == "ipv4":
        linux_style = option("IP_MTU_DISCOVER") is not None and option("IP_PMTUDISC_PROBE") is not None
        available = linux_style or getattr(socket, "IP_DONTFRAG", None) is not None
    else:
        available = option("IPV6_DONTFRAG") is not None or (
            option("IPV6_MTU_DISCOVER") is not None and option("IPV6_PMTUDISC_PROBE") is not None)
    return _have(available, f"this platform cannot set don't-fragment on {family.replace('ipv', 'IPv')} UDP "
                            f"from Python, so the path MTU probe cannot run here")


HAS_DF_PROBE_V4 = _df_probe("ipv4")
HAS_DF_PROBE_V6 = _df_probe("ipv6")
HAS_TCP_INFO = _have(LINUX and option("TCP_INFO") is not None,
                     "this platform has no per-socket TCP_INFO (AIX): no per-stream RTT, cwnd, retransmits or "
                     "limited times")
HAS_TCP_MAXSEG = _have(getattr(socket, "TCP_MAXSEG", None) is not None, "this platform has no TCP_MAXSEG")
HAS_USER_TIMEOUT = _have(option("TCP_USER_TIMEOUT") is not None,
                         "this platform has no TCP_USER_TIMEOUT: a silent peer is noticed by keepalive and the "
                         "run's own deadlines instead")
HAS_KEEPALIVE_KNOBS = _have(all(getattr(socket, n, None) is not None
                                for n in ("TCP_KEEPIDLE", "TCP_KEEPINTVL", "TCP_KEEPCNT")),
                            "this platform cannot tune keepalive per socket: the system's keepalive times apply")
HAS_PACING = _have(LINUX and option("SO_MAX_PACING_RATE") is not None,
                   "this platform cannot cap a socket's send rate (SO_MAX_PACING_RATE is Linux only)")
# Zerocopy completions come back on the error queue with Linux's sock_extended_err; SPARC and PA-RISC number
# SO_ZEROCOPY differently, so the twin does not offer it there.
HAS_ZEROCOPY = _have(LINUX and not platform.machine().lower().startswith(("sparc", "parisc")),
                     "MSG_ZEROCOPY is Linux only")
HAS_SENDFILE = _have(hasattr(os, "sendfile") and hasattr(os, "memfd_create"),
                     "this platform has no os.sendfile / memfd_create (AIX)")
# recv(MSG_TRUNC) discards on Linux TCP sockets; elsewhere MSG_TRUNC is an output flag only.
HAS_MSG_TRUNC_DISCARD = _have(LINUX and hasattr(socket, "MSG_TRUNC"),
                              "receive discard (MSG_TRUNC) is Linux only: the receiver copies the data")

ALL = {
    "df_probe_ipv4": HAS_DF_PROBE_V4, "df_probe_ipv6": HAS_DF_PROBE_V6, "tcp_info": HAS_TCP_INFO,
    "tcp_maxseg": HAS_TCP_MAXSEG, "tcp_user_timeout": HAS_USER_TIMEOUT, "keepalive_knobs": HAS_KEEPALIVE_KNOBS,
    "pacing": HAS_PACING, "zerocopy": HAS_ZEROCOPY, "sendfile": HAS_SENDFILE,
    "msg_trunc_discard": HAS_MSG_TRUNC_DISCARD,
}


def summary() -> dict[str, object]:
    """For the agent's facts: each capability, and the reason of each missing one."""
    return {"available": sorted(name for name, cap in ALL.items() if cap),
            "missing": {name: cap.reason for name, cap in ALL.items() if not cap}}
