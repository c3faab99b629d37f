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
import ssl
from dataclasses import dataclass, field
from typing import Any, Callable, TypeVar, Union

from lpmbench.analysis import results
from lpmbench.orchestrator.client import AgentClient, PairError
from lpmbench.orchestrator.endpoint import Endpoint
from lpmbench.protocol import connection as protocol
from lpmbench.protocol import contract
from lpmbench.protocol.contract import DEFAULT_STREAMS, REPLY_TIMEOUT_S
from lpmbench.protocol.messages import (
    Abort,
    Arm,
    Armed,
    Busy,
    Error,
    ErrorCode,
    Heartbeat,
    Interval,
    Message,
    Result,
    Start,
    Started,
    Summary,
)

LATE_FRAMES_READ = 64  # frames read past the deadline at most: what a paused orchestrator left in its socket


@dataclass
class PairConfig:
    sender: Endpoint
    receiver: Endpoint
    key: bytes | None
    streams: int = DEFAULT_STREAMS
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




IntervalCallback = Callable[[dict[str, Any]], None]
Reply = TypeVar("Reply", Armed, Started)

INTERRUPTED = "interrupted by the user (Ctrl-C): both agents were told to stop"
STOPPED_BY_USER = "stopped by the orchestrator's user (Ctrl-C)"  # what each agent is told, and reports back


class RunInterrupted(Exception):
    """The user stopped the run (``stop`` was set) before any data moved: there is nothing to report."""


class SameAgentError(PairError):
    """Sender and receiver are one agent under two names: a run needs two agents."""


async def run_pair(config: PairConfig, on_interval: IntervalCallback | None = None,
                   stop: asyncio.Event | None = None) -> dict[str, Any]:
    """One run: A (config.sender) sends to B (config.receiver). Raises PairError when it cannot start.

    ``stop`` set mid-run (Ctrl-C) tells both agents to stop and returns what was measured, partial; set before
    the streams start, it raises RunInterrupted.
    """
    sender = AgentClient(config.sender, config.key, config.allow_insecure, config.ssl)
    receiver = AgentClient(config.receiver, config.key, config.allow_insecure, config.ssl)
    try:
        outcomes = await asyncio.gather(receiver.connect(), sender.connect(), return_exceptions=True)
        for outcome in outcomes:  # both attempts finish before close() below, so neither connection leaks
            if isinstance(outcome, BaseException):
                raise outcome
        _refuse_one_agent_twice(sender, receiver)
        run = _Run(config, sender, receiver, on_interval, stop)
        return await run.execute()
    finally:
        await asyncio.gather(sender.close(), receiver.close(), return_exceptions=True)


def agent_identity(client: AgentClient) -> tuple[Any, ...] | None:
    """What tells one agent process from another in its handshake facts: the instance id when the agent sends
    one, else its host name, the address it answered on and its control port. None without facts."""
    facts = client.facts
    if facts.get("instance_id"):
        return ("instance", facts["instance_id"])
    if not facts.get("hostname") or client.address is None:
        return None
    return ("host", facts["hostname"], client.address, client.endpoint.port)


def _same_agent(sender: AgentClient, receiver: AgentClient) -> SameAgentError:
    return SameAgentError(
        sender.endpoint.label,
        f"A ({sender.endpoint.label}) and B ({receiver.endpoint.label}) are the same agent "
        f"(host {sender.facts.get('hostname') or '?'}); a run needs the agent of one MSP as A and the agent of the "
        f"other as B", ErrorCode.BAD_REQUEST)


def _refuse_one_agent_twice(sender: AgentClient, receiver: AgentClient) -> None:
    identity = agent_identity(sender)
    if identity is not None and identity == agent_identity(receiver):
        raise _same_agent(sender, receiver)


# The agent refuses a run id it has seen. Run ids are 48 random bits per run, so a sender refusing the id just
# armed on the receiver has seen it armed: it is the receiver, reached under another name or address.
_RUN_ID_SEEN = "run_id already used"


async def run_pairs(configs: list[PairConfig], on_interval: IntervalCallback | None = None,
                    stop: asyncio.Event | None = None) -> dict[str, Any]:
    """Redundant MSP pairs at once (as LPM's dual MSPs carry memory in parallel); one combined result.

    Live progress is shown for the first pair. A pair that cannot start fails the whole run.
    """
    if len(configs) == 1:
        return await run_pair(configs[0], on_interval, stop)
    outcomes = await asyncio.gather(*(run_pair(c, on_interval if i == 0 else None, stop)
                                      for i, c in enumerate(configs)), return_exceptions=True)
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
    return results.combine_pairs(list(outcomes))  # type: ignore[arg-type]


STANDARD_FRAME_MSS = 1460  # MTU 1500 - 40 bytes of IPv4 and TCP headers: what a standard frame carries


async def run_with_jumbo_compare(configs: list[PairConfig], on_interval: IntervalCallback | None = None,
                                 stop: asyncio.Event | None = None) -> dict[str, Any]:
    """The run as asked, then the same run with the MSS clamped to standard frames (TCP_MAXSEG).

    The gain in goodput and in CPU per GB is what jumbo frames buy on this path. Stopped during the first run,
    the second does not start.
    """
    jumbo = await run_pairs(configs, on_interval, stop)
    if stop is not None and stop.is_set():
        return jumbo
    # The comparison run stays out of the agents' last-run metrics: they describe the run as configured.
    clamped = [dataclasses.replace(c, options={**c.options, "mss": STANDARD_FRAME_MSS}, send_summary=False)
               for c in configs]
    try:
        standard = await run_pairs(clamped, None, stop)
    except RunInterrupted:
        return jumbo
    jumbo["jumbo_compare"] = results.jumbo_comparison(jumbo, standard)
    return results.finalize(jumbo)


class _Run:
    def __init__(self, config: PairConfig, sender: AgentClient, receiver: AgentClient,
                 on_interval: IntervalCallback | None, stop: asyncio.Event | None = None) -> None:
        self.config = config
        self.sender = sender
        self.receiver = receiver
        self.stop = stop
        self._told_to_stop: set[str] = set()  # roles this orchestrator aborted: their "aborted" is no fault
        self.run_id = secrets.token_hex(6)
        self.token = protocol.new_token()
        # Intervals of the run plus its slack (arm wait, drain): more from an agent are ignored.
        expected = contract.hard_deadline_s(config.duration, config.interval) / config.interval
        self.merger = results.IntervalMerger(config.streams, config.interval, on_interval, int(expected) + 10)
        self.final: dict[str, dict[str, Any]] = {}
        self.errors: list[str] = []
        self.faults: list[PairError] = []  # reports that broke the contract (results.ReportError)
        self._deadlines: dict[str, float] = {}  # per role: when to stop waiting for its result

    def _spec(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "token": self.token, "streams": self.config.streams,
                "duration": self.config.duration, "interval": self.config.interval}

    async def execute(self) -> dict[str, Any]:
        for role, client in (("sender", self.sender), ("receiver", self.receiver)):
            try:
                client.facts = results.check_facts(role, client.facts)
            except results.ReportError as exc:
                raise PairError(client.endpoint.label, f"sent facts lpmbench cannot use ({exc})",
                                ErrorCode.PROTOCOL) from None
        armed = await self._request(self.receiver, Arm(**self._spec(), options=self._receiver_options()), Armed)
        if self.stop is not None and self.stop.is_set():
            await self._abort(self.receiver, STOPPED_BY_USER)
            raise RunInterrupted("interrupted before the streams started; nothing was measured")
        started_at = results.utc_now()
        data_host = self.config.data_host or self.config.receiver.host
        options = self._sender_options()
        if armed.probe_port:
            options["probe_port"] = armed.probe_port
        try:
            await self._request(self.sender, Start(**self._spec(), host=data_host, port=armed.port, options=options),
                                Started)
        except PairError as exc:
            await self._abort(self.receiver, "sender could not start")
            if exc.code == ErrorCode.BAD_REQUEST and _RUN_ID_SEEN in exc.message:
                raise _same_agent(self.sender, self.receiver) from None
            raise
        await self._collect()
        if self.faults:
            raise self.faults[0]
        result = results.build_result(
            config=self.config, run_id=self.run_id, started_at=started_at, merger=self.merger,
            # The agent's facts first: where the orchestrator connected is its own knowledge, not the agent's say.
            sender={**self.sender.facts, "host": self.config.sender.host, "address": self.sender.address},
            receiver={**self.receiver.facts, "host": self.config.receiver.host, "address": self.receiver.address},
            sender_result=self.final.get("sender"), receiver_result=self.final.get("receiver"),
            errors=self.errors)
        cap = self._rate_cap()
        if cap is not None:  # the checks read it: judge again with it in place
            result["rate_cap"] = cap
            result = results.finalize(result)
        summary = results.summary(result)
        for client in (self.sender, self.receiver) if self.config.send_summary else ():
            if client.conn.state is protocol.State.READY:
                with contextlib.suppress(Exception):
                    await client.send(Summary(self.run_id, summary))
        return result

    def _rate_cap(self) -> dict[str, Any] | None:
        """The cap on the sender's rate: the user's --rate, or, for a run that asked none, the sending agent's
        --max-rate (the agent says it paced the streams: ``rate_capped``; its value when the agent tells it, as
        ``max_rate_bps`` in its facts or ``rate_bps`` in its result). ``applied`` False: pacing was refused."""
        report = self.final.get("sender") or {}
        capped = report.get("rate_capped")
        asked = self.config.options.get("rate_bps")
        if asked:
            return {"bps": asked, "source": "rate", "applied": capped is not False}
        if capped is not True:
            return None
        told = report.get("rate_bps") or self.sender.facts.get("max_rate_bps")
        bps = told if isinstance(told, (int, float)) and not isinstance(told, bool) and told > 0 else None
        return {"bps": bps, "source": "agent", "applied": True}

    def _receiver_options(self) -> dict[str, Any]:
        return {k: v for k, v in self.config.options.items() if k in ("rx_discard",)}

    def _sender_options(self) -> dict[str, Any]:
        return {k: v for k, v in self.config.options.items()
                if k in ("send_method", "rate_bps", "mss", "max_bytes")}

    async def _request(self, client: AgentClient, command: Union[Arm, Start], expect: type[Reply]) -> Reply:
        await client.send(command)
        reply = await client.next_message(REPLY_TIMEOUT_S)
        host = client.endpoint.label
        if isinstance(reply, protocol.Failure):
            raise PairError(host, f"{reply.message} while waiting for {expect.type!r}", reply.code)
        if isinstance(reply, Busy):
            raise PairError(host, f"{reply.message}; try again when it is done", ErrorCode.BUSY)
        if isinstance(reply, Error):
            raise PairError(host, f"refused the run: {reply.message}", reply.code)
        if not isinstance(reply, expect):
            raise PairError(host, f"answered {reply.type!r} instead of {expect.type!r}", ErrorCode.PROTOCOL)
        return reply

    async def _collect(self) -> None:
        """Read both agents until both sent their result, one fails, or time runs out."""
        loop = asyncio.get_running_loop()
        hard_deadline = loop.time() + contract.hard_deadline_s(self.config.duration, self.config.interval)
        self._deadlines = {"sender": hard_deadline, "receiver": hard_deadline}
        silence = contract.silence_window_s(self.config.interval)
        tasks = {role: asyncio.ensure_future(self._listen(role, client, silence))
                 for role, client in (("sender", self.sender), ("receiver", self.receiver))}
        try:
            await self._until_both_done(tasks)
        finally:  # cancelled (Ctrl-C, a scheduler's timeout): no listener outlives the run
            for task in tasks.values():
                task.cancel()
            await asyncio.gather(*tasks.values(), return_exceptions=True)

    async def _until_both_done(self, tasks: dict[str, asyncio.Future]) -> None:
        pending = set(tasks.values())
        stopping = asyncio.ensure_future(self.stop.wait()) if self.stop is not None else None
        try:
            while pending:
                waiting = pending | ({stopping} if stopping is not None and not stopping.done() else set())
                done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                if stopping in done:
                    await self._interrupt()
                finished = done & pending
                pending -= finished
                await self._after_listeners(tasks, finished)
        finally:
            if stopping is not None:
                stopping.cancel()

    async def _interrupt(self) -> None:
        """The user stopped the run: both agents stop (each gets ABORT_GRACE_S to report what it measured)."""
        self.errors.append(INTERRUPTED)
        grace_end = asyncio.get_running_loop().time() + contract.ABORT_GRACE_S
        for role in ("sender", "receiver"):
            if role not in self.final:
                self._deadlines[role] = min(self._deadlines[role], grace_end)
                await self._abort(self._client(role), STOPPED_BY_USER)

    async def _after_listeners(self, tasks: dict[str, asyncio.Future], finished: set[asyncio.Future]) -> None:
        for task in finished:
            role = next(r for r, t in tasks.items() if t is task)
            if task.exception() is not None:  # a bug in reading one side: say so, never a network verdict
                self.errors.append(f"{role}: the orchestrator failed reading its reports: {task.exception()!r}")
            final = self.final.get(role)
            if final is None or final.get("error"):  # that side failed: stop the other, keep what it has
                await self._stop_other(role)

    async def _stop_other(self, failed_role: str) -> None:
        other_role = "receiver" if failed_role == "sender" else "sender"
        if other_role in self.final:
            return
        other = self.receiver if failed_role == "sender" else self.sender
        grace_end = asyncio.get_running_loop().time() + contract.ABORT_GRACE_S
        self._deadlines[other_role] = min(self._deadlines[other_role], grace_end)
        await self._abort(other, f"{failed_role} {self._client(failed_role).endpoint.label} failed")

    def _client(self, role: str) -> AgentClient:
        return self.sender if role == "sender" else self.receiver

    async def _listen(self, role: str, client: AgentClient, silence: float) -> None:
        loop = asyncio.get_running_loop()
        host = client.endpoint.label
        startup = contract.startup_window_s(self.config.interval)
        heard = False
        late = (f"{role} {host}: no result by the run's deadline (or within {contract.ABORT_GRACE_S:.0f} s of being "
                f"told to stop)")
        while True:
            remaining = self._deadlines[role] - loop.time()
            if remaining <= 0:
                if not await self._read_buffered(role, client):
                    self.errors.append(late)
                return
            # Any message, a heartbeat included, is a sign of life: the next wait gets a fresh silence window.
            window = silence if heard else startup
            message = await client.next_message(min(window, remaining))
            heard = True
            if isinstance(message, protocol.Failure) and message.code is ErrorCode.TIMEOUT and remaining < window:
                self.errors.append(late)  # the deadline ran out, not the agent's silence
                return
            if isinstance(message, protocol.Failure):
                what = "went silent" if message.code is ErrorCode.TIMEOUT else "failed"
                self.errors.append(f"{role} {host} {what} during the run: {message.message}")
                return
            if isinstance(message, Heartbeat):
                continue
            if await self._take_report(role, client, message):
                return

    async def _read_buffered(self, role: str, client: AgentClient) -> bool:
        """Past the deadline, what already sits in the socket still counts (a paused orchestrator, a late-woken
        loop): read what is buffered, a bounded number of frames, before calling the agent late. True when the
        agent's last word (its result, an error, a fault) was among them."""
        loop = asyncio.get_running_loop()
        until = loop.time() + contract.LATE_READ_GRACE_S  # one grace in all: heartbeats must not stretch it
        for _ in range(LATE_FRAMES_READ):
            if loop.time() > until:
                return False
            message = await client.next_message(0)
            if isinstance(message, protocol.Failure):
                if message.code is not ErrorCode.TIMEOUT:
                    self.errors.append(f"{role} {client.endpoint.label} failed during the run: {message.message}")
                    return True
                return False
            if not isinstance(message, Heartbeat) and await self._take_report(role, client, message):
                return True
        return False

    async def _take_report(self, role: str, client: AgentClient, message: Message) -> bool:
        """Keep an interval or the final result of this run; True when the agent has no more to say."""
        host = client.endpoint.label
        try:
            if isinstance(message, Interval) and message.run_id == self.run_id:
                self.merger.add(role, message.to_fields())
            elif isinstance(message, Result) and message.run_id == self.run_id:
                self.final[role] = results.check_final(role, message.data, self.config.streams)
                self._note_agent_stopped(role, host, self.final[role])
                return True
        except results.ReportError as exc:  # a protocol fault: the run ends with exit 2, never a verdict
            self.faults.append(PairError(host, f"sent a report lpmbench cannot use ({exc})", ErrorCode.PROTOCOL))
            await self._abort(client, f"the orchestrator refused a report: {exc}")
            return True
        if isinstance(message, Error):
            self.errors.append(f"{role} {host}: {message.message}")
            return True
        return False

    def _note_agent_stopped(self, role: str, host: str, report: dict[str, Any]) -> None:
        """An agent that aborted a run nobody told it to stop, and not for a stall it diagnosed, was stopped on its
        host (SIGTERM, shutdown): the agent is lost mid-run, and the measurement is no verdict on the network."""
        if report.get("aborted") is True and report.get("stalled") is not True and role not in self._told_to_stop:
            self.errors.append(f"{role} {host} stopped mid-run ({report.get('error') or 'aborted'}); start the "
                               f"agent again there and repeat the run")

    async def _abort(self, client: AgentClient, reason: str) -> None:
        self._told_to_stop.add("sender" if client is self.sender else "receiver")
        if client.conn.state is protocol.State.READY:
            with contextlib.suppress(Exception):
                await client.send(Abort(self.run_id, reason))
