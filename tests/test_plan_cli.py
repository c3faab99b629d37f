"""`lpmbench plan` and `pair --lpar/--window`: good and bad input, exit codes, the lpm section."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_runner import cli_runner

from lpmbench.analysis import lpm, results
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


# --- plan --evacuate --------------------------------------------------------------------------------------

HMC = Path(__file__).parent / "fixtures" / "hmc"
FRAME = ["--partitions", str(HMC / "lshwres-mem-lpar.txt"), "--states", str(HMC / "lssyscfg-lpar.txt")]
README_EXAMPLE = ["plan", "--evacuate", *FRAME, "--from-run", str(HMC / "run-10gbit.json"),
                  "--dirty", "DB2 PROD 01=250MiB/s", "--window", "30m"]


def evacuate_json(*args: str):
    result = runner.invoke(app, ["plan", "--evacuate", *args, "--json"])
    return result.exit_code, (json.loads(result.stdout) if result.stdout.startswith("{") else None), result


def test_readme_example_never_empties_because_the_database_cannot_converge_while_sharing():
    result = runner.invoke(app, [*README_EXAMPLE, "--json"])
    assert result.exit_code == 1
    doc = json.loads(result.stdout)  # one JSON document on stdout, nothing else
    assert doc["mode"] == "evacuate" and doc["fits_window"] is False and doc["finishes"] is False
    rows = {r["name"]: r for r in doc["plan"]["partitions"]}
    assert len(rows) == 20 and doc["inputs"]["vios_left_out"] == ["vios-a1", "vios-a2"]
    assert [n for n, r in rows.items() if r["kind"] == "inactive"] == ["test db", "dev-app-02", "archive"]
    assert rows["DB2 PROD 01"]["converges"] is False and rows["DB2 PROD 01"]["end_s"] is None
    assert doc["plan"]["slots"] == 8 and doc["plan"]["share_bps"] == 9.41e9 / 8
    assert doc["bottleneck"]["kind"] == "convergence"
    assert doc["assumptions"]["rtt_s"] == pytest.approx(0.0002)
    assert doc["inputs"]["dirty_rate_from"]["DB2 PROD 01"] == "--dirty"
    assert doc["inputs"]["dirty_rate_from"]["nim"] == "default"
    # The README's hand check: DB2 PROD 01 alone, then the other 16 running partitions 8 at a time.
    alone = lpm.predict(384 * 2**30, 9.41e9, 250 * 2**20, 0.0002)
    assert (alone.passes, round(alone.precopy_seconds, 2), round(alone.seconds, 2)) == (6, 451.0, 454.34)
    advice = {s["what"]: s for s in doc["suggestions"]}
    first = advice["move DB2 PROD 01 alone first, then the rest"]
    assert first["fits_window"] is True and first["total_seconds"] == pytest.approx(454.34 + 1086.57, abs=0.01)


def test_readme_example_in_the_terminal_names_the_bottleneck_and_the_fixes():
    result = runner.invoke(app, README_EXAMPLE, env={"COLUMNS": "130"})
    assert result.exit_code == 1
    out = result.stdout
    assert "web, frontend" in out and "config only" in out
    assert "Total: never for a window of 30m 00s: does NOT fit" in out
    assert "Bottleneck (convergence): DB2 PROD 01 dirties 2.10 Gbit/s of memory" in out
    assert "move DB2 PROD 01 alone first, then the rest: 25m 41s (fits)" in out
    assert "VIOS stay on the frame: vios-a1, vios-a2" in out


def test_a_frame_that_fits_exits_0():
    code, doc, _ = evacuate_json(*FRAME, "--bandwidth", "10Gbit,10Gbit", "--window", "1h")
    assert code == 0 and doc["fits_window"] is True and doc["plan"]["slots"] == 16
    assert [p["name"] for p in doc["pairs"]] == ["pair 1", "pair 2"]


def test_one_partition_is_what_plan_says(tmp_path):
    one = tmp_path / "one.csv"
    one.write_text("name,memory,dirty_rate\ndb01,256GiB,600MiB/s\n")
    _, single = plan_json("--memory", "256GiB", "--bandwidth", "10Gbit", "--dirty-rate", "600MiB/s")
    code, doc, _ = evacuate_json("--partitions", str(one), "--bandwidth", "10Gbit")
    assert code == 0 and doc["plan"]["total_seconds"] == single["seconds"]
    assert doc["plan"]["partitions"][0]["passes"] == single["passes"]


def test_without_states_a_partition_with_no_memory_is_taken_as_not_running():
    code, doc, _ = evacuate_json("--partitions", str(HMC / "lshwres-mem-lpar-header.txt"), "--bandwidth", "10Gbit")
    kinds = {r["name"]: r["kind"] for r in doc["plan"]["partitions"]}
    assert code == 0 and kinds == {"DB2 PROD 01": "active", "web, frontend": "active", "test db": "inactive"}


def test_global_and_per_partition_dirty_rates():
    csv_file = str(HMC / "partitions.csv")
    _, doc, _ = evacuate_json("--partitions", csv_file, "--bandwidth", "10Gbit", "--dirty-rate", "1MiB/s",
                              "--dirty", "sap-app-01=2MiB/s")
    rates = {r["name"]: r["dirty_rate_Bps"] for r in doc["plan"]["partitions"]}
    assert rates == {"DB2 PROD 01": 250 * 2**20, "sap-app-01": 2 * 2**20, "web, frontend": 2**20, "test db": 2**20}
    assert doc["inputs"]["dirty_rate_from"] == {"DB2 PROD 01": "file", "sap-app-01": "--dirty",
                                                "web, frontend": "default", "test db": "default"}
    assert doc["inputs"]["dirty_rate_default_is_assumption"] is False


def test_redundant_run_gives_separate_pairs(tmp_path):
    saved = tmp_path / "redundant.json"
    saved.write_text(json.dumps({"goodput_bps": 9.4e9, "aggregate_goodput_bps": 18.8e9, "streams": [], "pairs": [
        {"sender": "a1", "receiver": "b1", "goodput_bps": 9.4e9}, {"sender": "a2", "receiver": "b2",
                                                                     "goodput_bps": 9.4e9}]}))
    code, doc, _ = evacuate_json(*FRAME, "--from-run", str(saved))
    assert [(p["name"], p["bandwidth_bps"]) for p in doc["pairs"]] == [("a1->b1", 9.4e9), ("a2->b2", 9.4e9)]
    assert doc["plan"]["slots"] == 16
    _, single = plan_json("--memory", "1GiB", "--from-run", str(saved))
    assert single["bandwidth_bps"] == 18.8e9  # plan for one partition still adds redundant pairs up


def test_from_mesh_takes_the_cells_between_the_frames_msps():
    code, doc, _ = evacuate_json(*FRAME, "--from-mesh", str(HMC / "mesh.json"), "--source-msps", "vios-a1,vios-a2",
                                 "--target-msps", "vios-b1, vios-b2")
    assert [(p["name"], p["bandwidth_bps"]) for p in doc["pairs"]] == [
        ("vios-a1->vios-b1", 9.41e9), ("vios-a2->vios-b2", 9.39e9)]
    assert doc["assumptions"]["rtt_s"] == pytest.approx(0.00025)  # the mean of the two cells' RTTs


def test_html_timeline_escapes_names(tmp_path):
    hostile = tmp_path / "hostile.csv"
    hostile.write_text('name,memory\n"<img src=x onerror=alert(1)>",4GiB\n')
    page = tmp_path / "timeline.html"
    result = runner.invoke(app, ["plan", "--evacuate", "--partitions", str(hostile), "--bandwidth", "10Gbit",
                                 "--json", "--html", str(page)])
    assert result.exit_code == 0 and json.loads(result.stdout)["finishes"] is True
    assert "<img" not in page.read_text() and "&lt;img src=x onerror=alert(1)&gt;" in page.read_text()


@pytest.mark.parametrize("text,needle", [
    ("a,1024\na,2048\n", "line 2: partition 'a' is listed twice"),
    ("a,4GiB\n", "line 1: curr_mem '4GiB' of 'a' is not a whole number of MB"),
    ("name,memory\na,4 parsecs\n", "line 2: memory of 'a': unknown size unit 'parsecs'"),
    ("web, frontend,1024\n", "line 1: expected 2 fields"),
    ("a,99999999999\n", "line 1: partition 'a' has 95367 TiB, more than any Power server holds"),
])
def test_bad_partition_files_exit_2_naming_the_line(tmp_path, text, needle):
    bad = tmp_path / "frame.txt"
    bad.write_text(text)
    result = runner.invoke(app, ["plan", "--evacuate", "--partitions", str(bad), "--bandwidth", "10Gbit"])
    assert result.exit_code == 2, result.output
    assert needle in result.output and result.stdout == ""


@pytest.mark.parametrize("args,needle", [
    (["--window", "30"], "did you mean 30m?"),
    (["--window", "1.5"], "did you mean 1.5m?"),
    (["--window", "0s"], "--window must be longer than 0 s"),
    ([], "give one of --bandwidth"),
    (["--bandwidth", "10Gbit", "--from-run", "x.json"], "give one of --bandwidth"),
    (["--bandwidth", "10Gbit,0Gbit"], "1 to 8 rates above 0"),
    (["--bandwidth", "10Gb"], "--bandwidth"),
    (["--from-run", "/nonexistent.json"], "cannot read"),
    (["--from-mesh", "MESH"], "needs --source-msps"),
    (["--from-mesh", "MESH", "--source-msps", "vios-a1", "--target-msps", "vios-b1,vios-b2"], "as many of each"),
    (["--from-mesh", "MESH", "--source-msps", "vios-a1", "--target-msps", "vios-b9"],
     "has no run from vios-a1 to vios-b9"),
    (["--from-mesh", "MESH", "--source-msps", "vios-b1", "--target-msps", "vios-a1"],
     "measured no goodput (vios-a1: connection refused)"),
    (["--bandwidth", "10Gbit", "--dirty", "nobody=1MiB/s"], "no partition 'nobody'"),
    (["--bandwidth", "10Gbit", "--dirty", "nim"], "expected NAME=RATE"),
    (["--bandwidth", "10Gbit", "--dirty", "nim=lots"], "--dirty"),
    (["--bandwidth", "10Gbit", "--dirty-rate", "5Mb/s"], "ambiguous"),
    (["--bandwidth", "10Gbit", "--per-migration-max", "0Gbit"], "--per-migration-max must be more than 0"),
    (["--bandwidth", "10Gbit", "--memory", "1GiB"], "--memory is for one partition"),
])
def test_bad_evacuation_options_exit_2(args, needle):
    args = [str(HMC / "mesh.json") if a == "MESH" else a for a in args]
    result = runner.invoke(app, ["plan", "--evacuate", *FRAME, *args])
    assert result.exit_code == 2, result.output
    assert needle in result.output


@pytest.mark.parametrize("args,needle", [
    (["--evacuate", "--bandwidth", "10Gbit"], "--evacuate needs --partitions FILE"),
    (["--partitions", "x.txt", "--memory", "1GiB", "--bandwidth", "1Gbit"], "belong to --evacuate"),
    (["--bandwidth", "1Gbit"], "give --memory"),
    (["--memory", "1GiB", "--bandwidth", "1Gbit", "--window", "600"], "did you mean 600m?"),
    (["--evacuate", "--partitions", "/nonexistent", "--bandwidth", "1Gbit"], "cannot read /nonexistent"),
    (["--memory", "1GiB", "--bandwidth", "1Gbit", "--source-msps", "a1"], "belong to --evacuate"),
])
def test_plan_modes_do_not_mix(args, needle):
    result = runner.invoke(app, ["plan", *args])
    assert result.exit_code == 2, result.output
    assert needle in result.output


def test_a_redundant_run_with_a_dead_pair_is_refused(tmp_path):
    saved = tmp_path / "redundant.json"
    saved.write_text(json.dumps({"goodput_bps": 9.4e9, "pairs": [{"goodput_bps": 9.4e9}, {"goodput_bps": 0}]}))
    result = runner.invoke(app, ["plan", "--evacuate", *FRAME, "--from-run", str(saved)])
    assert result.exit_code == 2 and "measured no goodput" in result.output


def test_sooner_order_and_concurrency_cap_in_the_terminal(tmp_path):
    lanes = tmp_path / "lanes.csv"
    lanes.write_text("name,memory,dirty_rate\nsmall1,1GiB,0B/s\nsmall2,1GiB,0B/s\nbig,10GiB,0B/s\n")
    result = runner.invoke(app, ["plan", "--evacuate", "--partitions", str(lanes), "--bandwidth", "10Gbit",
                                 "--max-concurrent", "2", "--per-migration-max", "4Gbit"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    # Two lanes of 4 Gbit/s: in the order listed the big one starts after a small one, first it ends 2.1 s sooner.
    assert "Total: 23.6 s" in result.stdout
    assert "Sooner in another order (longest pre-copy first): 21.5 s: big, small1, small2" in result.stdout
    assert "Bottleneck (concurrency): at most 2 migrate at once, each at most 4.00 Gbit/s: they use 8.00 of " \
           "10.00 Gbit/s" in result.stdout
    assert "at most 2 per system (--max-concurrent)" in result.stdout


def test_eight_pairs_plan_without_suggesting_a_ninth_and_nine_are_refused_with_exit_2():
    eight = ",".join(["10Gbit"] * 8)
    result = runner.invoke(app, ["plan", "--evacuate", *FRAME, "--bandwidth", eight, "--json"])
    assert result.exit_code in (0, 1), result.output  # a plan, fitting or not: never a crash
    doc = json.loads(result.stdout)
    assert not any("add an MSP pair" in s["what"] for s in doc.get("suggestions", [])), doc.get("suggestions")
    nine = ",".join(["10Gbit"] * 9)
    refused = runner.invoke(app, ["plan", "--evacuate", *FRAME, "--bandwidth", nine])
    assert refused.exit_code == 2 and "one per MSP pair" in refused.output, refused.output
