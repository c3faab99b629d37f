"""``lpmbench pair`` as a user runs it, against real agent processes, when something goes wrong around the run:
Ctrl-C, an agent stopped mid-run, one agent named twice, an output path that cannot be written. Each ends in
exit 2 with one message, never a traceback, and never loses what was measured."""

from __future__ import annotations

import json
import os
import random
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from agent_helpers import REPO, AgentProcess

from lpmbench.net import keys
from lpmbench.orchestrator.local import local_agents

RUN_TIMEOUT_S = 60.0  # a whole pair command on a loaded 2-core host, agents' grace periods included
PROGRESS_TIMEOUT_S = 20.0  # connect, arm, start and the first interval report


def _pair(*args: str, cwd: Path | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "lpmbench", "pair", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=cwd, env={**os.environ, "PYTHONPATH": str(REPO)})


def _wait_for_progress(proc: subprocess.Popen, lines: int = 1) -> str:
    """Read the command's stderr until ``lines`` progress lines (one per interval) came; returns what was read."""
    assert proc.stderr is not None
    seen = ""
    deadline = time.monotonic() + PROGRESS_TIMEOUT_S
    while seen.count(" s ") < lines:
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            raise AssertionError(f"no {lines} progress line(s) within {PROGRESS_TIMEOUT_S} s: {seen}")
        if select.select([proc.stderr], [], [], 0.2)[0]:
            seen += proc.stderr.readline()
    return seen


def _finish(proc: subprocess.Popen) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=RUN_TIMEOUT_S)
    return proc.returncode, out, err


@pytest.fixture
def agents_and_key(tmp_path: Path) -> Iterator[tuple[str, str, str]]:
    """Two local agents (sender, receiver labels) and a key file for them."""
    with local_agents() as (a, b, key):
        path = tmp_path / "key"
        keys.write_key(str(path), key.hex())
        yield a.label, b.label, str(path)


def test_ctrl_c_mid_run_stops_both_agents_shows_a_partial_result_and_exits_2(agents_and_key) -> None:
    sender, receiver, key_file = agents_and_key
    rng = random.Random(16)
    for attempt in range(10):
        json_out = attempt % 2 == 0
        proc = _pair(sender, receiver, "--key-file", key_file, "--duration", "20", "--interval", "0.5",
                     *(["--json"] if json_out else []))
        early = _wait_for_progress(proc)
        time.sleep(rng.uniform(0.0, 1.0))  # anywhere in the run: between reports, in a report, in a sample
        proc.send_signal(signal.SIGINT)
        code, out, err = _finish(proc)
        err = early + err
        assert code == 2, f"attempt {attempt}: exit {code}\n{err}"
        assert "Traceback" not in err and "Traceback" not in out, err
        assert "interrupted by the user" in err
        if json_out:
            result = json.loads(out)
            assert result["partial"] is True and result["bytes"] > 0
            assert "interrupted by the user" in result["error"]
        else:
            assert "interrupted by the user" in out  # the terminal report shows the run's error
    code, out, err = _finish(_pair(sender, receiver, "--key-file", key_file, "--duration", "0.5", "--json"))
    assert code == 0, err
    assert json.loads(out)["partial"] is False  # both agents were free again at once


@pytest.mark.parametrize("victim", ["sender", "receiver"])
def test_an_agent_stopped_mid_run_is_exit_2_naming_it(victim: str, key_file: str, tmp_path: Path) -> None:
    agents = [AgentProcess(bind, key_file, tmp_path) for bind in ("127.0.0.1", "127.0.0.2")]
    try:
        sender, receiver = (agent.wait_ready() for agent in agents)
        stopped = sender if victim == "sender" else receiver
        proc = _pair(sender.label, receiver.label, "--key-file", key_file, "--duration", "20", "--interval", "0.5",
                     "--json")
        early = _wait_for_progress(proc, lines=2)
        stopped.signal(signal.SIGTERM)
        code, out, err = _finish(proc)
    finally:
        for agent in agents:
            agent.stop()
    assert code == 2, early + err
    assert f"{victim} {stopped.label} stopped mid-run" in err
    result = json.loads(out)
    assert result["partial"] is True and result["agent_lost"] is True and result["bytes"] > 0


@pytest.mark.parametrize("second_name", ["127.0.0.1", "127.0.0.2"])
def test_one_agent_named_as_both_a_and_b_is_said_so(second_name: str, key_file: str, tmp_path: Path) -> None:
    """The same address twice is seen from the handshake facts; another address of the same agent, when the
    sender refuses the run id just armed on the receiver."""
    agent = AgentProcess("0.0.0.0", key_file, tmp_path).wait_ready()  # every IPv4 address, 127.0.0.2 included
    try:
        first, second = f"127.0.0.1:{agent.port}", f"{second_name}:{agent.port}"
        code, out, err = _finish(_pair(first, second, "--key-file", key_file, "--duration", "0.5"))
    finally:
        agent.stop()
    assert code == 2 and out == ""
    assert f"A ({first}) and B ({second}) are the same agent" in err, err


@pytest.mark.parametrize("where", ["missing folder", "a folder"])
def test_an_html_path_that_cannot_be_written_is_refused_before_the_run(where: str, tmp_path: Path) -> None:
    path = tmp_path / "gone" / "report.html" if where == "missing folder" else tmp_path
    started = time.monotonic()
    code, out, err = _finish(_pair("--local", "--duration", "3", "--html", str(path)))
    assert code == 2 and out == ""
    assert f"--html {path}" in err
    assert " s " not in err, f"the run started: {err}"
    assert time.monotonic() - started < 3, "the run went on before the path was refused"


def test_a_report_that_cannot_be_written_after_the_run_keeps_the_result(tmp_path: Path) -> None:
    folder, cwd = tmp_path / "reports", tmp_path / "cwd"
    folder.mkdir()
    cwd.mkdir()
    proc = _pair("--local", "--duration", "2", "--interval", "0.5", "--html", str(folder / "report.html"), cwd=cwd)
    early = _wait_for_progress(proc)
    shutil.rmtree(folder)  # the folder goes away while the run goes on (a cleanup job, an unmounted share)
    code, out, err = _finish(proc)
    err = early + err
    assert code == 2 and "Traceback" not in err, err
    assert f"could not write {folder / 'report.html'}" in err
    saved = list(cwd.glob("lpmbench-*.json"))
    assert len(saved) == 1 and str(saved[0]) in err
    result = json.loads(saved[0].read_text())
    assert result["bytes"] > 0 and result["partial"] is False
    assert result["run_id"] in out  # the terminal report was shown before the page failed


def test_json_keeps_stdout_to_the_result_and_shows_progress_on_stderr() -> None:
    code, out, err = _finish(_pair("--local", "--json", "--duration", "1", "--interval", "0.5"))
    assert code == 0, err
    assert json.loads(out)["bytes"] > 0
    progress = [line for line in err.splitlines() if "Gbit/s" in line or "Mbit/s" in line]
    assert len(progress) == 2, err
