"""The run's clock starts when the streams run (lpmbench.agent.clock), and streams that never ran say so.

The gate's logic is driven directly with a clock of the test's own (no sleeping); the threads and the event
loop are real in the rest, and the pair runs use real agents on loopback.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
import threading
import time
from typing import Any

import pytest
from agent_helpers import REPO, in_process_agents

from lpmbench.agent import clock
from lpmbench.agent.clock import PAST_DEADLINE_NS, StartGate, start_streams
from lpmbench.agent.server import AgentLimits
from lpmbench.orchestrator.pair import PairConfig, run_pair

KEY = b"c" * 32
RUN_FOR_NS = 600_000_000


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self, now_ns: int) -> None:
        self.now_ns = now_ns

    def __call__(self) -> int:
        return self.now_ns


def test_every_stream_runs_the_full_duration_from_its_own_start() -> None:
    """Released together, stream threads still reach their loops at different times (GIL, a busy CPU):
    each one's deadline is taken as it starts, so a late one is not cut short."""
    now = Clock(1_000)
    gate = StartGate(3, RUN_FOR_NS, clock=now)
    assert gate.check_in(0) and gate.check_in(1) and gate.check_in(2)
    assert gate.open() == 1_000 and gate.opened_ns == 1_000
    first = gate.deadline_for(0)
    now.now_ns += 450_000_000  # stream 2's thread got a CPU much later than stream 0's
    late = gate.deadline_for(2)
    assert first == 1_000 + RUN_FOR_NS
    assert late == now.now_ns + RUN_FOR_NS
    assert gate.started == [True, True, True]


def test_the_gate_opens_only_when_every_stream_checked_in() -> None:
    gate = StartGate(3, RUN_FOR_NS, clock=Clock(0))
    told: list[str] = []
    gate.on_all_in = lambda: told.append("all in")
    gate.check_in(0)
    gate.check_in(2)
    assert not gate.all_in and told == []
    gate.check_in(1)
    assert gate.all_in and told == ["all in"]


def test_a_thread_that_could_not_be_created_does_not_hold_the_gate() -> None:
    gate = StartGate(2, RUN_FOR_NS, clock=Clock(0))
    told: list[str] = []
    gate.on_all_in = lambda: told.append("all in")
    gate.check_in(0)
    gate.forfeit(1)
    assert told == ["all in"] and gate.started == [True, False]


def test_a_stream_that_comes_after_the_gate_opened_runs_nothing_and_says_so() -> None:
    gate = StartGate(2, RUN_FOR_NS, clock=Clock(5_000))
    gate.check_in(0)
    gate.open()  # stream 1's thread never checked in in time
    assert gate.check_in(1) is False
    assert gate.deadline_for(1) == PAST_DEADLINE_NS
    assert gate.deadline_for(0) == 5_000 + RUN_FOR_NS
    assert gate.started == [True, False]


def _recording_work(seen: dict[int, tuple[int, int]], stream_id: int) -> Any:
    def work(deadline_ns: int) -> int:
        seen[stream_id] = (deadline_ns, time.monotonic_ns())
        return 0

    return work


def test_the_clock_starts_after_every_stream_thread_runs() -> None:
    """64 real threads: none is let go before all run, and each gets a full duration from t0 or later."""
    streams = 64

    async def main() -> tuple[StartGate, float, dict[int, tuple[int, int]]]:
        gate = StartGate(streams, RUN_FOR_NS)
        seen: dict[int, tuple[int, int]] = {}
        futures, t0 = await start_streams(gate, "clock-test", [_recording_work(seen, i) for i in range(streams)],
                                          asyncio.Event())
        await asyncio.gather(*futures)
        return gate, t0, seen

    gate, t0, seen = asyncio.run(main())
    t0_ns = round(t0 * 1e9)
    assert gate.started == [True] * streams and len(seen) == streams
    for deadline_ns, entered_ns in seen.values():
        assert entered_ns >= gate.opened_ns  # no stream loop began before the clock started
        assert deadline_ns - t0_ns >= RUN_FOR_NS - 1_000  # a full run from t0 (1 us: float rounding of t0)


class LateThreadGate(StartGate):
    """A gate whose stream 1 thread does not get to run (check in) until the test lets it: a starved thread."""

    def __init__(self, streams: int, run_for_ns: int) -> None:
        super().__init__(streams, run_for_ns)
        self.let_go = threading.Event()

    def check_in(self, stream_id: int) -> bool:
        if stream_id == 1:
            self.let_go.wait(10)
        return super().check_in(stream_id)


def test_a_stream_whose_thread_never_ran_costs_at_most_the_start_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    """The others go after STREAM_START_TIMEOUT_S; the late one runs nothing and is reported as not started."""
    monkeypatch.setattr(clock, "STREAM_START_TIMEOUT_S", 0.3)

    async def main() -> tuple[StartGate, float, dict[int, tuple[int, int]]]:
        gate = LateThreadGate(2, RUN_FOR_NS)
        seen: dict[int, tuple[int, int]] = {}
        started = time.monotonic()
        futures, _ = await start_streams(gate, "clock-test", [_recording_work(seen, i) for i in range(2)],
                                         asyncio.Event())
        took = time.monotonic() - started
        gate.let_go.set()
        await asyncio.gather(*futures)
        return gate, took, seen

    gate, took, seen = asyncio.run(main())
    assert gate.started == [True, False]
    assert seen[1][0] == PAST_DEADLINE_NS  # its loop returns at once: it moves nothing after the others
    assert 0.3 <= took < 0.3 + 2.0  # 2 s: a loaded host's scheduling delays, far below the held thread's 10 s


NO_THREADS = textwrap.dedent("""
    import asyncio, json, resource, threading
    from lpmbench.agent.clock import StartGate, start_streams

    async def main():
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, lambda: None)  # the worker that starts the stream threads exists now
        threading.stack_size(512 * 1024 * 1024)  # each new thread wants more address space than is left
        with open("/proc/self/statm") as statm:
            in_use = int(statm.read().split()[0]) * resource.getpagesize()
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        resource.setrlimit(resource.RLIMIT_AS, (in_use + 128 * 1024 * 1024, hard))
        try:
            gate = StartGate(3, 10**8)
            futures, _ = await start_streams(gate, "no-thread", [lambda deadline: 0] * 3, asyncio.Event())
            outcomes = await asyncio.gather(*futures, return_exceptions=True)
        finally:
            resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
        print(json.dumps({"started": gate.started, "outcomes": [str(o) for o in outcomes]}))

    asyncio.run(main())
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/statm")
def test_a_stream_thread_the_system_cannot_create_is_an_error_not_a_hang() -> None:
    """Out of address space for thread stacks (a real RLIMIT_AS, in a child process): the run does not wait
    for threads that cannot exist, and each stream says why it never started."""
    started = time.monotonic()
    child = subprocess.run([sys.executable, "-c", NO_THREADS], capture_output=True, text=True, timeout=60,
                           cwd=REPO)
    took = time.monotonic() - started
    assert child.returncode == 0, child.stderr
    report = json.loads(child.stdout)
    assert report["started"] == [False, False, False]
    assert all("stream thread could not start" in outcome for outcome in report["outcomes"]), report
    assert took < clock.STREAM_START_TIMEOUT_S  # the gate did not wait out its timeout for them


def test_an_abort_opens_the_gate_at_once() -> None:
    async def main() -> tuple[StartGate, float]:
        gate = StartGate(2, RUN_FOR_NS)
        aborted = asyncio.Event()
        aborted.set()
        started = time.monotonic()
        futures, _ = await start_streams(gate, "clock-test", [lambda deadline: 0], aborted)  # stream 1: no thread
        took = time.monotonic() - started
        await asyncio.gather(*futures)
        return gate, took

    gate, took = asyncio.run(main())
    assert took < clock.STREAM_START_TIMEOUT_S and gate.started[1] is False


def test_many_streams_short_run_every_stream_moves_data(run_async: Any) -> None:
    """The flake this clock fixes: 128 streams for 0.5 s on a loaded 2-core host left late streams empty."""

    async def main() -> dict[str, Any]:
        async with in_process_agents(KEY, limits=AgentLimits(max_streams=256)) as (ends, _):
            return await run_pair(PairConfig(sender=ends[0], receiver=ends[1], key=KEY, streams=128, duration=0.5,
                                             interval=0.25))

    result = run_async(main())
    assert result["partial"] is False, result["error"]
    idle = [s["id"] for s in result["streams"] if not s["bytes"]]
    assert not idle, f"streams {idle} moved nothing"
    assert all(s["started"] is True for s in result["streams"])


def test_streams_that_never_connected_are_reported_as_not_started(run_async: Any) -> None:
    async def main() -> dict[str, Any]:
        async with in_process_agents(KEY) as (ends, _):
            # Nothing listens on 127.0.0.3: every connect is refused, no stream thread ever starts.
            return await run_pair(PairConfig(sender=ends[0], receiver=ends[1], key=KEY, streams=3, duration=1.0,
                                             interval=0.5, data_host="127.0.0.3"))

    result = run_async(main())
    assert result["partial"] and [s["started"] for s in result["streams"]] == [False, False, False]
