"""The control port: accept, admit, then (with TLS) the TLS handshake, then the agent's session.

Admission happens on the raw socket, before any transport, buffer or TLS state exists: the ``--allow`` list,
then a handshake slot (a few per source, :mod:`lpmbench.agent.admission`). asyncio's ``start_server(ssl=...)``
would run the TLS handshake first, so 3000 idle connections held 3000 TLS states and file descriptors before
any check ran. The slot is held until the session authenticates or ends, and one deadline from accept covers
the TLS and the protocol handshake together.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
import ssl
from collections.abc import Awaitable
from typing import Any, Callable

from lpmbench.agent.admission import RefusalLog, SourceSlots, source_of
from lpmbench.agent.streams import peer_address
from lpmbench.net import sockopts
from lpmbench.net.acl import allowed

log = logging.getLogger("lpmbench.agent")

ACCEPT_ERROR_PAUSE_S = 0.1  # out of file descriptors: let sessions end before accepting again
# A fatal TLS alert "access_denied" (RFC 8446 6.2: alert record, level 2, description 49) in a plain-text record,
# as a TLS server may send before any handshake: an orchestrator outside --allow learns why in its own TLS
# stack's words, and the agent spends no TLS state on it.
TLS_ACCESS_DENIED = bytes([21, 3, 3, 0, 2, 2, 49])


class Ticket:
    """A connection's handshake slot and deadline; ``release`` (idempotent) frees the slot."""

    def __init__(self, slots: SourceSlots, source: str, deadline: float) -> None:
        self._slots = slots
        self.source = source
        self.deadline = deadline
        self._held = True

    def release(self) -> None:
        if self._held:
            self._held = False
            self._slots.release(self.source)


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, Ticket], Awaitable[None]]
Refusal = Callable[[], bytes]  # the bytes sent to a plain-text connection outside --allow before it is closed


class ControlListener:
    def __init__(self, host: str | None, port: int, handler: Handler, *, tls: ssl.SSLContext | None,
                 allow: tuple[Any, ...] | None, slots: SourceSlots, handshake_s: float, backlog: int,
                 refusal: Refusal) -> None:
        self._host, self._port = host, port
        self._handler = handler
        self._tls = tls
        self._allow = allow
        self.slots = slots
        self._handshake_s = handshake_s
        self._backlog = backlog
        self._refusal = refusal
        self.sockets: list[socket.socket] = []
        self._accepting: list[asyncio.Task] = []
        self._connections: set[asyncio.Task] = set()
        self._refusals = RefusalLog(log, "control connection")
        self._tls_failures = RefusalLog(log, "control connection", level=logging.INFO)

    async def start(self) -> None:
        """Bind every address of ``host`` (all when None), like ``asyncio.start_server``, and start accepting."""
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(self._host, self._port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        try:
            for family, kind, proto, _, address in dict.fromkeys(infos):
                sock = socket.socket(family, kind, proto)
                self.sockets.append(sock)
                _prepare_listener(sock, family)
                sock.bind(address)
                sock.listen(self._backlog)
        except OSError:
            self.close()
            raise
        self._accepting = [asyncio.ensure_future(self._accept_loop(s)) for s in self.sockets]

    def close(self) -> None:
        """Stop accepting; connections already accepted go on (see :meth:`cancel_connections`). The listening
        sockets are closed once the accept tasks have ended (:meth:`wait_closed`), never under a pending accept."""
        for task in self._accepting:
            task.cancel()
        if not self._accepting:  # start() failed part way: nothing accepts on them
            self._close_sockets()

    async def wait_closed(self) -> None:
        await asyncio.gather(*self._accepting, return_exceptions=True)
        self._close_sockets()

    def _close_sockets(self) -> None:
        for sock in self.sockets:
            sock.close()

    async def cancel_connections(self) -> None:
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)

    async def _accept_loop(self, listener: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                conn, _ = await loop.sock_accept(listener)
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    log.warning("control port: cannot accept (%s); pausing", exc.strerror)
                    await asyncio.sleep(ACCEPT_ERROR_PAUSE_S)
                continue
            self._admit(conn, loop.time() + self._handshake_s)

    def _admit(self, conn: socket.socket, deadline: float) -> None:
        """Refuse at once (no TLS, no task) what is outside --allow or over its source's quota."""
        address = peer_address(conn)
        source = source_of(address)
        if not allowed(address, self._allow):
            self._refusals.note(source, "refused: not in --allow")
            with contextlib.suppress(OSError):  # told why: an error frame, or in TLS a TLS alert
                conn.setblocking(False)
                conn.send(self._refusal() if self._tls is None else TLS_ACCESS_DENIED)
            conn.close()
            return
        refused = self.slots.take(source)
        if refused is not None:
            self._refusals.note(source, f"refused: {refused}")
            conn.close()
            return
        task = asyncio.ensure_future(self._serve(conn, Ticket(self.slots, source, deadline)))
        self._connections.add(task)
        task.add_done_callback(self._connections.discard)

    async def _serve(self, conn: socket.socket, ticket: Ticket) -> None:
        try:
            streams = await self._open_streams(conn, ticket.deadline)
            if streams is not None:
                await self._handler(*streams, ticket)
        finally:
            ticket.release()

    async def _open_streams(self, conn: socket.socket,
                            deadline: float) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        """The connection as streams, after the TLS handshake when TLS is on; None when that fails or is late."""
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        protocol = asyncio.StreamReaderProtocol(reader)
        budget = max(0.1, deadline - loop.time())
        try:
            transport, _ = await asyncio.wait_for(
                loop.connect_accepted_socket(lambda: protocol, conn, ssl=self._tls,
                                             ssl_handshake_timeout=budget if self._tls else None), budget)
        except (OSError, asyncio.TimeoutError, ssl.SSLError) as exc:
            self._tls_failures.note(source_of(peer_address(conn)),
                                    f"failed its TLS handshake ({type(exc).__name__})")
            conn.close()
            return None
        return reader, asyncio.StreamWriter(transport, protocol, reader, loop)


def _prepare_listener(sock: socket.socket, family: int) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:  # one socket per family, as asyncio does (the :: socket is not dual-stack)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    sock.setblocking(False)
    # Accepted control connections inherit the clamp (both ways: the SYN-ACK advertises it to the orchestrator).
    sockopts.maxseg(sock, sockopts.CONTROL_MSS)
