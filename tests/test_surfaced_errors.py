"""Failures a run used to swallow are logged and reported: refused socket options, unreadable system counters,
and a path MTU probe that cannot run (a finding: the run goes on)."""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
from typing import Any

import pytest
from agent_helpers import in_process_agents
from direct_runs import run_directly

from lpmbench.net import eventloop, pathprobe, sockopts
from lpmbench.net.pathprobe import probe_path_mtu, start_responder
from lpmbench.orchestrator.pair import PairConfig, run_pair
from lpmbench.platform import InterfaceAudit, linux

KEY = b"s" * 32
TOKEN = "probe-token"
UNKNOWN_IP_OPTION = 255  # no IPPROTO_IP option has this number: the kernel answers ENOPROTOOPT


@pytest.fixture
def fresh_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    """sockopts warns once per option and process: give this test a process-fresh memory."""
    monkeypatch.setattr(sockopts, "_warned", set())


def test_keepalive_says_whether_it_took_and_warns_once_per_option(fresh_warnings: None,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="lpmbench.net.sockopts")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
        assert sockopts.keepalive(tcp, sockopts.DATA_USER_TIMEOUT_S) is True
    assert not caplog.records
    left, right = socket.socketpair(socket.AF_UNIX)  # TCP_* options do not apply: the kernel refuses them
    with left, right:
        assert sockopts.keepalive(left, sockopts.DATA_USER_TIMEOUT_S) is False
        first = [r.getMessage() for r in caplog.records]
        assert sockopts.keepalive(right, sockopts.DATA_USER_TIMEOUT_S) is False
    assert [r.getMessage() for r in caplog.records] == first, "the same refusal was logged twice"
    refused = errno.errorcode[errno.EOPNOTSUPP]  # what Linux answers for TCP options on a unix socket
    assert any("TCP_USER_TIMEOUT" in m and refused in m for m in first), first
    assert all(r.levelno == logging.WARNING for r in caplog.records)


def test_unreadable_system_counters_are_logged_and_reported(monkeypatch: pytest.MonkeyPatch,
                                                            caplog: pytest.LogCaptureFixture, tmp_path: Any) -> None:
    """On AIX netstat -s is the only retransmit source: when it fails, the report says why the figure is unknown."""
    caplog.set_level(logging.WARNING, logger="lpmbench.platform")
    monkeypatch.setattr(linux, "PROC_SNMP", str(tmp_path / "no-snmp-here"))
    audit = InterfaceAudit()
    audit.start("127.0.0.1")
    report = audit.finish()
    assert report["system_tcp_delta"] is None
    assert "system TCP counters unavailable" in report["system_tcp_error"]
    assert "no-snmp-here" in report["system_tcp_error"]
    assert any("system TCP counters unavailable" in r.getMessage() for r in caplog.records)


def test_counters_that_fail_after_the_run_are_reported(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    audit = InterfaceAudit()
    audit.start("127.0.0.1")
    monkeypatch.setattr(linux, "PROC_SNMP", str(tmp_path / "gone-meanwhile"))
    report = audit.finish()
    assert report["system_tcp_delta"] is None and "gone-meanwhile" in report["system_tcp_error"]


def _probe_loopback() -> pathprobe.ProbeResult:
    async def scenario() -> pathprobe.ProbeResult:
        loop = asyncio.get_running_loop()
        transport, port = await start_responder(loop, "127.0.0.1", 0, TOKEN)
        try:
            return await loop.run_in_executor(None, lambda: probe_path_mtu("127.0.0.1", port, TOKEN, 9000))
        finally:
            transport.close()

    return eventloop.run(scenario(), "asyncio")


def test_a_probe_the_kernel_refuses_is_a_finding_not_an_exception(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pathprobe, "IP_MTU_DISCOVER", UNKNOWN_IP_OPTION)
    result = _probe_loopback()
    assert result.mtu is None and result.probes == 0 and not result.complete
    assert result.error is not None and "ENOPROTOOPT" in result.error


def test_a_platform_without_dont_fragment_cannot_probe_and_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    """Never a Linux option number on another platform: without DF every size would pass, reassembled."""
    monkeypatch.setattr(pathprobe, "IP_MTU_DISCOVER", None)
    monkeypatch.setattr(pathprobe, "IP_DONTFRAG", None)
    result = _probe_loopback()
    assert result.mtu is None and "no don't-fragment option for IPv4" in (result.error or "")


def test_a_failed_probe_leaves_the_run_going(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pathprobe, "IP_MTU_DISCOVER", UNKNOWN_IP_OPTION)
    sent, received, _ = eventloop.run(run_directly(), "asyncio")
    assert sent["error"] is None and "connect_error" not in sent, sent["error"]
    assert "ENOPROTOOPT" in sent["path_probe"]["error"] and sent["keepalive"] is True
    assert all(s["bytes"] > 0 and s["started"] for s in sent["streams"])
    assert received["error"] is None


def test_a_failed_probe_reaches_the_result_as_the_reason_the_path_mtu_is_unknown(
        monkeypatch: pytest.MonkeyPatch, run_async: Any) -> None:
    monkeypatch.setattr(pathprobe, "IP_MTU_DISCOVER", UNKNOWN_IP_OPTION)

    async def main() -> dict[str, Any]:
        async with in_process_agents(KEY) as (ends, _):
            return await run_pair(PairConfig(sender=ends[0], receiver=ends[1], key=KEY, streams=2, duration=0.5,
                                             interval=0.25))

    result = run_async(main())
    assert result["partial"] is False, result["error"]
    assert result["path"]["mtu"] is None and "ENOPROTOOPT" in result["path"]["probe_error"]
