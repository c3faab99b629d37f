"""``pair --local``: two real agent processes on this host (127.0.0.1 sends, 127.0.0.2 receives)."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO

import lpmbench
from lpmbench.net import keys
from lpmbench.orchestrator.pair import Endpoint

READY_PREFIX = "lpmbench agent ready on "
START_TIMEOUT_S = 15.0


class LocalAgentError(Exception):
    pass


def agent_environment() -> dict[str, str]:
    """The environment of a local agent: it imports the lpmbench this process imported, wherever the user stands.

    ``python -m lpmbench`` puts its working directory first on the path, so started from a source checkout it
    would import the checkout (no built C extension: the pure-Python twin) instead of the installed package.
    The agents therefore run in a neutral directory, with the folder holding this process's lpmbench first on
    PYTHONPATH: orchestrator and agents run the same code.
    """
    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(lpmbench.__file__)))
    inherited = os.environ.get("PYTHONPATH")
    path = package_parent if not inherited else os.pathsep.join((package_parent, inherited))
    return {**os.environ, "PYTHONPATH": path}


def ready_port(proc: subprocess.Popen, timeout: float = START_TIMEOUT_S) -> tuple[int | None, str]:
    """Read an agent process's stdout until it announces its control port: (port, what it printed), or (None,
    what it printed) when it exits or stays silent for ``timeout`` s. Every agent launcher uses this (local
    agents here, the lab's, the tests')."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    buffered = ""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.2)
        if ready:
            line = proc.stdout.readline()
            if not line:
                break
            buffered += line
            if line.startswith(READY_PREFIX):
                return int(line.rsplit(":", 1)[1]), buffered
        elif proc.poll() is not None:
            break
    return None, buffered


def stop_process(proc: subprocess.Popen, grace_s: float = 10.0) -> int | None:
    """SIGTERM, then SIGKILL after ``grace_s``; closes its stdout; returns the exit code."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    if proc.stdout is not None:
        proc.stdout.close()
    return proc.returncode


def wait_ready(proc: subprocess.Popen, address: str, log: IO[str]) -> int:
    """The agent's control port, or LocalAgentError with what it said."""
    port, printed = ready_port(proc)
    if port is not None:
        return port
    proc.kill()
    proc.communicate(timeout=5)
    log.seek(0)
    err = log.read()
    raise LocalAgentError(f"local agent on {address} did not start: {(err or printed).strip()[-500:]}")


@contextmanager
def local_agents(extra_args: tuple[str, ...] = (), count: int = 2) -> Iterator[tuple[Endpoint, ...]]:
    """Start agents on 127.0.0.1, 127.0.0.2, ... with a throwaway key; yields their endpoints, then the key.

    The first sends and the second receives; with count=4 the third and fourth form a redundant pair.
    """
    procs: list[subprocess.Popen] = []
    logs: list = []
    with tempfile.TemporaryDirectory(prefix="lpmbench-local-") as tmp:
        key_path = os.path.join(tmp, "key")
        keys.write_key(key_path, keys.generate_key())
        env = agent_environment()
        try:
            endpoints = []
            for address in (f"127.0.0.{i + 1}" for i in range(count)):
                # The agent's log goes to a file: a pipe nobody reads would fill and block the agent.
                log = open(os.path.join(tmp, f"agent-{address}.log"), "w+")  # noqa: SIM115 - closed below
                logs.append(log)
                proc = subprocess.Popen(
                    [sys.executable, "-m", "lpmbench", "agent", "--bind", address, "--port", "0",
                     "--key-file", key_path, "--data-ports", "0-0", "--metrics-port", "0", *extra_args],
                    stdout=subprocess.PIPE, stderr=log, text=True, stdin=subprocess.DEVNULL, cwd=tmp, env=env,
                    # A session of their own: the terminal's Ctrl-C reaches only the orchestrator, which stops
                    # the run cleanly and then these agents; the agents would otherwise die mid-run with it.
                    start_new_session=True)
                procs.append(proc)
                endpoints.append(Endpoint(address, wait_ready(proc, address, log)))
            yield (*endpoints, keys.load_key(key_path))
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                try:
                    proc.communicate(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.communicate()
            for log in logs:
                log.close()
