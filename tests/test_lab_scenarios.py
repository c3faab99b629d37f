"""End-to-end scenarios on the namespace lab: real agents on two hosts behind a bridge "switch".

Each scenario asserts the verdict, the named cause and the probed path MTU. They need root, iproute2,
ethtool and nftables (.ci/run installs them); elsewhere they skip with the reason.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from agent_helpers import AgentProcess

from lpmbench.lab import Lab, PortSpec
from lpmbench.net import eventloop, keys
from lpmbench.orchestrator.pair import Endpoint, PairConfig, run_pair, run_with_jumbo_compare

pytest_plugins = ["conftest_lab"]
pytestmark = pytest.mark.lab


@contextlib.contextmanager
def lab_agents(lab: Lab, personality: str | None = None) -> Iterator[tuple[Endpoint, Endpoint, bytes]]:
    """An agent on each lab host (a sends, b receives), with a throwaway key; ``personality="aix"`` runs both
    as on a VIOS (lpmbench.lab.aix)."""
    with tempfile.TemporaryDirectory(prefix="lpmbench-lab-") as tmp:
        key_path = os.path.join(tmp, "key")
        keys.write_key(key_path, keys.generate_key())
        agents = [AgentProcess(lab.address(host), key_path, Path(tmp), netns=lab.netns(host), personality=personality)
                  for host in "ab"]
        try:
            a, b = (agent.wait_ready() for agent in agents)
            yield a.endpoint, b.endpoint, keys.load_key(key_path)
        finally:
            for agent in agents:
                agent.stop()


def run_in_lab(lab: Lab, duration: float = 3.0, streams: int = 4, jumbo_compare: bool = False,
               personality: str | None = None) -> tuple[dict, float]:
    """Run pair from host a (the orchestrator sits on the sending MSP); returns (result, seconds taken)."""
    with lab_agents(lab, personality) as (a, b, key):
        config = PairConfig(sender=a, receiver=b, key=key, streams=streams, duration=duration, interval=0.5)
        run = (lambda: run_with_jumbo_compare([config])) if jumbo_compare else (lambda: run_pair(config))
        started = time.monotonic()
        result = lab.call_in("a", lambda: eventloop.run(run()), timeout=2 * duration + 60)
        return result, time.monotonic() - started


def checks_of(result: dict) -> dict[str, dict]:
    return {c["name"]: c for c in result["checks"]}


def test_healthy_jumbo_path_and_what_jumbo_frames_buy(make_lab):
    lab = make_lab(a=PortSpec(host_mtu=9000), b=PortSpec(host_mtu=9000))
    result, _ = run_in_lab(lab, duration=2.0, jumbo_compare=True)
    checks = checks_of(result)
    assert result["path"]["mtu"] == 9000
    assert result["path"]["sender_mtu"] == result["path"]["receiver_mtu"] == 9000
    assert checks["jumbo frames end to end"]["status"] == "pass"
    assert min(s["mss"] for s in result["streams"]) > 8000
    assert checks["retransmit rate"]["status"] == "pass"
    assert result["verdict"] != "fail" and not result["partial"]
    assert result["interfaces"]["sender"]["name"] == "eth0"
    compare = result["jumbo_compare"]
    assert compare["jumbo"]["mss"] > 8000 and compare["standard"]["mss"] <= 1460
    assert checks["jumbo frame effectiveness"]["status"] in ("pass", "warn")
    assert "CPU per GB" in checks["jumbo frame effectiveness"]["detail"]


def test_jumbo_black_hole_fails_fast_naming_the_mtu_mismatch(make_lab):
    lab = make_lab(a=PortSpec(host_mtu=9000, switch_mtu=1500), b=PortSpec(host_mtu=9000, switch_mtu=1500))
    result, took = run_in_lab(lab, duration=20.0)
    checks = checks_of(result)
    assert result["path"]["mtu"] == 1500
    jumbo = checks["jumbo frames end to end"]
    assert jumbo["status"] == "fail"
    assert "9000" in jumbo["detail"] and "1500" in jumbo["detail"]
    assert "switch" in jumbo["remedy"]
    assert result["stalled"] is True and checks["streams kept moving"]["status"] == "fail"
    assert result["verdict"] == "fail"
    assert took < 15, f"a black hole must fail within seconds, not run out the 20 s duration ({took:.1f} s)"


def test_1gb_bottleneck_with_shallow_buffer_behind_fast_sender(make_lab):
    lab = make_lab(a=PortSpec(), b=PortSpec(rate_bps=1_000_000_000, queue_bytes=30_000))
    result, _ = run_in_lab(lab)
    checks = checks_of(result)
    assert result["path"]["mtu"] == 1500
    assert checks["retransmit rate"]["status"] in ("warn", "fail"), checks["retransmit rate"]
    assert "flow control" in checks["retransmit rate"]["remedy"]
    assert result["goodput_bps"] < 1.05e9
    assert result["verdict"] == checks["retransmit rate"]["status"]  # the retransmits set the verdict


def test_random_loss_is_named_by_the_retransmit_rate(make_lab):
    lab = make_lab(a=PortSpec(loss=0.03), b=PortSpec())
    result, _ = run_in_lab(lab)
    checks = checks_of(result)
    assert result["path"]["mtu"] == 1500
    assert checks["retransmit rate"]["status"] == "fail"
    assert result["retransmit_rate"] >= 0.01
    assert result["verdict"] == "fail"
