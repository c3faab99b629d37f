"""``lpmbench report`` and ``lpmbench compare`` on results saved from real runs, and on bad input."""

from __future__ import annotations

import io
import json
import pathlib

import pytest
from cli_runner import cli_runner
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

from lpmbench.analysis.units import format_rate_bps
from lpmbench.cli import app
from lpmbench.cli.report import for_terminal
from lpmbench.render.terminal import render_terminal

FIXTURES = pathlib.Path(__file__).parent / "fixtures" / "results"
LOCAL, EIGHT, EDITED = (str(FIXTURES / n) for n in ("local.json", "local-8-streams.json",
                                                   "edited-jumbo-blackhole.json"))
runner = cli_runner()


def invoke(*args: str):
    return runner.invoke(app, list(args), env={"COLUMNS": "250"})  # rich wraps table cells at 80


def test_report_re_renders_the_terminal_view():
    saved = json.loads(pathlib.Path(EIGHT).read_text())
    result = invoke("report", EIGHT)
    assert result.exit_code == 0, result.output
    assert "Verdict: PASS" in result.stdout and format_rate_bps(saved["goodput_bps"]) in result.stdout
    assert saved["run_id"] in result.stdout and "retransmit rate" in result.stdout


def test_report_of_a_failing_result_shows_cause_and_remedy_and_exits_0():
    result = invoke("report", EDITED)
    assert result.exit_code == 0
    assert "Verdict: FAIL" in result.stdout
    assert "a switch drops jumbo frames" in result.stdout and "set MTU 1500 on both MSPs" in result.stdout


def test_report_shows_markup_like_text_literally(tmp_path):
    saved = json.loads(pathlib.Path(LOCAL).read_text())
    saved["checks"][0]["detail"] = "odd [/bold] text [link=http://127.0.0.1/]x[/link]"
    saved["sender"]["host"] = "[red]msp-a"
    del saved["streams"][0]["mss"], saved["run_id"], saved["bytes"]  # an older or partial result
    path = tmp_path / "odd.json"
    path.write_text(json.dumps(saved))
    result = invoke("report", str(path))
    assert result.exit_code == 0, result.output
    assert "odd [/bold] text [link=http://127.0.0.1/]x[/link]" in result.stdout
    assert "[red]msp-a ->" in result.stdout


def test_report_html_writes_a_page_with_charts(tmp_path):
    target = tmp_path / "report.html"
    result = invoke("report", EDITED, "--html", str(target))
    assert result.exit_code == 0, result.output
    page = target.read_text(encoding="utf-8")
    assert page.count("<svg") == 3 and "a switch drops jumbo frames" in page
    assert f"wrote {target}" in result.stderr


def test_compare_shows_metrics_and_checks_with_the_change():
    before, after = (json.loads(pathlib.Path(p).read_text()) for p in (LOCAL, EIGHT))
    result = invoke("compare", LOCAL, EIGHT)
    assert result.exit_code == 0, result.output
    change = (after["goodput_bps"] - before["goodput_bps"]) / before["goodput_bps"] * 100
    goodput_line = next(line for line in result.stdout.splitlines() if "goodput" in line)
    assert format_rate_bps(before["goodput_bps"]) in goodput_line
    assert format_rate_bps(after["goodput_bps"]) in goodput_line
    assert f"{change:+.1f} %" in goodput_line
    for label in ("retransmit rate", "path MTU", "efficiency", "run completed", "all streams moved data"):
        assert label in result.stdout
    assert "not measured" in result.stdout


def test_compare_html(tmp_path):
    target = tmp_path / "compare.html"
    result = invoke("compare", EDITED, LOCAL, "--html", str(target))
    assert result.exit_code == 0, result.output
    page = target.read_text(encoding="utf-8")
    assert 'aria-label="Goodput, all streams: before and after"' in page
    assert "<td>jumbo frames end to end</td><td>fail</td>" in page


def test_compare_says_first_when_runs_are_not_comparable():
    result = invoke("compare", LOCAL, EIGHT)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "These runs are not directly comparable:"
    assert lines[1].startswith(" - a different number of streams (4, then 8)")
    assert "started" not in result.stdout and "differs" not in result.stdout  # noise is not listed
    same = invoke("compare", LOCAL, LOCAL)
    assert "not directly comparable" not in same.stdout


def test_html_option_needs_no_extra():
    for command in ("report", "compare"):
        help_text = invoke(command, "--help").stdout
        assert "no extra needed" in help_text and "lpmbench[report]" not in help_text


def _write(tmp_path: pathlib.Path, name: str, content: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(content)
    return str(path)


@pytest.mark.parametrize("name,content,needle", [
    ("garbage.json", b"this is not json {", "not JSON"),
    ("latin1.json", b'{"verdict": "pass\xe9"}', "not JSON (not UTF-8 text)"),
    ("list.json", b"[1, 2, 3]", "not an lpmbench result (the top level is a JSON list"),
    ("other.json", b'{"name": "something else"}', "no 'verdict'"),
    ("deep.json", b"[" * 100_000 + b"]" * 100_000, "not an lpmbench result"),
])
def test_bad_files_give_one_line_and_exit_2(tmp_path, name, content, needle):
    path = _write(tmp_path, name, content)
    for args in (["report", path], ["compare", path, LOCAL], ["compare", LOCAL, path]):
        result = invoke(*args)
        assert result.exit_code == 2
        assert needle in result.stderr and path in result.stderr
        assert "Traceback" not in result.output and len(result.stderr.strip().splitlines()) == 1


def test_result_missing_a_required_key_is_refused(tmp_path):
    saved = json.loads(pathlib.Path(LOCAL).read_text())
    del saved["goodput_bps"]
    result = invoke("report", _write(tmp_path, "cut.json", json.dumps(saved).encode()))
    assert result.exit_code == 2 and "'goodput_bps' is missing or not a number" in result.stderr


def test_missing_file_and_directory(tmp_path):
    missing = invoke("report", str(tmp_path / "nope.json"))
    assert missing.exit_code == 2 and "no such file" in missing.stderr
    directory = invoke("compare", LOCAL, str(tmp_path))
    assert directory.exit_code == 2 and "cannot read it" in directory.stderr


def test_html_to_a_missing_directory_is_a_clear_error(tmp_path):
    result = invoke("report", LOCAL, "--html", str(tmp_path / "no-dir" / "r.html"))
    assert result.exit_code == 2 and "cannot write" in result.stderr and "Traceback" not in result.output


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8)
ODD_OBJECTS = st.dictionaries(st.sampled_from(["id", "name", "status", "detail", "remedy", "bytes", "rtt_ms", "mss",
                                               "host", "send_method", "cpu_percent", "retransmits"]), JSON_VALUES)


@settings(max_examples=60, deadline=None)
@given(checks=st.lists(ODD_OBJECTS | JSON_VALUES, max_size=3), streams=st.lists(ODD_OBJECTS | JSON_VALUES, max_size=3),
       sender=ODD_OBJECTS, top=st.dictionaries(st.sampled_from(["run_id", "dataplane", "bytes", "error"]), JSON_VALUES))
def test_terminal_view_of_any_result_shaped_json_never_crashes(checks, streams, sender, top):
    """Whatever a result that passed load_result holds inside, the terminal view renders."""
    result = {**json.loads(pathlib.Path(LOCAL).read_text()), **top, "checks": checks, "streams": streams,
              "sender": sender}
    console = Console(file=io.StringIO(), width=120)
    render_terminal(for_terminal(result), console)
    assert "Verdict: PASS" in console.file.getvalue()


def test_compare_at_80_columns_keeps_each_value_on_one_line():
    result = runner.invoke(app, ["compare", LOCAL, EIGHT], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert all(len(line.rstrip()) <= 80 for line in lines)
    pair = next(line for line in lines if line.startswith("MSP pair"))
    assert pair.split() == ["MSP", "pair", "127.0.0.1", "->", "127.0.0.2", "127.0.0.1", "->", "127.0.0.2", "same"]
    goodput = next(line for line in lines if line.startswith("goodput"))
    before, after = (json.loads(pathlib.Path(p).read_text())["goodput_bps"] for p in (LOCAL, EIGHT))
    assert format_rate_bps(before) in goodput and format_rate_bps(after) in goodput
