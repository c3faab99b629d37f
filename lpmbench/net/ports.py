"""Binding a TCP or UDP socket to a free port taken from a configured range.

LPM takes its migration ports from a range (vioslpm0 tcp_port_low / tcp_port_high), so the agent's data port
and its path MTU responder take theirs from the range the admin configured: a run then crosses the same
firewall rules as a migration. (0, 0) means "any ephemeral port the kernel picks".
"""

from __future__ import annotations

import errno
import random
import socket
from typing import Union

__all__ = ["ANY_PORT", "MAX_ATTEMPTS", "bind_in_range", "candidate_ports", "check_range", "ipv6_works"]

ANY_PORT = (0, 0)
# Ports tried before giving up: a range mostly in use by other services is reported instead of being
# walked port by port (a 32768-port range would take seconds of failed binds).
MAX_ATTEMPTS = 64
PortRange = tuple[int, int]
Ports = Union[int, PortRange]  # a single port (0: any) or a range


def check_range(ports: Ports) -> PortRange:
    """``ports`` as a (low, high) range; ValueError with the rule when it is not one.

    A single port N is the range (N, N); 0 and (0, 0) mean any ephemeral port.
    """
    if isinstance(ports, int) and not isinstance(ports, bool):
        ports = (ports, ports)
    if not (isinstance(ports, tuple) and len(ports) == 2
            and all(isinstance(p, int) and not isinstance(p, bool) for p in ports)):
        raise ValueError(f"a port range is two integers (low, high), got {ports!r}")
    low, high = ports
    if (low, high) != ANY_PORT and not 1 <= low <= high <= 65535:
        raise ValueError(f"port range must be 0-0 (any ephemeral port) or satisfy 1 <= low <= high <= 65535, "
                         f"got {low}-{high}")
    return low, high


def candidate_ports(ports: Ports, attempts: int = MAX_ATTEMPTS) -> list[int]:
    """The ports to try, in random order (two agents starting at once rarely collide): [0] for any port."""
    low, high = check_range(ports)
    if (low, high) == ANY_PORT:
        return [0]
    return random.sample(range(low, high + 1), min(attempts, high - low + 1))


def ipv6_works() -> bool:
    """Whether this host can open IPv6 sockets (Python may be built with IPv6 on a kernel that has it off)."""
    if not socket.has_ipv6:
        return False
    try:
        socket.socket(socket.AF_INET6, socket.SOCK_STREAM).close()
    except OSError:
        return False
    return True


def _address_for(host: str | None) -> tuple[int, str]:
    """(family, bind address); no host means every address, over IPv6 (dual stack) where the host has it."""
    if host is None:
        return (socket.AF_INET6, "::") if ipv6_works() else (socket.AF_INET, "0.0.0.0")
    return (socket.AF_INET6 if ":" in host else socket.AF_INET), host


def bind_in_range(host: str | None, ports: Ports, kind: int = socket.SOCK_STREAM,
                  attempts: int = MAX_ATTEMPTS) -> socket.socket:
    """A socket of ``kind`` (SOCK_STREAM or SOCK_DGRAM) bound to a free port in ``ports`` on ``host``.

    The caller listens (TCP) or hands the socket to its event loop (UDP). OSError naming the range when
    every port tried was taken; ValueError for a range that is not one.
    """
    family, address = _address_for(host)
    proto = "UDP" if kind == socket.SOCK_DGRAM else "TCP"
    low, high = check_range(ports)
    candidates = candidate_ports((low, high), attempts)
    last_error: OSError | None = None
    for port in candidates:
        try:
            sock = socket.socket(family, kind)
        except OSError as exc:  # the family itself fails: no port will do better
            raise OSError(exc.errno, f"cannot open a {proto} socket: {exc.strerror}") from exc
        try:
            _prepare(sock, family, kind, address)
            sock.bind((address, port))
            return sock
        except OSError as exc:
            sock.close()
            last_error = exc
    raise OSError(errno.EADDRINUSE, f"no free {proto} port in {low}-{high} on {address} "
                                    f"({len(candidates)} tried; last: {last_error})")


def _prepare(sock: socket.socket, family: int, kind: int, address: str) -> None:
    if kind == socket.SOCK_STREAM:
        # A listener may reuse a port whose earlier connections linger in TIME_WAIT. Not for UDP, where
        # SO_REUSEADDR would let a second socket bind a port that is in use.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6 and address == "::":
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)  # one port for IPv4 and IPv6
