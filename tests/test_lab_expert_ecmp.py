"""Streams over equal-cost paths (issue 13): an L3 lab (lpmbench.lab.EcmpLab) whose sender reaches the receiver
over two veths. With net.ipv4.fib_multipath_hash_policy=0 (addresses only) every stream takes one path and the
spread check warns; with 1 (addresses and ports) the streams spread and it passes. 16 streams: the chance that an
L4 hash still puts them all on one path is 2 / 2^16."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from agent_helpers import AgentProcess
from test_lab_scenarios import checks_of

from lpmbench.lab import EcmpLab, lab_unavailable_reason
from lpmbench.net import eventloop, keys
from lpmbench.orchestrator.pair import PairConfig, run_pair

pytestmark = pytest.mark.lab
SPREAD = "streams spread over the aggregate's members"
STREAMS = 16


@contextlib.contextmanager
def ecmp_lab(hash_policy: int) -> Iterator[EcmpLab]:
    reason = lab_unavailable_reason()
    if reason:
        pytest.skip(reason)
    with EcmpLab(hash_policy) as lab:
        yield lab


def run_over(lab: EcmpLab) -> dict:
    with tempfile.TemporaryDirectory(prefix="lpmbench-ecmp-") as tmp:
        key_path = os.path.join(tmp, "key")
        keys.write_key(key_path, keys.generate_key())
        agents = [AgentProcess(lab.address(host), key_path, Path(tmp), netns=lab.netns(host)) for host in "ab"]
        try:
            a, b = (agent.wait_ready() for agent in agents)
            config = PairConfig(sender=a.endpoint, receiver=b.endpoint, key=keys.load_key(key_path),
                                streams=STREAMS, duration=2.0, interval=0.5)
            return lab.call_in("a", lambda: eventloop.run(run_pair(config)), timeout=90)
        finally:
            for agent in agents:
                agent.stop()


def spread_of(result: dict) -> dict[str, int]:
    facts = result["sender"]["msp"]["aggregate"]
    assert facts["kind"] == "ecmp" and [m["name"] for m in facts["members"]] == ["v1", "v2"], facts
    return {name: moved["tx"] for name, moved in facts["bytes"].items()}


def test_l3_hash_puts_every_stream_on_one_path():
    with ecmp_lab(hash_policy=0) as lab:
        result = run_over(lab)
    moved = spread_of(result)
    assert min(moved.values()) < 0.05 * sum(moved.values()), moved
    check = checks_of(result)[SPREAD]
    assert check["status"] == "warn" and "1 of 2 paths" in check["detail"], check
    assert "fib_multipath_hash_policy=1" in check["remedy"]


def test_l4_hash_spreads_the_streams_over_both_paths():
    with ecmp_lab(hash_policy=1) as lab:
        result = run_over(lab)
    moved = spread_of(result)
    assert min(moved.values()) > 0.1 * sum(moved.values()), moved
    check = checks_of(result)[SPREAD]
    assert check["status"] == "pass" and "2 of 2 paths" in check["detail"], check
