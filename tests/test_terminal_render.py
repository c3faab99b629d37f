"""The terminal view (render/terminal.py): the headline first, readable at 80 columns with no value split across
lines, the TCP details at 200, and every MSP pair of a --redundant run."""

from __future__ import annotations

import copy
import io
import json
import os
import pathlib
import subprocess
import sys

import pytest
from rich.console import Console

from lpmbench.analysis.units import format_bytes, format_rate_bps
from lpmbench.cli.report import for_terminal
from lpmbench.net import keys
from lpmbench.orchestrator.local import local_agents
from lpmbench.render.terminal import render_terminal

FIXTURES = pathlib.Path(__file__).parent / "fixtures" / "results"
RESULTS = ("local-10s-lpars.json", "edited-jumbo-blackhole.json", "local-8-streams.json")


def load(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


def render(result: dict, width: int) -> list[str]:
    console = Console(file=io.StringIO(), width=width, color_system=None)
    render_terminal(for_terminal(result), console)
    return console.file.getvalue().splitlines()


def stream_line(lines: list[str], stream: dict) -> str:
    """The one line that shows this stream: its id first, then its values."""
    values = [format_bytes(stream["bytes"]), format_rate_bps(stream["goodput_bps"]), str(stream["segments_out"]),
              str(stream["mss"])]
    rows = [line for line in lines if line.split()[:1] == [str(stream["id"])] and all(v in line for v in values)]
    assert len(rows) == 1, (stream["id"], values, lines)
    return rows[0]


@pytest.mark.parametrize("name", RESULTS)
@pytest.mark.parametrize("width", [80, 200])
def test_no_line_overflows_and_no_stream_value_is_split(name, width):
    result = load(name)
    lines = render(result, width)
    assert all(len(line.rstrip()) <= width for line in lines)
    for stream in result["streams"]:
        stream_line(lines, stream)
    total = next(line for line in lines if line.split()[:1] == ["total"])
    assert format_rate_bps(result["goodput_bps"]) in total and format_bytes(result["bytes"]) in total


def test_the_headline_comes_first_and_reads_as_sentences():
    lines = render(load("edited-jumbo-blackhole.json"), 80)
    assert lines[0].split()[:2] == ["Network", "FAIL"] and "1 problem and 2 warnings need action" in lines[0]
    assert lines[1].split()[:4] == ["LPM", "outlook", "NOT", "JUDGED"]
    assert lines[2].split()[:6] == ["1.", "FAIL", "Full-size", "frames", "are", "dropped"]
    text = " ".join(" ".join(line.split()) for line in lines)
    assert "Fix: Enable jumbo frames (MTU 9000 or more) on every switch port" in text
    assert text.index("1. FAIL") < text.index("2. WARN") < text.index("3. WARN") < text.index("stream received")
    assert lines[-1].startswith("Verdict: FAIL")


def test_a_healthy_run_passes_with_the_single_pair_as_a_note():
    lines = render(load("local-10s-lpars.json"), 80)
    assert lines[0].split()[:3] == ["Network", "PASS", "healthy:"]
    assert [line.split()[:3] for line in lines if line.startswith("LPM outlook")] == [["LPM", "outlook", "PASS"]]
    assert any(line.split()[:3] == ["-", "NOTE", "Only"] for line in lines)
    assert lines[-1].startswith("Verdict: PASS")


def test_wide_terminals_get_the_tcp_details_narrow_ones_do_not():
    result = load("local-10s-lpars.json")
    header = next(line for line in render(result, 200) if line.split()[:2] == ["stream", "received"])
    assert "window-limited" in header and "rttvar ms" in header
    narrow = next(line for line in render(result, 80) if line.split()[:2] == ["stream", "received"])
    assert "window-limited" not in narrow
    first = result["streams"][0]
    busy_share = f"{first['rwnd_limited_us'] / first['busy_us']:.0%}"
    assert busy_share in stream_line(render(result, 200), first)


def redundant(result: dict) -> dict:
    """A result as combine_pairs makes it for two pairs run at once (the second pair slower, with a warning)."""
    out = copy.deepcopy(result)
    second = {"sender": "msp-a2", "receiver": "msp-b2", "run_id": "r2", "goodput_bps": 9.1e9,
              "retransmit_rate": 0.002, "verdict": "warn", "partial": False, "error": None,
              "failed_checks": [{"name": "retransmit rate", "status": "warn", "detail": "0.200%", "remedy": "x"}]}
    first = {"sender": out["sender"]["host"], "receiver": out["receiver"]["host"], "run_id": out["run_id"],
             "goodput_bps": out["goodput_bps"], "retransmit_rate": out["retransmit_rate"], "verdict": "pass",
             "partial": False, "error": None, "failed_checks": []}
    out.update(pairs=[first, second], aggregate_goodput_bps=out["goodput_bps"] + 9.1e9)
    return out


@pytest.mark.parametrize("width", [80, 200])
def test_every_pair_of_a_redundant_run_is_shown_with_their_sum(width):
    result = redundant(load("local-10s-lpars.json"))
    lines = render(result, width)
    second = next(line for line in lines if line.startswith("msp-a2 -> msp-b2 "))
    assert format_rate_bps(9.1e9) in second and "0.200%" in second and "WARN" in second
    assert any(line.startswith("msp-a2 -> msp-b2: retransmit rate (warn)") for line in lines)
    together = next(line for line in lines if line.startswith("together"))
    assert format_rate_bps(result["aggregate_goodput_bps"]) in together


def test_pair_redundant_shows_the_second_pair_in_the_terminal(tmp_path):
    """The real command, as an admin runs it: four agents, two pairs at once, the terminal view (no --json)."""
    with local_agents(count=4) as (a, b, a2, b2, key):
        path = tmp_path / "key"
        keys.write_key(str(path), key.hex())
        proc = subprocess.run([sys.executable, "-m", "lpmbench", "pair", a.label, b.label, "--redundant", a2.label,
                               b2.label, "--key-file", str(path), "--duration", "0.5", "--streams", "2"],
                              capture_output=True, text=True, timeout=60, env={**os.environ, "COLUMNS": "80"})
    assert proc.returncode in (0, 1), proc.stderr
    lines = proc.stdout.splitlines()
    # Pairs are named by host, as the result names them (the agents differ by address here, not port).
    assert any(line.startswith(f"{a2.host} -> {b2.host} ") for line in lines), proc.stdout
    assert any(line.startswith(f"{a.host} -> {b.host} ") for line in lines)
    assert any(line.startswith("together") for line in lines)
    assert all(len(line.rstrip()) <= 80 for line in lines)
