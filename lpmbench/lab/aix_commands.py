"""The AIX commands lpmbench calls on VIOS, answered on Linux in IBM's documented output formats.

Part of the AIX personality (:mod:`lpmbench.lab.aix`). Each command reads the Linux state of the network
namespace it runs in (/sys/class/net, /proc/net/snmp, ``ip route``, ``ethtool``) and prints it the way AIX
prints it (the formats of IBM's docs, as in tests/fixtures/aix/), so the agent's AIX code paths parse real,
changing numbers: counters grow while a run moves data, a loss rule raises the retransmits.

What is emulated, plainly: the kernel underneath is Linux, so TCP's behaviour (congestion control, path MTU
discovery, buffer autotuning) is Linux's, not AIX's. Interface names are mapped: the N-th non-loopback Linux
interface (by ifindex) is enN on adapter entN, and ``lo`` is lo0. Adapter facts that a veth has not got
(a device type, a media speed) are printed as AIX prints an adapter that cannot tell.

Usage (what the wrapper scripts on PATH run): ``python -m lpmbench.lab.aix_commands NAME ARGS...``
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shutil
import subprocess
import sys
from typing import Callable

SYS_NET = "/sys/class/net"
VIOS_LEVEL = "3.1.4.31"  # the ioslevel the personality reports (an emulated VIOS, not a real one)
DEVICE_TYPE = "Linux veth as emulated Ethernet Adapter (lpmbench AIX personality)"
COMMANDS_ENV = "LPMBENCH_AIX_COMMANDS"  # the folder of stand-ins on PATH (lpmbench.lab.aix sets it)


class Usage(Exception):
    """The command line is not one lpmbench uses: answer as AIX would, with a usage error."""


# -- names -----------------------------------------------------------------------------------
def linux_interfaces() -> list[str]:
    """Non-loopback interfaces of this namespace, by ifindex: the order that numbers enN / entN."""
    names = [n for n in os.listdir(SYS_NET) if n != "lo"]
    return sorted(names, key=lambda n: int(_read(f"{SYS_NET}/{n}/ifindex") or 0))


def aix_name(linux: str) -> str:
    return "lo0" if linux == "lo" else f"en{linux_interfaces().index(linux)}"


def linux_name(aix: str) -> str:
    """en3 / ent3 / et3 -> the Linux interface; lo0 -> lo. Raises Usage for a device that does not exist."""
    if aix == "lo0":
        return "lo"
    match = re.fullmatch(r"(?:en|ent|et)(\d+)", aix)
    interfaces = linux_interfaces()
    if not match or int(match.group(1)) >= len(interfaces):
        raise Usage(f'0514-519 The following device was not found in the customized device configuration '
                    f'database:\n\tname = \'{aix}\'')
    return interfaces[int(match.group(1))]


# -- Linux state -----------------------------------------------------------------------------
def _read(path: str) -> str | None:
    try:
        with open(path, encoding="ascii") as handle:
            return handle.read().strip()
    except (OSError, ValueError):
        return None


def _stat(linux: str, counter: str) -> int:
    value = _read(f"{SYS_NET}/{linux}/statistics/{counter}")
    return int(value) if value and value.isdigit() else 0


def _speed_mbps(linux: str) -> int | None:
    value = _read(f"{SYS_NET}/{linux}/speed")  # veth: "-1" or EINVAL
    return int(value) if value and value.isdigit() and int(value) > 0 else None


def _offloads(linux: str) -> dict[str, bool]:
    """ethtool -k as {feature: on}; empty when ethtool is missing."""
    try:
        text = subprocess.run(["ethtool", "-k", linux], capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    found = re.findall(r"^([\w-]+):\s+(on|off)", text, re.MULTILINE)
    return {name: state == "on" for name, state in found}


def _addresses(linux: str) -> list[dict]:
    try:
        text = subprocess.run(["ip", "-j", "addr", "show", "dev", linux], capture_output=True, text=True,
                              timeout=5).stdout
        return [a for entry in json.loads(text or "[]") for a in entry.get("addr_info", [])]
    except (OSError, subprocess.SubprocessError, ValueError):
        return []


def _tcp_snmp() -> dict[str, int]:
    """/proc/net/snmp's Tcp: line pair as {field: value}."""
    lines = [line.split() for line in (_read("/proc/net/snmp") or "").splitlines() if line.startswith("Tcp:")]
    if len(lines) < 2:
        return {}
    return {name: int(value) for name, value in zip(lines[0][1:], lines[1][1:]) if value.lstrip("-").isdigit()}


# -- the commands ----------------------------------------------------------------------------
def _yes(flag: bool | None) -> str:
    return "yes" if flag else "no"


def _lsattr_rows(rows: list[tuple[str, str, str]]) -> str:
    """lsattr -El's fixed columns: attribute, value, description, user-settable."""
    width = max(len(name) for name, _, _ in rows) + 1
    value_width = max(len(value) for _, value, _ in rows) + 1
    return "".join(f"{name:<{width}}{value:<{value_width}}{description:<50}True\n"
                   for name, value, description in rows)


def lsattr(argv: list[str]) -> str:
    if len(argv) != 2 or argv[0] != "-El":
        raise Usage("Usage: lsattr -El Name  (only this form is emulated)")
    device = argv[1]
    if device == "vioslpm0":
        return _vioslpm0()
    linux = linux_name(device)
    mtu = _read(f"{SYS_NET}/{linux}/mtu") or "1500"
    if device.startswith(("en", "et", "lo")):
        ipv4 = next((a for a in _addresses(linux) if a.get("family") == "inet"), {})
        netmask = str(ipaddress.ip_network(f"0.0.0.0/{ipv4['prefixlen']}").netmask) if ipv4 else ""
        state = "up" if _read(f"{SYS_NET}/{linux}/operstate") in ("up", "unknown") else "down"
        return _lsattr_rows([("mtu", mtu, "Maximum IP Packet Size for This Device"),
                             ("mtu_bypass", "off", "Enable/Disable largesend for virtual Ethernet"),
                             ("netaddr", ipv4.get("local", ""), "Internet Address"),
                             ("netmask", netmask, "Subnet Mask"),
                             ("state", state, "Current Interface Status")])
    offloads = _offloads(linux)
    speed = _speed_mbps(linux)
    return _lsattr_rows([
        ("chksum_offload", _yes(offloads.get("tx-checksumming", True)), "Enable transmit and receive checksum"),
        ("flow_ctrl", "no", "Enable transmit and receive flow control"),
        ("jumbo_frames", _yes(int(mtu) > 1500), "Enable transmit and receive jumbo frames"),
        ("large_receive", _yes(offloads.get("generic-receive-offload")), "Enable receive TCP segment aggregation"),
        ("large_send", _yes(offloads.get("tcp-segmentation-offload")), "Enable transmit TCP segmentation offload"),
        ("media_speed", f"{speed}_Full_Duplex" if speed else "Auto_Negotiation", "Requested media speed"),
    ])


# vioslpm0 as a VIOS 3.1 ships it (IBM's defaults); LPMBENCH_AIX_VIOSLPM0="name=value,..." changes attributes
# for a scenario (e.g. "tcp_port_low=40001,tcp_port_high=40010"), "name=" drops one (an older VIOS level).
VIOSLPM0 = {"auto_tunnel": ("1", "Auto Tunnel Enabled"),
            "cfg_msp_lpm_ops": ("8", "Number of concurrent LPM operations for this MSP"),
            "concurrency_lvl": ("4", "Concurrency level"),
            "lpm_msnap_succ": ("1", "Create mini-snap for successful migrations"),
            "max_lpm_vasi": ("1", "Maximum number of VASI adapters used for LPM"),
            "src_lun_val": ("off", "Source LUN validation"),
            "tcp_port_high": ("0", "TCP highest ephemeral port"),
            "tcp_port_low": ("0", "TCP lowest ephemeral port")}


def _vioslpm0() -> str:
    attributes = dict(VIOSLPM0)
    for pair in filter(None, os.environ.get("LPMBENCH_AIX_VIOSLPM0", "").split(",")):
        name, _, value = pair.partition("=")
        if value:
            attributes[name] = (value, attributes.get(name, ("", name))[1])
        else:
            attributes.pop(name, None)
    return _lsattr_rows([(name, value, description) for name, (value, description) in attributes.items()])


def lparstat(argv: list[str]) -> str:
    """lparstat -i of a shared uncapped partition whose virtual CPUs are this host's CPUs (the Linux kernel
    underneath has no entitlement: the agent's cgroup quota, when it has one, stands for it)."""
    if argv != ["-i"]:
        raise Usage("Usage: lparstat -i  (only this form is emulated)")
    cpus = len(os.sched_getaffinity(0))
    rows = [("Node Name", os.uname().nodename), ("Partition Name", os.uname().nodename), ("Partition Number", "1"),
            ("Type", "Shared-SMT-1"), ("Mode", "Uncapped"), ("Entitled Capacity", f"{cpus:.2f}"),
            ("Partition Group-ID", "32769"), ("Shared Pool ID", "0"), ("Online Virtual CPUs", str(cpus)),
            ("Maximum Virtual CPUs", str(cpus)), ("Minimum Virtual CPUs", "1"),
            ("Active CPUs in Pool", str(cpus))]
    return "".join(f"{name:<43}: {value}\n" for name, value in rows)


def _linux_tool(name: str) -> str:
    """The Linux tool of this name, not the stand-in of the same name that the personality put first on PATH."""
    stand_ins = os.environ.get(COMMANDS_ENV, "")
    path = os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep) if p and p != stand_ins)
    found = shutil.which(name, path=path)
    if found is None:
        raise Usage(f"{name}: not found")
    return found


def ping(argv: list[str]) -> str:
    """AIX's ping (-n, -c Count, -w Timeout, -a inet6, Host) run as Linux's, printed in AIX's format."""
    count, wait, host, family = "1", "1", None, "-4"
    args = iter(argv)
    for arg in args:
        if arg in ("-c", "-w", "-a"):
            value = next(args, "")
            count, wait = (value, wait) if arg == "-c" else (count, value) if arg == "-w" else (count, wait)
            family = "-6" if arg == "-a" and value == "inet6" else family
        elif arg != "-n":
            host = arg
    if host is None:
        raise Usage("Usage: ping [-n] [-c Count] [-w timeout] [-a addr_family] Host  (only these are emulated)")
    # AIX sends Count echoes a second apart and waits Timeout for each reply (iputils' -W; its -w would count
    # replies instead of echoes)
    text = subprocess.run([_linux_tool("ping"), family, "-n", "-c", count, "-i", "1", "-W", wait, host],
                          capture_output=True, text=True, timeout=int(count) + int(wait) + 5).stdout
    sent = re.search(r"(\d+) packets transmitted, (\d+) received", text)
    if not sent:
        raise Usage(f"0821-062 ping: host name {host} NOT FOUND")
    rtts = [float(t) for t in re.findall(r"time=([\d.]+) ms", text)]
    out = f"PING {host}: ({host}): 56 data bytes\n"
    out += "".join(f"64 bytes from {host}: icmp_seq={i} ttl=255 time={round(t)} ms\n" for i, t in enumerate(rtts))
    out += (f"\n----{host} PING Statistics----\n{sent.group(1)} packets transmitted, {sent.group(2)} packets "
            f"received, {100 - 100 * int(sent.group(2)) // max(1, int(sent.group(1)))}% packet loss\n")
    if rtts:
        out += f"round-trip min/avg/max = {round(min(rtts))}/{round(sum(rtts) / len(rtts))}/{round(max(rtts))} ms\n"
    return out


def _side_by_side(left: list[str], right: list[str]) -> str:
    rows = max(len(left), len(right))
    left, right = left + [""] * (rows - len(left)), right + [""] * (rows - len(right))
    return "".join(f"{a:<46}{b}".rstrip() + "\n" for a, b in zip(left, right))


def entstat(argv: list[str]) -> str:
    args = [a for a in argv if a != "-d"]
    if len(args) != 1 or not args[0].startswith("ent"):
        raise Usage("Usage: entstat [-d] Device_Name  (only this form is emulated)")
    adapter, linux = args[0], linux_name(args[0])
    speed = _speed_mbps(linux)
    offloads = _offloads(linux)
    mtu = int(_read(f"{SYS_NET}/{linux}/mtu") or "1500")
    link = "Up" if _read(f"{SYS_NET}/{linux}/carrier") == "1" else "Down"
    running = f"{speed} Mbps Full Duplex" if speed else "Unknown"

    def enabled(flag: bool | None) -> str:
        return "Enabled" if flag else "Disabled"

    return (
        "-------------------------------------------------------------\n"
        f"ETHERNET STATISTICS ({adapter}) :\n"
        f"Device Type: {DEVICE_TYPE}\n"
        f"Hardware Address: {_read(f'{SYS_NET}/{linux}/address') or '00:00:00:00:00:00'}\n\n"
        + _side_by_side(["Transmit Statistics:", "--------------------",
                         f"Packets: {_stat(linux, 'tx_packets')}", f"Bytes: {_stat(linux, 'tx_bytes')}",
                         f"Transmit Errors: {_stat(linux, 'tx_errors')}",
                         f"Packets Dropped: {_stat(linux, 'tx_dropped')}"],
                        ["Receive Statistics:", "-------------------",
                         f"Packets: {_stat(linux, 'rx_packets')}", f"Bytes: {_stat(linux, 'rx_bytes')}",
                         f"Receive Errors: {_stat(linux, 'rx_errors')}",
                         f"Packets Dropped: {_stat(linux, 'rx_dropped')}"])
        + "\nGeneral Statistics:\n-------------------\nNo mbuf Errors: 0\n\n"
        f"{DEVICE_TYPE} Specific Statistics:\n" + "-" * 60 + "\n"
        f"Link Status: {link}\n"
        f"Media Speed Running: {running}\n"
        f"Jumbo Frames: {enabled(mtu > 1500)}\n"
        "Transmit and Receive Flow Control Status: Disabled\n"
        f"Receive TCP Segment Aggregation: {enabled(offloads.get('generic-receive-offload'))}\n"
        f"TCP Segmentation Offload: {enabled(offloads.get('tcp-segmentation-offload'))}\n"
    )


def netstat(argv: list[str]) -> str:
    if argv == ["-s", "-p", "tcp"]:
        snmp = _tcp_snmp()
        if not snmp:
            raise Usage("netstat: /proc/net/snmp has no Tcp counters")
        # AIX counts data packets and ack-only packets apart; Linux has one OutSegs. Both lpmbench reads
        # (packets sent, data packets retransmitted) have a direct Linux counterpart.
        return (f"tcp:\n\t{snmp.get('OutSegs', 0)} packets sent\n"
                f"\t\t{snmp.get('OutSegs', 0)} data packets (0 bytes)\n"
                f"\t\t{snmp.get('RetransSegs', 0)} data packets (0 bytes) retransmitted\n"
                f"\t{snmp.get('InSegs', 0)} packets received\n")
    if argv == ["-rn"]:
        return _netstat_routes()
    raise Usage("Usage: netstat -s -p tcp | netstat -rn  (only these forms are emulated)")


def _netstat_routes() -> str:
    out = ["Routing tables", "Destination        Gateway           Flags   Refs     Use  If   Exp  Groups", "",
           "Route Tree for Protocol Family 2 (Internet):"]
    for family, flag in (("-4", "inet"), ("-6", "inet6")):
        if flag == "inet6":
            out += ["", "Route Tree for Protocol Family 24 (Internet v6):"]
        text = subprocess.run(["ip", "-j", family, "route", "show", "table", "main"], capture_output=True,
                              text=True, timeout=5).stdout
        for route in json.loads(text or "[]"):
            if route.get("dev") is None:
                continue
            out.append(f"{route.get('dst', 'default'):<18} {route.get('gateway', '0.0.0.0'):<17} U        0"
                       f"        0 {aix_name(route['dev'])}      -      -")
    return "\n".join(out) + "\n"


def route(argv: list[str]) -> str:
    args = [a for a in argv if a not in ("-n", "-inet6")]
    if len(args) != 2 or args[0] != "get":
        raise Usage("Usage: route -n get [-inet6] Destination  (only this form is emulated)")
    text = subprocess.run(["ip", "-j", "route", "get", args[1]], capture_output=True, text=True, timeout=5).stdout
    found = (json.loads(text or "[]") or [{}])[0]
    if "dev" not in found:
        raise Usage(f"route: writing to routing socket: Network is unreachable ({args[1]})")
    return (f"   route to: {args[1]}\ndestination: {found.get('dst', args[1])}\n"
            f"  interface: {aix_name(found['dev'])}\ninterf addr: {found.get('prefsrc', '')}\n"
            "      flags: <UP,HOST,DONE>\n")


def ioscli(argv: list[str]) -> str:
    if argv != ["ioslevel"]:
        raise Usage("ioscli: only ioslevel is emulated")
    return VIOS_LEVEL + "\n"


COMMANDS: dict[str, Callable[[list[str]], str]] = {
    "lsattr": lsattr, "entstat": entstat, "netstat": netstat, "route": route, "ioscli": ioscli,
    "lparstat": lparstat, "ping": ping,
}


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in COMMANDS:
        print(f"lpmbench AIX personality: no such command {argv[:1]}", file=sys.stderr)
        return 127
    try:
        out = COMMANDS[argv[0]](argv[1:])
    except Usage as exc:
        print(exc, file=sys.stderr)
        return 1
    sys.stdout.write(out)
    # AIX's ping exits non-zero when no echo came back, with its summary on stdout
    return 1 if argv[0] == "ping" and " 0 packets received" in out else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
