"""A peer agent that dies (SIGKILL) or freezes (SIGSTOP) mid-run: real agent processes on loopback.

The orchestrator runs in this process. What must hold, measured and asserted here:

- ``run_pair`` returns a partial result with the bytes it got and an error naming the dead host: a killed
  agent's kernel closes its sockets, so death is seen at once (well within ``2 * interval +
  pair.SILENCE_SLACK_S``); a frozen agent is only seen by its silence, after that window, plus up to
  ``runs.DRAIN_GRACE_S`` for the survivor to finish and report;
- the surviving agent serves the next run at once (a replacement is started for a killed one).

``AgentProcess`` is also used by tests/test_hostile_input.py and tests/test_silent_link.py.
"""

from __future__ import annotations

import asyncio
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Callable

import pytest

from lpmbench import eventloop, keys, pair, runs
from lpmbench.local import READY_PREFIX
from lpmbench.pair import Endpoint, PairConfig, run_pair

REPO = Path(__file__).resolve().parent.parent
START_TIMEOUT_S = 20.0  # two agents starting at once on a busy 2-core machine
INTERVAL = 0.25
SILENCE_SLACK = 1.0  # pair.SILENCE_SLACK_S shortened for these tests (default 5 s)


class AgentProcess:
    """A real ``lpmbench agent`` process with its own pid, so a test can kill or freeze it.

    ``netns`` runs it inside a network namespace (``ip netns exec`` keeps the pid). /metrics is off so
    that agents of parallel test runs never fight over its port.
    """

    def __init__(self, bind: str, key_file: str, log_dir: Path, *, netns: str | None = None,
                 extra: Sequence[str] = ()) -> None:
        self.bind = bind
        argv = [sys.executable, "-m", "lpmbench", "agent", "--bind", bind, "--port", "0", "--key-file", key_file,
                "--data-ports", "0-0", "--metrics-port", "0", *extra]
        if netns:
            argv = ["ip", "netns", "exec", netns, *argv]
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        self.log_path = log_dir / f"agent-{bind}-{time.monotonic_ns()}.log"
        self._log = open(self.log_path, "w")  # noqa: SIM115 - closed in stop(); a pipe nobody reads would block
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=self._log, stdin=subprocess.DEVNULL,
                                     text=True, env=env)
        self.port = 0

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def endpoint(self) -> Endpoint:
        assert self.port, "wait_ready() first"
        return Endpoint(self.bind, self.port)

    def wait_ready(self, timeout: float = START_TIMEOUT_S) -> AgentProcess:
        """Read stdout until the agent announces its control port."""
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            if select.select([self.proc.stdout], [], [], 0.1)[0]:
                line = self.proc.stdout.readline()
                if line.startswith(READY_PREFIX):
                    self.port = int(line.rsplit(":", 1)[1])
                    return self
        self.stop()
        raise RuntimeError(f"agent on {self.bind} did not start: {self.log_text()[-800:]}")

    def signal(self, signum: int) -> None:
        os.kill(self.pid, signum)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)  # a frozen agent cannot act on SIGTERM
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._log.close()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")


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
    monkeypatch.setattr(pair, "SILENCE_SLACK_S", SILENCE_SLACK)
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
        await asyncio.wait_for(intervals.wait(), 10)
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
    result, took = run_with_fault(pair_config(sender, receiver, key_file), lambda: frozen.signal(signal.SIGSTOP))
    print(f"\nSIGSTOP {victim}: run_pair returned {took:.2f} s after the freeze")
    # Silence is declared after 2*interval + slack; then the other agent drains (DRAIN_GRACE_S) and reports.
    assert took < short_silence + runs.DRAIN_GRACE_S + 1.0, f"took {took:.1f} s"
    assert result["partial"] is True and result["bytes"] > 0
    assert f"{victim} {frozen.endpoint.label} went silent" in result["error"], result["error"]

    frozen.signal(signal.SIGCONT)
    again = _retry_while_busy(lambda: quick_run(sender, receiver, key_file), within=8.0)
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
