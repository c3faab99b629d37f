"""The agent: an asyncio server for control sessions that arms receivers and starts senders.

asyncio only moves bytes here; :mod:`lpmbench.protocol` decides what they mean. Every wait has a timeout,
a session that goes away aborts its run, and a run that ends for any reason frees its slot, so the agent
always returns to idle by itself (no "server is busy" forever).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import ssl
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Union

from lpmbench import __version__, dataplane
from lpmbench import platform as hostinfo
from lpmbench.agent.admission import SourceSlots
from lpmbench.agent.listener import ControlListener, Ticket
from lpmbench.agent.runs import ReceiverRun, RunSpec, SenderRun
from lpmbench.net import eventloop, sockopts
from lpmbench.platform import capabilities
from lpmbench.protocol import connection as protocol
from lpmbench.protocol import contract, messages
from lpmbench.protocol.contract import CONTROL_CONNECT_TIMEOUT_S, DEFAULT_CONTROL_PORT, DEFAULT_DATA_PORTS
from lpmbench.protocol.messages import (
    Abort,
    Arm,
    Armed,
    Busy,
    Bye,
    Error,
    ErrorCode,
    Heartbeat,
    Message,
    Result,
    Start,
    Started,
    Summary,
)

log = logging.getLogger("lpmbench.agent")

# One deadline from accept for the TLS and the protocol handshake together: an orchestrator gives up after
# CONTROL_CONNECT_TIMEOUT_S (connect included), so a handshake still going on after that serves nobody.
HANDSHAKE_TIMEOUT_S = CONTROL_CONNECT_TIMEOUT_S + 1.0
IDLE_TIMEOUT_S = 300.0  # an authenticated session with no run and no command is closed after this
WRITE_TIMEOUT_S = 10.0  # an orchestrator that stops reading is treated as gone
READ_CHUNK = 65536
# Connections still in the handshake (TLS included) at once; beyond this new ones are closed at once, so a client
# opening connections in a loop cannot exhaust the agent's file descriptors. Authenticated sessions are not
# counted. One source (an IPv4 address, an IPv6 /64) may hold only a few of them, so a flood from one address
# never locks out an orchestrator at another: an orchestrator opens one control connection per run.
MAX_HANDSHAKES = 512
MAX_HANDSHAKES_PER_SOURCE = 8
LISTEN_BACKLOG = 512


RUN_OPTIONS = frozenset({"send_method", "rx_discard", "rate_bps", "mss", "probe_port", "max_bytes"})
SHUTDOWN_REPORT_S = 5.0  # on SIGTERM, time for aborted runs to tell their orchestrators


@dataclass
class AgentLimits:
    max_duration_s: float = 3600.0
    max_streams: int = 64
    max_concurrent_runs: int = 1
    min_interval_s: float = 0.1
    max_rate_bps: float | None = None  # None: unlimited; else runs asking more are refused, others are capped


@dataclass
class AgentConfig:
    bind: str | None = None
    port: int = DEFAULT_CONTROL_PORT
    key: bytes | None = None
    data_ports: tuple[int, int] = DEFAULT_DATA_PORTS
    limits: AgentLimits = field(default_factory=AgentLimits)
    allow_clients: tuple[Any, ...] | None = None  # networks whose orchestrators may connect; None: any
    allow_peers: tuple[Any, ...] | None = None  # networks this agent may send to / accept streams from
    ssl: ssl.SSLContext | None = None  # TLS on the control port


# An observer of the agent's runs (the metrics collector is one): called with an event name and its fields.
#   "run_started"  {run_id, role, run}
#   "run_finished" {run_id, role, peer, data}           data: the run's final report
#   "run_summary"  {run_id, role, peer, summary}        what the orchestrator concluded about the run
Listener = Callable[[str, dict[str, Any]], None]
RECENT_RUNS = 64  # run ids remembered so a later "summary" can be matched to the role and peer


MAX_RATE_BPS = 1e13  # 10 Tbit/s: beyond any MSP link; also keeps pacing arithmetic in range


def _not_allowed_frame() -> bytes:
    refusal = protocol.Connection(protocol.Role.AGENT, None)
    refusal.send_error(ErrorCode.NOT_ALLOWED, "this orchestrator's address is not in the agent's --allow list")
    return refusal.data_to_send()


def _printable_ascii(text: str, limit: int) -> bool:
    return 0 < len(text) <= limit and text.isascii() and text.isprintable()


class Agent:
    def __init__(self, config: AgentConfig, listeners: list[Listener] | None = None) -> None:
        self.config = config
        self.runs: dict[str, tuple[str, Any]] = {}  # run_id -> (holder description, run)
        self.listeners: list[Listener] = list(listeners or [])
        self.recent: OrderedDict[str, tuple[str, str | None]] = OrderedDict()  # run_id -> (role, peer)
        self._listener: ControlListener | None = None
        self._sessions: dict[asyncio.Task, ControlSession] = {}
        self._facts: dict[str, Any] | None = None
        self._instance_id = secrets.token_hex(8)

    @property
    def port(self) -> int:
        assert self._listener is not None and self._listener.sockets
        return int(self._listener.sockets[0].getsockname()[1])

    def facts(self) -> dict[str, Any]:
        """What the agent tells orchestrators about itself; gathered once (on VIOS, ioslevel is a command)."""
        if self._facts is None:
            self._facts = self._static_facts()
        return dict(self._facts)

    def _static_facts(self) -> dict[str, Any]:
        return {"hostname": hostinfo.hostname(), "os": hostinfo.os_description(), "version": __version__,
                "dataplane": dataplane.IMPLEMENTATION, "dataplane_fallback_reason": dataplane.fallback_reason,
                "send_methods": list(dataplane.SEND_METHODS), "event_loop": eventloop.current_kind(),
                "capabilities": capabilities.summary(),
                # Which agent this is, whatever name or address reached it (pair refuses A and B being one agent).
                "instance_id": self._instance_id,
                # The cap an operator set (--max-rate): a capped run reports it instead of "the network set the pace".
                "max_rate_bps": self.config.limits.max_rate_bps}

    async def start(self) -> None:
        # The --allow list and the handshake slots are checked on the raw socket, before TLS (lpmbench.agent.listener).
        self._listener = ControlListener(self.config.bind, self.config.port, self._on_connection,
                                         tls=self.config.ssl, allow=self.config.allow_clients,
                                         slots=SourceSlots(MAX_HANDSHAKES_PER_SOURCE, MAX_HANDSHAKES),
                                         handshake_s=HANDSHAKE_TIMEOUT_S, backlog=LISTEN_BACKLOG,
                                         refusal=_not_allowed_frame)
        await self._listener.start()
        self._facts = self._static_facts()

    def reload_key(self, key: bytes | None) -> None:
        """Use a new key for sessions that start from now on (SIGHUP)."""
        self.config.key = key

    async def serve_forever(self) -> None:
        assert self._listener is not None
        try:
            await asyncio.Event().wait()  # the listener accepts in tasks of its own until close()
        finally:
            self._listener.close()
            await self._listener.wait_closed()

    async def close(self) -> None:
        """Stop listening, abort runs, let them report 'aborted' to their orchestrators, close sessions."""
        if self._listener is not None:
            self._listener.close()
        for _, run in list(self.runs.values()):
            run.abort("agent shutting down")
        running = [s.run_task for s in self._sessions.values() if s.run_task is not None]
        if running:
            await asyncio.wait(running, timeout=SHUTDOWN_REPORT_S)
        if self._listener is not None:
            await self._listener.cancel_connections()  # sessions, and connections still in their TLS handshake
            await self._listener.wait_closed()

    async def _on_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                             ticket: Ticket) -> None:
        """An admitted control connection (lpmbench.agent.listener): its session, until it ends."""
        task = asyncio.current_task()
        assert task is not None
        session = ControlSession(self, reader, writer, ticket)
        self._sessions[task] = session
        try:
            await session.serve()
        except Exception:  # noqa: BLE001 - one bad session must never take the agent down
            log.exception("control session from %s failed", session.peer)
        finally:
            await session.close()
            self._sessions.pop(task, None)

    def emit(self, event: str, **fields: Any) -> None:
        for listener in self.listeners:
            try:
                listener(event, fields)
            except Exception:  # noqa: BLE001 - an observer must never break a run
                log.exception("listener failed on %s", event)

    def remember(self, run_id: str, role: str, peer: str | None) -> None:
        self.recent[run_id] = (role, peer)
        while len(self.recent) > RECENT_RUNS:
            self.recent.popitem(last=False)

    def busy_with(self) -> tuple[str, str] | None:
        """(run_id, holder) of a run that keeps a new one out, or None when a slot is free."""
        if len(self.runs) < self.config.limits.max_concurrent_runs:
            return None
        run_id, (holder, _) = next(iter(self.runs.items()))
        return run_id, holder

    def check_limits(self, streams: int, duration: float, interval: float, rate_bps: Any = None) -> str | None:
        limits = self.config.limits
        if rate_bps is not None and (not isinstance(rate_bps, (int, float)) or isinstance(rate_bps, bool)
                                     or not 0 < rate_bps <= MAX_RATE_BPS):
            return f"rate_bps must be a number above 0 and at most {MAX_RATE_BPS:.0e}"
        if rate_bps is not None and not sockopts.PACING_AVAILABLE:
            return "this agent cannot cap its send rate (SO_MAX_PACING_RATE is Linux only); run without a rate"
        if limits.max_rate_bps and rate_bps and rate_bps > limits.max_rate_bps:
            return f"rate {rate_bps:.0f} bit/s exceeds this agent's limit of {limits.max_rate_bps:.0f} bit/s"
        if not 1 <= streams <= limits.max_streams:
            return f"streams must be 1..{limits.max_streams} on this agent, not {streams}"
        if not 0 < duration <= limits.max_duration_s:
            return f"duration must be above 0 and at most {limits.max_duration_s:g} s on this agent"
        if not limits.min_interval_s <= interval <= max(duration, limits.min_interval_s):
            return f"interval must be {limits.min_interval_s:g} s .. duration"
        return None


async def _cancel_and_wait(task: asyncio.Future) -> None:
    """Cancel a task this session owns and wait until it has ended.

    ``asyncio.wait`` never raises the task's CancelledError, so a CancelledError out of this call can only be
    the caller's own cancellation, which therefore propagates (``await task`` could not tell the two apart).
    """
    task.cancel()
    await asyncio.wait({task})
    if not task.cancelled() and task.exception() is not None:
        log.warning("background task ended with %r", task.exception())


def _received(read: asyncio.Future) -> bytes:
    try:
        return bytes(read.result())
    except OSError:  # reset, or ETIMEDOUT from keepalive / TCP_USER_TIMEOUT: the orchestrator is gone
        return b""


RunCommand = Union[Arm, Start]


class ControlSession:
    """One authenticated orchestrator connection and the run it holds, if any.

    Every byte to the orchestrator goes through :meth:`_flush`, which writes what the connection queued
    (``conn.data_to_send()``): replies, run reports, heartbeats and error frames keep their order.
    """

    def __init__(self, agent: Agent, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 ticket: Ticket) -> None:
        self.agent = agent
        self.ticket = ticket  # the handshake slot, freed once authenticated
        self.reader = reader
        self.writer = writer
        peer = writer.get_extra_info("peername")
        self.address: str | None = str(peer[0]) if peer else None
        self.peer = f"{peer[0]}:{peer[1]}" if peer else "?"
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sockopts.keepalive(sock, sockopts.CONTROL_USER_TIMEOUT_S)
        self.conn = protocol.Connection(protocol.Role.AGENT, agent.config.key, agent_info=agent.facts(),
                                        allow_insecure=agent.config.key is None)
        self.run_task: asyncio.Task | None = None
        self.run: Any = None
        self.held_runs: set[str] = set()  # run ids this session started: only it may send their summary
        # One writer at a time: Python 3.9's StreamWriter.drain() asserts when two coroutines wait on a
        # paused transport, and replies, run reports and heartbeats come from different tasks.
        self._write_lock = asyncio.Lock()
        self._last_sent = asyncio.get_running_loop().time()

    async def serve(self) -> None:
        loop = asyncio.get_running_loop()
        # The handshake has one deadline from accept, not one per read: a byte every 100 ms must not hold it.
        handshake_deadline = self.ticket.deadline
        read: asyncio.Future | None = None
        try:
            while True:
                if read is None:
                    read = asyncio.ensure_future(self.reader.read(READ_CHUNK))
                authenticated = self.conn.state is protocol.State.READY
                timeout = IDLE_TIMEOUT_S if authenticated else max(0.0, handshake_deadline - loop.time())
                done, _ = await asyncio.wait({read}, timeout=timeout)
                if not done:
                    if self.run_task is not None:
                        continue  # a run is going on; it ends by its own deadline (the same read stays pending)
                    what = "handshake" if not authenticated else "idle session"
                    log.info("%s from %s timed out", what, self.peer)
                    self.conn.send_error(ErrorCode.TIMEOUT, f"{what} timed out")
                    await self._flush()
                    return
                data, read = _received(read), None
                self.conn.receive_data(data)
                if not await self._handle_events():
                    return
        finally:
            if read is not None:
                await _cancel_and_wait(read)

    async def _handle_events(self) -> bool:
        """Handle every complete event; False when the session is over."""
        while True:
            event = self.conn.next_event()
            await self._flush()
            if isinstance(event, protocol.NeedData):
                return True
            if isinstance(event, protocol.Authenticated):
                log.info("session from %s authenticated", self.peer)
                self.ticket.release()
                continue
            if isinstance(event, (protocol.Failure, protocol.Closed)):
                if isinstance(event, protocol.Failure) and event.code is not ErrorCode.EOF:
                    log.warning("session from %s ended: %s (%s)", self.peer, event.message, event.code)
                return False
            if isinstance(event, Bye):
                return False
            await self._command(event)

    async def _command(self, message: Message) -> None:
        if isinstance(message, Summary):
            self._summary(message)
        elif isinstance(message, Abort):
            if self.run is not None and self.run.spec.run_id == message.run_id:
                self.run.abort(message.reason or "aborted by the orchestrator")
        elif isinstance(message, (Arm, Start)):
            await self._run_command(message)
        else:  # the connection passes an agent nothing else once authenticated
            raise protocol.ProtocolError(f"unexpected {message.type!r} from {self.peer}")

    def _summary(self, message: Summary) -> None:
        role, peer = self.agent.recent.get(message.run_id, (None, None))
        if role is not None and message.run_id in self.held_runs:  # only the run's own orchestrator
            self.agent.emit("run_summary", run_id=message.run_id, role=role, peer=peer, summary=message.data)

    async def _run_command(self, message: RunCommand) -> None:
        spec_error = self._validate(message)
        if spec_error:
            run_id = message.run_id if _printable_ascii(message.run_id, 64) else "?"  # never echo junk back
            await self._send(Error(ErrorCode.BAD_REQUEST, spec_error, run_id))
            return
        if message.run_id in self.agent.runs or message.run_id in self.agent.recent:
            await self._send(Error(ErrorCode.BAD_REQUEST, "run_id already used on this agent; pick another",
                                   message.run_id))
            return
        busy = self.agent.busy_with()
        if busy is not None or self.run is not None:
            run_id, holder = busy or (self.run.spec.run_id, self.peer)
            await self._send(Busy(run_id, f"agent busy with run {run_id} held by {holder}"))
            return
        spec = RunSpec(message.run_id, message.token, message.streams, float(message.duration),
                       float(message.interval), dict(message.options or {}))
        if isinstance(message, Arm):
            await self._arm(spec)
        else:
            await self._start(spec, message.host, message.port)

    def _validate(self, message: RunCommand) -> str | None:
        if not _printable_ascii(message.run_id, 64):
            return "run_id must be 1..64 printable ASCII characters"
        if not protocol.valid_token(message.token):
            return "token must be 32 lower-case hex digits"
        if isinstance(message, Start):
            start_error = self._validate_start(message)
            if start_error:
                return start_error
        options = message.options or {}
        unknown = set(options) - RUN_OPTIONS
        if unknown:
            return f"unknown run option(s): {', '.join(sorted(unknown))}"
        max_bytes = options.get("max_bytes")
        if max_bytes is not None and (not isinstance(max_bytes, int) or isinstance(max_bytes, bool)
                                      or not message.streams <= max_bytes <= 2**62):
            return "max_bytes must be an integer of at least one byte per stream"
        probe_port = options.get("probe_port")
        if probe_port is not None and (not isinstance(probe_port, int) or not 0 < probe_port < 65536):
            return "probe_port must be 1..65535"
        if options.get("rx_discard") and not capabilities.HAS_MSG_TRUNC_DISCARD:
            return f"rx_discard is not available on this agent: {capabilities.HAS_MSG_TRUNC_DISCARD.reason}"
        mss = options.get("mss")
        if mss is not None and (not isinstance(mss, int) or isinstance(mss, bool) or not 536 <= mss <= 65495):
            return "mss must be an integer 536..65495"
        try:
            duration, interval = float(message.duration), float(message.interval)
        except OverflowError:
            return "duration and interval must be ordinary numbers of seconds"
        return self.agent.check_limits(message.streams, duration, interval, options.get("rate_bps"))

    @staticmethod
    def _validate_start(message: Start) -> str | None:
        if not _printable_ascii(message.host, 253):
            return "host must be a name or address of 1..253 printable ASCII characters"
        method = (message.options or {}).get("send_method", "auto")
        if method != "auto" and method not in dataplane.SEND_METHODS:
            return (f"send method {method!r} is not available here "
                    f"(have: {', '.join(dataplane.SEND_METHODS)})")
        if not 0 < message.port < 65536:
            return "port must be 1..65535"
        return None

    async def _arm(self, spec: RunSpec) -> None:
        run = ReceiverRun(spec, self._report, self.agent.facts(), self.agent.config.bind,
                          self.agent.config.data_ports, self.agent.config.allow_peers)
        self._claim(run)
        try:
            port = run.listen()
            probe_port = await run.start_probe_responder()
        except OSError as exc:
            self._unclaim(run)
            run.close()
            await self._send(Error(ErrorCode.DATA_PORT, str(exc), spec.run_id))
            return
        self._announce(run)
        await self._send(Armed(spec.run_id, port, probe_port))
        self.run_task = asyncio.ensure_future(self._execute(run))

    async def _start(self, spec: RunSpec, host: str, port: int) -> None:
        limit = self.agent.config.limits.max_rate_bps
        if limit and not spec.options.get("rate_bps"):
            spec.options["rate_bps"] = limit  # runs that ask for no rate are capped at the agent's limit
        run = SenderRun(spec, self._report, self.agent.facts(), host, port, self.agent.config.allow_peers)
        self._claim(run)
        self._announce(run)
        await self._send(Started(spec.run_id))
        self.run_task = asyncio.ensure_future(self._execute(run))

    def _claim(self, run: Any) -> None:
        """Take the run slot in the same step as the busy check (no await between them): another session's
        arm or start, handled while this one awaits its probe responder, must find the agent busy."""
        self.run = run
        self.agent.runs[run.spec.run_id] = (self.peer, run)

    def _unclaim(self, run: Any) -> None:
        self.run = None
        self.agent.runs.pop(run.spec.run_id, None)

    def _announce(self, run: Any) -> None:
        self.held_runs.add(run.spec.run_id)
        log.info("run %s: %s for %s, %d streams, %.1f s", run.spec.run_id, run.role, self.peer,
                 run.spec.streams, run.spec.duration)
        self.agent.emit("run_started", run_id=run.spec.run_id, role=run.role, run=run)

    async def _execute(self, run: Any) -> None:
        started = time.monotonic()
        try:
            data = await self._run_with_heartbeats(run)
            self.agent.remember(run.spec.run_id, run.role, run.peer)
            self.agent.emit("run_finished", run_id=run.spec.run_id, role=run.role, peer=run.peer, data=data)
            await self._send(Result(run.spec.run_id, run.role, data))
            log.info("run %s finished after %.1f s%s", run.spec.run_id, time.monotonic() - started,
                     f" with error: {data['error']}" if data.get("error") else "")
        except Exception as exc:  # noqa: BLE001 - report and free the slot whatever happened
            log.exception("run %s failed", run.spec.run_id)
            with contextlib.suppress(Exception):
                await self._send(Error(ErrorCode.RUN_FAILED, f"run failed on this agent: {exc!r}"[:500],
                                       run.spec.run_id))
        finally:
            run.close()  # whatever happened: no stream thread or socket outlives its run
            self.agent.runs.pop(run.spec.run_id, None)
            self.run = None
            self.run_task = None

    async def _run_with_heartbeats(self, run: Any) -> dict[str, Any]:
        """The run, with this session's heartbeat task alive exactly as long as it (ended before the result)."""
        heartbeats = asyncio.ensure_future(self._heartbeats(run.spec.run_id))
        try:
            return dict(await run.run())
        finally:
            await _cancel_and_wait(heartbeats)

    async def _heartbeats(self, run_id: str) -> None:
        """A heartbeat whenever nothing went to the orchestrator for HEARTBEAT_S (a run draining or auditing
        its interfaces says nothing for seconds; the orchestrator must not take it for a silent agent)."""
        loop = asyncio.get_running_loop()
        while self.conn.state is protocol.State.READY and not self.writer.is_closing():
            quiet = loop.time() - self._last_sent
            if quiet >= contract.HEARTBEAT_S:
                await self._send(Heartbeat(run_id))
                quiet = 0.0
            await asyncio.sleep(contract.HEARTBEAT_S - quiet)

    async def _report(self, kind: str, fields: dict[str, Any]) -> None:
        """The runs' report callback (runs.Report): their reports become typed messages here."""
        await self._send(messages.build(kind, fields))

    async def _send(self, message: Message) -> None:
        if self.conn.state is not protocol.State.READY:
            return
        self.conn.send(message)
        await self._flush()

    async def _flush(self) -> None:
        """The session's only write path: whatever the connection queued, in order."""
        async with self._write_lock:
            data = self.conn.data_to_send()
            if not data or self.writer.is_closing():
                return
            self.writer.write(data)
            self._last_sent = asyncio.get_running_loop().time()
            try:
                await asyncio.wait_for(self.writer.drain(), WRITE_TIMEOUT_S)
            except (asyncio.TimeoutError, ConnectionError):
                log.warning("orchestrator %s stopped reading; closing its session", self.peer)
                if self.run is not None:
                    self.run.abort(f"orchestrator {self.peer} went away")
                self.writer.close()

    async def close(self) -> None:
        if self.run is not None:
            self.run.abort(f"orchestrator {self.peer} went away")
        if self.run_task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(self.run_task), 10)
        self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()
