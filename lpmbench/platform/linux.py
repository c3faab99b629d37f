"""Interface and TCP facts on Linux: which interface reaches the peer, and how it is set up.

Sources: ``ip -j route get`` for the route, /sys/class/net for MTU, speed, duplex and counters,
``ethtool -k / -a / -i`` for offloads, pause frames and the driver, /proc/net/snmp for the
system-wide TCP counters. A missing tool or an "Operation not supported" yields None for that
fact, never an exception. Parsers are pure functions of the command text so tests can feed them.
"""

from __future__ import annotations

import ipaddress
import json
import os
import platform
import re
import socket
from typing import Any

from lpmbench.platform._tools import read_text, run_tool

__all__ = ["counters_snapshot", "interface_facts", "os_name", "route_interface",
           "tcp_system_counters"]

SYS_NET = "/sys/class/net"
PROC_SNMP = "/proc/net/snmp"
COUNTER_NAMES = ("rx_errors", "tx_errors", "rx_dropped", "tx_dropped")
_COMMAND_TIMEOUT_S = 5.0
_IFNAME_RE = re.compile(r"^[^/\s:]{1,15}$")
# Drivers of software or hypervisor-provided interfaces (ibmveth / ibmvnic: PowerVM virtual
# Ethernet and vNIC), which may still have a bus device in sysfs.
_VIRTUAL_DRIVERS = frozenset({"veth", "bridge", "loopback", "tun", "dummy", "macvlan", "ipvlan",
                              "vxlan", "bonding", "openvswitch", "802.1Q VLAN Support", "ifb",
                              "virtio_net", "vmxnet3", "xen_netfront", "hv_netvsc", "ibmveth",
                              "ibmvnic"})


# -- running tools -----------------------------------------------------------------------------
def _run_tool(argv: list[str]) -> str | None:
    return run_tool(argv, _COMMAND_TIMEOUT_S)


def _check_ifname(name: str) -> str:
    if not isinstance(name, str) or not _IFNAME_RE.match(name) or name in (".", ".."):
        raise ValueError(f"not a valid interface name: {name!r}")
    if not os.path.isdir(os.path.join(SYS_NET, name)):
        raise ValueError(f"no such network interface: {name!r}")
    return name


def _check_address(address: str) -> str:
    try:
        ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        raise ValueError(f"not an IP address: {address!r}") from None
    return address


# -- pure parsers --------------------------------------------------------------------------------
def parse_ip_route_get(text: str) -> str | None:
    """The "dev" of `ip -j route get ADDR` output (JSON list of routes)."""
    try:
        routes = json.loads(text)
    except json.JSONDecodeError:
        return None
    if isinstance(routes, list) and routes and isinstance(routes[0], dict):
        dev = routes[0].get("dev")
        return dev if isinstance(dev, str) else None
    return None


def _on_off_map(text: str) -> dict[str, bool]:
    """`name: on|off [fixed]` lines of ethtool output as {name: bool}."""
    result: dict[str, bool] = {}
    for line in text.splitlines():
        match = re.match(r"^\s*([\w-]+):\s+(on|off)\b", line)
        if match:
            result[match.group(1).lower()] = match.group(2) == "on"
    return result


def parse_ethtool_features(text: str) -> dict[str, bool | None]:
    """tso, gso, gro, lro from `ethtool -k DEV`; None for a feature the output does not list."""
    states = _on_off_map(text)
    keys = {"tso": "tcp-segmentation-offload", "gso": "generic-segmentation-offload",
            "gro": "generic-receive-offload", "lro": "large-receive-offload"}
    return {short: states.get(long) for short, long in keys.items()}


def parse_ethtool_pause(text: str) -> dict[str, bool | None]:
    """{"rx", "tx"} from `ethtool -a DEV`; None where not reported."""
    states = _on_off_map(text)
    return {"rx": states.get("rx"), "tx": states.get("tx")}


def parse_ethtool_driver(text: str) -> str | None:
    """The driver name from `ethtool -i DEV`."""
    match = re.search(r"^driver:\s*(\S.*?)\s*$", text, re.MULTILINE)
    return match.group(1) if match else None


def parse_proc_net_snmp(text: str) -> dict[str, int]:
    """The Tcp: block of /proc/net/snmp as {"segments_out", "retransmits"}."""
    rows = [line.split() for line in text.splitlines() if line.startswith("Tcp:")]
    if len(rows) < 2:
        raise ValueError("no Tcp: header and value lines in /proc/net/snmp text")
    fields = dict(zip(rows[0][1:], rows[1][1:]))
    try:
        return {"segments_out": int(fields["OutSegs"]), "retransmits": int(fields["RetransSegs"])}
    except (KeyError, ValueError) as exc:
        raise ValueError(f"Tcp: block lacks OutSegs / RetransSegs: {exc}") from None


def _any_on(*states: bool | None) -> bool | None:
    if any(state is True for state in states):
        return True
    if any(state is False for state in states):
        return False
    return None


# -- public API --------------------------------------------------------------------------------
def route_interface(peer_address: str) -> str | None:
    """Name of the interface that carries traffic to peer_address (IPv4 or IPv6), or None."""
    _check_address(peer_address)
    dev = None
    out = _run_tool(["ip", "-j", "route", "get", peer_address])
    if out is not None:
        dev = parse_ip_route_get(out)
    return dev or _route_interface_by_source(peer_address)


def _route_interface_by_source(peer_address: str) -> str | None:
    """Without iproute2: the kernel picks a source address for a connected UDP socket (nothing
    is sent); the interface that owns that address is the one the route uses."""
    try:
        import psutil  # deferred: only this fallback needs it
    except ImportError:  # a host without psutil: no fallback, the route stays unknown
        return None

    bare = peer_address.split("%", 1)[0]
    family = socket.AF_INET6 if ipaddress.ip_address(bare).version == 6 else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.connect((peer_address, 9))
            source = probe.getsockname()[0].split("%", 1)[0]
    except OSError:
        return None
    for name, addresses in psutil.net_if_addrs().items():
        if any(addr.address.split("%", 1)[0] == source for addr in addresses):
            return name
    return None


def counters_snapshot(name: str) -> dict[str, int]:
    """Error and drop counters of an interface (cheap: four sysfs reads)."""
    _check_ifname(name)
    counters = {}
    for counter in COUNTER_NAMES:
        value = read_text(os.path.join(SYS_NET, name, "statistics", counter))
        counters[counter] = int(value) if value and value.isdigit() else 0
    return counters


def interface_facts(name: str) -> dict[str, Any]:
    """What the interface says about itself; None for anything this host cannot tell."""
    _check_ifname(name)
    base = os.path.join(SYS_NET, name)
    features = parse_ethtool_features(_run_tool(["ethtool", "-k", name]) or "")
    pause_text = _run_tool(["ethtool", "-a", name])
    driver_text = _run_tool(["ethtool", "-i", name])
    driver = parse_ethtool_driver(driver_text) if driver_text else None
    mtu = _int_or_none(read_text(os.path.join(base, "mtu")))
    speed = _int_or_none(read_text(os.path.join(base, "speed")))
    duplex = read_text(os.path.join(base, "duplex"))
    return {
        "name": name,
        "speed_mbps": speed if speed is not None and speed > 0 else None,
        "duplex": duplex if duplex in ("full", "half") else None,
        "mtu": mtu,
        "large_send": _any_on(features["tso"], features["gso"]),
        "large_receive": _any_on(features["gro"], features["lro"]),
        "flow_control": parse_ethtool_pause(pause_text) if pause_text else {"rx": None, "tx": None},
        "jumbo_frames": None if mtu is None else mtu > 1500,
        "virtual": _is_virtual(base, driver),
        "driver": driver,
        "offloads": features,
        "counters": counters_snapshot(name),
    }


def _int_or_none(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def _is_virtual(sys_path: str, driver: str | None) -> bool:
    # A physical NIC has a bus device behind it; veth, bridge, lo and friends do not.
    if driver in _VIRTUAL_DRIVERS:
        return True
    return not os.path.exists(os.path.join(sys_path, "device"))


def tcp_system_counters() -> dict[str, int]:
    """System-wide TCP segments sent and retransmitted (this network namespace)."""
    with open(PROC_SNMP, encoding="ascii") as handle:
        return parse_proc_net_snmp(handle.read())


def os_name() -> str:
    """E.g. "Linux 6.1.0-18-amd64 x86_64"."""
    uname = platform.uname()
    return f"{uname.system} {uname.release} {uname.machine}"
