"""The shipped Prometheus rules, scrape example and Grafana dashboard, checked with promtool against what a
real agent exposes after a real run."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from prometheus_client import generate_latest

from lpmbench.agent.server import Agent, AgentConfig
from lpmbench.metrics.collector import MetricsState, NicWatcher, build_registry
from lpmbench.net import eventloop
from lpmbench.orchestrator.pair import Endpoint, PairConfig, run_pair

PROMTOOL = shutil.which("promtool")
DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
RULES = DEPLOY / "prometheus" / "rules.yml"
DASHBOARD = DEPLOY / "grafana" / "lpmbench-dashboard.json"
KEY = b"r" * 32
METRIC_NAME = re.compile(r"\b(?:[a-z_]+:)?lpmbench_[a-z_]+(?::[a-z0-9_]+)?")

needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool is not installed "
                                                             "(Debian package 'prometheus'; .ci/run installs it)")


def promtool(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    assert PROMTOOL is not None
    return subprocess.run([PROMTOOL, *args], input=stdin, capture_output=True, text=True, timeout=60,
                          cwd=DEPLOY / "prometheus")


@pytest.fixture(scope="module")
def exposition() -> str:
    """/metrics text of a sending agent after a real 2-stream run, with a partition assessment in its summary."""

    async def main() -> str:
        states = [MetricsState(), MetricsState()]
        agents = []
        try:
            for address, state in zip(("127.0.0.1", "127.0.0.2"), states):
                agent = Agent(AgentConfig(bind=address, port=0, key=KEY, data_ports=(0, 0)), listeners=[state])
                await agent.start()
                agents.append(agent)
            result = await run_pair(PairConfig(sender=Endpoint("127.0.0.1", agents[0].port),
                                               receiver=Endpoint("127.0.0.2", agents[1].port), key=KEY,
                                               streams=2, duration=0.5, interval=0.25))
            await asyncio.sleep(0.2)
            # What the orchestrator will add once partitions are assessed (lpm.assess_lpars keys).
            states[0]("run_summary", {"run_id": result["run_id"], "role": "sender", "peer": "127.0.0.2",
                                      "summary": {"lpm": [{"name": "db1", "converges": False, "fits_window": False,
                                                           "predicted_seconds": None}], "efficiency": 0.9}})
            states[0].record_scheduled("127.0.0.2", "ok")
            registry = build_registry(states[0], agents[0].facts(), agents[0].runs, NicWatcher("127.0.0.1"))
            return generate_latest(registry).decode()
        finally:
            for agent in agents:
                await agent.close()

    return eventloop.run(main(), "asyncio")


def exposed_names(text: str) -> set[str]:
    return set(re.findall(r"^# TYPE (\S+) ", text, re.MULTILINE))


def recorded_names() -> set[str]:
    return set(re.findall(r"^\s*- record: (\S+)", RULES.read_text(), re.MULTILINE))


@needs_promtool
def test_promtool_check_metrics_reports_nothing_on_the_exposition(exposition):
    assert 'lpmbench_last_run_lpm_converges{lpar="db1"' in exposition, "every family has samples"
    assert "lpmbench_nic_mtu_bytes{" in exposition and "lpmbench_last_run_verdict{" in exposition
    checked = promtool("check", "metrics", stdin=exposition)
    assert checked.returncode == 0 and checked.stdout == "" and checked.stderr == "", checked


@needs_promtool
def test_promtool_check_metrics_would_complain_about_a_badly_named_counter():
    """The check above can fail: promtool lints names, so a counter without _total is reported."""
    bad = "# HELP lpmbench_sent_bytes Bytes.\n# TYPE lpmbench_sent_bytes counter\nlpmbench_sent_bytes 1\n"
    checked = promtool("check", "metrics", stdin=bad)
    assert checked.returncode != 0 and "_total" in checked.stdout + checked.stderr


@needs_promtool
def test_rules_are_clean_under_promtool_check_rules():
    checked = promtool("check", "rules", str(RULES))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS" in checked.stdout and "WARNING" not in checked.stdout + checked.stderr


@needs_promtool
def test_rules_pass_their_promtool_unit_tests():
    tested = promtool("test", "rules", "rules_test.yml")
    assert tested.returncode == 0 and "SUCCESS" in tested.stdout, tested.stdout + tested.stderr


@needs_promtool
def test_scrape_config_example_is_valid_and_loads_the_rules():
    checked = promtool("check", "config", "prometheus.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "rules.yml" in checked.stdout


def test_rules_use_only_metrics_the_agent_exposes(exposition):
    known = exposed_names(exposition) | recorded_names()
    used = set(METRIC_NAME.findall(RULES.read_text()))
    assert {"lpmbench_last_run_verdict", "lpmbench_last_run_lpm_converges"} <= used
    assert used <= known, f"rules use metrics nobody exposes: {sorted(used - known)}"


def dashboard_expressions() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"]), "panel ids are unique"
    assert all(p["targets"] for p in panels), "every panel queries something"
    return [t["expr"] for p in panels for t in p["targets"]]


def test_dashboard_queries_only_metrics_the_agent_exposes(exposition):
    used = {name for expr in dashboard_expressions() for name in METRIC_NAME.findall(expr)}
    known = exposed_names(exposition) | recorded_names()
    assert {"lpmbench_last_run_goodput_bytes_per_second", "lpmbench_sent_bytes_total"} <= used
    assert used <= known, f"the dashboard queries metrics nobody exposes: {sorted(used - known)}"


@needs_promtool
def test_dashboard_queries_are_valid_promql(tmp_path):
    """Each panel query, with Grafana's variables filled in, must parse as PromQL (as a recording rule)."""
    exprs = [e.replace("$instance", ".*").replace("$__rate_interval", "5m") for e in dashboard_expressions()]
    rules = {"groups": [{"name": "dashboard", "rules": [{"record": f"dashboard:query_{i}", "expr": e}
                                                        for i, e in enumerate(exprs)]}]}
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(json.dumps(rules))  # JSON is YAML
    checked = promtool("check", "rules", str(path))
    assert checked.returncode == 0, checked.stdout + checked.stderr
