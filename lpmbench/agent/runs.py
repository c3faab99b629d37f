"""One run on one agent: the receiving side (armed by ``arm``) or the sending side (told to ``start``).

Each stream's bulk loop runs in its own OS thread (the data plane releases the GIL), while the event loop
samples the shared byte counters and TCP_INFO every interval and pushes interval reports. Every wait has a
deadline, so a run always ends and the agent returns to idle by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import os
import socket
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from lpmbench import dataplane
from lpmbench.agent.streams import bind_in_range, describe, ipv6_works, peer_address, recv_exactly, spawn_thread
from lpmbench.net import pathprobe, sockopts
from lpmbench.net.acl import allowed
from lpmbench.platform import CpuMeter, InterfaceAudit, tcpinfo
from lpmbench.protocol import connection as protocol
from lpmbench.protocol.contract import ARM_TIMEOUT_S, DATA_CONNECT_TIMEOUT_S, DRAIN_GRACE_S

PAYLOAD_BYTES = 1 << 20  # one reused buffer of incompressible bytes, as LPM's payload is compressed/encrypted
RECV_BUFFER_BYTES = 1 << 20
# A run whose streams get nothing acknowledged for this long (and at least 3 intervals) is stalled: a jumbo
# black hole (TCP connects with small segments, then full-size ones vanish) or a dead link. It ends with a
# diagnosis instead of running into the kernel's retransmission timeout.
STALL_MIN_S = 3.0
INTERVAL_TCP_FIELDS = ("rtt_us", "total_retrans", "segs_out", "snd_cwnd", "bytes_acked", "snd_mss", "pmtu")
MAX_PENDING_ADMISSIONS = 64  # data connections waiting to show a token at once; more are closed at once
PROBE_MTU_CEILING = 9216  # largest jumbo frame commonly configured; loopback's 64 KiB MTU is not a path

Report = Callable[[str, dict[str, Any]], Awaitable[None]]
Allowed = Optional[tuple[Any, ...]]  # networks (ipaddress) a data peer must lie in; None: any


@dataclass
class RunSpec:
    run_id: str
    token: str
    streams: int
    duration: float
    interval: float
    options: dict[str, Any] = field(default_factory=dict)


class RunAborted(Exception):
    pass


class _Run:
    """What senders and receivers share: stream threads, counters, interval reporting, abort."""

    role = "?"

    def __init__(self, spec: RunSpec, report: Report, agent_facts: dict[str, Any]) -> None:
        self.spec = spec
        self._report = report
        self._facts = agent_facts
        self._counters = [dataplane.new_counters() for _ in range(spec.streams)]
        self._sockets: list[socket.socket | None] = [None] * spec.streams
        self._abort_reason: str | None = None
        self._aborted = asyncio.Event()
        self._cpu = CpuMeter()
        self._audit = InterfaceAudit()
        self.error: str | None = None

    @property
    def peer(self) -> str | None:
        """The other MSP's address, once known."""
        return None

    def live_bytes(self) -> int:
        """Bytes moved so far by all streams; safe to call while the loops run."""
        return sum(int(c[dataplane.SLOT_BYTES]) for c in self._counters)

    def abort(self, reason: str) -> None:
        """Stop every stream loop at once; the run then reports what it had."""
        if self._abort_reason is None:
            self._abort_reason = reason
        for counters in self._counters:
            counters[dataplane.SLOT_STOP] = 1
        self._aborted.set()

    def _record_error(self, message: str) -> None:
        if self.error is None:
            self.error = message

    async def _sample_until_done(self, futures: list[asyncio.Future], t0: float) -> float:
        """Push an interval report every interval until every stream thread has ended; returns end time."""
        index = 0
        pending = set(futures)
        last_tick = t0
        while pending:
            next_tick = t0 + (index + 1) * self.spec.interval
            done, pending = await asyncio.wait(pending, timeout=max(0.0, next_tick - time.monotonic()))
            if time.monotonic() >= next_tick:
                await self._send_interval(index, next_tick - t0)
                index += 1
                last_tick = next_tick
                self._after_interval()
        end = max((f.result()[1] for f in futures if not f.cancelled() and f.exception() is None),
                  default=time.monotonic())
        if end - last_tick > 0.1 * self.spec.interval:
            await self._send_interval(index, end - t0)
        return end

    async def _send_interval(self, index: int, t: float) -> None:
        await self._report("interval", {"run_id": self.spec.run_id, "index": index, "t": round(t, 6),
                                        "streams": self._stream_samples()})

    def _stream_samples(self) -> list[dict[str, Any]]:
        samples = []
        for stream_id, counters in enumerate(self._counters):
            sample: dict[str, Any] = {"id": stream_id, "bytes": int(counters[dataplane.SLOT_BYTES])}
            tcp = self._tcp_info(stream_id)
            if tcp is not None:  # the interval needs a few fields; the final result carries them all
                sample["tcp"] = {k: tcp[k] for k in INTERVAL_TCP_FIELDS if k in tcp}
            samples.append(sample)
        return samples

    def _tcp_info(self, stream_id: int) -> dict[str, Any] | None:
        return None

    def _after_interval(self) -> None:
        """Hook run after each interval report."""

    async def _audit_finish(self) -> dict[str, Any]:
        return await asyncio.get_running_loop().run_in_executor(None, self._audit.finish)

    def close(self) -> None:
        """Stop every stream loop and close the sockets: safe to call at any point, and more than once.

        The loops work on duplicates of the sockets, so closing ours alone would not stop them.
        """
        for counters in self._counters:
            counters[dataplane.SLOT_STOP] = 1
        self._close_sockets()

    def _close_sockets(self) -> None:
        for i, sock in enumerate(self._sockets):
            if sock is not None:
                sock.close()
                self._sockets[i] = None

    def _collect_stream_errors(self, futures: list[asyncio.Future]) -> None:
        for stream_id, future in enumerate(futures):
            if future.done() and not future.cancelled() and future.exception() is not None:
                self._record_error(f"stream {stream_id}: {describe(future.exception())}")

    def _result(self, elapsed: float, streams: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        data = {"role": self.role, **self._facts, **self._cpu.stop(), "elapsed_s": round(elapsed, 6),
                "streams": streams, "error": self.error or self._abort_reason, "aborted": bool(self._abort_reason)}
        data.update(extra)
        return data


class ReceiverRun(_Run):
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
        self.discard = bool(spec.options.get("rx_discard", False))

    @property
    def peer(self) -> str | None:
        return self._peer

    def listen(self) -> int:
        """Bind the data port (from the configured range) and return it."""
        self._listener = bind_in_range(self._bind_host, self._port_range)
        self._listener.listen(self.spec.streams + 4)
        self._listener.setblocking(False)
        self._port = int(self._listener.getsockname()[1])
        return self._port

    async def start_probe_responder(self) -> int:
        """Echo the sender's path MTU probes (UDP, token-checked) on a port from the range; returns it."""
        loop = asyncio.get_running_loop()
        host = self._bind_host or ("::" if ipv6_works() else "0.0.0.0")
        ports = 0 if self._port_range == (0, 0) else self._port_range
        self._responder, port = await pathprobe.start_responder(loop, host, ports, self.spec.token)
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
            connected = sum(s is not None for s in self._sockets)
            self._record_error(self._abort_reason or str(exc) or
                               f"only {connected} of {self.spec.streams} streams connected within "
                               f"{ARM_TIMEOUT_S:.0f} s; is the data port reachable from the sender "
                               f"(firewall, the agent's --data-ports)?")
            self._close_sockets()
            self._close_listener()
            self._close_responder()
            return self._result(0.0, self._stream_results(), **self._port_facts(), **await self._audit_done())
        self._close_listener()
        self._close_responder()
        self._cpu.start()
        t0 = time.monotonic()
        deadline_ns = time.monotonic_ns() + int((self.spec.duration + DRAIN_GRACE_S +
                                                 2 * self.spec.interval) * 1e9)
        futures = [self._start_stream(loop, i, deadline_ns) for i in range(self.spec.streams)]
        end = await self._sample_until_done(futures, t0)
        self._collect_stream_errors(futures)
        self._close_sockets()
        elapsed = end - t0
        return self._result(elapsed, self._stream_results(), rx_discard=self.discard, **self._port_facts(),
                            **await self._audit_done())

    async def _audit_done(self) -> dict[str, Any]:
        if self._audit_task is None:
            return {}
        await self._audit_task
        return await self._audit_finish()

    def _port_facts(self) -> dict[str, Any]:
        return {"data_port": self._port, "data_port_range": list(self._port_range)}

    def _start_stream(self, loop: asyncio.AbstractEventLoop, stream_id: int, deadline_ns: int) -> asyncio.Future:
        sock = self._sockets[stream_id]
        assert sock is not None
        return spawn_thread(loop, f"lpmbench-rx-{stream_id}", dataplane.recv_stream, sock.fileno(),
                      bytearray(RECV_BUFFER_BYTES), deadline_ns, self._counters[stream_id], self.discard)

    def _stream_results(self) -> list[dict[str, Any]]:
        return [{"id": i, "bytes": int(c[dataplane.SLOT_BYTES])} for i, c in enumerate(self._counters)]

    async def _accept_all(self, loop: asyncio.AbstractEventLoop) -> None:
        """Accept until every stream slot holds a connection that showed our token.

        Each connection is admitted in a task of its own, so strangers that connect and stay silent cannot hold
        up the real streams; at most MAX_PENDING_ADMISSIONS wait at once, later ones are closed at once.
        """
        deadline = time.monotonic() + ARM_TIMEOUT_S
        admissions: set[asyncio.Future] = set()
        aborted = asyncio.ensure_future(self._aborted.wait())
        accept: asyncio.Future | None = None
        try:
            while not all(self._sockets):
                if accept is None:
                    accept = asyncio.ensure_future(loop.sock_accept(self._listener))  # type: ignore[arg-type]
                done, _ = await asyncio.wait({accept, aborted, *admissions}, return_when=asyncio.FIRST_COMPLETED,
                                             timeout=max(0.0, deadline - time.monotonic()))
                if aborted in done:
                    raise RunAborted(self._abort_reason or "aborted")
                if not done:
                    raise asyncio.TimeoutError()
                admissions -= done
                if accept in done:
                    conn, _ = accept.result()
                    accept = None
                    if len(admissions) >= MAX_PENDING_ADMISSIONS:
                        conn.close()
                    else:
                        admissions.add(asyncio.ensure_future(self._admit(loop, conn, deadline)))
        finally:
            for task in (aborted, accept, *admissions):
                if task is not None:
                    task.cancel()
            await asyncio.gather(*(t for t in (accept, *admissions) if t is not None), return_exceptions=True)
            if accept is not None and accept.done() and not accept.cancelled() and accept.exception() is None:
                accept.result()[0].close()  # accepted in the same wake-up as the abort or timeout

    async def _admit(self, loop: asyncio.AbstractEventLoop, conn: socket.socket, deadline: float) -> None:
        """Read the data hello; keep the connection only if it carries our token for a free stream slot."""
        kept = False
        try:
            conn.setblocking(False)
            address = peer_address(conn)
            if address is None or not allowed(address, self._allow_peers):
                return
            raw = await asyncio.wait_for(recv_exactly(loop, conn, protocol.DATA_HELLO_SIZE),
                                         min(DATA_CONNECT_TIMEOUT_S, max(0.1, deadline - time.monotonic())))
            stream_id = protocol.parse_data_hello(raw, self.spec.token)
            if stream_id is None or stream_id >= self.spec.streams or self._sockets[stream_id] is not None:
                return  # not our sender: no accept byte, no data
            self._sockets[stream_id] = conn  # reserved before the await: a duplicate hello finds it taken
            kept = True
            try:
                await loop.sock_sendall(conn, protocol.ACCEPT_BYTE)
            except BaseException:
                self._sockets[stream_id], kept = None, False
                raise
            sockopts.keepalive(conn, sockopts.DATA_USER_TIMEOUT_S)
            if self._peer is None:
                self._peer = address
                # The interface toward the sender is known now; audit it while the streams run.
                self._audit_task = loop.run_in_executor(None, self._audit.start, address)
        except (asyncio.TimeoutError, OSError):
            return
        finally:
            if not kept:
                conn.close()

    def _close_listener(self) -> None:
        if self._listener is not None:
            self._listener.close()
            self._listener = None

    def close(self) -> None:
        super().close()
        self._close_listener()
        self._close_responder()


class SenderRun(_Run):
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
            return self._result(0.0, self._stream_results(), address=None,
                                connect_error=None if self._abort_reason else connect_error,
                                **await self._audit_finish(), **self._probe_facts())
        payload = os.urandom(PAYLOAD_BYTES)
        self._cpu.start()
        t0 = time.monotonic()
        deadline_ns = time.monotonic_ns() + int(self.spec.duration * 1e9)
        futures = [spawn_thread(loop, f"lpmbench-tx-{i}", dataplane.send_stream, sock.fileno(), payload, deadline_ns,
                                self._stream_bytes(i), self._counters[i], self.method)
                   for i, sock in enumerate(self._live_sockets())]
        self._futures = futures
        end = await self._sample_until_done(futures, t0)
        self._collect_stream_errors(futures)
        methods = {f.result()[0][1] for f in futures if f.exception() is None}
        self.used_method = methods.pop() if len(methods) == 1 else (",".join(sorted(methods)) or None)
        await self._finish_streams(loop)
        return self._result(end - t0, self._stream_results(), address=address, send_method=self.used_method,
                            stalled=self.stalled, rate_capped=self.rate_capped, **await self._audit_finish(),
                            **self._probe_facts())

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
            interface_mtu = (self._audit.facts or {}).get("mtu") or PROBE_MTU_CEILING
            ceiling = max(1280 if ":" in address else 576, min(interface_mtu, PROBE_MTU_CEILING))
            self._probe = await loop.run_in_executor(None, pathprobe.probe_path_mtu, address, int(probe_port),
                                                     self.spec.token, ceiling)
        return address

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

    def _live_sockets(self) -> list[socket.socket]:
        return [s for s in self._sockets if s is not None]

    async def _connect_all(self, loop: asyncio.AbstractEventLoop) -> None:
        family, proto, sockaddr = self._family, self._proto, self._sockaddr
        rate = self.spec.options.get("rate_bps")
        for stream_id in range(self.spec.streams):
            if self._aborted.is_set():
                raise RunAborted(self._abort_reason or "aborted")
            sock = socket.socket(family, socket.SOCK_STREAM, proto)
            self._sockets[stream_id] = sock
            sock.setblocking(False)
            sockopts.keepalive(sock, sockopts.DATA_USER_TIMEOUT_S)
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
        await loop.sock_sendall(sock, protocol.data_hello(self.spec.token, stream_id))
        answer = await recv_exactly(loop, sock, 1)
        if answer != protocol.ACCEPT_BYTE:
            raise ConnectionRefusedError(errno.ECONNREFUSED, "receiver did not accept the stream")

    async def _finish_streams(self, loop: asyncio.AbstractEventLoop) -> None:
        """Half-close every stream, wait for the receiver to drain and close, then read final TCP_INFO."""
        for sock in self._live_sockets():
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_WR)

        async def wait_eof(sock: socket.socket) -> None:
            with contextlib.suppress(OSError, asyncio.TimeoutError):
                await asyncio.wait_for(loop.sock_recv(sock, 4096), DRAIN_GRACE_S)

        await asyncio.gather(*(wait_eof(s) for s in self._live_sockets()))
        self._final_tcp = [self._tcp_info(i) for i in range(self.spec.streams)]
        self._close_sockets()

    def _stream_results(self) -> list[dict[str, Any]]:
        return [{"id": i, "bytes": int(c[dataplane.SLOT_BYTES]), "tcp": self._final_tcp[i]}
                for i, c in enumerate(self._counters)]
