"""The contract between agent and orchestrator: numbers both sides must agree on, in one place.

An orchestrator's patience is built from the agents' own time budgets, so a change on one side cannot
silently make the other give up early: the invariants at the bottom are checked at import.
"""

from __future__ import annotations

DEFAULT_CONTROL_PORT = 7520
# LPM takes its two migration ports per operation from the ephemeral range (vioslpm0 tcp_port_low /
# tcp_port_high); taking data ports from the same range makes a run cross the same firewall rules.
DEFAULT_DATA_PORTS = (32768, 65535)
# Parallel streams of a run. IBM Docs, "The concurrency level attribute" (vioslpm0 pseudodevice): concurrency_lvl
# ranges 1-5; its default went from 3 to 4 in VIOS 2.2.4.0, which is also when it started to set the number of
# threads that send and receive the partition's memory pages. One TCP stream per mover thread is our ASSUMPTION
# (IBM does not document the mapping), so a run that mimics LPM at the default level uses 4 streams.
DEFAULT_STREAMS = 4

# --- Agent side ---------------------------------------------------------------------------------------
# An armed receiver waits this long for all streams, then gives up and goes idle. It covers the sender's
# preparation (interface audit: on VIOS several lsattr / entstat calls; path MTU probe: up to 4 s) and connects.
ARM_TIMEOUT_S = 30.0
DATA_CONNECT_TIMEOUT_S = 5.0  # per data connection, including the token handshake
DRAIN_GRACE_S = 3.0  # after the sender's deadline: time for queued bytes to arrive and for FIN/ACK
# While a run drains and audits its interfaces (entstat + netstat on a slow VIOS may take seconds) the agent
# reports at least this often, so an orchestrator never mistakes a busy agent for a silent one.
HEARTBEAT_S = 1.0

# --- Orchestrator side ------------------------------------------------------------------------------
CONTROL_CONNECT_TIMEOUT_S = 5.0  # TCP connect plus the authentication handshake to one agent
REPLY_TIMEOUT_S = 10.0  # armed / started answers (arming binds a port; starting connects the streams)
SILENCE_SLACK_S = 5.0  # beyond two intervals without a word from a running agent, it is declared silent
RESULT_GRACE_S = 20.0  # after the run's duration: drain, FIN and final reports
# Past any of these deadlines the orchestrator still reads what already arrived, for this long, before it gives
# up: a process resumed after a stop (Ctrl-Z, a paused VM) sees its timers expire before its sockets. One turn
# of the event loop suffices; the rest is room for a loaded host. A silent agent costs this much more.
LATE_READ_GRACE_S = 0.5
# After the orchestrator tells an agent to stop (its peer failed), the agent stops its streams at once and
# reports after its final audit; heartbeats alone do not stretch this: a stopped run that does not report
# within it is given up, whatever its session still says.
AUDIT_BUDGET_S = 10.0  # entstat + netstat on a slow VIOS
ABORT_GRACE_S = DRAIN_GRACE_S + AUDIT_BUDGET_S


def silence_window_s(interval_s: float) -> float:
    """How long a running agent may say nothing before the orchestrator calls it silent."""
    return 2 * interval_s + SILENCE_SLACK_S


def startup_window_s(interval_s: float) -> float:
    """Before its first report an agent may be probing the path and waiting up to ARM_TIMEOUT_S for streams."""
    return ARM_TIMEOUT_S + silence_window_s(interval_s)


def hard_deadline_s(duration_s: float, interval_s: float) -> float:
    """From the start request, the longest a run can take before the orchestrator stops waiting."""
    return ARM_TIMEOUT_S + duration_s + RESULT_GRACE_S + 2 * interval_s


# Invariants (the silence window at its smallest interval must outlast the quiet gaps an agent may have).
if not HEARTBEAT_S < SILENCE_SLACK_S:
    raise AssertionError("agents must report during drain and audit more often than the orchestrator's slack")
if not DRAIN_GRACE_S + HEARTBEAT_S < RESULT_GRACE_S:
    raise AssertionError("the result grace must cover the agents' drain")
