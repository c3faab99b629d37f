"""The expert checks on the namespace lab (issue 13), with real agents: ICMP blocked on the switch, a jumbo
black hole in one direction only, and vioslpm0 under the AIX personality.

Each test names the check it shows failing; the closing note of issue 13 lists them.
"""

from __future__ import annotations

import shutil
import time

import pytest
from test_lab_scenarios import checks_of, lab_agents, run_in_lab

from lpmbench.lab import PortSpec
from lpmbench.net import eventloop
from lpmbench.orchestrator.directions import run_both_directions
from lpmbench.orchestrator.pair import PairConfig

pytest_plugins = ["conftest_lab"]
pytestmark = [pytest.mark.lab,
              pytest.mark.skipif(shutil.which("ping") is None, reason="no ping on this host (Debian: iputils-ping)")]

REACH = "LPM validation reachability (ICMP)"


def test_icmp_blocked_on_the_switch_fails_validation_reachability(make_lab):
    lab = make_lab(a=PortSpec(block_icmp=True), b=PortSpec())
    result, _ = run_in_lab(lab, duration=1.0)
    reach = checks_of(result)[REACH]
    assert reach["status"] == "fail", reach
    assert "sender" in reach["detail"] and "receiver" in reach["detail"] and "0 of 3" in reach["detail"]
    assert "genfilt" in reach["remedy"] and "echo_request" in reach["remedy"]
    assert result["verdict"] == "fail" and not result["partial"]  # the streams crossed: only ICMP is blocked


def test_icmp_open_passes_and_the_verdict_is_not_touched(make_lab):
    lab = make_lab()
    result, _ = run_in_lab(lab, duration=1.0)
    reach = checks_of(result)[REACH]
    assert reach["status"] == "pass" and "round trip" in reach["detail"], reach
    assert result["sender"]["msp"]["reach"]["received"] == 3


def test_aix_icmp_blocked_and_vioslpm0_pinned_ports(make_lab, monkeypatch):
    """The VIOS code paths end to end: AIX ping syntax and output, lsattr -El vioslpm0, lparstat -i."""
    monkeypatch.setenv("LPMBENCH_AIX_VIOSLPM0", "tcp_port_low=40001,tcp_port_high=40010,concurrency_lvl=2")
    lab = make_lab(a=PortSpec(block_icmp=True), b=PortSpec())
    result, _ = run_in_lab(lab, duration=1.0, personality="aix")
    checks = checks_of(result)
    assert result["sender"]["os"].startswith("VIOS")
    assert checks[REACH]["status"] == "fail" and "genfilt" in checks[REACH]["remedy"], checks[REACH]
    ports = checks["LPM port range tested (vioslpm0)"]
    assert ports["status"] == "warn" and "40001-40010" in ports["detail"], ports
    assert "--data-ports 40001-40010" in ports["remedy"]
    streams = checks["streams match the LPM mover (vioslpm0)"]
    assert streams["status"] == "warn" and "concurrency_lvl 2" in streams["detail"], streams
    assert "HMC 9.2.950" in streams["remedy"]  # the personality is VIOS 3.1.4.31: IBM says leave it at 4
    assert result["receiver"]["msp"]["mover"]["tcp_port_low"] == 40001
    assert result["sender"]["msp"]["cpu"]["source"] == "lparstat -i"
    assert checks["MSP CPU headroom"]["status"] == "unknown"  # both agents share this host


def test_a_jumbo_black_hole_in_one_direction_is_found_in_that_direction_only(make_lab):
    # The switch drops jumbo frames on their way out to b only: a -> b is a black hole, b -> a is clean.
    lab = make_lab(a=PortSpec(host_mtu=9000), b=PortSpec(host_mtu=9000, out_mtu=1500))
    with lab_agents(lab) as (a, b, key):
        config = PairConfig(sender=a, receiver=b, key=key, streams=4, duration=3.0, interval=0.5)
        started = time.monotonic()
        both = lab.call_in("a", lambda: eventloop.run(run_both_directions(config)), timeout=120)
        took = time.monotonic() - started
    forward, backward = both["directions"]
    assert forward["sender"] == lab.address("a") and backward["sender"] == lab.address("b")
    jumbo_ab = checks_of(forward["result"])["jumbo frames end to end"]
    jumbo_ba = checks_of(backward["result"])["jumbo frames end to end"]
    assert jumbo_ab["status"] == "fail" and "black hole" in jumbo_ab["detail"], jumbo_ab
    assert forward["result"]["path"]["mtu"] == 1500
    assert jumbo_ba["status"] == "pass" and backward["result"]["path"]["mtu"] == 9000, jumbo_ba
    assert forward["verdict"] == "fail" and backward["verdict"] != "fail"
    assert both["verdict"] == "fail" and both["worse_direction"] == forward["direction"]
    assert took < 60, f"{took:.1f} s"
