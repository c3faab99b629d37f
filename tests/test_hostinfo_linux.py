"""Linux interface audit: parsers on captured text, the real lo, and veths in a namespace."""

from __future__ import annotations

import inspect
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from lpmbench.platform import aix, linux

REPO = Path(__file__).resolve().parent.parent

ETHTOOL_K = """Features for eth0:
rx-checksumming: on
tx-checksumming: on
\ttx-checksum-ipv4: off [fixed]
scatter-gather: on
tcp-segmentation-offload: off
\ttx-tcp-segmentation: off
\ttx-tcp6-segmentation: off
generic-segmentation-offload: on
generic-receive-offload: on
large-receive-offload: off [fixed]
"""
ETHTOOL_A = """Pause parameters for eth0:
Autonegotiate:\ton
RX:\t\ton
TX:\t\toff
RX negotiated: off
TX negotiated: on
"""
ETHTOOL_I = """driver: ixgbe
version: 6.1.0-18-amd64
firmware-version: 0x800003e7
bus-info: 0000:03:00.0
"""
PROC_SNMP = """Ip: Forwarding DefaultTTL InReceives
Ip: 1 64 12345
Tcp: RtoAlgorithm RtoMin RtoMax MaxConn ActiveOpens PassiveOpens AttemptFails EstabResets \
CurrEstab InSegs OutSegs RetransSegs InErrs OutRsts InCsumErrors
Tcp: 1 200 120000 -1 10 5 0 1 2 9000 8123 17 0 3 0
Udp: InDatagrams NoPorts
Udp: 5 0
"""


def test_both_platform_modules_expose_the_same_functions() -> None:
    assert set(linux.__all__) == set(aix.__all__)
    for name in linux.__all__:
        linux_params = list(inspect.signature(getattr(linux, name)).parameters)
        assert linux_params == list(inspect.signature(getattr(aix, name)).parameters), name


def test_parsers_read_captured_output() -> None:
    assert linux.parse_ethtool_features(ETHTOOL_K) == {"tso": False, "gso": True, "gro": True,
                                                       "lro": False}
    assert linux.parse_ethtool_pause(ETHTOOL_A) == {"rx": True, "tx": False}
    assert linux.parse_ethtool_driver(ETHTOOL_I) == "ixgbe"
    assert linux.parse_proc_net_snmp(PROC_SNMP) == {"segments_out": 8123, "retransmits": 17}
    route = '[{"dst":"10.1.2.3","gateway":"10.1.2.1","dev":"bond0","prefsrc":"10.1.2.9"}]'
    assert linux.parse_ip_route_get(route) == "bond0"
    assert linux.parse_ip_route_get("RTNETLINK answers: Network is unreachable") is None
    assert linux.parse_ethtool_features("") == dict.fromkeys(("tso", "gso", "gro", "lro"))
    with pytest.raises(ValueError, match="Tcp"):
        linux.parse_proc_net_snmp("Ip: a b\nIp: 1 2\n")


def test_route_to_loopback_is_lo() -> None:
    assert linux.route_interface("127.0.0.1") == "lo"
    assert linux.route_interface("127.42.0.9") == "lo"
    assert linux._route_interface_by_source("127.0.0.1") == "lo"  # the no-iproute2 fallback
    if socket.has_ipv6 and os.path.exists("/proc/net/if_inet6"):
        assert linux.route_interface("::1") == "lo"
    with pytest.raises(ValueError, match="not an IP address"):
        linux.route_interface("mover-a.example")


def test_facts_of_real_lo() -> None:
    facts = linux.interface_facts("lo")
    mtu = int(Path("/sys/class/net/lo/mtu").read_text())
    assert facts["name"] == "lo" and facts["mtu"] == mtu
    assert facts["virtual"] is True and facts["jumbo_frames"] is (mtu > 1500)
    assert facts["speed_mbps"] is None and facts["duplex"] is None
    assert set(facts["counters"]) == {"rx_errors", "tx_errors", "rx_dropped", "tx_dropped"}
    assert all(isinstance(value, int) for value in facts["counters"].values())
    assert set(facts["flow_control"]) == {"rx", "tx"}
    assert linux.counters_snapshot("lo").keys() == facts["counters"].keys()


@pytest.mark.parametrize("bad", ["no-such-if0", "../etc", "", "a" * 16, "eth0:1"])
def test_bad_interface_names_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        linux.interface_facts(bad)


def test_tcp_counters_grow_with_loopback_traffic() -> None:
    before = linux.tcp_system_counters()
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]

        def drain() -> None:
            conn, _ = server.accept()
            with conn:
                while conn.recv(65536):
                    pass

        reader = threading.Thread(target=drain)
        reader.start()
        with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
            for _ in range(50):
                client.sendall(b"x" * 1000)
        reader.join(5)
    after = linux.tcp_system_counters()
    assert after["segments_out"] >= before["segments_out"] + 3
    assert after["retransmits"] >= before["retransmits"]


def test_os_name() -> None:
    assert linux.os_name().startswith("Linux ")


# -- veths in a namespace of our own ------------------------------------------------------------
@pytest.fixture
def veth_namespace() -> Iterator[str]:
    if os.geteuid() != 0 or shutil.which("ip") is None or shutil.which("ethtool") is None:
        pytest.skip("needs root, iproute2 and ethtool to build a namespace with veths")
    name = f"lpmb-hi-{secrets.token_hex(3)}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        for command in (["link", "add", "v0", "type", "veth", "peer", "name", "v1"],
                        ["link", "set", "v0", "mtu", "9000", "up"], ["link", "set", "v1", "up"],
                        ["addr", "add", "10.78.0.1/24", "dev", "v0"]):
            subprocess.run(["ip", "-n", name, *command], check=True)
        subprocess.run(["ip", "netns", "exec", name, "ethtool", "-K", "v0", "tso", "off", "gso",
                        "off", "gro", "off"], check=True, capture_output=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def test_facts_of_a_veth_inside_a_namespace(veth_namespace: str) -> None:
    # /sys and /proc/net follow the mount namespace, so ask a process started inside it.
    code = ("import json; from lpmbench.platform import linux; print(json.dumps({"
            "'facts': linux.interface_facts('v0'), 'peer': linux.interface_facts('v1'),"
            "'route': linux.route_interface('10.78.0.2'), 'tcp': linux.tcp_system_counters()}))")
    proc = subprocess.run(["ip", "netns", "exec", veth_namespace, sys.executable, "-c", code],
                          capture_output=True, text=True, timeout=30, check=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    seen = json.loads(proc.stdout)
    facts, peer = seen["facts"], seen["peer"]
    assert seen["route"] == "v0"
    assert seen["tcp"] == {"segments_out": 0, "retransmits": 0}  # a fresh namespace
    assert facts["mtu"] == 9000 and facts["jumbo_frames"] is True
    assert facts["driver"] == "veth" and facts["virtual"] is True
    assert facts["large_send"] is False and facts["large_receive"] is False
    assert facts["speed_mbps"] == 10000 and facts["duplex"] == "full"
    assert facts["flow_control"] == {"rx": None, "tx": None}  # veth: "Operation not supported"
    assert peer["mtu"] == 1500 and peer["jumbo_frames"] is False
    assert peer["large_send"] is True  # offloads left on there
