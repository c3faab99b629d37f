"""The namespace lab: every property it promises, checked with real traffic inside it."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time

import pytest

from lpmbench.lab import Lab, LabError, PortSpec, list_lab_namespaces

pytest_plugins = ["conftest_lab"]  # lab, make_lab, lab_required
pytestmark = pytest.mark.lab
IP_MTU_DISCOVER, IP_PMTUDISC_DO = 10, 2
SO_RCVBUFFORCE = 33
FAMILIES = {4: socket.AF_INET, 6: socket.AF_INET6}


# -- helpers: sockets created inside a namespace stay in it, so the test drives them directly --
def _udp_receiver(family: int) -> socket.socket:
    sock = socket.socket(FAMILIES[family], socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 4 << 20)
    sock.bind(("::" if family == 6 else "0.0.0.0", 0))
    return sock


def _udp_df_sender(family: int) -> socket.socket:
    sock = socket.socket(FAMILIES[family], socket.SOCK_DGRAM)
    if family == 4:
        sock.setsockopt(socket.IPPROTO_IP, IP_MTU_DISCOVER, IP_PMTUDISC_DO)
    else:
        sock.setsockopt(socket.IPPROTO_IPV6, 23, 2)  # IPV6_MTU_DISCOVER = IPV6_PMTUDISC_DO
        sock.setsockopt(socket.IPPROTO_IPV6, 62, 1)  # IPV6_DONTFRAG
    return sock


def _tcp_listener(family: int) -> socket.socket:
    sock = socket.socket(FAMILIES[family], socket.SOCK_STREAM)
    sock.bind(("::" if family == 6 else "0.0.0.0", 0))
    sock.listen(1)
    return sock


def _drain(sock: socket.socket, quiet_s: float = 0.3) -> list[int]:
    """Sizes of the datagrams that arrive until the socket stays quiet for quiet_s."""
    sizes = []
    sock.settimeout(quiet_s)
    try:
        while True:
            sizes.append(len(sock.recv(65535)))
    except socket.timeout:
        return sizes


def _datagram_arrives(lab: Lab, ip_size: int, family: int = 4) -> bool:
    overhead = 28 if family == 4 else 48
    receiver = lab.call_in("b", _udp_receiver, family)
    sender = lab.call_in("a", _udp_df_sender, family)
    with receiver, sender:
        sender.sendto(b"x" * (ip_size - overhead), (lab.address("b", family),
                                                     receiver.getsockname()[1]))
        return _drain(receiver, 0.2) == [ip_size - overhead]


def _tcp_transfer(lab: Lab, nbytes: int, family: int = 4) -> float:
    """Seconds to move nbytes from a to b over TCP, counted until b has them all."""
    listener = lab.call_in("b", _tcp_listener, family)
    client = lab.call_in("a", socket.socket, FAMILIES[family], socket.SOCK_STREAM)
    received = []

    def receive() -> None:
        conn, _ = listener.accept()
        with conn:
            total = 0
            while total < nbytes:
                chunk = conn.recv(1 << 16)
                if not chunk:
                    break
                total += len(chunk)
            received.append(total)

    with listener, client:
        listener.settimeout(5.0)
        reader = threading.Thread(target=receive)
        reader.start()
        client.settimeout(10.0)
        client.connect((lab.address("b", family), listener.getsockname()[1]))
        started = time.monotonic()
        client.sendall(b"\0" * nbytes)
        reader.join(10.0)
        elapsed = time.monotonic() - started
    assert received == [nbytes]
    return elapsed


# -- tests ------------------------------------------------------------------------------------
def test_port_spec_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match="host_mtu"):
        PortSpec(host_mtu=60)
    with pytest.raises(ValueError, match="loss"):
        PortSpec(loss=1.0)
    with pytest.raises(ValueError, match="rate_bps"):
        PortSpec(rate_bps=100)
    rate, burst, limit = PortSpec(host_mtu=9000, rate_bps=10_000_000).tbf_params() or (0, 0, 0)
    assert rate == 10_000_000 and burst >= 9014 and limit >= 9014
    with pytest.raises(ValueError, match="unknown host"):
        Lab({"c": PortSpec()})


@pytest.mark.parametrize("family", [4, 6])
def test_hosts_reach_each_other_over_the_switch(lab: Lab, family: int) -> None:
    assert _tcp_transfer(lab, 100_000, family) < 5.0
    assert _datagram_arrives(lab, 1400, family)


def test_run_in_and_popen_in_run_inside_the_namespace(lab: Lab) -> None:
    addresses = json.loads(lab.run_in("a", ["ip", "-j", "addr", "show", "dev", "eth0"]).stdout)
    assert lab.address("a") in {info["local"] for info in addresses[0]["addr_info"]}
    proc = lab.popen_in("b", ["ip", "-o", "addr", "show", "dev", "eth0"],
                        stdout=subprocess.PIPE, text=True)
    out, _ = proc.communicate(timeout=10)
    assert lab.address("b") in out and lab.address("a") not in out
    with pytest.raises(LabError, match="failed"):
        lab.run_in("a", ["ip", "link", "show", "dev", "no-such-dev"])


def test_offloads_are_off_on_every_veth(lab: Lab) -> None:
    for host, dev in (("a", "eth0"), ("b", "eth0"), ("switch", "p-a"), ("switch", "p-b")):
        features = lab.run_in(host, ["ethtool", "-k", dev]).stdout
        for feature in ("tcp-segmentation-offload", "generic-segmentation-offload",
                        "generic-receive-offload"):
            assert f"{feature}: off" in features, (host, dev, feature)


def test_jumbo_black_hole_then_fixed_switch(make_lab) -> None:
    hole = PortSpec(host_mtu=9000, switch_mtu=1500)
    lab = make_lab(a=hole, b=hole)
    assert _datagram_arrives(lab, 1400)
    assert _datagram_arrives(lab, 1500)
    assert not _datagram_arrives(lab, 1501)  # exact, no slack for a VLAN tag
    assert not _datagram_arrives(lab, 8000)
    assert not _datagram_arrives(lab, 8000, family=6)
    for host in ("a", "b"):
        lab.update_port(host, switch_mtu=9000)
    assert _datagram_arrives(lab, 8000)
    assert _datagram_arrives(lab, 9000, family=6)


def test_tbf_limits_the_link_rate(make_lab) -> None:
    rate = 40_000_000
    lab = make_lab(b=PortSpec(rate_bps=rate))
    nbytes = 1_000_000
    elapsed = _tcp_transfer(lab, nbytes)
    goodput = nbytes * 8 / elapsed
    # Never faster than the wire allows; not absurdly slower either (headers cost ~5%).
    assert 0.5 * rate < goodput < 1.02 * rate, goodput


def test_random_drops_lose_about_the_configured_share(make_lab) -> None:
    lab = make_lab()
    count = 500

    def delivered() -> int:
        receiver = lab.call_in("b", _udp_receiver, 4)
        sender = lab.call_in("a", _udp_df_sender, 4)
        with receiver, sender:
            target = (lab.address("b"), receiver.getsockname()[1])
            for _ in range(count):
                sender.sendto(b"d" * 100, target)
            return len(_drain(receiver, 0.2))

    assert delivered() == count
    lab.update_port("b", loss=0.3)  # a->b frames leave the switch through p-b: 30% dropped
    kept = delivered()
    assert 0.6 * count <= kept <= 0.8 * count, kept  # 350 expected, sd ~10


def test_teardown_on_exception_and_partial_build(lab_required) -> None:
    with pytest.raises(RuntimeError, match="boom"), Lab() as doomed:
        names = [doomed.netns(h) for h in ("a", "b", "switch")]
        assert set(names) <= set(list_lab_namespaces())
        raise RuntimeError("boom")
    assert not set(names) & set(list_lab_namespaces())

    clash = Lab(name=f"clash{time.monotonic_ns() % 10**6}")
    squatter = clash.netns("b")
    subprocess.run(["ip", "netns", "add", squatter], check=True)
    try:
        with pytest.raises(LabError, match="File exists"):
            clash.up()
        left = set(list_lab_namespaces())
        assert squatter in left  # not ours: left alone
        assert clash.netns("a") not in left and clash.netns("switch") not in left
    finally:
        subprocess.run(["ip", "netns", "del", squatter], check=False)


def test_command_line_up_status_down(lab_required) -> None:
    name = f"cli{time.monotonic_ns() % 10**6}"
    command = [sys.executable, "-m", "lpmbench.lab"]
    try:
        up = subprocess.run([*command, "up", "--name", name, "--host-mtu", "9000",
                             "--switch-mtu", "1500"], capture_output=True, text=True, timeout=30)
        assert up.returncode == 0, up.stderr
        status = subprocess.run([*command, "status"], capture_output=True, text=True, timeout=30)
        assert f"lpmb-a-{name}" in status.stdout.split()
    finally:
        subprocess.run([*command, "down", "--name", name], timeout=30, check=False)
    assert f"lpmb-a-{name}" not in list_lab_namespaces()
