"""One run on one agent: the receiving side (armed by ``arm``) or the sending side (told to ``start``).

Each stream's bulk loop runs in its own OS thread (the data plane releases the GIL), while the event loop
samples the shared byte counters and TCP_INFO every interval and pushes interval reports. The run's clock
starts once every stream runs (:mod:`lpmbench.agent.clock`). Every wait has a deadline, so a run always ends
and the agent returns to idle by itself. What both sides share is in :mod:`lpmbench.agent.runbase`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import functools
import logging
import os
import socket
import time
from typing import Any

from lpmbench import dataplane
from lpmbench.agent.datagate import DataGate
from lpmbench.agent.runbase import Allowed, Report, Run, RunAborted, RunSpec
from lpmbench.agent.streams import describe, recv_exactly
from lpmbench.net import pathprobe, sockopts
from lpmbench.net.acl import allowed
from lpmbench.net.ports import bind_in_range
from lpmbench.platform import tcpinfo
from lpmbench.protocol import connection as protocol
from lpmbench.protocol.contract import ARM_TIMEOUT_S, DATA_CONNECT_TIMEOUT_S, DRAIN_GRACE_S

__all__ = ["ReceiverRun", "RunAborted", "RunSpec", "SenderRun"]

log = logging.getLogger("lpmbench.agent")

PAYLOAD_BYTES = 1 << 20  # one reused buffer of incompressible bytes, as LPM's payload is compressed/encrypted
RECV_BUFFER_BYTES = 1 << 20
# A run whose streams get nothing acknowledged for this long (and at least 3 intervals) is stalled: a jumbo
# black hole (TCP connects with small segments, then full-size ones vanish) or a dead link. It ends with a
# diagnosis instead of running into the kernel's retransmission timeout.
ABORTED_DRAIN_S = 0.2  # an aborted sender's wait for the receiver's FIN
STALL_MIN_S = 3.0
# The data port's accept queue: room for a burst of strangers' connects (each accepted and sorted out at once,
# lpmbench.agent.datagate) without dropping the sender's SYN into a 1 s retransmit.
ACCEPT_BACKLOG_EXTRA = 64
NOT_ACCEPTED = ("the receiving agent took the TCP connection but did not accept the stream (its --allow-peer list, "
                "or connections without the run token holding its data port: see the receiver's report)")
PROBE_MTU_CEILING = 9216  # largest jumbo frame commonly configured; loopback's 64 KiB MTU is not a path


class ReceiverRun(Run):
    """Listens on a data port, accepts exactly the streams carrying the run token, and counts bytes."""

    role = "receiver"

    def __init__(self, spec: RunSpec, report: Report, agent_facts: dict[str, Any],
                 bind_host: str | None, port_range: tuple[int, int], allow_peers: Allowed = None) -> None:
        super().__init__(spec, report, agent_facts)
        self._allow_peers = allow_peers
        self._bind_host = bind_host
        self._port_range = port_range
        self._listener: socket.socket | None = None
        self._peer: str | None = None
        self._port: int | None = None
        self._responder: asyncio.DatagramTransport | None = None
        self._audit_task: asyncio.Future | None = None
        self._data_gate: DataGate | None = None
        self.discard = bool(spec.options.get("rx_discard", False))

    @property
    def peer(self) -> str | None:
        return self._peer

    def listen(self) -> int:
        """Bind the data port (from the configured range) and return it; OSError when none is free."""
        try:
            self._listener = bind_in_range(self._bind_host, self._port_range)
        except ValueError as exc:  # a range that is not one: the orchestrator is told, like a busy range
            raise OSError(errno.EINVAL, f"the agent's --data-ports: {exc}") from exc
        self._listener.listen(self.spec.streams + ACCEPT_BACKLOG_EXTRA)
        self._listener.setblocking(False)
        self._port = int(self._listener.getsockname()[1])
        self._data_gate = DataGate(self._listener, self.spec.token, self._sockets, self._allow_peers, self._kept)
        return self._port

    async def start_probe_responder(self) -> int:
        """Echo the sender's path MTU probes (UDP, token-checked) on a port from the range; returns it."""
        loop = asyncio.get_running_loop()
        self._responder, port = await pathprobe.start_responder(loop, self._bind_host, self._port_range,
                                                                self.spec.token)
        return int(port)

    def _close_responder(self) -> None:
        if self._responder is not None:
            self._responder.close()
            self._responder = None

    async def run(self) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        try:
            await self._accept_all(loop)
        except (asyncio.TimeoutError, RunAborted, OSError) as exc:
            self._record_error(self._unconnected_reason(self._abort_reason or str(exc)))
            self._close_sockets()
            self._close_listener()
            self._close_responder()
            return await self._result(0.0, self._stream_results(), **self._port_facts(),
                                      **await self._audit_done())
        self._close_listener()
        self._close_responder()
        if self._data_gate is not None and self._data_gate.intruders:
            log.info("run %s: connections without the run token were turned away from the data port: %s",
                     self.spec.run_id, self._data_gate.intruders.describe())
        # The receiver's deadline only bounds a sender that never closes: its streams end at the sender's EOF.
        works = [functools.partial(self._receive, i, sock) for i, sock in enumerate(self._live_sockets())]
        futures, t0 = await self._start_streams("lpmbench-rx", works,
                                                self.spec.duration + DRAIN_GRACE_S + 2 * self.spec.interval)
        end = await self._sample_until_done(futures, t0)
        self._collect_stream_errors(futures)
        self._close_sockets()
        return await self._result(end - t0, self._stream_results(), rx_discard=self.discard, **self._port_facts(),
                                  **await self._audit_done())

    async def _audit_done(self) -> dict[str, Any]:
        if self._audit_task is None:
            return {}
        await self._audit_task
        return await self._audit_finish()

    def _port_facts(self) -> dict[str, Any]:
        gate = self._data_gate.facts() if self._data_gate is not None else {}
        return {"data_port": self._port, "data_port_range": list(self._port_range), **gate}

    def _unconnected_reason(self, reason: str) -> str:
        """Why streams are missing (``reason``: an abort or an error, may be empty), with what the gate saw:
        a refusal by --allow-peer or strangers holding the port, which a firewall guess would hide."""
        connected = sum(s is not None for s in self._sockets)
        reason = reason or f"only {connected} of {self.spec.streams} streams connected within {ARM_TIMEOUT_S:.0f} s"
        gate = self._data_gate
        if gate is not None and gate.refused:
            log.warning("run %s: this agent's --allow-peer list refused data connections from %s",
                        self.spec.run_id, gate.refused.describe())
            return (f"{reason}; this agent's --allow-peer list refused data connections from "
                    f"{gate.refused.describe()}: add the sender's address to --allow-peer on this agent")
        if gate is not None and gate.intruders:
            log.warning("run %s: connections without the run token held the data port: %s",
                        self.spec.run_id, gate.intruders.describe())
            return (f"{reason}; connections without the run token held the data port meanwhile, from "
                    f"{gate.intruders.describe()}")
        if self._abort_reason or connected == self.spec.streams:
            return reason
        return f"{reason}; is the data port reachable from the sender (firewall, the agent's --data-ports)?"

    def _receive(self, stream_id: int, sock: socket.socket, deadline_ns: int) -> int:
        """One stream's receive loop (in its own thread)."""
        return dataplane.recv_stream(sock.fileno(), bytearray(RECV_BUFFER_BYTES), deadline_ns,
                                     self._counters[stream_id], self.discard)

    def _stream_results(self) -> list[dict[str, Any]]:
        return [{"id": i, "bytes": int(c[dataplane.SLOT_BYTES]), "started": self._started(i)}
                for i, c in enumerate(self._counters)]

    async def _accept_all(self, loop: asyncio.AbstractEventLoop) -> None:
        """Accept until every stream slot holds a connection that showed our token (lpmbench.agent.datagate)."""
        assert self._data_gate is not None, "listen() first"
        try:
            await self._data_gate.fill(time.monotonic() + ARM_TIMEOUT_S, self._aborted)
        except RunAborted:
            raise RunAborted(self._abort_reason or "aborted") from None

    def _kept(self, stream_id: int, conn: socket.socket, address: str) -> None:
        """A stream got in: keepalive on it; the first one names the sender and starts the interface audit."""
        self._keepalive_ok &= sockopts.keepalive(conn, sockopts.DATA_USER_TIMEOUT_S)
        if self._peer is None:
            self._peer = address
            # The interface toward the sender is known now; audit it while the streams run.
            self._audit_task = asyncio.get_running_loop().run_in_executor(None, self._audit.start, address)

    def _close_listener(self) -> None:
        if self._listener is not None:
            self._listener.close()
            self._listener = None

    def close(self) -> None:
        super().close()
        self._close_listener()
        self._close_responder()


class SenderRun(Run):
    """Connects the streams to an armed receiver and sends random payload until the deadline."""

    role = "sender"

    def __init__(self, spec: RunSpec, report: Report, agent_facts: dict[str, Any], host: str, port: int,
                 allow_peers: Allowed = None) -> None:
        super().__init__(spec, report, agent_facts)
        self._allow_peers = allow_peers
        self._host = host
        self._port = port
        self.method = str(spec.options.get("send_method", "auto"))
        self.used_method: str | None = None
        self._final_tcp: list[dict[str, Any] | None] = [None] * spec.streams
        self._probe: pathprobe.ProbeResult | None = None
        self._progress: dict[int, tuple[int, float]] = {}  # stream -> (bytes acknowledged, when that changed)
        self.stalled = False
        self._futures: list[asyncio.Future] = []
        self.rate_capped: bool | None = True if spec.options.get("rate_bps") else None

    @property
    def peer(self) -> str | None:
        return self._host

    def _tcp_info(self, stream_id: int) -> dict[str, Any] | None:
        sock = self._sockets[stream_id]
        return tcpinfo.read(sock) if sock is not None else None

    async def run(self) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        try:
            address = await self._prepare(loop)
            await self._connect_all(loop)
        except (OSError, asyncio.TimeoutError, RunAborted, ValueError, OverflowError) as exc:
            # ValueError covers UnicodeError from a host name IDNA cannot encode.
            connect_error = f"cannot open data streams to {self._host}:{self._port}: {describe(exc)}"
            self._record_error(self._abort_reason or connect_error)
            self._close_sockets()
            return await self._result(0.0, self._stream_results(), address=None,
                                      connect_error=None if self._abort_reason else connect_error,
                                      **await self._audit_finish(), **self._probe_facts())
        payload = await loop.run_in_executor(None, os.urandom, PAYLOAD_BYTES)
        works = [functools.partial(self._send, i, sock, payload) for i, sock in enumerate(self._live_sockets())]
        self._futures, t0 = await self._start_streams("lpmbench-tx", works, self.spec.duration)
        end = await self._sample_until_done(self._futures, t0)
        self._collect_stream_errors(self._futures)
        methods = {f.result()[0][1] for f in self._futures if f.exception() is None}
        self.used_method = methods.pop() if len(methods) == 1 else (",".join(sorted(methods)) or None)
        await self._finish_streams(loop)
        return await self._result(end - t0, self._stream_results(), address=address, send_method=self.used_method,
                                  stalled=self.stalled, rate_capped=self.rate_capped,
                                  **await self._audit_finish(), **self._probe_facts())

    def _send(self, stream_id: int, sock: socket.socket, payload: bytes, deadline_ns: int) -> tuple[int, str]:
        """One stream's send loop (in its own thread): (bytes sent, method used)."""
        return dataplane.send_stream(sock.fileno(), payload, deadline_ns, self._stream_bytes(stream_id),
                                     self._counters[stream_id], self.method)

    def _stream_bytes(self, stream_id: int) -> int:
        """This stream's share of a byte-count run (0: until the deadline); shares add up exactly."""
        total = int(self.spec.options.get("max_bytes") or 0)
        if not total:
            return 0
        share, rest = divmod(total, self.spec.streams)
        return share + (1 if stream_id < rest else 0)

    def _probe_facts(self) -> dict[str, Any]:
        return {"path_probe": dataclasses.asdict(self._probe) if self._probe else None}

    async def _prepare(self, loop: asyncio.AbstractEventLoop) -> str:
        """Resolve the receiver, check the allow list, audit our interface toward it, probe the path MTU."""
        infos = await asyncio.wait_for(loop.getaddrinfo(self._host, self._port, type=socket.SOCK_STREAM),
                                       DATA_CONNECT_TIMEOUT_S)
        self._family, _, self._proto, _, self._sockaddr = infos[0]
        address = str(self._sockaddr[0])
        if not allowed(address, self._allow_peers):
            raise PermissionError(errno.EACCES, f"{address} is not in this agent's --allow list")
        await loop.run_in_executor(None, self._audit.start, address)
        probe_port = self.spec.options.get("probe_port")
        if probe_port:
            self._probe = await self._probe_path(loop, address, int(probe_port))
        return address

    async def _probe_path(self, loop: asyncio.AbstractEventLoop, address: str, port: int) -> pathprobe.ProbeResult:
        """The path MTU toward the receiver. Never fails the run: what goes wrong is the probe's finding, and
        the jumbo check reports it as the reason the path MTU is unknown."""
        interface_mtu = (self._audit.facts or {}).get("mtu") or PROBE_MTU_CEILING
        ceiling = max(1280 if ":" in address else 576, min(interface_mtu, PROBE_MTU_CEILING))
        try:
            return await loop.run_in_executor(None, pathprobe.probe_path_mtu, address, port, self.spec.token,
                                              ceiling)
        except (OSError, ValueError) as exc:  # the prober turns network errors into findings; this is the rest
            return pathprobe.ProbeResult(mtu=None, probes=0, elapsed_s=0.0, max_tried=0, complete=False,
                                         error=f"path MTU probe not run: {describe(exc)}")

    def _after_interval(self) -> None:
        """End the run when any stream got nothing acknowledged for several intervals (see STALL_MIN_S).

        One stalled stream is enough: LPM spreads memory over its streams, and a migration waits for the
        slowest (e.g. one member of a link aggregation that drops jumbo frames).
        """
        now = time.monotonic()
        window = max(STALL_MIN_S, 3 * self.spec.interval)
        stalled = []
        for stream_id, counters in enumerate(self._counters):
            if stream_id < len(self._futures) and self._futures[stream_id].done():
                continue  # an ended stream (a reset, say) is reported as such, not as a stall
            tcp = self._tcp_info(stream_id)
            acked = tcp["bytes_acked"] if tcp and "bytes_acked" in tcp else int(counters[dataplane.SLOT_BYTES])
            last_acked, since = self._progress.get(stream_id, (-1, now))
            if acked != last_acked:
                self._progress[stream_id] = (acked, now)
            elif now - since >= window:
                stalled.append(stream_id)
        if stalled and not self._aborted.is_set():
            self.stalled = True
            which = "every stream" if len(stalled) == self.spec.streams else \
                f"stream(s) {', '.join(map(str, stalled))} of {self.spec.streams}"
            self.abort(f"streams stalled: nothing acknowledged for {window:.1f} s on {which}; the path drops "
                       f"full-size frames (jumbo/MTU black hole), a link or LAG member is down, a middlebox "
                       f"blocks the stream, or the receiving agent stopped reading")

    async def _connect_all(self, loop: asyncio.AbstractEventLoop) -> None:
        family, proto, sockaddr = self._family, self._proto, self._sockaddr
        rate = self.spec.options.get("rate_bps")
        for stream_id in range(self.spec.streams):
            if self._aborted.is_set():
                raise RunAborted(self._abort_reason or "aborted")
            sock = socket.socket(family, socket.SOCK_STREAM, proto)
            self._sockets[stream_id] = sock
            sock.setblocking(False)
            self._keepalive_ok &= sockopts.keepalive(sock, sockopts.DATA_USER_TIMEOUT_S)
            if self.spec.options.get("mss"):
                # The option is an IPv4 MSS (MTU - 40); IPv6 headers take 20 bytes more of the same frame.
                mss = int(self.spec.options["mss"]) - (20 if family == socket.AF_INET6 else 0)
                sockopts.maxseg(sock, mss)
            if rate and not sockopts.pace(sock, int(rate / 8 / self.spec.streams)):
                self.rate_capped = False
            await asyncio.wait_for(self._open_stream(loop, sock, sockaddr, stream_id), DATA_CONNECT_TIMEOUT_S)

    async def _open_stream(self, loop: asyncio.AbstractEventLoop, sock: socket.socket, sockaddr: Any,
                           stream_id: int) -> None:
        await loop.sock_connect(sock, sockaddr)
        try:  # connected: whatever happens now, the port was reachable and the receiving agent said no
            await loop.sock_sendall(sock, protocol.data_hello(self.spec.token, stream_id))
            answer = await recv_exactly(loop, sock, 1)
        except ConnectionError as exc:
            raise ConnectionRefusedError(errno.ECONNREFUSED, NOT_ACCEPTED) from exc
        if answer != protocol.ACCEPT_BYTE:
            raise ConnectionRefusedError(errno.ECONNREFUSED, NOT_ACCEPTED)

    async def _finish_streams(self, loop: asyncio.AbstractEventLoop) -> None:
        """Half-close every stream, wait for the receiver to drain and close, then read final TCP_INFO.

        TCP facts are read before the half-close too: where a stack refuses getsockopt on a closing socket (BSD
        stacks, AIX: unverified) the earlier reading stands. An aborted run does not wait out the drain grace
        for a peer that may be frozen or gone: its result is what the orchestrator is waiting for."""
        before = [self._tcp_info(i) for i in range(self.spec.streams)]
        for sock in self._live_sockets():
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_WR)
        grace = ABORTED_DRAIN_S if self._abort_reason else DRAIN_GRACE_S

        async def wait_eof(sock: socket.socket) -> None:
            with contextlib.suppress(OSError, asyncio.TimeoutError):
                await asyncio.wait_for(loop.sock_recv(sock, 4096), grace)

        await asyncio.gather(*(wait_eof(s) for s in self._live_sockets()))
        self._final_tcp = [self._tcp_info(i) or before[i] for i in range(self.spec.streams)]
        self._close_sockets()

    def _stream_results(self) -> list[dict[str, Any]]:
        return [{"id": i, "bytes": int(c[dataplane.SLOT_BYTES]), "tcp": self._final_tcp[i],
                 "started": self._started(i)} for i, c in enumerate(self._counters)]
