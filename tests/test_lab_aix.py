"""The four lab scenarios with both agents in the AIX personality (lpmbench.lab.aix): the VIOS code paths end
to end -- the AIX platform module reading lsattr / entstat / netstat, no TCP_INFO, no UDP path probe (AIX's
CPython has no don't-fragment option), the pure-Python data plane on the stock asyncio loop -- over real
network namespaces. Each gives the right verdict or an UNKNOWN that says why, never a wrong PASS.

The kernel underneath is Linux (docs/vios.md says what that does and does not prove).
"""

from __future__ import annotations

import pytest
from test_lab_scenarios import checks_of, run_in_lab

from lpmbench.lab import PortSpec

pytest_plugins = ["conftest_lab"]
pytestmark = pytest.mark.lab

CANNOT_PROBE = "cannot set don't-fragment"
BLACK_HOLE_BOUND_S = 45.0  # issue: the black hole run ends within 45 s, whatever the platform


def row(scenario: str, result: dict) -> None:
    """One line of the table in the closing note (pytest -s shows it)."""
    jumbo = checks_of(result)["jumbo frames end to end"]["status"]
    print(f"\n| {scenario} | {result['verdict']} | {jumbo} | {result['path']['mtu']} "
          f"({result['path'].get('mtu_source')}) | {result['retransmit_source']} |")


def assert_ran_as_vios(result: dict) -> None:
    for side in ("sender", "receiver"):
        assert result[side]["os"].startswith("VIOS 3.1.4.31 (AIX 7."), result[side]["os"]
        assert result[side]["dataplane"] == "python" and result[side]["event_loop"] == "asyncio"
    assert result["interfaces"]["sender"]["name"] == "en0"  # eth0 seen through lsattr / entstat
    assert CANNOT_PROBE in (result["path"]["probe_unsupported"] or "")


def test_aix_healthy_jumbo_path_passes_on_tcp_evidence(make_lab):
    lab = make_lab(a=PortSpec(host_mtu=9000), b=PortSpec(host_mtu=9000))
    result, _ = run_in_lab(lab, duration=3.0, personality="aix")
    row("healthy jumbo", result)
    assert_ran_as_vios(result)
    jumbo = checks_of(result)["jumbo frames end to end"]
    assert jumbo["status"] == "pass" and "TCP evidence" in jumbo["detail"], jumbo
    assert result["path"]["mtu"] == 9000 and result["path"]["mtu_source"] == "tcp evidence"
    assert min(s["mss"] for s in result["streams"]) > 8000
    assert result["retransmit_source"] == "system"  # netstat -s -p tcp deltas: AIX has no per-socket counters
    assert not result["partial"] and result["verdict"] != "fail"


def test_aix_jumbo_black_hole_is_never_a_pass(make_lab):
    lab = make_lab(a=PortSpec(host_mtu=9000, switch_mtu=1500), b=PortSpec(host_mtu=9000, switch_mtu=1500))
    result, took = run_in_lab(lab, duration=20.0, personality="aix")
    row("jumbo black hole", result)
    assert_ran_as_vios(result)
    jumbo = checks_of(result)["jumbo frames end to end"]
    assert jumbo["status"] == "fail" and "black hole" in jumbo["detail"], jumbo  # the streams moved nothing
    assert result["path"]["mtu"] is None  # never "path MTU 9000" through a switch that drops jumbo frames
    assert result["stalled"] is True and checks_of(result)["streams kept moving"]["status"] == "fail"
    assert result["verdict"] == "fail"
    assert took < BLACK_HOLE_BOUND_S, f"{took:.1f} s"


def test_aix_1gb_bottleneck_is_named_from_system_counters(make_lab):
    lab = make_lab(a=PortSpec(), b=PortSpec(rate_bps=1_000_000_000, queue_bytes=30_000))
    result, _ = run_in_lab(lab, personality="aix")
    row("1 Gb bottleneck, 30 kB queue", result)
    assert_ran_as_vios(result)
    retransmits = checks_of(result)["retransmit rate"]
    assert result["retransmit_source"] == "system"
    assert retransmits["status"] in ("warn", "fail"), retransmits
    assert result["goodput_bps"] < 1.05e9 and result["verdict"] == retransmits["status"]


def test_aix_random_loss_is_named_by_the_retransmit_rate(make_lab):
    lab = make_lab(a=PortSpec(loss=0.03), b=PortSpec())
    result, _ = run_in_lab(lab, personality="aix")
    row("3 % random loss", result)
    assert_ran_as_vios(result)
    assert result["retransmit_source"] == "system"
    assert checks_of(result)["retransmit rate"]["status"] == "fail" and result["verdict"] == "fail"
