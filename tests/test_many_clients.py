"""Several orchestrators at once against the same agents, on both event loops.

With the default limit of one run per agent, exactly one orchestrator runs; every other one gets "busy" at
once, naming the run that holds the agent, and nobody waits for the run to end. ``AgentLimits
(max_concurrent_runs=2)`` lets two run side by side. Orchestrators driving the same two agents in opposite
directions may both be refused, but never hang, and leave both agents idle.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any, Callable

from agent_helpers import in_process_agents

from lpmbench.agent.server import AgentLimits
from lpmbench.orchestrator.pair import Endpoint, PairConfig, PairError, run_pair

KEY = b"m" * 32
ORCHESTRATORS = 6
BUSY_WITHIN_S = 1.0
DURATION = 1.5


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
        assert error.code == "busy", error
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
    # side by side, not one after the other: both finished within one run's time (plus setup)
    assert all(took < DURATION + 1.5 for _, took in ran), [t for _, t in ran]
    error, took = refused[0]
    assert error.code == "busy" and took < BUSY_WITHIN_S
    assert {r["run_id"] for r, _ in ran} & {word for word in error.message.split()}, error.message


def test_crossed_directions_never_hang_and_leave_both_idle(run_async: Callable[..., Any]) -> None:
    """A->B and B->A at once: each arms one agent as receiver first, so both may find their sender busy.

    Seen today: both are refused with "busy" at once. Either outcome is allowed here; hanging is not, and
    both agents must be free right after.
    """

    async def main() -> tuple[list[tuple[Any, float]], dict[str, Any]]:
        async with agents() as ends:
            a, b = ends
            outcomes = await asyncio.gather(timed(run_pair(config(a, b))), timed(run_pair(config(b, a))))
            after = await run_pair(config(a, b, duration=0.3))
            return list(outcomes), after

    outcomes, after = run_async(main())
    ran, refused = split(outcomes)
    print(f"\ncrossed directions: {len(ran)} ran, refused: {[str(e) for e, _ in refused]}")
    assert len(ran) <= 1
    for error, took in refused:
        assert error.code == "busy" and took < BUSY_WITHIN_S, (error, took)
    for result, _ in ran:
        assert result["partial"] is False
    assert after["partial"] is False
