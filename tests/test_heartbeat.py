"""Heartbeats: an agent that is busy but quiet after its run's duration is not mistaken for a silent one.

After the duration an agent drains (up to DRAIN_GRACE_S) and audits its interfaces (on VIOS ``entstat`` and
``netstat`` may take seconds) without a report to send; its session then sends ``heartbeat`` whenever nothing
went out for ``contract.HEARTBEAT_S``, and the orchestrator counts it as a sign of life. Two levels:

- scripted agents (the real protocol on loopback, with timing the test controls) go quiet after the duration
  for longer than the orchestrator's silence window: with heartbeats the run completes, without it is cut;
- real in-process agents whose receiving run stays quiet after its streams end: the session's heartbeat
  task keeps the run alive, lives exactly as long as the run, and leaves no task behind.

``contract.SILENCE_SLACK_S`` is shortened so that the silence window is about a second.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any, Callable

import pytest
from agent_helpers import in_process_agents

from lpmbench.agent import runs
from lpmbench.net import eventloop
from lpmbench.orchestrator.pair import Endpoint, PairConfig, run_pair
from lpmbench.protocol import connection as protocol
from lpmbench.protocol import contract
from lpmbench.protocol.messages import Abort, Arm, Armed, Heartbeat, Interval, Message, Result, Start, Started

KEY = b"b" * 32
INTERVAL = 0.2
DURATION = 0.6
SILENCE_SLACK = 0.6  # contract.SILENCE_SLACK_S shortened: silence window = 2 * INTERVAL + SILENCE_SLACK = 1.0 s
QUIET = 2.5  # after the duration: well beyond the silence window
BEAT = 0.2  # how often a quiet agent beats here: five beats per silence window, room for a loaded machine


@pytest.fixture
def silence_window(monkeypatch: pytest.MonkeyPatch) -> float:
    monkeypatch.setattr(contract, "SILENCE_SLACK_S", SILENCE_SLACK)
    window = contract.silence_window_s(INTERVAL)
    assert 2 * window < QUIET, "the quiet time must outlast the silence window"
    assert window > 4 * BEAT, "several beats per silence window"
    return window


class ScriptedAgent:
    """An agent that speaks the real protocol but runs no streams: after arm or start it reports an interval
    every INTERVAL for DURATION, stays quiet for QUIET (beating every ``beat`` s, or not at all), then sends
    its result. Its one write path is its connection's outbox, as in the real agent."""

    def __init__(self, beat: float | None) -> None:
        self.beat = beat
        self.beats_sent = 0
        self._tasks: set[asyncio.Task] = set()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = protocol.Connection(protocol.Role.AGENT, KEY, agent_info={"hostname": "scripted"})
        try:
            while conn.state is not protocol.State.CLOSED:
                conn.receive_data(await reader.read(65536))
                event = conn.next_event()
                while not isinstance(event, (protocol.NeedData, protocol.Closed)):
                    if isinstance(event, (Arm, Start)):
                        self._begin(conn, writer, event)
                    elif isinstance(event, Abort):
                        self._stop()
                    event = conn.next_event()
                writer.write(conn.data_to_send())
        finally:
            self._stop()
            writer.close()

    def _begin(self, conn: protocol.Connection, writer: asyncio.StreamWriter, command: Arm | Start) -> None:
        conn.send(Armed(command.run_id, port=9) if isinstance(command, Arm) else Started(command.run_id))
        role = "receiver" if isinstance(command, Arm) else "sender"
        task = asyncio.ensure_future(self._run(conn, writer, command.run_id, role))
        self._tasks.add(task)

    async def _run(self, conn: protocol.Connection, writer: asyncio.StreamWriter, run_id: str, role: str) -> None:
        def send(message: Message) -> None:
            conn.send(message)
            writer.write(conn.data_to_send())

        per_interval = 1_000_000
        for index in range(round(DURATION / INTERVAL)):
            await asyncio.sleep(INTERVAL)
            send(Interval(run_id, index, (index + 1) * INTERVAL, [{"id": 0, "bytes": (index + 1) * per_interval}]))
        loop = asyncio.get_running_loop()
        quiet_until = loop.time() + QUIET
        while loop.time() < quiet_until:  # draining and auditing: nothing to report
            await asyncio.sleep(min(self.beat or QUIET, max(0.0, quiet_until - loop.time())))
            if self.beat is not None and loop.time() < quiet_until:
                send(Heartbeat(run_id))
                self.beats_sent += 1
        total = round(DURATION / INTERVAL) * per_interval
        send(Result(run_id, role, {"streams": [{"id": 0, "bytes": total}], "elapsed_s": DURATION}))

    def _stop(self) -> None:
        for task in self._tasks:
            task.cancel()


@contextlib.asynccontextmanager
async def scripted_agents(beat: float | None) -> AsyncIterator[tuple[list[Endpoint], list[ScriptedAgent]]]:
    agents = [ScriptedAgent(beat), ScriptedAgent(beat)]
    servers = [await asyncio.start_server(agent.serve, f"127.0.0.{i + 1}", 0) for i, agent in enumerate(agents)]
    try:
        yield [Endpoint(f"127.0.0.{i + 1}", s.sockets[0].getsockname()[1]) for i, s in enumerate(servers)], agents
    finally:
        for server in servers:
            server.close()
            await server.wait_closed()
        for agent in agents:
            agent._stop()


def pair_config(ends: list[Endpoint], streams: int = 1) -> PairConfig:
    return PairConfig(sender=ends[0], receiver=ends[1], key=KEY, streams=streams, duration=DURATION,
                      interval=INTERVAL)


async def timed_run(config: PairConfig) -> tuple[dict[str, Any], float]:
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    result = await run_pair(config)
    return result, loop.time() - t0


def test_quiet_but_beating_agents_complete_the_run(run_async: Callable[..., Any], silence_window: float) -> None:
    async def main() -> tuple[dict[str, Any], float, list[int]]:
        async with scripted_agents(beat=BEAT) as (ends, agents):
            result, took = await timed_run(pair_config(ends))
            return result, took, [a.beats_sent for a in agents]

    result, took, beats = run_async(main())
    assert result["partial"] is False and result["agent_lost"] is False and result["error"] is None, result["error"]
    assert result["bytes"] > 0
    assert took > DURATION + QUIET, "the agents' quiet time really was waited out"
    assert all(b >= QUIET / BEAT - 2 for b in beats), beats


def test_quiet_agents_without_heartbeats_are_declared_silent(silence_window: float) -> None:
    """The control: the same quiet time without heartbeats exceeds the silence window (the run is cut)."""

    async def main() -> tuple[dict[str, Any], float]:
        async with scripted_agents(beat=None) as (ends, _):
            return await timed_run(pair_config(ends))

    result, took = eventloop.run(main(), "asyncio")
    assert result["partial"] is True and result["agent_lost"] is True
    assert "went silent" in result["error"], result["error"]
    assert took < DURATION + QUIET, f"took {took:.1f} s: the silence window should have ended it"


def heartbeat_tasks() -> list[asyncio.Task]:
    return [t for t in asyncio.all_tasks() if "_heartbeats" in getattr(t.get_coro(), "__qualname__", "")]


@pytest.fixture
def quiet_receiver(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The real receiving run, then QUIET seconds of silence (as entstat + netstat take on a slow VIOS).

    Wraps ReceiverRun.run, the coroutine the agent's session awaits; returns, per run, how many heartbeat
    tasks were alive during the quiet time."""
    alive: list[int] = []
    real_run = runs.ReceiverRun.run

    async def run_then_stay_quiet(self: runs.ReceiverRun) -> dict[str, Any]:
        data = await real_run(self)
        await asyncio.sleep(QUIET)
        alive.append(len(heartbeat_tasks()))
        return data

    monkeypatch.setattr(runs.ReceiverRun, "run", run_then_stay_quiet)
    return alive


def test_real_agent_session_beats_while_its_run_is_quiet(run_async: Callable[..., Any], silence_window: float,
                                                          quiet_receiver: list[int],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(contract, "HEARTBEAT_S", BEAT)

    async def main() -> tuple[dict[str, Any], list[asyncio.Task]]:
        async with in_process_agents(KEY) as (ends, _):
            result = await run_pair(pair_config(ends, streams=2))
            return result, heartbeat_tasks()

    result, left = run_async(main())
    assert result["partial"] is False and result["error"] is None, result["error"]
    assert result["bytes"] > 0
    # The receiver's session beat during the quiet time (the sender's run had ended: its task was gone)...
    assert quiet_receiver == [1]
    # ... and each heartbeat task ended with its run: nothing is left once the results are in.
    assert left == []


def test_real_agent_without_heartbeats_would_be_declared_silent(silence_window: float, quiet_receiver: list[int],
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The control for the test above: beats slower than the quiet time leave the receiver silent."""
    monkeypatch.setattr(contract, "HEARTBEAT_S", 10 * QUIET)

    async def main() -> dict[str, Any]:
        async with in_process_agents(KEY) as (ends, _):
            return await run_pair(pair_config(ends, streams=2))

    result = eventloop.run(main(), "asyncio")
    assert result["partial"] is True and "receiver 127.0.0.2" in result["error"], result["error"]
    assert "went silent" in result["error"], result["error"]


class StubbornAgent(ScriptedAgent):
    """Beats after its duration but never reports, and ignores Abort: a run stuck on the agent."""

    def _stop(self) -> None:
        pass  # ignores Abort (the fixture's teardown cancels what is left)

    def teardown(self) -> None:
        super()._stop()


class FailingAgent(ScriptedAgent):
    """Reports a failed result right after its duration (its peer, say, could not be reached)."""

    async def _run(self, conn: protocol.Connection, writer: asyncio.StreamWriter, run_id: str, role: str) -> None:
        await asyncio.sleep(DURATION)
        conn.send(Result(run_id, role, {"streams": [], "elapsed_s": DURATION, "error": "peer went away"}))
        writer.write(conn.data_to_send())


def test_an_agent_told_to_stop_gets_the_abort_grace_not_the_hard_deadline(
        run_async: Callable[..., Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """Heartbeats keep a live session heard, but after its peer failed a stopped run must report within
    ABORT_GRACE_S: an agent that only beats is given up then, not at the run's hard deadline (~50 s)."""
    grace = 1.0
    monkeypatch.setattr(contract, "ABORT_GRACE_S", grace)
    stubborn, failing = StubbornAgent(BEAT), FailingAgent(BEAT)
    stubborn_quiet = 60.0

    async def main() -> tuple[dict[str, Any], float]:
        servers = [await asyncio.start_server(agent.serve, f"127.0.0.{i + 1}", 0)
                   for i, agent in enumerate((stubborn, failing))]
        ends = [Endpoint(f"127.0.0.{i + 1}", s.sockets[0].getsockname()[1]) for i, s in enumerate(servers)]
        try:
            return await timed_run(pair_config(ends))
        finally:
            stubborn.teardown()
            failing._stop()
            for server in servers:
                server.close()
                await server.wait_closed()

    monkeypatch.setattr(__import__(__name__), "QUIET", stubborn_quiet)
    result, took = run_async(main())
    assert result["partial"] is True and "told to stop" in result["error"], result["error"]
    assert took < DURATION + grace + 3.0, f"{took:.1f} s: the abort grace bounds the wait, not the hard deadline"
