"""Plumbing for runs: stream threads that report to the event loop, exact reads, error descriptions.

Data ports are bound by :mod:`lpmbench.net.ports`.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import socket
import threading
import time
from typing import Any, Callable


def start_thread(loop: asyncio.AbstractEventLoop, future: asyncio.Future, name: str, fn: Callable[..., Any],
                 *args: Any) -> None:
    """Run ``fn`` in a thread of its own (the default executor has too few workers for 128 streams); ``future``
    (of ``loop``) settles with (its result, the monotonic time it ended) or its exception.

    Safe to call from any thread: starting many threads waits for each to be scheduled once, which a run
    keeps off its event loop. RuntimeError when the thread cannot be created.
    """

    def settle(result: Any, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)

    def runner() -> None:
        try:
            result, error = (fn(*args), time.monotonic()), None
        except BaseException as exc:  # noqa: BLE001 - handed to the loop, which decides
            result, error = None, exc
        with contextlib.suppress(RuntimeError):  # loop already closed: nobody is waiting any more
            loop.call_soon_threadsafe(settle, result, error)

    threading.Thread(target=runner, name=name, daemon=True).start()


def describe(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.errno is not None:
        return f"{errno.errorcode.get(exc.errno, exc.errno)}: {exc.strerror}"
    return str(exc) or type(exc).__name__


def peer_address(sock: socket.socket) -> str | None:
    """The peer's address; an IPv4 peer of a dual-stack (::) listener as plain IPv4, not ::ffff:a.b.c.d, so
    the interface audit routes it as IPv4 (a mapped address takes the IPv6 default route, often the
    management NIC) and metrics label one peer one way."""
    try:
        address = str(sock.getpeername()[0])
    except OSError:
        return None
    try:
        mapped = ipaddress.ip_address(address.split("%", 1)[0]).ipv4_mapped  # type: ignore[union-attr]
    except (ValueError, AttributeError):
        return address
    return str(mapped) if mapped is not None else address


async def recv_exactly(loop: asyncio.AbstractEventLoop, sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = await loop.sock_recv(sock, size - len(data))
        if not chunk:
            raise ConnectionResetError(errno.ECONNRESET, "peer closed the data connection early")
        data += chunk
    return data
