"""An orchestrator stopped for longer than the silence window (Ctrl-Z then fg, a paused VM) finds both agents'
reports waiting in its sockets: it reads them before it calls anyone silent.

The pause is real: SIGSTOP of a ``pair`` process while two agent processes finish the run and report, then
SIGCONT. (Blocking the orchestrator's event loop instead does not show the bug: the loop still sees its
sockets before its timers. After SIGCONT the loop's wait for I/O returns EINTR past its deadline with no
events, the timers fire first, and the reports were never looked at.)
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from agent_helpers import REPO, AgentProcess

from lpmbench.protocol import contract

DURATION_S, INTERVAL_S = 2.0, 0.5
PAUSE_S = contract.silence_window_s(INTERVAL_S) + 2.0  # longer than any silence the orchestrator tolerates
WAIT_S = 30.0  # for the run to start, and for the resumed orchestrator to finish


def wait_for_progress(proc: subprocess.Popen, timeout: float = WAIT_S) -> bytes:
    """What the orchestrator printed on stderr up to its first interval line: it has heard from the agents,
    so from now on the silence window, not the longer start-up window, is what it allows them."""
    assert proc.stderr is not None
    seen = b""
    deadline = time.monotonic() + timeout
    while b"bit/s" not in seen:  # an interval line; unbuffered reads: communicate() later sees every byte not read here
        ready, _, _ = select.select([proc.stderr], [], [], max(0.0, deadline - time.monotonic()))
        assert ready, f"the orchestrator printed no progress: {seen!r}"
        chunk = os.read(proc.stderr.fileno(), 4096)
        assert chunk, "the orchestrator ended before its first interval"
        seen += chunk
    return seen


def wait_for_log(agent: AgentProcess, text: str, timeout: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout
    while text not in agent.log_text():
        if time.monotonic() > deadline:
            raise AssertionError(f"agent on {agent.bind} never logged {text!r}: {agent.log_text()[-800:]}")
        time.sleep(0.05)


# Past the run's hard deadline too: the reports waiting in the socket are read before anyone is called late.
BEYOND_DEADLINE_S = contract.hard_deadline_s(DURATION_S, INTERVAL_S) + 2.0


@pytest.mark.parametrize(("loop", "pause_s"), [("asyncio", PAUSE_S), ("uvloop", PAUSE_S),
                                               ("asyncio", BEYOND_DEADLINE_S)])
def test_a_stopped_orchestrator_reads_the_reports_waiting_for_it(key_file: str, tmp_path: Path, loop: str,
                                                                 pause_s: float) -> None:
    if loop == "uvloop":
        pytest.importorskip("uvloop")
    procs = [AgentProcess(bind, key_file, tmp_path) for bind in ("127.0.0.1", "127.0.0.2")]
    orchestrator = None
    try:
        sender, receiver = (p.wait_ready() for p in procs)
        argv = [sys.executable, "-m", "lpmbench", "pair", sender.label, receiver.label, "--key-file", key_file,
                "--streams", "2", "--duration", str(DURATION_S), "--interval", str(INTERVAL_S)]
        env = {**os.environ, "PYTHONPATH": str(REPO), "LPMBENCH_EVENT_LOOP": loop}
        orchestrator = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        progress = wait_for_progress(orchestrator)
        # Half an interval on, the orchestrator idles in its wait for I/O (epoll, poll): that is where a stop
        # meets a waiting process, and where the bug was (stopped mid-work, it looks at its sockets first).
        time.sleep(INTERVAL_S / 2)
        orchestrator.send_signal(signal.SIGSTOP)
        stopped = time.monotonic()
        for agent in (sender, receiver):
            wait_for_log(agent, "finished after")  # both reported while the orchestrator could not read
        time.sleep(max(0.0, pause_s - (time.monotonic() - stopped)))
        orchestrator.send_signal(signal.SIGCONT)
        out_bytes, err_bytes = orchestrator.communicate(timeout=WAIT_S)
        out, err = out_bytes.decode(errors="replace"), (progress + err_bytes).decode(errors="replace")
    finally:
        if orchestrator is not None and orchestrator.poll() is None:
            orchestrator.send_signal(signal.SIGCONT)
            orchestrator.kill()
            orchestrator.communicate()
        for proc in procs:
            proc.stop()
    assert orchestrator.returncode in (0, 1), f"exit {orchestrator.returncode}: {err[-1500:]}"
    assert "went silent" not in out + err and "partial" not in out + err, out + err
    assert "Verdict" in out, out
