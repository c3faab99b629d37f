"""Agents for tests: in-process agents on loopback, and real agent processes a test can kill or freeze."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from lpmbench.agent.server import Agent, AgentConfig, AgentLimits
from lpmbench.orchestrator.local import ready_port, stop_process
from lpmbench.orchestrator.pair import Endpoint

KEY = b"k" * 32
REPO = Path(__file__).resolve().parent.parent
START_TIMEOUT_S = 20.0  # two agents starting at once on a busy 2-core machine


@contextlib.asynccontextmanager
async def in_process_agents(key: bytes | None = KEY, count: int = 2, limits: AgentLimits | None = None,
                            **config: Any) -> AsyncIterator[tuple[list[Endpoint], list[Agent]]]:
    """Agents on 127.0.0.1, 127.0.0.2, ... in this event loop; yields (endpoints, agents), closes them after."""
    started: list[Agent] = []
    try:
        for i in range(count):
            agent = Agent(AgentConfig(bind=f"127.0.0.{i + 1}", port=0, key=key, data_ports=(0, 0),
                                      limits=limits or AgentLimits(), **config))
            await agent.start()
            started.append(agent)
        yield [Endpoint(str(a.config.bind), a.port) for a in started], started
    finally:
        for agent in started:
            await agent.close()


class AgentProcess:
    """A real ``lpmbench agent`` process with its own pid, so a test can kill or freeze it.

    ``netns`` runs it inside a network namespace (``ip netns exec`` keeps the pid). /metrics is off so
    that agents of parallel test runs never fight over its port.
    """

    def __init__(self, bind: str, key_file: str | None, log_dir: Path, *, netns: str | None = None,
                 extra: Sequence[str] = (), personality: str | None = None,
                 data_ports: str | None = "0-0") -> None:
        self.bind = bind
        key_args = ["--key-file", key_file] if key_file else []
        # personality "aix": the agent runs as on a VIOS (lpmbench.lab.aix), on the Linux kernel underneath.
        module = {None: "lpmbench", "aix": "lpmbench.lab.aix"}[personality]
        ports = ["--data-ports", data_ports] if data_ports is not None else []  # None: the agent's own default
        argv = [sys.executable, "-m", module, "agent", "--bind", bind, "--port", "0", *key_args, *ports,
                "--metrics-port", "0", *extra]
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
        port, _ = ready_port(self.proc, timeout)
        if port is not None:
            self.port = port
            return self
        self.stop()
        raise RuntimeError(f"agent on {self.bind} did not start: {self.log_text()[-800:]}")

    def signal(self, signum: int) -> None:
        os.kill(self.pid, signum)

    def stop(self) -> int | None:
        """SIGTERM (SIGKILL if it hangs); returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)  # a frozen agent cannot act on SIGTERM
        code = stop_process(self.proc)
        self._log.close()
        return code

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    @property
    def label(self) -> str:
        return self.endpoint.label
