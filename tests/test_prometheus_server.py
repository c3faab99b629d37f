"""The real Prometheus server (Debian package ``prometheus``) scrapes two agents after a pair run between them.

Prometheus listens on 127.0.0.1 on a free port, keeps its data in a temporary directory, scrapes every second
and is killed at the end. The checks go through its HTTP query API, as a dashboard or an alert would.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from typing import Any

import pytest

from lpmbench.agent.server import Agent, AgentConfig
from lpmbench.metrics.collector import MetricsServer, MetricsState, NicWatcher, build_registry
from lpmbench.net import eventloop
from lpmbench.orchestrator.pair import Endpoint, PairConfig, run_pair

PROMETHEUS = shutil.which("prometheus")
KEY = b"p" * 32
WAIT_S = 20.0

pytestmark = pytest.mark.skipif(PROMETHEUS is None, reason="the prometheus binary is not installed "
                                                           "(Debian package 'prometheus'; .ci/run installs it)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def query(port: int, promql: str) -> list[dict[str, Any]]:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(url, timeout=5) as response:
        body = json.load(response)
    assert body["status"] == "success", body
    return body["data"]["result"]


def wait_for(port: int, promql: str, expected: int, proc: subprocess.Popen) -> list[dict[str, Any]]:
    """Poll the query until it returns ``expected`` series, or fail with what Prometheus said last."""
    deadline = time.monotonic() + WAIT_S
    last: Any = None
    while time.monotonic() < deadline:
        assert proc.poll() is None, "prometheus exited early"
        try:
            last = query(port, promql)
            if len(last) == expected:
                return last
        except OSError as exc:  # not listening yet
            last = exc
        time.sleep(0.25)
    raise AssertionError(f"{promql!r} did not give {expected} series within {WAIT_S:g} s; last: {last}")


def start_prometheus(tmp_path: Any, targets: list[str]) -> tuple[subprocess.Popen, int]:
    config = tmp_path / "prometheus.yml"
    config.write_text(json.dumps({  # JSON is YAML
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [{"job_name": "lpmbench", "static_configs": [{"targets": targets}]}],
    }))
    port = free_port()
    log = open(tmp_path / "prometheus.log", "w")  # noqa: SIM115 - the process holds it until it is killed
    proc = subprocess.Popen([str(PROMETHEUS), f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'data'}",
                             f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    log.close()
    return proc, port


@pytest.mark.slow
def test_prometheus_scrapes_both_agents_after_a_pair_run(tmp_path):
    async def main() -> dict[str, Any]:
        agents, servers, prometheus = [], [], None
        try:
            for address in ("127.0.0.1", "127.0.0.2"):
                state = MetricsState()
                agent = Agent(AgentConfig(bind=address, port=0, key=KEY, data_ports=(0, 0)), listeners=[state])
                await agent.start()
                agents.append(agent)
                server = MetricsServer(build_registry(state, agent.facts(), agent.runs, NicWatcher(address)),
                                       address, 0)
                server.start()
                servers.append(server)
            targets = [f"{s.host}:{s.port}" for s in servers]
            # Started before the run: Prometheus applies new targets only every 5 s, let that overlap the run.
            prometheus = start_prometheus(tmp_path, targets)
            result = await run_pair(PairConfig(sender=Endpoint("127.0.0.1", agents[0].port),
                                               receiver=Endpoint("127.0.0.2", agents[1].port), key=KEY,
                                               streams=2, duration=0.5, interval=0.25))
            await asyncio.sleep(0.2)  # the orchestrator's summary
            loop = asyncio.get_running_loop()
            scraped = await loop.run_in_executor(None, ask_prometheus, tmp_path, *prometheus)
            return {"result": result, "targets": targets, **scraped}
        finally:
            if prometheus is not None:
                prometheus[0].kill()
                prometheus[0].wait(10)
            for server in servers:
                server.stop()
            for agent in agents:
                await agent.close()

    seen = eventloop.run(main(), "asyncio")
    sender_target, receiver_target = seen["targets"]
    assert {s["metric"]["instance"]: s["value"][1] for s in seen["up"]} == {sender_target: "1", receiver_target: "1"}
    sent = {s["metric"]["instance"]: float(s["value"][1]) for s in seen["sent"]}
    received = {s["metric"]["instance"]: float(s["value"][1]) for s in seen["received"]}
    assert sent == {sender_target: sum(st["sent_bytes"] for st in seen["result"]["streams"])}
    assert received == {receiver_target: float(seen["result"]["bytes"])}
    assert sent[sender_target] > 0 and received[receiver_target] > 0
    assert {s["metric"]["instance"] for s in seen["verdict"]} == {sender_target, receiver_target}


def ask_prometheus(tmp_path: Any, proc: subprocess.Popen, port: int) -> dict[str, Any]:
    try:
        return {"up": wait_for(port, 'up{job="lpmbench"} == 1', 2, proc),
                "sent": wait_for(port, "lpmbench_sent_bytes_total > 0", 1, proc),
                "received": wait_for(port, "lpmbench_received_bytes_total > 0", 1, proc),
                "verdict": wait_for(port, "lpmbench_last_run_verdict == 1", 2, proc)}
    except AssertionError:
        print((tmp_path / "prometheus.log").read_text()[-3000:])  # shown by pytest with the failure
        raise
