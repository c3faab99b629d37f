"""The command line through typer's CliRunner, and real agent processes started as a user would."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from cli_runner import cli_runner

from lpmbench.analysis.checks import overall
from lpmbench.cli import app
from lpmbench.net import keys
from lpmbench.orchestrator.local import local_agents

runner = cli_runner()


def test_keygen_prints_32_hex_bytes():
    result = runner.invoke(app, ["keygen"])
    assert result.exit_code == 0
    assert len(bytes.fromhex(result.stdout.strip())) == 32


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and "lpmbench" in result.stdout


def test_agent_without_key_or_insecure_refuses_to_start():
    result = runner.invoke(app, ["agent", "--port", "0"])
    assert result.exit_code == 2
    assert "--key-file" in result.output and "--insecure" in result.output


def test_agent_refuses_group_readable_key(tmp_path):
    path = tmp_path / "key"
    path.write_text(keys.generate_key())
    os.chmod(path, 0o640)
    result = runner.invoke(app, ["agent", "--key-file", str(path), "--port", "0"])
    assert result.exit_code == 2 and "chmod 600" in result.output


def test_agent_refuses_malformed_key(tmp_path):
    path = tmp_path / "key"
    path.write_text("not hex at all")
    os.chmod(path, 0o600)
    result = runner.invoke(app, ["agent", "--key-file", str(path), "--port", "0"])
    assert result.exit_code == 2 and "hex" in result.output


def test_agent_bad_port_range(key_file):
    result = runner.invoke(app, ["agent", "--key-file", key_file, "--data-ports", "9-1"])
    assert result.exit_code == 2 and "port range" in result.output


@pytest.mark.parametrize("args,needle", [
    (["pair"], "--local"),
    (["pair", "a"], "both agents"),
    (["pair", "--local", "a", "b"], "not both"),
    (["pair", "a", "b", "--streams", "0"], "streams"),
    (["pair", "a", "b", "--duration", "abc"], "duration"),
    (["pair", "a", "b", "--duration", "1", "--interval", "2"], "interval"),
    (["pair", "[::1", "b"], "IPv6"),
    (["pair", "a:99999", "b"], "port"),
    (["pair", "a", "b", "--key-file", "/nonexistent/key"], "cannot read key file"),
    (["pair", "a", "b"], "no key"),
])
def test_pair_usage_errors_exit_2(args, needle):
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert needle in result.output


def test_pair_unreachable_agent_exits_2_naming_host(key_file):
    result = runner.invoke(app, ["pair", "127.0.0.1:1", "127.0.0.2:1", "--key-file", key_file])
    assert result.exit_code == 2
    assert "127.0.0.1:1" in result.output or "127.0.0.2:1" in result.output


def test_pair_local_json_is_one_document_on_stdout():
    proc = subprocess.run([sys.executable, "-m", "lpmbench", "pair", "--local", "--json", "--duration", "1",
                           "--interval", "0.5"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    # One MSP pair is a note (INFO), not a warning: the verdict is the worst of the other checks.
    assert result["verdict"] == overall([c for c in result["checks"] if c["name"] != "redundant MSP pair"])
    assert {c["name"]: c["status"] for c in result["checks"]}["redundant MSP pair"] == "info"
    assert list(result)[list(result).index("verdict") + 1] == "headline"
    assert {"verdict", "checks", "goodput_bps", "duration_s", "streams", "intervals", "sender", "receiver",
            "dataplane", "partial", "error"} <= set(result)
    assert len(result["streams"]) == 4 and all(s["bytes"] > 0 for s in result["streams"])
    for stream in result["streams"]:
        assert {"id", "bytes", "goodput_bps", "retransmits", "segments_out", "rtt_ms", "mss"} <= set(stream)
    for side in ("sender", "receiver"):
        assert {"host", "os", "cpu_percent", "dataplane"} <= set(result[side])
    assert all({"name", "status", "detail", "remedy"} <= set(c) for c in result["checks"])


def test_hand_started_agents_pair_with_key_and_refuse_wrong_key(tmp_path):
    with local_agents() as (a, b, key):
        good = tmp_path / "good"
        keys.write_key(str(good), key.hex())
        ok = subprocess.run([sys.executable, "-m", "lpmbench", "pair", a.label, b.label, "--key-file", str(good),
                             "--duration", "0.5", "--interval", "0.25", "--json"],
                            capture_output=True, text=True, timeout=60)
        assert ok.returncode == 0, ok.stderr
        assert json.loads(ok.stdout)["bytes"] > 0
        bad = tmp_path / "bad"
        keys.write_key(str(bad), keys.generate_key())
        refused = subprocess.run([sys.executable, "-m", "lpmbench", "pair", a.label, b.label, "--key-file",
                                  str(bad), "--duration", "0.5"], capture_output=True, text=True, timeout=60)
        assert refused.returncode == 2
        assert "wrong key" in refused.stderr and "127.0.0." in refused.stderr
        assert refused.stdout == ""


def test_pair_redundant_with_four_hand_started_agents(tmp_path):
    with local_agents(count=4) as (a, b, a2, b2, key):
        path = tmp_path / "key"
        keys.write_key(str(path), key.hex())
        proc = subprocess.run([sys.executable, "-m", "lpmbench", "pair", a.label, b.label, "--redundant", a2.label,
                               b2.label, "--key-file", str(path), "--duration", "0.5", "--streams", "2", "--json"],
                              capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert len(result["pairs"]) == 2 and result["aggregate_goodput_bps"] > result["goodput_bps"] > 0


@pytest.mark.parametrize("args,needle", [(["--bytes", "lots"], "--bytes"),
                                         (["--bytes", "2", "--streams", "4"], "per stream")])
def test_pair_bad_byte_count_exits_2(args, needle):
    result = runner.invoke(app, ["pair", "--local", *args])
    assert result.exit_code == 2 and needle in result.output
