"""Capability flags (lpmbench.platform.capabilities): decided once, Linux option numbers only on Linux, and a
missing capability turns into its reason -- here on Linux and in the AIX personality."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lpmbench.platform import capabilities

REPO = Path(__file__).resolve().parent.parent


def in_aix_personality(code: str) -> dict:
    prelude = "from lpmbench.lab import aix as personality; personality.become_aix()\nimport json\n"
    out = subprocess.run([sys.executable, "-c", prelude + code], capture_output=True, text=True, timeout=60,
                         cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the Linux side of the table")
def test_linux_has_what_the_lab_needs():
    for name in ("df_probe_ipv4", "df_probe_ipv6", "tcp_info", "tcp_maxseg", "pacing", "msg_trunc_discard"):
        assert capabilities.ALL[name], name
    assert capabilities.option("IP_MTU_DISCOVER") == 10 and capabilities.option("TCP_INFO") == 11


def test_a_missing_capability_is_falsy_and_says_why():
    missing = capabilities.Capability(False, "no such thing here")
    assert not missing and missing.reason == "no such thing here"
    assert capabilities.Capability(True) and capabilities.Capability(True).reason == ""


def test_aix_gets_no_linux_option_numbers_and_every_missing_capability_has_a_reason():
    seen = in_aix_personality(
        "from lpmbench.platform import capabilities as c\n"
        "import socket\n"
        "print(json.dumps({'options': {n: c.option(n) for n in ('IP_MTU_DISCOVER', 'TCP_INFO',\n"
        "  'TCP_USER_TIMEOUT', 'SO_MAX_PACING_RATE')}, 'summary': c.summary(),\n"
        "  'v6': [c.option('IPV6_DONTFRAG'), socket.IPV6_DONTFRAG]}))\n")
    assert seen["options"] == dict.fromkeys(seen["options"])  # all None: AIX numbers those options otherwise
    # AIX's CPython does export IPV6_DONTFRAG (45 there; the personality keeps the Linux kernel's value).
    assert seen["v6"][0] == seen["v6"][1] and "df_probe_ipv6" in seen["summary"]["available"]
    missing = seen["summary"]["missing"]
    for name in ("df_probe_ipv4", "tcp_info", "tcp_user_timeout", "pacing", "zerocopy",
                 "sendfile", "msg_trunc_discard"):
        assert missing[name], name
    assert "don't-fragment" in missing["df_probe_ipv4"]
    assert "tcp_maxseg" in seen["summary"]["available"]  # the MSS is what TCP evidence needs


def test_aix_path_probe_says_it_cannot_run_and_sends_nothing():
    seen = in_aix_personality(
        "import dataclasses\n"
        "from lpmbench.net.pathprobe import probe_path_mtu\n"
        "result = probe_path_mtu('127.0.0.1', 9, '00' * 16, 9000)\n"
        "print(json.dumps(dataclasses.asdict(result)))\n")
    assert seen["mtu"] is None and seen["probes"] == 0
    assert "don't-fragment" in seen["unsupported"] and seen["error"] == seen["unsupported"]


def test_aix_tcp_info_falls_back_to_the_mss_only():
    seen = in_aix_personality(
        "import socket, threading\n"
        "from lpmbench.platform import tcpinfo\n"
        "server = socket.socket(); server.bind(('127.0.0.1', 0)); server.listen(1)\n"
        "client = socket.create_connection(server.getsockname()); peer, _ = server.accept()\n"
        "print(json.dumps(tcpinfo.read(client)))\n")
    assert set(seen) == {"snd_mss"} and seen["snd_mss"] > 0
