"""Plumbing for runs: stream threads that report to the event loop, exact reads, data-port binding."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import random
import socket
import threading
import time
from typing import Any, Callable


def spawn_thread(loop: asyncio.AbstractEventLoop, name: str, fn: Callable[..., Any], *args: Any) -> asyncio.Future:
    """Run ``fn`` in a dedicated thread (not the default executor: it has too few workers for 64 streams)."""
    future = loop.create_future()

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
    return future


def describe(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.errno is not None:
        return f"{errno.errorcode.get(exc.errno, exc.errno)}: {exc.strerror}"
    return str(exc) or type(exc).__name__


def peer_address(sock: socket.socket) -> str | None:
    try:
        return str(sock.getpeername()[0])
    except OSError:
        return None


async def recv_exactly(loop: asyncio.AbstractEventLoop, sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = await loop.sock_recv(sock, size - len(data))
        if not chunk:
            raise ConnectionResetError(errno.ECONNRESET, "peer closed the data connection early")
        data += chunk
    return data


def ipv6_works() -> bool:
    """Whether this host can open IPv6 sockets (Python may be built with IPv6 on a kernel that has it off)."""
    if not socket.has_ipv6:
        return False
    try:
        socket.socket(socket.AF_INET6, socket.SOCK_STREAM).close()
    except OSError:
        return False
    return True


def bind_in_range(host: str | None, port_range: tuple[int, int], attempts: int = 64) -> socket.socket:
    """A listening socket on a random free port in ``port_range`` (0, 0 means any ephemeral port)."""
    low, high = port_range
    candidates = [0] if (low, high) == (0, 0) else random.sample(range(low, high + 1),
                                                                  min(attempts, high - low + 1))
    family = socket.AF_INET6 if host and ":" in host else socket.AF_INET
    if host is None and ipv6_works():
        family = socket.AF_INET6
    last_error: OSError | None = None
    for port in candidates:
        try:
            sock = socket.socket(family, socket.SOCK_STREAM)
        except OSError as exc:
            raise OSError(exc.errno, f"cannot open a data socket: {exc.strerror}") from exc
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6 and host is None:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)  # one port for v4 and v6
            sock.bind((host or ("::" if family == socket.AF_INET6 else "0.0.0.0"), port))
            return sock
        except OSError as exc:
            sock.close()
            last_error = exc
    raise OSError(errno.EADDRINUSE, f"no free data port in {low}-{high}: {last_error}")
