"""`lpmbench agent` as a user starts it: option errors, SIGHUP key reload, TLS and allow lists end to end."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import trustme
from agent_helpers import AgentProcess
from cli_runner import cli_runner

from lpmbench.cli import app
from lpmbench.net import keys

runner = cli_runner()


@pytest.mark.parametrize("args,needle", [
    (["--allow", "10.0.0.0/33"], "not an address"),
    (["--allow-peer", "nonsense"], "not an address"),
    (["--max-rate", "fast"], "rate"),
    (["--tls-cert", "/nonexistent.pem"], "--tls-key"),
    (["--tls-cert", "/nonexistent.pem", "--tls-key", "/nonexistent.key"], "does not exist"),
    (["--every", "6h"], "--peer"),
    (["--port-range", "70000-70001"], "port range"),
    (["--peer", "msp-b", "--every", "5x"], "bad interval"),
])
def test_agent_option_errors_exit_2(key_file, args, needle):
    result = runner.invoke(app, ["agent", "--key-file", key_file, "--port", "0", "--metrics-port", "0", *args])
    assert result.exit_code == 2, result.output
    assert needle in result.output


def started(bind: str, key_file: str | None, log_dir, *extra: str) -> AgentProcess:
    return AgentProcess(bind, key_file, log_dir, extra=extra).wait_ready()


def pair(a: AgentProcess, b: AgentProcess, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lpmbench", "pair", a.label, b.label, "--duration", "0.5",
                           "--streams", "2", "--json", *args], capture_output=True, text=True, timeout=60)


def test_sighup_reloads_the_key_and_sigterm_stops_cleanly(tmp_path):
    key_path = str(tmp_path / "key")
    keys.write_key(key_path, keys.generate_key())
    a, b = started("127.0.0.1", key_path, tmp_path), started("127.0.0.2", key_path, tmp_path)
    try:
        old = tmp_path / "old"
        keys.write_key(str(old), keys.load_key(key_path).hex())
        assert pair(a, b, "--key-file", str(old)).returncode == 0
        keys.write_key(key_path, keys.generate_key())
        for agent in (a, b):
            agent.proc.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        refused = pair(a, b, "--key-file", str(old))
        assert refused.returncode == 2 and "wrong key" in refused.stderr
        accepted = pair(a, b, "--key-file", key_path)
        assert accepted.returncode == 0, accepted.stderr
        assert "key reloaded" in a.log_text()
    finally:
        codes = [a.stop(), b.stop()]
    assert codes == [0, 0]


def test_tls_and_allow_lists_from_the_command_line(tmp_path, key_file):
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "127.0.0.2")
    cert_pem, key_pem, ca_pem = tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "ca.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_pem))
    cert.private_key_pem.write_to_path(str(key_pem))
    ca.cert_pem.write_to_path(str(ca_pem))
    os.chmod(key_pem, 0o600)
    tls = ("--tls-cert", str(cert_pem), "--tls-key", str(key_pem))
    a = started("127.0.0.1", key_file, tmp_path, *tls, "--allow", "127.0.0.0/8")
    b = started("127.0.0.2", key_file, tmp_path, *tls, "--allow-peer", "127.0.0.1")
    try:
        ok = pair(a, b, "--key-file", key_file, "--tls-ca", str(ca_pem))
        assert ok.returncode == 0, ok.stderr
        assert json.loads(ok.stdout)["bytes"] > 0
        untrusted = pair(a, b, "--key-file", key_file, "--tls")
        assert untrusted.returncode == 2 and "TLS" in untrusted.stderr, untrusted.stderr
    finally:
        a.stop()
        b.stop()
    c = started("127.0.0.1", key_file, tmp_path, "--allow", "192.0.2.0/24")
    d = started("127.0.0.2", key_file, tmp_path)
    try:
        refused = pair(c, d, "--key-file", key_file)
        assert refused.returncode == 2 and "--allow" in refused.stderr, refused.stderr
    finally:
        c.stop()
        d.stop()
