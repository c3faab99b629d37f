"""Admission on an armed receiver's data port: the sender's streams get in, strangers cannot keep them out.

Anyone who reaches the port can connect; only a connection that sends the run token for a free stream slot
(the data hello) is kept. Until it does, it holds an admission slot. Strangers that connect and stay silent used
to fill every slot, so the real streams were closed at once and the run failed as an unreachable port range.
Now:

- each source (an address, an IPv6 /64) holds at most ``MAX_PENDING_PER_SOURCE`` slots, ``MAX_PENDING`` in all;
- a newcomer always gets a slot: when its source's quota or all slots are taken, the oldest silent connection of
  that source, or else of the source holding the most, is closed to make room. The sender opens its streams one
  by one and sends the hello at once, so its connection is never the one that waits longest;
- a connection must send its hello within ``HELLO_DEADLINE_S`` (one segment, sent right after connect);
- connections outside the agent's ``--allow-peer`` list are closed at once, and logged;
- who was refused, and who held the port without the token (intruders), is counted per source, so the
  receiver's report can name them instead of leaving the failure to look like a firewall.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections import OrderedDict
from typing import Any, Callable

from lpmbench.agent.admission import RefusalLog, SourceCounts, SourceSlots, source_of
from lpmbench.agent.runbase import Allowed, RunAborted
from lpmbench.agent.streams import peer_address, recv_exactly
from lpmbench.net.acl import allowed
from lpmbench.protocol import connection as protocol

log = logging.getLogger("lpmbench.agent")

MAX_PENDING = 64  # data connections waiting to show a token at once
# A sender has one connection pending at a time (it connects its streams one after the other). The rest of the
# quota is time for its hello to arrive while strangers on the same address (the same host, a NAT) keep
# connecting: each of their connections moves the sender's one place closer to being closed. With 4, such a flood
# on loopback kept a stream out in 1 run of 10; with 16, in none of 30.
MAX_PENDING_PER_SOURCE = 16
# The hello is one segment sent right after connect; 2 s covers its retransmission after a loss (Linux's
# minimum RTO is 200 ms, AIX's default rto_low 1 s) and stays well inside the sender's 5 s per connection.
HELLO_DEADLINE_S = 2.0
MAX_REPORTED_SOURCES = 16  # sources named in a report; the rest are summed as "others"

Keep = Callable[[int, socket.socket, str], None]  # a stream admitted: (stream id, socket, peer address)


class _Pending:
    def __init__(self, conn: socket.socket, source: str) -> None:
        self.conn = conn
        self.source = source
        self.task: asyncio.Future | None = None


class DataGate:
    """Fills ``sockets`` (one slot per stream) with connections that show ``token``; see the module docstring."""

    def __init__(self, listener: socket.socket, token: str, sockets: list[socket.socket | None],
                 allow_peers: Allowed, keep: Keep) -> None:
        self._listener = listener
        self._token = token
        self._sockets = sockets
        self._allow_peers = allow_peers
        self._keep = keep
        self._slots = SourceSlots(MAX_PENDING_PER_SOURCE, MAX_PENDING)
        self._pending: OrderedDict[int, _Pending] = OrderedDict()  # by accept order (id of the entry)
        self.intruders = SourceCounts(MAX_REPORTED_SOURCES)
        self.refused = SourceCounts(MAX_REPORTED_SOURCES)
        self._refusals = RefusalLog(log, "data connection")

    def facts(self) -> dict[str, Any]:
        """For the receiver's report: who was refused by --allow-peer, who held the port without the token."""
        return {"intruders": self.intruders.report(), "refused_peers": self.refused.report()}

    async def fill(self, deadline: float, aborted: asyncio.Event) -> None:
        """Accept until every stream slot holds a connection that showed the token.

        asyncio.TimeoutError at ``deadline`` (monotonic), RunAborted when ``aborted`` is set."""
        loop = asyncio.get_running_loop()
        abort_wait = asyncio.ensure_future(aborted.wait())
        accept: asyncio.Future | None = None
        try:
            while not all(self._sockets):
                if accept is None:
                    accept = asyncio.ensure_future(loop.sock_accept(self._listener))
                tasks = {p.task for p in self._pending.values() if p.task is not None}
                done, _ = await asyncio.wait({accept, abort_wait, *tasks}, return_when=asyncio.FIRST_COMPLETED,
                                             timeout=max(0.0, deadline - time.monotonic()))
                if abort_wait in done:
                    raise RunAborted("aborted")
                if not done:
                    raise asyncio.TimeoutError()
                if accept in done:
                    conn = accept.result()[0]
                    accept = None
                    self._admit(loop, conn, deadline)
        finally:
            await self._close_pending(abort_wait, accept)

    def _admit(self, loop: asyncio.AbstractEventLoop, conn: socket.socket, deadline: float) -> None:
        conn.setblocking(False)
        address = peer_address(conn)
        source = source_of(address)
        if address is None or not allowed(address, self._allow_peers):
            self.refused.add(source)
            self._refusals.note(source, "refused: not in this agent's --allow-peer list")
            conn.close()
            return
        if self._slots.take(source) is not None:
            self._make_room(source)
            self._slots.take(source)
        pending = _Pending(conn, source)
        key = id(pending)
        self._pending[key] = pending
        pending.task = asyncio.ensure_future(self._hello(loop, pending, deadline))
        pending.task.add_done_callback(lambda _: self._forget(key))

    def _make_room(self, source: str) -> None:
        """Close the oldest silent connection of ``source`` if it is at its quota, else of the biggest holder."""
        if self._slots.held(source) < self._slots.per_source:
            source = max({p.source for p in self._pending.values()}, key=self._slots.held)
        mine = [p for p in self._pending.values() if p.source == source]
        victim = next((p for p in mine if not _has_bytes(p.conn)), mine[0])
        self._forget(id(victim))
        if victim.task is not None:
            victim.task.cancel()

    def _forget(self, key: int) -> None:
        pending = self._pending.pop(key, None)
        if pending is not None:
            self._slots.release(pending.source)

    async def _hello(self, loop: asyncio.AbstractEventLoop, pending: _Pending, deadline: float) -> None:
        """Keep the connection if it sends our token for a free stream slot in time; else close it, counted."""
        conn, kept = pending.conn, False
        try:
            raw = await asyncio.wait_for(recv_exactly(loop, conn, protocol.DATA_HELLO_SIZE),
                                         min(HELLO_DEADLINE_S, max(0.1, deadline - time.monotonic())))
            stream_id = protocol.parse_data_hello(raw, self._token)
            if stream_id is None or stream_id >= len(self._sockets) or self._sockets[stream_id] is not None:
                return  # not our sender: no accept byte, no data
            self._sockets[stream_id] = conn  # reserved before the await: a duplicate hello finds it taken
            kept = True
            try:
                await loop.sock_sendall(conn, protocol.ACCEPT_BYTE)
            except BaseException:
                self._sockets[stream_id], kept = None, False
                raise
            self._keep(stream_id, conn, peer_address(conn) or "?")
        except (asyncio.TimeoutError, OSError):
            return
        finally:
            if not kept:
                self.intruders.add(pending.source)
                conn.close()

    async def _close_pending(self, abort_wait: asyncio.Future, accept: asyncio.Future | None) -> None:
        tasks = [p.task for p in self._pending.values() if p.task is not None]
        for task in (abort_wait, accept, *tasks):
            if task is not None:
                task.cancel()
        await asyncio.gather(*(t for t in (accept, *tasks) if t is not None), return_exceptions=True)
        if accept is not None and accept.done() and not accept.cancelled() and accept.exception() is None:
            accept.result()[0].close()  # accepted in the same wake-up as the abort or timeout


def _has_bytes(conn: socket.socket) -> bool:
    """Whether the peer sent something not read yet (its hello may be on its way to being read: spare it)."""
    try:
        return bool(conn.recv(1, socket.MSG_PEEK))
    except OSError:  # BlockingIOError: nothing there
        return False
