"""A peer agent that dies (SIGKILL) or freezes (SIGSTOP) mid-run: real agent processes on loopback.

The orchestrator runs in this process. What must hold, measured and asserted here:

- ``run_pair`` returns a partial result with the bytes it got and an error naming the dead host: a killed
  agent's kernel closes its sockets, so death is seen at once (well within ``2 * interval +
  contract.SILENCE_SLACK_S``); a frozen agent is only seen by its silence, after that window, plus up to
  ``contract.DRAIN_GRACE_S`` for the survivor to finish and report;
- the surviving agent serves the next run at once (a replacement is started for a killed one).

"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import pytest
from agent_helpers import AgentProcess

from lpmbench.net import eventloop, keys
from lpmbench.orchestrator import pair
from lpmbench.orchestrator.pair import PairConfig, run_pair
from lpmbench.protocol import contract

INTERVAL = 0.25
SILENCE_SLACK = 1.0  # contract.SILENCE_SLACK_S shortened for these tests (default 5 s)
# How long a process may wait for a CPU on a loaded 2-core host (other test processes; three processes here):
# the scheduler gives every runnable thread a turn within tens of milliseconds, allowed here several times over.
LOADED_HOST_DELAY_S = 0.5
# The survivor's last steps after its drain: its final interface audit (sysfs, /proc) and its result report,
# then the orchestrator's wake-up: a scheduling delay each.
REPORT_S = 2 * LOADED_HOST_DELAY_S
# A thawed agent ends its cut-short run by its own deadlines: its stream deadlines have passed, so the longest
# wait left is a sender's drain (DRAIN_GRACE_S) for a FIN that is already there or never comes; then it reports.
THAWED_FREE_WITHIN_S = contract.DRAIN_GRACE_S + REPORT_S + 4 * LOADED_HOST_DELAY_S


@pytest.fixture
def agent_factory(key_file: str, tmp_path: Path) -> Iterator[Callable[..., list[AgentProcess]]]:
    """start(*binds, **kw) starts agents in parallel and returns them ready; all stop after the test."""
    started: list[AgentProcess] = []

    def start(*binds: str, **kwargs: Any) -> list[AgentProcess]:
        batch = [AgentProcess(bind, key_file, tmp_path, **kwargs) for bind in binds]
        started.extend(batch)
        return [agent.wait_ready() for agent in batch]

    try:
        yield start
    finally:
        for agent in started:
            agent.stop()


@pytest.fixture
def short_silence(monkeypatch: pytest.MonkeyPatch) -> float:
    monkeypatch.setattr(contract, "SILENCE_SLACK_S", SILENCE_SLACK)
    return 2 * INTERVAL + SILENCE_SLACK


def pair_config(sender: AgentProcess, receiver: AgentProcess, key_file: str, **kw: Any) -> PairConfig:
    base: dict[str, Any] = dict(streams=2, duration=4.0, interval=INTERVAL)
    base.update(kw)
    return PairConfig(sender=sender.endpoint, receiver=receiver.endpoint, key=keys.load_key(key_file), **base)


def run_with_fault(config: PairConfig, fault: Callable[[], None]) -> tuple[dict[str, Any], float]:
    """run_pair, calling ``fault`` once both agents reported two intervals; (result, seconds after fault)."""

    async def main() -> tuple[dict[str, Any], float]:
        intervals = asyncio.Event()
        seen: list[dict[str, Any]] = []

        def on_interval(interval: dict[str, Any]) -> None:
            seen.append(interval)
            if len(seen) >= 2:
                intervals.set()

        task = asyncio.ensure_future(run_pair(config, on_interval))
        try:
            await asyncio.wait_for(intervals.wait(), 10)
        except asyncio.TimeoutError:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            raise AssertionError("no two interval reports within 10 s: the run never got going, so the fault "
                                 "was not injected") from None
        fault()
        t0 = time.monotonic()
        result = await asyncio.wait_for(task, 30)
        return result, time.monotonic() - t0

    return eventloop.run(main())


def quick_run(sender: AgentProcess, receiver: AgentProcess, key_file: str) -> dict[str, Any]:
    return eventloop.run(run_pair(pair_config(sender, receiver, key_file, duration=0.5, interval=0.25)))


@pytest.mark.parametrize("victim", ["sender", "receiver"])
def test_killed_agent_gives_partial_result_and_survivor_serves_next_run(
        victim: str, agent_factory: Callable[..., list[AgentProcess]], key_file: str, short_silence: float) -> None:
    sender, receiver = agent_factory("127.0.0.1", "127.0.0.2")
    dead = sender if victim == "sender" else receiver
    result, took = run_with_fault(pair_config(sender, receiver, key_file), lambda: dead.signal(signal.SIGKILL))
    print(f"\nSIGKILL {victim}: run_pair returned {took:.2f} s after the kill")
    assert took < short_silence, f"took {took:.1f} s; the bound is 2*interval + SILENCE_SLACK_S = {short_silence} s"
    assert result["partial"] is True and result["bytes"] > 0
    assert f"{victim} {dead.endpoint.label}" in result["error"], result["error"]
    assert result["verdict"] == "fail"

    replacement = agent_factory(dead.bind)[0]
    again = quick_run(replacement, receiver, key_file) if victim == "sender" else \
        quick_run(sender, replacement, key_file)
    assert again["partial"] is False and again["bytes"] > 0, again["error"]


@pytest.mark.parametrize("victim", ["sender", "receiver"])
def test_frozen_agent_is_declared_silent_and_both_recover(
        victim: str, agent_factory: Callable[..., list[AgentProcess]], key_file: str, short_silence: float) -> None:
    """SIGSTOP: the agent's sockets stay open but nothing answers, like a hung MSP."""
    sender, receiver = agent_factory("127.0.0.1", "127.0.0.2")
    frozen = sender if victim == "sender" else receiver
    try:
        result, took = run_with_fault(pair_config(sender, receiver, key_file), lambda: frozen.signal(signal.SIGSTOP))
    except asyncio.TimeoutError:
        frozen.signal(signal.SIGCONT)
        for agent in (sender, receiver):  # each agent writes its threads' stacks to its log
            agent.signal(signal.SIGUSR1)
        time.sleep(1.0)
        pytest.fail(f"run_pair did not return after freezing the {victim}\n--- sender log\n{sender.log_text()}\n"
                    f"--- receiver log\n{receiver.log_text()}")
    print(f"\nSIGSTOP {victim}: run_pair returned {took:.2f} s after the freeze")
    # Silence is declared after 2*interval + slack; then the other agent drains (DRAIN_GRACE_S) and reports.
    assert took < short_silence + contract.DRAIN_GRACE_S + REPORT_S, f"took {took:.1f} s"
    assert result["partial"] is True and result["bytes"] > 0
    assert f"{victim} {frozen.endpoint.label} went silent" in result["error"], result["error"]

    frozen.signal(signal.SIGCONT)
    again = _retry_while_busy(lambda: quick_run(sender, receiver, key_file), within=THAWED_FREE_WITHIN_S)
    assert again["partial"] is False and again["bytes"] > 0, again["error"]


def _retry_while_busy(attempt: Callable[[], dict[str, Any]], within: float) -> dict[str, Any]:
    """A thawed agent finishes its cut-short run by its own deadlines; meanwhile it answers 'busy'."""
    deadline = time.monotonic() + within
    while True:
        try:
            return attempt()
        except pair.PairError as exc:
            if exc.code != "busy" or time.monotonic() > deadline:
                raise
            time.sleep(0.2)
