"""The orchestrator: drives a receiving agent B and a sending agent A through one run and merges results.

``pair`` may run anywhere that reaches both agents' control ports. It arms B, tells A to send to B's data
port, listens to both for interval reports, and builds the result (see docs/result-contract.md). Every wait
has a timeout: a silent or dead agent yields a partial result naming the host, never a hang.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import secrets
import socket
import ssl
from dataclasses import dataclass, field
from typing import Any, Callable

from lpmbench.agent import runs
from lpmbench.agent.server import DEFAULT_CONTROL_PORT
from lpmbench.analysis import results
from lpmbench.protocol import connection as protocol

CONNECT_TIMEOUT_S = 5.0
REPLY_TIMEOUT_S = 10.0  # armed / started answers (arming binds a port; starting connects the streams)
SILENCE_SLACK_S = 5.0  # beyond two intervals without a word from a running agent, it is declared silent
RESULT_GRACE_S = 20.0  # after the run's duration: drain, FIN and final reports


class PairError(Exception):
    """A run could not start: unreachable agent, bad key, busy agent. ``host`` names the agent."""

    def __init__(self, host: str, message: str, code: str = "error") -> None:
        super().__init__(f"{host}: {message}")
        self.host = host
        self.message = message
        self.code = code


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int = DEFAULT_CONTROL_PORT

    @property
    def label(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @classmethod
    def parse(cls, text: str, default_port: int = DEFAULT_CONTROL_PORT) -> Endpoint:
        """``name``, ``name:port``, ``1.2.3.4[:port]``, ``::1`` or ``[::1]:port``."""
        text = text.strip()
        if not text:
            raise ValueError("empty host")
        host, port_text = text, ""
        if text.startswith("["):
            host, sep, rest = text[1:].partition("]")
            if not sep or (rest and not rest.startswith(":")):
                raise ValueError(f"bad host {text!r}: use [IPv6]:port")
            port_text = rest[1:]
        elif text.count(":") == 1:
            host, port_text = text.split(":")
        if not host or any(c.isspace() for c in host):
            raise ValueError(f"bad host {text!r}")
        if not port_text:
            return cls(host, default_port)
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ValueError(f"bad port in {text!r}: use 1..65535")
        return cls(host, int(port_text))


@dataclass
class PairConfig:
    sender: Endpoint
    receiver: Endpoint
    key: bytes | None
    streams: int = 4
    duration: float = 10.0
    interval: float = 1.0
    data_host: str | None = None  # address the sender uses for the receiver (default: receiver's host)
    options: dict[str, Any] = field(default_factory=dict)
    allow_insecure: bool = False
    ssl: ssl.SSLContext | None = None  # TLS to the agents' control ports
    lpars: list[dict[str, Any]] = field(default_factory=list)  # lpm.LparSpec fields, judged against the run
    window_s: float | None = None  # the migration window the partitions must fit in
    compression: float = 1.0  # LPM compression factor assumed for the model (1: none, conservative)
    send_summary: bool = True  # tell the agents the verdict (off for --jumbo-compare's comparison run)


class AgentClient:
    """One authenticated control connection to an agent, over the sans-I/O protocol."""

    def __init__(self, endpoint: Endpoint, key: bytes | None, allow_insecure: bool = False,
                 tls: ssl.SSLContext | None = None) -> None:
        self.endpoint = endpoint
        self.tls = tls
        self.conn = protocol.Connection(protocol.Role.CLIENT, key, allow_insecure=allow_insecure)
        self.facts: dict[str, Any] = {}
        self.address: str | None = None
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def connect(self) -> None:
        host = self.endpoint.label
        try:
            self._reader, self._writer = await asyncio.wait_for(
                asyncio.open_connection(self.endpoint.host, self.endpoint.port, ssl=self.tls,
                                        server_hostname=self.endpoint.host if self.tls else None),
                CONNECT_TIMEOUT_S)
        except asyncio.TimeoutError:
            raise PairError(host, f"no answer within {CONNECT_TIMEOUT_S:.0f} s; is the agent running and "
                                  f"the control port open?", "unreachable") from None
        except ssl.SSLError as exc:
            raise PairError(host, f"TLS handshake failed ({exc.reason or exc}); check --tls-ca and the agent's "
                                  f"certificate", "tls") from None
        except (OSError, socket.gaierror) as exc:
            raise PairError(host, f"cannot connect ({exc.strerror or exc}); start 'lpmbench agent' there "
                                  f"or check the host and port", "unreachable") from None
        self.address = str(self._writer.get_extra_info("peername")[0])
        await self._flush()
        event = await self._next_event(CONNECT_TIMEOUT_S)
        if isinstance(event, protocol.Failure):
            raise PairError(host, event.message, "auth" if event.code == "auth" else event.code)
        if not isinstance(event, protocol.Authenticated):
            raise PairError(host, f"unexpected {event!r} during the handshake", "protocol")
        self.facts = dict(event.peer)

    async def send(self, kind: str, **fields: Any) -> None:
        assert self._writer is not None
        self._writer.write(self.conn.send(kind, **fields))
        with contextlib.suppress(OSError, asyncio.TimeoutError):  # a dead agent shows up in the next read
            await asyncio.wait_for(self._writer.drain(), REPLY_TIMEOUT_S)

    async def next_message(self, timeout: float) -> protocol.Message | protocol.Failure:
        event = await self._next_event(timeout)
        if isinstance(event, protocol.Closed):
            return protocol.Failure("closed", "the agent closed the control connection")
        assert isinstance(event, (protocol.Message, protocol.Failure))
        return event

    async def _next_event(self, timeout: float) -> protocol.Event:
        assert self._reader is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            event = self.conn.next_event()
            await self._flush()
            if not isinstance(event, protocol.NeedData):
                return event
            remaining = deadline - loop.time()
            if remaining <= 0:
                return protocol.Failure("timeout", f"no message for {timeout:.0f} s")
            try:
                data = await asyncio.wait_for(self._reader.read(65536), remaining)
            except asyncio.TimeoutError:
                return protocol.Failure("timeout", f"no message for {timeout:.0f} s")
            except OSError as exc:  # reset, unreachable, TLS errors (ssl.SSLError is an OSError)
                return protocol.Failure("closed", f"control connection lost ({exc})")
            self.conn.receive_data(data)

    async def _flush(self) -> None:
        data = self.conn.data_to_send()
        if data and self._writer is not None and not self._writer.is_closing():
            self._writer.write(data)
            with contextlib.suppress(ConnectionError, asyncio.TimeoutError):
                await asyncio.wait_for(self._writer.drain(), REPLY_TIMEOUT_S)

    async def close(self) -> None:
        if self._writer is None:
            return
        if self.conn.state is protocol.State.READY:
            with contextlib.suppress(Exception):
                await self.send("bye")
        self._writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._writer.wait_closed(), 2)


IntervalCallback = Callable[[dict[str, Any]], None]


async def run_pair(config: PairConfig, on_interval: IntervalCallback | None = None) -> dict[str, Any]:
    """One run: A (config.sender) sends to B (config.receiver). Raises PairError when it cannot start."""
    sender = AgentClient(config.sender, config.key, config.allow_insecure, config.ssl)
    receiver = AgentClient(config.receiver, config.key, config.allow_insecure, config.ssl)
    try:
        outcomes = await asyncio.gather(receiver.connect(), sender.connect(), return_exceptions=True)
        for outcome in outcomes:  # both attempts finish before close() below, so neither connection leaks
            if isinstance(outcome, BaseException):
                raise outcome
        run = _Run(config, sender, receiver, on_interval)
        return await run.execute()
    finally:
        await asyncio.gather(sender.close(), receiver.close(), return_exceptions=True)


async def run_pairs(configs: list[PairConfig], on_interval: IntervalCallback | None = None) -> dict[str, Any]:
    """Redundant MSP pairs at once (as LPM's dual MSPs carry memory in parallel); one combined result.

    Live progress is shown for the first pair. A pair that cannot start fails the whole run.
    """
    if len(configs) == 1:
        return await run_pair(configs[0], on_interval)
    outcomes = await asyncio.gather(*(run_pair(c, on_interval if i == 0 else None) for i, c in enumerate(configs)),
                                    return_exceptions=True)
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
    return results.combine_pairs(list(outcomes))  # type: ignore[arg-type]


STANDARD_FRAME_MSS = 1460  # MTU 1500 - 40 bytes of IPv4 and TCP headers: what a standard frame carries


async def run_with_jumbo_compare(configs: list[PairConfig],
                                 on_interval: IntervalCallback | None = None) -> dict[str, Any]:
    """The run as asked, then the same run with the MSS clamped to standard frames (TCP_MAXSEG).

    The gain in goodput and in CPU per GB is what jumbo frames buy on this path.
    """
    jumbo = await run_pairs(configs, on_interval)
    # The comparison run stays out of the agents' last-run metrics: they describe the run as configured.
    clamped = [dataclasses.replace(c, options={**c.options, "mss": STANDARD_FRAME_MSS}, send_summary=False)
               for c in configs]
    standard = await run_pairs(clamped, None)
    jumbo["jumbo_compare"] = results.jumbo_comparison(jumbo, standard)
    return results.finalize(jumbo)


class _Run:
    def __init__(self, config: PairConfig, sender: AgentClient, receiver: AgentClient,
                 on_interval: IntervalCallback | None) -> None:
        self.config = config
        self.sender = sender
        self.receiver = receiver
        self.run_id = secrets.token_hex(6)
        self.token = protocol.new_token()
        # Intervals of the run plus its slack (arm wait, drain): more from an agent are ignored.
        expected = (config.duration + runs.ARM_TIMEOUT_S + RESULT_GRACE_S) / config.interval
        self.merger = results.IntervalMerger(config.streams, config.interval, on_interval, int(expected) + 10)
        self.final: dict[str, dict[str, Any]] = {}
        self.errors: list[str] = []

    def _spec(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "token": self.token, "streams": self.config.streams,
                "duration": self.config.duration, "interval": self.config.interval}

    async def execute(self) -> dict[str, Any]:
        armed = await self._request(self.receiver, "arm", "armed", options=self._receiver_options())
        started_at = results.utc_now()
        data_host = self.config.data_host or self.config.receiver.host
        options = self._sender_options()
        if armed.get("probe_port"):
            options["probe_port"] = armed["probe_port"]
        try:
            await self._request(self.sender, "start", "started", host=data_host, port=armed["port"], options=options)
        except PairError:
            await self._abort(self.receiver, "sender could not start")
            raise
        await self._collect()
        result = results.build_result(
            config=self.config, run_id=self.run_id, started_at=started_at, merger=self.merger,
            sender={"host": self.config.sender.host, "address": self.sender.address, **self.sender.facts},
            receiver={"host": self.config.receiver.host, "address": self.receiver.address, **self.receiver.facts},
            sender_result=self.final.get("sender"), receiver_result=self.final.get("receiver"),
            errors=self.errors)
        summary = results.summary(result)
        for client in (self.sender, self.receiver) if self.config.send_summary else ():
            if client.conn.state is protocol.State.READY:
                with contextlib.suppress(Exception):
                    await client.send("summary", run_id=self.run_id, data=summary)
        return result

    def _receiver_options(self) -> dict[str, Any]:
        return {k: v for k, v in self.config.options.items() if k in ("rx_discard",)}

    def _sender_options(self) -> dict[str, Any]:
        return {k: v for k, v in self.config.options.items()
                if k in ("send_method", "rate_bps", "mss", "max_bytes")}

    async def _request(self, client: AgentClient, kind: str, expect: str, **extra: Any) -> protocol.Message:
        await client.send(kind, **self._spec(), **extra)
        reply = await client.next_message(REPLY_TIMEOUT_S)
        host = client.endpoint.label
        if isinstance(reply, protocol.Failure):
            raise PairError(host, f"{reply.message} while waiting for {expect!r}", reply.code)
        if reply.type == "busy":
            raise PairError(host, f"{reply['message']}; try again when it is done", "busy")
        if reply.type == "error":
            raise PairError(host, f"refused the run: {reply['message']}", reply["code"])
        if reply.type != expect:
            raise PairError(host, f"answered {reply.type!r} instead of {expect!r}", "protocol")
        return reply

    async def _collect(self) -> None:
        """Read both agents until both sent their result, one fails, or time runs out."""
        loop = asyncio.get_running_loop()
        hard_deadline = (loop.time() + runs.ARM_TIMEOUT_S + self.config.duration + RESULT_GRACE_S
                         + 2 * self.config.interval)
        silence = 2 * self.config.interval + SILENCE_SLACK_S
        tasks = {role: asyncio.ensure_future(self._listen(role, client, silence, hard_deadline))
                 for role, client in (("sender", self.sender), ("receiver", self.receiver))}
        pending = set(tasks.values())
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                role = next(r for r, t in tasks.items() if t is task)
                final = self.final.get(role)
                if final is None or final.get("error"):  # that side failed: stop the other, keep what it has
                    other_role = "receiver" if role == "sender" else "sender"
                    other = self.receiver if role == "sender" else self.sender
                    if other_role not in self.final:
                        await self._abort(other, f"{role} {self._client(role).endpoint.label} failed")

    def _client(self, role: str) -> AgentClient:
        return self.sender if role == "sender" else self.receiver

    async def _listen(self, role: str, client: AgentClient, silence: float, hard_deadline: float) -> None:
        loop = asyncio.get_running_loop()
        host = client.endpoint.label
        # Before its first report an agent may be probing the path and connecting the streams, and a receiver
        # waits up to runs.ARM_TIMEOUT_S for them: allow that much before calling it silent.
        startup = runs.ARM_TIMEOUT_S + silence
        heard = False
        while True:
            remaining = hard_deadline - loop.time()
            if remaining <= 0:
                self.errors.append(f"{role} {host}: no result by the run's deadline")
                return
            message = await client.next_message(min(silence if heard else startup, remaining))
            heard = True
            if isinstance(message, protocol.Failure):
                what = "went silent" if message.code == "timeout" else "failed"
                self.errors.append(f"{role} {host} {what} during the run: {message.message}")
                return
            if message.type == "interval" and message["run_id"] == self.run_id:
                self.merger.add(role, message.fields)
            elif message.type == "result" and message["run_id"] == self.run_id:
                self.final[role] = message["data"]
                return
            elif message.type == "error":
                self.errors.append(f"{role} {host}: {message['message']}")
                return

    async def _abort(self, client: AgentClient, reason: str) -> None:
        if client.conn.state is protocol.State.READY:
            with contextlib.suppress(Exception):
                await client.send("abort", run_id=self.run_id, reason=reason)
