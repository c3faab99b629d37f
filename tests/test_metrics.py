"""Agent metrics: the collector over real runs in a fresh registry, /metrics over HTTP during and after a run,
and the ``agent`` command's metrics options in a real process."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from lpmbench.agent import runs
from lpmbench.agent.server import Agent, AgentConfig
from lpmbench.metrics.collector import NO_PSUTIL_NOTE, MetricsServer, MetricsState, NicWatcher, build_registry
from lpmbench.orchestrator.pair import Endpoint, PairConfig, run_pair

KEY = b"m" * 32
REPO = Path(__file__).resolve().parent.parent
SENDER, RECEIVER = "127.0.0.1", "127.0.0.2"


@contextlib.asynccontextmanager
async def observed_agents(http: bool = False):
    """Two agents, each with its metrics state and registry (and a /metrics server when ``http``)."""
    started, servers = [], []
    try:
        for address in (SENDER, RECEIVER):
            state = MetricsState()
            agent = Agent(AgentConfig(bind=address, port=0, key=KEY, data_ports=(0, 0)), listeners=[state])
            await agent.start()
            registry = build_registry(state, agent.facts(), agent.runs, NicWatcher(address))
            started.append((agent, state, registry))
            if http:
                server = MetricsServer(registry, address, 0)
                server.start()
                servers.append(server)
        yield started, servers
    finally:
        for server in servers:
            server.stop()
        for agent, _, _ in started:
            await agent.close()


def pair_config(agents, **kw):
    base = dict(streams=2, duration=0.5, interval=0.25)
    base.update(kw)
    ends = [Endpoint(a.config.bind, a.port) for a, _, _ in agents]
    return PairConfig(sender=ends[0], receiver=ends[1], key=KEY, **base)


def scrape(server: MetricsServer, timeout: float = 5.0) -> tuple[dict[tuple[str, tuple], float], float]:
    """{(sample name, sorted labels): value} of one GET /metrics, and how long it took."""
    t0 = time.monotonic()
    with urllib.request.urlopen(f"http://{server.host}:{server.port}/metrics", timeout=timeout) as response:
        text = response.read().decode()
    took = time.monotonic() - t0
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(text) for s in family.samples}
    return samples, took


def test_collector_reports_a_pair_run_from_both_sides(run_async):
    async def main():
        async with observed_agents() as (agents, _):
            result = await run_pair(pair_config(agents))
            await asyncio.sleep(0.2)  # the orchestrator's summary arrives just after the result
            return result, [registry for _, _, registry in agents]

    result, (tx, rx) = run_async(main())
    assert result["partial"] is False
    sent = sum(s["sent_bytes"] for s in result["streams"])
    assert tx.get_sample_value("lpmbench_sent_bytes_total", {"peer": RECEIVER}) == sent > 0
    assert rx.get_sample_value("lpmbench_received_bytes_total", {"peer": SENDER}) == result["bytes"]
    assert tx.get_sample_value("lpmbench_received_bytes_total", {"peer": RECEIVER}) == 0
    assert tx.get_sample_value("lpmbench_retransmits_total", {"peer": RECEIVER}) == result["retransmits"]
    assert tx.get_sample_value("lpmbench_sent_segments_total", {"peer": RECEIVER}) == result["segments_out"]
    assert tx.get_sample_value("lpmbench_runs_total", {"role": "sender", "outcome": "ok"}) == 1
    assert rx.get_sample_value("lpmbench_runs_total", {"role": "receiver", "outcome": "ok"}) == 1
    assert rx.get_sample_value("lpmbench_runs_total", {"role": "sender", "outcome": "ok"}) == 0
    for registry, peer, role in ((tx, RECEIVER, "sender"), (rx, SENDER, "receiver")):
        labels = {"peer": peer, "role": role}
        assert registry.get_sample_value("lpmbench_last_run_verdict", {**labels, "verdict": result["verdict"]}) == 1
        others = [v for v in ("pass", "warn", "fail") if v != result["verdict"]]
        assert all(registry.get_sample_value("lpmbench_last_run_verdict", {**labels, "verdict": v}) == 0
                   for v in others)
        goodput = registry.get_sample_value("lpmbench_last_run_goodput_bytes_per_second", labels)
        assert goodput == pytest.approx(result["goodput_bps"] / 8)
        assert registry.get_sample_value("lpmbench_last_run_rtt_seconds", labels) > 0
        assert registry.get_sample_value("lpmbench_last_run_partial", labels) == 0
        assert abs(registry.get_sample_value("lpmbench_last_run_timestamp_seconds", labels) - time.time()) < 30
        assert registry.get_sample_value("lpmbench_runs_in_progress", {"role": role}) == 0
        # Efficiency needs a known link speed (loopback has none): absent then, never invented.
        efficiency = registry.get_sample_value("lpmbench_last_run_efficiency_ratio", labels)
        assert efficiency == (pytest.approx(result["efficiency"]) if result.get("efficiency") is not None else None)
        assert registry.get_sample_value("lpmbench_peer_interface_info", {"peer": peer, "interface": "lo"}) == 1
        assert registry.get_sample_value("lpmbench_nic_mtu_bytes", {"interface": "lo"}) == 65536
    assert tx.get_sample_value("lpmbench_last_run_retransmit_ratio", {"peer": RECEIVER, "role": "sender"}) == \
        pytest.approx(result["retransmit_rate"])
    probed_mtu = (result.get("path") or {}).get("mtu")  # the path probe's, when the run probed the path
    assert tx.get_sample_value("lpmbench_last_run_path_mtu_bytes", {"peer": RECEIVER, "role": "sender"}) == \
        (probed_mtu or min(s["pmtu"] for s in result["streams"]))
    assert tx.get_sample_value("lpmbench_build_info", {"version": result["sender"]["version"],
                                                        "dataplane": result["sender"]["dataplane"],
                                                        "event_loop": result["sender"]["event_loop"]}) == 1


def test_metrics_answer_while_a_run_saturates_loopback_and_bytes_only_grow(run_async):
    """Scrape over HTTP all through a 2-stream run: quick answers, live byte counts that never step back."""

    async def main():
        loop = asyncio.get_running_loop()
        async with observed_agents(http=True) as (agents, servers):
            run = asyncio.ensure_future(run_pair(pair_config(agents, duration=1.0)))
            during = []
            while not run.done():
                during.append(await loop.run_in_executor(None, scrape, servers[0]))
                await asyncio.sleep(0.1)
            result = await run
            await asyncio.sleep(0.2)
            after = await loop.run_in_executor(None, scrape, servers[0])
            receiver_after = await loop.run_in_executor(None, scrape, servers[1])
            return result, during, after, receiver_after

    result, during, after, receiver_after = run_async(main())
    sent_key = ("lpmbench_sent_bytes_total", (("peer", RECEIVER),))
    assert len(during) >= 5
    assert max(took for _, took in during) < 1.0, "every scrape during the run answers within a second"
    series = [samples.get(sent_key, 0.0) for samples, _ in during] + [after[0][sent_key]]
    assert series == sorted(series), f"sent bytes stepped back: {series}"
    growing = [v for v in series if 0 < v < series[-1]]
    assert growing, "a scrape during the run shows bytes moved so far"
    assert any(s.get(("lpmbench_runs_in_progress", (("role", "sender"),))) == 1 for s, _ in during)
    assert after[0][sent_key] == sum(s["sent_bytes"] for s in result["streams"])
    assert after[0][("lpmbench_runs_in_progress", (("role", "sender"),))] == 0
    assert receiver_after[0][("lpmbench_received_bytes_total", (("peer", SENDER),))] == result["bytes"]


def test_summary_fields_the_orchestrator_may_send_become_gauges_and_bad_ones_are_ignored():
    clock = iter(range(1000, 2000)).__next__
    state = MetricsState(clock=lambda: float(clock()))
    finished = {"run_id": "r1", "role": "sender", "peer": "10.0.0.2",
                "data": {"streams": [{"id": 0, "bytes": 1000, "tcp": {"total_retrans": 1, "segs_out": 10,
                                                                       "rtt_us": 500, "pmtu": 9000}}]}}
    state("run_finished", finished)
    summary = {"verdict": "fail", "goodput_bps": 8000.0, "retransmit_rate": 0.1, "rtt_ms": 2.0, "partial": False,
               "path_mtu": 1500, "efficiency": 0.5,
               "lpm": [{"name": "db1", "converges": False, "fits_window": False, "predicted_seconds": None},
                       {"name": "web", "converges": True, "fits_window": True, "predicted_seconds": 42.0},
                       {"converges": True}, "junk", {"name": "db1", "converges": True}]}
    state("run_summary", {"run_id": "r1", "role": "sender", "peer": "10.0.0.2", "summary": summary})
    state("run_summary", {"run_id": "old", "role": "sender", "peer": "10.0.0.2", "summary": {"verdict": "pass"}})
    registry = build_registry(state, {"version": "x"}, process=False)
    labels = {"peer": "10.0.0.2", "role": "sender"}
    value = registry.get_sample_value
    assert value("lpmbench_last_run_verdict", {**labels, "verdict": "fail"}) == 1, "a stale summary changes nothing"
    assert value("lpmbench_last_run_path_mtu_bytes", labels) == 1500, "the probed path MTU beats TCP_INFO's"
    assert value("lpmbench_last_run_efficiency_ratio", labels) == 0.5
    assert value("lpmbench_last_run_goodput_bytes_per_second", labels) == 1000
    assert value("lpmbench_last_run_rtt_seconds", labels) == 0.002
    assert value("lpmbench_last_run_lpm_converges", {**labels, "lpar": "db1"}) == 0
    assert value("lpmbench_last_run_lpm_fits_window", {**labels, "lpar": "db1"}) == 0
    assert value("lpmbench_last_run_lpm_predicted_migration_seconds", {**labels, "lpar": "db1"}) is None
    assert value("lpmbench_last_run_lpm_predicted_migration_seconds", {**labels, "lpar": "web"}) == 42
    assert value("lpmbench_retransmits_total", {"peer": "10.0.0.2"}) == 1
    assert value("lpmbench_build_info", {"version": "x", "dataplane": "unknown", "event_loop": "unknown"}) == 1


def test_peers_are_capped_and_the_oldest_is_dropped():
    state = MetricsState(max_peers=3)
    for n in range(5):
        state("run_finished", {"run_id": f"r{n}", "role": "receiver", "peer": f"10.0.0.{n}",
                               "data": {"streams": [{"id": 0, "bytes": 100 + n}], "elapsed_s": 1.0}})
    state("run_finished", {"run_id": "again", "role": "receiver", "peer": "10.0.0.2",
                           "data": {"streams": [{"id": 0, "bytes": 1}], "elapsed_s": 1.0}})
    state("run_finished", {"run_id": "new", "role": "receiver", "peer": "10.0.0.9",
                           "data": {"streams": [{"id": 0, "bytes": 1}], "elapsed_s": 1.0}})
    registry = build_registry(state, {}, process=False)
    kept = {s.labels["peer"] for family in registry.collect() if family.name == "lpmbench_received_bytes"
            for s in family.samples}
    assert kept == {"10.0.0.2", "10.0.0.4", "10.0.0.9"}, "the peer seen longest ago goes first"
    assert registry.get_sample_value("lpmbench_dropped_peers_total") == 3
    assert registry.get_sample_value("lpmbench_received_bytes_total", {"peer": "10.0.0.2"}) == 103
    assert registry.get_sample_value("lpmbench_runs_total", {"role": "receiver", "outcome": "ok"}) == 7


def test_a_run_that_vanished_without_a_report_counts_as_an_error(run_async):
    async def main():
        state = MetricsState()
        spec = runs.RunSpec("lost", "0" * 32, 1, 1.0, 0.5)
        run = runs.SenderRun(spec, lambda kind, fields: asyncio.sleep(0), {}, "127.0.0.2", 9)
        state("run_started", {"run_id": "lost", "role": "sender", "run": run})
        alive = {"lost": ("test", run)}
        registry = build_registry(state, {}, runs=alive, process=False)
        before = registry.get_sample_value("lpmbench_runs_in_progress", {"role": "sender"})
        alive.clear()  # the agent dropped the run without a "run_finished" event
        after = registry.get_sample_value("lpmbench_runs_in_progress", {"role": "sender"})
        return before, after, registry.get_sample_value("lpmbench_runs_total", {"role": "sender", "outcome": "error"})

    assert run_async(main()) == (1, 0, 1)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def start_agent_process(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "lpmbench", "agent", "--insecure", "--bind", "127.0.0.1",
                             "--port", "0", "--data-ports", "0-0", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)


def test_agent_command_serves_metrics_on_metrics_port():
    port = free_port()
    proc = start_agent_process("--metrics-port", str(port), "--metrics-bind", "127.0.0.1")
    try:
        assert proc.stdout is not None and proc.stdout.readline().startswith("lpmbench agent ready on ")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            text = response.read().decode()
        assert "lpmbench_build_info{" in text and 'lpmbench_runs_total{outcome="ok",role="sender"} 0.0' in text
        assert "process_cpu_seconds_total" in text
    finally:
        proc.terminate()
        proc.communicate(timeout=10)
    assert proc.returncode == 0


def test_agent_command_names_a_taken_metrics_port_and_metrics_port_0_turns_it_off():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        proc = start_agent_process("--metrics-port", str(port))
        _, err = proc.communicate(timeout=20)
        assert proc.returncode == 2
        assert f"cannot serve /metrics on 127.0.0.1:{port}" in err and "--metrics-port 0" in err
        off = start_agent_process("--metrics-port", "0")
        try:
            assert off.stdout is not None and off.stdout.readline().startswith("lpmbench agent ready on ")
        finally:
            off.terminate()
            _, off_err = off.communicate(timeout=10)
    assert "metrics on" not in off_err and off.returncode == 0


# What a VIOS without psutil runs: the real collector and /metrics server, psutil made unimportable
# (None in sys.modules makes `import psutil` raise ImportError). Printed back as JSON for the test to judge.
SCRAPE_SCRIPT = r"""
import json, logging, sys, urllib.request
if sys.argv[1] == "without":
    sys.modules["psutil"] = None
logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
from lpmbench.metrics.collector import MetricsServer, MetricsState, NicWatcher, build_registry

state = MetricsState()
state.expect_scheduled(["127.0.0.2"])
state("run_finished", {"run_id": "r1", "role": "receiver", "peer": "127.0.0.2",
                       "data": {"streams": [{"id": 0, "bytes": 100}], "elapsed_s": 1.0}})
registry = build_registry(state, {"version": "t", "dataplane": "python", "event_loop": "asyncio"}, {},
                          NicWatcher("127.0.0.1"))
server = MetricsServer(registry, "127.0.0.1", 0)
server.start()
try:
    texts = [urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=5).read().decode()
             for _ in range(2)]
finally:
    server.stop()
print(json.dumps({"texts": texts, "psutil": sys.modules.get("psutil") is not None}))
"""


@pytest.mark.parametrize("psutil_state", ["without", "with"])
def test_metrics_serve_without_psutil_and_say_once_what_is_missing(psutil_state):
    """Without psutil the NIC families are empty and the log says why, once; the rest is served as with it."""
    proc = subprocess.run([sys.executable, "-c", SCRAPE_SCRIPT, psutil_state], capture_output=True, text=True,
                          timeout=60, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["psutil"] is (psutil_state == "with")
    for text in report["texts"]:
        samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
                   for family in text_string_to_metric_families(text) for s in family.samples}
        assert samples[("lpmbench_received_bytes_total", (("peer", "127.0.0.2"),))] == 100
        assert samples[("lpmbench_runs_total", (("outcome", "ok"), ("role", "receiver")))] == 1
        assert samples[("lpmbench_build_info", (("dataplane", "python"), ("event_loop", "asyncio"),
                                                ("version", "t")))] == 1
        routes = {labels for name, labels in samples if name == "lpmbench_peer_interface_info"}
        mtus = {labels for name, labels in samples if name == "lpmbench_nic_mtu_bytes"}
        if psutil_state == "with":
            assert routes == {(("interface", "lo"), ("peer", "127.0.0.2"))} and mtus == {(("interface", "lo"),)}
        else:
            assert routes == set() and mtus == set(), "no NIC facts are invented without psutil"
    assert "Traceback" not in proc.stderr
    assert proc.stderr.count(NO_PSUTIL_NOTE) == (1 if psutil_state == "without" else 0), proc.stderr
