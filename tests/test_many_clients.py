"""Several orchestrators at once against the same agents, on both event loops.

With the default limit of one run per agent, exactly one orchestrator runs; every other one gets "busy" at
once, naming the run that holds the agent, and nobody waits for the run to end. ``AgentLimits
(max_concurrent_runs=2)`` lets two run side by side. Orchestrators driving the same two agents in opposite
directions at the same moment are both refused, never hang, and leave both agents idle.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any, Callable

import pytest
from agent_helpers import in_process_agents

from lpmbench.agent.server import AgentLimits, ControlSession
from lpmbench.orchestrator.pair import AgentClient, Endpoint, PairConfig, PairError, run_pair
from lpmbench.protocol import connection as protocol
from lpmbench.protocol import contract
from lpmbench.protocol.messages import Abort, Arm, Armed, Busy, ErrorCode, Message

KEY = b"m" * 32
ORCHESTRATORS = 6
# Timing bounds tell "answered at once" from "waited for the run that holds the agents", with the whole run's
# DURATION as the margin for a loaded 2-core machine (an answer takes milliseconds on a quiet one). A run lasts
# its setup, DURATION and at most DRAIN_GRACE_S of wind-down, so DURATION must outlast the wind-down plus setup
# for "two runs side by side" to be told from "one after the other".
DURATION = contract.DRAIN_GRACE_S + 1.0
BUSY_WITHIN_S = DURATION  # an orchestrator that waited for the holder's run would take at least DURATION
SIDE_BY_SIDE_WITHIN_S = 2 * DURATION  # one run after the other would take at least 2 * DURATION


@contextlib.asynccontextmanager
async def agents(**limits: Any) -> AsyncIterator[list[Endpoint]]:
    async with in_process_agents(KEY, limits=AgentLimits(**limits)) as (ends, _):
        yield ends


def config(sender: Endpoint, receiver: Endpoint, **kw: Any) -> PairConfig:
    base: dict[str, Any] = dict(streams=2, duration=DURATION, interval=0.25)
    base.update(kw)
    return PairConfig(sender=sender, receiver=receiver, key=KEY, **base)


async def timed(run: Any) -> tuple[dict[str, Any] | PairError, float]:
    """Outcome of one orchestrator (its result or its PairError) and how long it took."""
    t0 = time.monotonic()
    try:
        outcome: dict[str, Any] | PairError = await run
    except PairError as exc:
        outcome = exc
    return outcome, time.monotonic() - t0


Ran = list[tuple[dict[str, Any], float]]
Refused = list[tuple[PairError, float]]


def split(outcomes: list[tuple[Any, float]]) -> tuple[Ran, Refused]:
    ran = [(o, t) for o, t in outcomes if isinstance(o, dict)]
    refused = [(o, t) for o, t in outcomes if isinstance(o, PairError)]
    return ran, refused


def test_one_runs_and_the_others_are_told_busy_at_once(run_async: Callable[..., Any]) -> None:
    async def main() -> tuple[list[tuple[Any, float]], dict[str, Any]]:
        async with agents() as ends:
            outcomes = await asyncio.gather(*(timed(run_pair(config(*ends))) for _ in range(ORCHESTRATORS)))
            after = await run_pair(config(*ends, duration=0.3))  # the winner's run freed both agents
            return list(outcomes), after

    outcomes, after = run_async(main())
    ran, refused = split(outcomes)
    assert len(ran) == 1 and len(refused) == ORCHESTRATORS - 1, outcomes
    winner = ran[0][0]
    assert winner["partial"] is False and winner["bytes"] > 0
    for error, took in refused:
        assert error.code is ErrorCode.BUSY, error
        assert took < BUSY_WITHIN_S, f"told busy only after {took:.2f} s"
        assert f"run {winner['run_id']}" in error.message, error.message
        assert "held by 127.0.0.1:" in error.message, error.message
    assert after["partial"] is False


def test_two_run_side_by_side_with_max_concurrent_runs_2(run_async: Callable[..., Any]) -> None:
    async def main() -> list[tuple[Any, float]]:
        async with agents(max_concurrent_runs=2) as ends:
            return list(await asyncio.gather(*(timed(run_pair(config(*ends))) for _ in range(3))))

    ran, refused = split(run_async(main()))
    assert len(ran) == 2 and len(refused) == 1, (ran, refused)
    assert all(r["partial"] is False and r["bytes"] > 0 for r, _ in ran)
    # side by side, not one after the other
    assert all(took < SIDE_BY_SIDE_WITHIN_S for _, took in ran), [t for _, t in ran]
    error, took = refused[0]
    assert error.code is ErrorCode.BUSY and took < BUSY_WITHIN_S
    assert {r["run_id"] for r, _ in ran} & {word for word in error.message.split()}, error.message


@pytest.fixture
def same_moment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The agents handle the first two arms only once both arrived, and the first two starts likewise.

    Left to the event loop, two orchestrators started together cross in either order: measured, uvloop let
    one of them arm and start before the other's arm arrived about once in 15 tries. "At the same moment" is
    made exact here; the agents' own code handles each command once it is let through.
    """
    real = ControlSession._run_command
    arrived: Counter[type] = Counter()
    both_in: dict[type, asyncio.Event] = {}

    async def when_both_arrived(self: ControlSession, message: Message) -> None:
        kind = type(message)
        arrived[kind] += 1
        if arrived[kind] <= 2:
            event = both_in.setdefault(kind, asyncio.Event())  # made on the running loop (Python 3.9)
            if arrived[kind] == 2:
                event.set()
            await asyncio.wait_for(event.wait(), contract.REPLY_TIMEOUT_S)
        await real(self, message)

    monkeypatch.setattr(ControlSession, "_run_command", when_both_arrived)


def test_crossed_directions_at_the_same_moment_are_both_refused(run_async: Callable[..., Any],
                                                               same_moment: None) -> None:
    """A->B and B->A at the same moment: each orchestrator arms its receiver first, and each receiver is the
    other's sender. So both arms succeed, then each start finds its sender held as the other run's receiver:
    exactly 0 runs, both refused "busy" at once (a design limit, docs/robustness.md). Nobody hangs, and each
    refused orchestrator's abort frees its receiver, so both agents take the next run.
    """

    async def main() -> tuple[list[tuple[Any, float]], dict[str, Any]]:
        async with agents() as ends:
            a, b = ends
            outcomes = await asyncio.gather(timed(run_pair(config(a, b))), timed(run_pair(config(b, a))))
            after = await run_pair(config(a, b, duration=0.3))
            return list(outcomes), after

    outcomes, after = run_async(main())
    ran, refused = split(outcomes)
    assert len(ran) == 0 and len(refused) == 2, outcomes
    for error, took in refused:
        assert error.code is ErrorCode.BUSY and took < BUSY_WITHIN_S, (error, took)
    assert after["partial"] is False


def test_two_arms_in_the_same_instant_leave_one_armed_and_one_busy(run_async: Callable[..., Any]) -> None:
    """Two orchestrators arm the same agent at once. The agent takes its run slot in the same step as its
    busy check: the second arm, handled while the first awaits its probe responder, finds the agent busy (it
    used to pass the check too, leaving two runs on an agent allowed one)."""

    async def main() -> tuple[list[Any], dict[str, Any]]:
        async with in_process_agents(KEY, count=1) as (ends, started):
            clients = [AgentClient(ends[0], KEY) for _ in range(2)]
            for client in clients:
                await client.connect()
            arms = [Arm(f"same-instant-{i}", protocol.new_token(), 1, 1.0, 0.5) for i in range(2)]
            await asyncio.gather(*(c.send(arm) for c, arm in zip(clients, arms)))
            replies = [await c.next_message(contract.REPLY_TIMEOUT_S) for c in clients]
            held = dict(started[0].runs)
            for client, arm in zip(clients, arms):
                await client.send(Abort(arm.run_id))
                await client.close()
            return replies, held

    replies, held = run_async(main())
    assert sorted(type(r).__name__ for r in replies) == ["Armed", "Busy"], replies
    assert len(held) == 1
    armed = next(r for r in replies if isinstance(r, Armed))
    busy = next(r for r in replies if isinstance(r, Busy))
    assert list(held) == [armed.run_id] and busy.run_id == armed.run_id
