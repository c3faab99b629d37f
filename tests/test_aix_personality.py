"""The AIX personality (lpmbench.lab.aix): its commands parse with the agent's own AIX parsers, and a real
agent run in it takes the AIX code paths end to end on loopback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lpmbench.lab import aix_commands
from lpmbench.platform import aix

REPO = Path(__file__).resolve().parent.parent


def command(*argv: str) -> str:
    out = subprocess.run([sys.executable, "-m", "lpmbench.lab.aix_commands", *argv], capture_output=True,
                         text=True, timeout=30, cwd=REPO)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_netstat_tcp_parses_and_follows_the_kernel():
    before = aix.parse_netstat_tcp(command("netstat", "-s", "-p", "tcp"))
    snmp = aix_commands._tcp_snmp()
    assert before["segments_out"] <= snmp["OutSegs"] and before["retransmits"] <= snmp["RetransSegs"]


def test_route_get_names_the_aix_interface():
    assert aix.parse_route_get(command("route", "-n", "get", "127.0.0.2")) == "lo0"


def test_interfaces_map_to_aix_names_both_ways():
    for index, linux in enumerate(aix_commands.linux_interfaces()):
        assert aix_commands.aix_name(linux) == f"en{index}"
        assert aix_commands.linux_name(f"ent{index}") == linux == aix_commands.linux_name(f"en{index}")
    assert aix_commands.linux_name("lo0") == "lo"


def test_unknown_device_is_refused_as_aix_does():
    out = subprocess.run([sys.executable, "-m", "lpmbench.lab.aix_commands", "lsattr", "-El", "ent999"],
                         capture_output=True, text=True, timeout=30, cwd=REPO)
    assert out.returncode == 1 and "0514-519" in out.stderr


@pytest.mark.skipif(not aix_commands.linux_interfaces(), reason="no non-loopback interface here")
def test_adapter_facts_parse_from_the_emulated_commands():
    linux = aix_commands.linux_interfaces()[0]
    facts = aix.facts_from_outputs("en0", "ent0", adapter_attrs=command("lsattr", "-El", "ent0"),
                                   entstat=command("entstat", "-d", "ent0"),
                                   interface_attrs=command("lsattr", "-El", "en0"))
    mtu = int(Path(f"/sys/class/net/{linux}/mtu").read_text())
    assert facts["mtu"] == mtu and facts["jumbo_frames"] is (mtu > 1500)
    assert facts["virtual"] is False and facts["counters"]["rx_errors"] is not None
    assert facts["flow_control"] == {"rx": False, "tx": False}


def test_a_process_in_the_personality_looks_like_aix_cpython():
    code = ("from lpmbench.lab import aix as personality; personality.become_aix()\n"
            "import json, os, platform, select, socket, sys\n"
            "from lpmbench import dataplane, platform as hostinfo\n"
            "from lpmbench.net import eventloop\n"
            "print(json.dumps({'platform': sys.platform, 'system': platform.system(),\n"
            "  'tcp_info': hasattr(socket, 'TCP_INFO'), 'sendfile': hasattr(os, 'sendfile'),\n"
            "  'epoll': hasattr(select, 'epoll'), 'dataplane': dataplane.IMPLEMENTATION,\n"
            "  'impl': hostinfo.platform_impl.__name__, 'loop': eventloop.default_kind()}))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=REPO,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    assert out.returncode == 0, out.stderr
    seen = json.loads(out.stdout)
    assert seen == {"platform": "aix", "system": "AIX", "tcp_info": False, "sendfile": False, "epoll": False,
                    "dataplane": "python", "impl": "lpmbench.platform.aix", "loop": "asyncio"}
