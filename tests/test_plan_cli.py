"""`lpmbench plan` and `pair --lpar/--window`: good and bad input, exit codes, the lpm section."""

from __future__ import annotations

import json

import pytest
from cli_runner import cli_runner

from lpmbench.analysis import results
from lpmbench.cli import app

runner = cli_runner()


def plan_json(*args: str):
    result = runner.invoke(app, ["plan", *args, "--json"])
    return result.exit_code, (json.loads(result.stdout) if result.stdout.strip().startswith("{") else None)


def test_plan_converging_migration_fits_window():
    code, doc = plan_json("--memory", "256GiB", "--bandwidth", "10Gbit", "--dirty-rate", "600MiB/s",
                          "--window", "30m")
    assert code == 0
    assert doc["converges"] is True and doc["fits_window"] is True
    assert 0 < doc["seconds"] < 1800 and doc["required_bps"] < 10e9


def test_plan_ibm_rule_of_thumb_1gbe():
    code, doc = plan_json("--memory", "256GB", "--bandwidth", "80MB/s".replace("MB/s", "MB/s"))
    assert code == 0 and doc["seconds"] >= 53 * 60


def test_plan_stalls_when_dirty_rate_exceeds_bandwidth():
    code, doc = plan_json("--memory", "256GiB", "--bandwidth", "1Gbit", "--dirty-rate", "600MiB/s")
    assert code == 1 and doc["converges"] is False and doc["seconds"] is None


def test_plan_misses_window_exit_1_and_names_required_bandwidth():
    result = runner.invoke(app, ["plan", "--memory", "4TiB", "--bandwidth", "10Gbit", "--window", "10m"])
    assert result.exit_code == 1
    assert "bandwidth the window needs" in result.stdout


def test_plan_from_saved_run(tmp_path):
    saved = tmp_path / "run.json"
    saved.write_text(json.dumps({"goodput_bps": 9.4e9, "streams": [{"rtt_ms": 0.2}, {"rtt_ms": 0.4}]}))
    code, doc = plan_json("--memory", "64GiB", "--from-run", str(saved))
    assert code == 0 and doc["bandwidth_bps"] == 9.4e9 and doc["rtt_s"] == pytest.approx(0.0003)


@pytest.mark.parametrize("args,needle", [
    (["--memory", "256Gb", "--bandwidth", "10Gbit"], "--memory"),
    (["--memory", "-5GiB", "--bandwidth", "10Gbit"], "--memory"),
    (["--memory", "256GiB", "--bandwidth", "10Gb"], "--bandwidth"),
    (["--memory", "256GiB", "--bandwidth", "10"], "--bandwidth"),
    (["--memory", "256GiB", "--bandwidth", "10Gbit", "--dirty-rate", "lots"], "--dirty-rate"),
    (["--memory", "256GiB", "--bandwidth", "10Gbit", "--window", "soon"], "--window"),
    (["--memory", "256GiB"], "--bandwidth"),
    (["--memory", "256GiB", "--from-run", "/nonexistent.json"], "cannot read"),
])
def test_plan_bad_input_exits_2_saying_what_is_accepted(args, needle):
    result = runner.invoke(app, ["plan", *args])
    assert result.exit_code == 2, result.output
    assert needle in result.output


def test_plan_from_run_that_is_not_a_result(tmp_path):
    bad = tmp_path / "x.json"
    bad.write_text("[1, 2]")
    result = runner.invoke(app, ["plan", "--memory", "1GiB", "--from-run", str(bad)])
    assert result.exit_code == 2 and "not an lpmbench" in result.output


@pytest.mark.parametrize("args,needle", [
    (["--lpar", "db01"], "--lpar"),
    (["--lpar", "db01:lots"], "--lpar"),
    (["--lpar", "db01:1GiB", "--window", "never"], "--window"),
    (["--window", "30m"], "--lpar"),
    (["--rate", "fast"], "--rate"),
])
def test_pair_bad_lpm_options_exit_2(args, needle):
    result = runner.invoke(app, ["pair", "--local", *args])
    assert result.exit_code == 2, result.output
    assert needle in result.output


def _result_with(goodput_bps, lpars, window_s=None):
    return {"goodput_bps": goodput_bps, "streams": [{"id": 0, "bytes": 1, "min_rtt_ms": 0.1}], "config": {
        "streams": 1, "duration_s": 1, "lpars": lpars, "window_s": window_s, "compression": 1.0},
        "retransmit_rate": 0.0, "retransmits": 0, "segments_out": 10, "partial": False, "error": None,
        "duration_s": 1.0, "data_port": {"reachable": True}}


def test_lpm_section_and_checks_from_measured_goodput():
    lpars = [{"name": "db01", "memory_bytes": 256 << 30, "dirty_rate_Bps": 600 << 20},
             {"name": "hot", "memory_bytes": 64 << 30, "dirty_rate_Bps": 2e9}]
    result = results.finalize(_result_with(10e9, lpars, window_s=1800))
    by_name = {p["name"]: p for p in result["lpm"]}
    assert by_name["db01"]["converges"] and by_name["db01"]["fits_window"]
    assert not by_name["hot"]["converges"]
    checks = {c["name"]: c for c in result["checks"]}
    assert checks["LPM partition db01"]["status"] == "pass"
    assert checks["LPM partition hot"]["status"] == "fail" and "stall" in checks["LPM partition hot"]["detail"]
    assert result["verdict"] == "fail"


def test_lpm_uses_aggregate_of_redundant_pairs():
    lpars = [{"name": "db01", "memory_bytes": 256 << 30, "dirty_rate_Bps": 1.5e9}]
    single = results.finalize(_result_with(10e9, lpars))
    doubled = results.finalize({**_result_with(10e9, lpars), "aggregate_goodput_bps": 20e9})
    assert not single["lpm"][0]["converges"] and doubled["lpm"][0]["converges"]


def test_no_lpars_is_unknown_not_pass():
    result = results.finalize(_result_with(10e9, []))
    check = next(c for c in result["checks"] if c["name"] == "LPM bandwidth for partitions")
    assert check["status"] == "unknown"
