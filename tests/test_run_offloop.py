"""Blocking work of a run (interface audits, system counters, CPU figures) stays off the agent's event loop.

While a run audits its interfaces (on VIOS: lsattr, entstat, netstat, each may take seconds) the agent's control
sessions must keep serving, or the heartbeats that tell the orchestrator the agent is alive stop. Here the
platform's audit is made slower than the orchestrator's silence slack with a real slow command, and the event
loop's responsiveness is measured while a real run goes through it.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from typing import Any, Callable

import pytest
from direct_runs import run_directly

from lpmbench import platform
from lpmbench.net import eventloop
from lpmbench.protocol.contract import HEARTBEAT_S, SILENCE_SLACK_S

SLOW_AUDIT_S = SILENCE_SLACK_S + 0.5  # longer than the orchestrator forgives silence
TICK_S = 0.02


def slowed(function: Callable[..., Any], calls: list[str]) -> Callable[..., Any]:
    def slow(*args: Any) -> Any:
        subprocess.run(["sleep", str(SLOW_AUDIT_S)], check=True)
        calls.append(function.__name__)
        return function(*args)

    return slow


async def longest_stall(stop: asyncio.Event) -> float:
    """The longest time the loop took to come back to a task that asked to wake every TICK_S."""
    loop = asyncio.get_running_loop()
    longest, last = 0.0, loop.time()
    while not stop.is_set():
        await asyncio.sleep(TICK_S)
        now = loop.time()
        longest, last = max(longest, now - last - TICK_S), now
    return longest


def test_a_slow_interface_audit_does_not_block_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """On the stock loop only: the run hands its blocking work to the loop's executor the same way on uvloop,
    and this test takes ~17 s (three audits in a row on the receiver's side)."""
    calls: list[str] = []
    # The audit's first step on both sides (the route to the peer) and its last (the counters after the run).
    monkeypatch.setattr(platform, "route_interface", slowed(platform.route_interface, calls))
    monkeypatch.setattr(platform, "counters_snapshot", slowed(platform.counters_snapshot, calls))

    async def main() -> tuple[dict[str, Any], dict[str, Any], float, float]:
        stop = asyncio.Event()
        watcher = asyncio.ensure_future(longest_stall(stop))
        started = time.monotonic()
        try:
            sent, received, _ = await run_directly()
        finally:
            stop.set()
        return sent, received, await watcher, time.monotonic() - started

    sent, received, stall, took = eventloop.run(main(), "asyncio")
    assert sorted(calls) == ["counters_snapshot"] * 2 + ["route_interface"] * 2
    assert took >= 2 * SLOW_AUDIT_S  # the sender audits before connecting and both audit after: it was slow
    assert sent["error"] is None and received["error"] is None
    assert sent["interface"] is not None and received["interface"] is not None
    # An agent promises a report at least every HEARTBEAT_S; that needs the loop back within it. A blocking
    # audit would hold it for SLOW_AUDIT_S (5.5 s), far beyond; scheduling on a loaded host stays far below.
    assert stall < HEARTBEAT_S, f"the event loop was held for {stall:.2f} s"
