"""Interface and TCP facts on AIX and VIOS (the Mover Service Partitions themselves).

Sources: ``route -n get`` / ``netstat -rn`` for the route, ``lsattr -El`` for adapter and
interface attributes (large_send, large_receive, jumbo_frames, flow_ctrl, media_speed; for a
Shared Ethernet Adapter largesend, real_adapter, virt_adapters), ``entstat -d`` for the running
link speed, errors and drops, ``netstat -s -p tcp`` for system-wide retransmits (AIX has no
per-socket TCP_INFO) and ``ioslevel`` for the VIOS level.

An interface enN (or etN) sits on the adapter entN. Parsers are pure functions of the command
text, separate from the functions that run the commands, so tests drive them with fixtures.
"""

from __future__ import annotations

import ipaddress
import os
import platform
import re
from typing import Any

from lpmbench.platform._tools import run_tool

__all__ = ["counters_snapshot", "interface_facts", "os_name", "route_interface",
           "tcp_system_counters"]

IOS_LEVEL_FILE = "/usr/ios/cli/ios.level"
IOSCLI = "/usr/ios/cli/ioscli"
COUNTER_NAMES = ("rx_errors", "tx_errors", "rx_dropped", "tx_dropped")
_COMMAND_TIMEOUT_S = 10.0
_NAME_RE = re.compile(r"^(en|et|ent|lo)(\d{1,4})$")
_SECTION_RE = re.compile(r"^ETHERNET STATISTICS \((\w+)\)\s*:", re.MULTILINE)
_SPEED_RE = re.compile(r"(\d+(?:\.\d+)?)\s*(Mbps|Gbps)\s+(Full|Half)(?:[\s_]+Duplex)?", re.I)
_ATTR_SPEED_RE = re.compile(r"^(\d+)_(Full|Half)_Duplex$", re.I)


# -- running tools -----------------------------------------------------------------------------
def _run_tool(argv: list[str]) -> str | None:
    return run_tool(argv, _COMMAND_TIMEOUT_S)


def split_name(name: str) -> tuple[str | None, str | None]:
    """(interface, adapter) for a name: "en3" -> ("en3", "ent3"), "ent3" -> ("en3", "ent3"),
    "lo0" -> ("lo0", None). Raises ValueError for anything else."""
    match = _NAME_RE.match(name) if isinstance(name, str) else None
    if not match:
        raise ValueError(f"not an AIX network interface or adapter name: {name!r}")
    kind, number = match.groups()
    if kind == "lo":
        return name, None
    interface = name if kind in ("en", "et") else f"en{number}"
    return interface, f"ent{number}"


# -- pure parsers: lsattr, entstat ---------------------------------------------------------------
def parse_lsattr(text: str) -> dict[str, str]:
    """`lsattr -El DEV` as {attribute: value}; an empty value (e.g. ctl_chan) gives "".

    Columns are padded to fixed widths, so a line whose second field starts right of the value
    column has no value: that second field is already the description.
    """
    rows = []
    for line in text.splitlines():
        match = re.match(r"^(\S+)(\s+)(\S+)", line)
        if match:
            rows.append((match.group(1), match.end(2), match.group(3)))
    if not rows:
        return {}
    value_column = min(start for _, start, _ in rows)
    return {name: (first if start == value_column else "") for name, start, first in rows}


def parse_media_speed(text: str | None) -> tuple[int | None, str | None]:
    """(Mbps, "full"/"half") from "10000 Mbps Full Duplex", "10 Gbps Full Duplex" or the
    lsattr form "1000_Full_Duplex"; (None, None) for Auto_Negotiation, Unknown or nothing."""
    if not text:
        return None, None
    text = text.strip()
    match = _ATTR_SPEED_RE.match(text)
    if match:
        return int(match.group(1)), match.group(2).lower()
    match = _SPEED_RE.search(text)
    if not match:
        return None, None
    value, unit, duplex = match.groups()
    factor = 1000 if unit.lower() == "gbps" else 1
    return int(float(value) * factor), duplex.lower()


def _enabled(text: str | None) -> bool | None:
    """yes/no, on/off, 1/0, Enabled/Disabled, True/False as a bool; None otherwise."""
    if text is None:
        return None
    word = text.strip().lower()
    if word in ("yes", "on", "1", "enabled", "true", "up"):
        return True
    if word in ("no", "off", "0", "disabled", "false", "down"):
        return False
    return None


def _key_values(lines: list[str]) -> dict[str, str]:
    result: dict[str, str] = {}
    for line in lines:
        key, sep, value = line.strip().partition(":")
        if sep and key and key not in result:
            result[key.strip()] = value.strip()
    return result


def _two_columns(section: str) -> tuple[dict[str, str], dict[str, str]]:
    """The side-by-side Transmit / Receive statistics of one entstat section."""
    lines = section.splitlines()
    header = next((i for i, line in enumerate(lines)
                   if line.startswith("Transmit Statistics:") and "Receive Statistics:" in line), None)
    if header is None:
        return {}, {}
    column = lines[header].index("Receive Statistics:")
    left, right = [], []
    for line in lines[header + 2:]:
        if line.startswith("General Statistics"):
            break
        left.append(line[:column])
        right.append(line[column:])
    return _key_values(left), _key_values(right)


def _count(stats: dict[str, str], key: str) -> int | None:
    value = stats.get(key, "")
    return int(value) if value.isdigit() else None


def _flow_control(fields: dict[str, str]) -> dict[str, bool | None]:
    both = _enabled(fields.get("Transmit and Receive Flow Control Status"))
    tx = _enabled(fields.get("Transmit Flow Control Status", fields.get("Transmit Flow Control")))
    rx = _enabled(fields.get("Receive Flow Control Status", fields.get("Receive Flow Control")))
    return {"rx": both if rx is None else rx, "tx": both if tx is None else tx}


def _parse_entstat_section(section: str) -> dict[str, Any]:
    tx, rx = _two_columns(section)
    fields = _key_values(section.splitlines())
    running = fields.get("Media Speed Running") or fields.get("Physical Port Speed")
    speed, duplex = parse_media_speed(running)
    link = fields.get("Link Status") or fields.get("Physical Port Link Status")
    return {
        "device_type": fields.get("Device Type"),
        "speed_mbps": speed,
        "duplex": duplex,
        "link_up": _enabled(link),
        "jumbo_frames": _enabled(fields.get("Jumbo Frames")),
        "large_send": _enabled(fields.get("TCP Segmentation Offload")),
        "large_receive": _enabled(fields.get("Receive TCP Segment Aggregation")),
        "flow_control": _flow_control(fields),
        "counters": {
            "rx_errors": _count(rx, "Receive Errors"),
            "tx_errors": _count(tx, "Transmit Errors"),
            "rx_dropped": _count(rx, "Packets Dropped"),
            "tx_dropped": _count(tx, "Packets Dropped"),
        },
    }


def parse_entstat(text: str) -> dict[str, dict[str, Any]]:
    """`entstat [-d] entN` as {adapter: facts}. An SEA's output holds one section for the SEA
    and one for each of its real and virtual adapters."""
    headers = list(_SECTION_RE.finditer(text))
    sections: dict[str, dict[str, Any]] = {}
    for index, header in enumerate(headers):
        end = headers[index + 1].start() if index + 1 < len(headers) else len(text)
        sections.setdefault(header.group(1), _parse_entstat_section(text[header.end():end]))
    return sections


# -- pure parsers: routes, TCP, levels ---------------------------------------------------------
def parse_route_get(text: str) -> str | None:
    """The "interface:" line of `route -n get ADDR`."""
    match = re.search(r"^\s*interface:\s*(\S+)", text, re.MULTILINE)
    return match.group(1) if match else None


def _route_network(destination: str, flags: str, ipv6: bool) -> ipaddress._BaseNetwork | None:
    if destination == "default":
        return ipaddress.ip_network("::/0" if ipv6 else "0.0.0.0/0")
    address, _, prefix = destination.split("%", 1)[0].partition("/")
    try:
        if not ipv6:
            octets = address.split(".")
            # netstat abbreviates networks: "10.20.30/24", "127/8"
            address = ".".join(octets + ["0"] * (4 - len(octets)))
            if not prefix:
                prefix = "32" if "H" in flags or len(octets) == 4 else str(8 * len(octets))
        elif not prefix:
            prefix = "128"
        return ipaddress.ip_network(f"{address}/{prefix}", strict=False)
    except ValueError:
        return None


def parse_netstat_rn(text: str) -> list[tuple[ipaddress._BaseNetwork, str]]:
    """`netstat -rn` as [(network, interface)] over both route trees."""
    routes = []
    ipv6 = False
    for line in text.splitlines():
        if line.startswith("Route Tree for Protocol Family"):
            ipv6 = "(Internet v6)" in line
            continue
        fields = line.split()
        if len(fields) < 6 or fields[0] in ("Destination", "Routing"):
            continue
        network = _route_network(fields[0], fields[2], ipv6)
        if network is not None:
            routes.append((network, fields[5]))
    return routes


def route_from_netstat(text: str, address: str) -> str | None:
    """Interface of the longest-prefix route to address in `netstat -rn` output."""
    target = ipaddress.ip_address(address.split("%", 1)[0])
    matches = [(net.prefixlen, iface) for net, iface in parse_netstat_rn(text)
               if net.version == target.version and target in net]
    return max(matches)[1] if matches else None


def parse_netstat_tcp(text: str) -> dict[str, int]:
    """`netstat -s -p tcp`: {"segments_out": packets sent, "retransmits": data packets
    retransmitted}. Raises ValueError when either line is missing."""
    sent = re.search(r"^\s*(\d+) packets? sent\s*$", text, re.MULTILINE)
    retrans = re.search(r"^\s*(\d+) data packets? \(\d+ bytes?\) retransmitted", text, re.MULTILINE)
    if not sent or not retrans:
        raise ValueError("netstat -s -p tcp text lacks 'packets sent' or 'retransmitted' lines")
    return {"segments_out": int(sent.group(1)), "retransmits": int(retrans.group(1))}


def parse_ioslevel(text: str | None) -> str | None:
    """The VIOS level, e.g. "3.1.4.31", from ioslevel output or /usr/ios/cli/ios.level."""
    match = re.search(r"\b(\d+(?:\.\d+){1,4})\b", text or "")
    return match.group(1) if match else None


def os_name_from(version: str, release: str, ioslevel: str | None) -> str:
    """"AIX 7.3", or "VIOS 3.1.4.31 (AIX 7.2)" on a Virtual I/O Server."""
    aix = f"AIX {version}.{release}"
    return f"VIOS {ioslevel} ({aix})" if ioslevel else aix


# -- putting facts together (pure) ---------------------------------------------------------------
def _all_of(*states: bool | None) -> bool | None:
    """False if any is False, True if any is True (and none False), None if none known."""
    known = [state for state in states if state is not None]
    return all(known) if known else None


def _first_known(*states: bool | None) -> bool | None:
    return next((state for state in states if state is not None), None)


def facts_from_outputs(name: str, adapter: str | None, *, adapter_attrs: str = "",
                       entstat: str = "", interface_attrs: str = "",
                       real_adapter_attrs: str = "") -> dict[str, Any]:
    """interface_facts from the texts of lsattr -El entN, entstat -d entN, lsattr -El enN and
    (for an SEA) lsattr -El of its real adapter. Missing texts give None facts."""
    attrs, if_attrs = parse_lsattr(adapter_attrs), parse_lsattr(interface_attrs)
    sections = parse_entstat(entstat)
    own = sections.get(adapter or "", {})
    real_name = attrs.get("real_adapter") or None
    physical = sections.get(real_name, {}) if real_name else own
    phys_attrs = parse_lsattr(real_adapter_attrs) if real_name else attrs
    speed, duplex = physical.get("speed_mbps"), physical.get("duplex")
    if speed is None:
        speed, duplex = parse_media_speed(phys_attrs.get("media_speed"))
    mtu = int(if_attrs["mtu"]) if if_attrs.get("mtu", "").isdigit() else None
    own_flow = physical.get("flow_control") or {}
    configured_flow = _enabled(phys_attrs.get("flow_ctrl"))
    device_type = own.get("device_type")
    return {
        "name": name,
        "speed_mbps": speed,
        "duplex": duplex,
        "mtu": mtu,
        "large_send": _large_send(attrs, phys_attrs, physical, if_attrs, bool(real_name)),
        "large_receive": _large_receive(attrs, phys_attrs, physical, bool(real_name)),
        "flow_control": {side: _first_known(own_flow.get(side), configured_flow)
                         for side in ("rx", "tx")},
        "jumbo_frames": _first_known(_enabled(attrs.get("jumbo_frames")),
                                     physical.get("jumbo_frames"),
                                     None if mtu is None else mtu > 1500),
        "virtual": _is_virtual(device_type, bool(real_name), adapter),
        "driver": device_type,
        "adapter": adapter,
        "real_adapter": real_name,
        "link_up": physical.get("link_up"),
        "counters": own.get("counters") or dict.fromkeys(COUNTER_NAMES),
    }


def _large_send(attrs: dict[str, str], phys_attrs: dict[str, str], physical: dict[str, Any],
                if_attrs: dict[str, str], is_sea: bool) -> bool | None:
    if is_sea:  # the SEA's largesend only helps if its real adapter segments too
        return _all_of(_enabled(attrs.get("largesend")), _enabled(phys_attrs.get("large_send")))
    # A virtual Ethernet adapter has no large_send; mtu_bypass on the interface stands for it.
    return _first_known(_enabled(attrs.get("large_send")), physical.get("large_send"),
                        _enabled(if_attrs.get("mtu_bypass")))


def _large_receive(attrs: dict[str, str], phys_attrs: dict[str, str], physical: dict[str, Any],
                   is_sea: bool) -> bool | None:
    if is_sea:
        return _all_of(_enabled(attrs.get("large_receive")),
                       _enabled(phys_attrs.get("large_receive")))
    return _first_known(_enabled(attrs.get("large_receive")), physical.get("large_receive"))


def _is_virtual(device_type: str | None, is_sea: bool, adapter: str | None) -> bool | None:
    if adapter is None:  # loopback
        return True
    if is_sea:
        return True
    if device_type is None:
        return None
    return "virtual" in device_type.lower() or "shared ethernet" in device_type.lower()


# -- public API --------------------------------------------------------------------------------
def route_interface(peer_address: str) -> str | None:
    """Name of the interface (e.g. "en0", "lo0") that carries traffic to the peer, or None."""
    try:
        ip = ipaddress.ip_address(peer_address.split("%", 1)[0])
    except ValueError:
        raise ValueError(f"not an IP address: {peer_address!r}") from None
    family = ["-inet6"] if ip.version == 6 else []
    out = _run_tool(["route", "-n", "get", *family, peer_address])
    found = parse_route_get(out) if out else None
    if found:
        return found
    table = _run_tool(["netstat", "-rn"])
    return route_from_netstat(table, peer_address) if table else None


def interface_facts(name: str) -> dict[str, Any]:
    """What AIX says about an interface (enN / etN / lo0) or adapter (entN)."""
    interface, adapter = split_name(name)
    adapter_attrs = _run_tool(["lsattr", "-El", adapter]) if adapter else None
    real_name = parse_lsattr(adapter_attrs or "").get("real_adapter")
    return facts_from_outputs(
        name, adapter,
        adapter_attrs=adapter_attrs or "",
        entstat=(_run_tool(["entstat", "-d", adapter]) if adapter else None) or "",
        interface_attrs=_run_tool(["lsattr", "-El", interface or name]) or "",
        real_adapter_attrs=(_run_tool(["lsattr", "-El", real_name]) if real_name else None) or "",
    )


def counters_snapshot(name: str) -> dict[str, int | None]:
    """Error and drop counters of the adapter under name (None where entstat cannot tell)."""
    _, adapter = split_name(name)
    if adapter is None:  # loopback: no adapter, nothing on a wire to lose
        return dict.fromkeys(COUNTER_NAMES, 0)
    out = _run_tool(["entstat", adapter]) or ""
    counters = parse_entstat(out).get(adapter, {}).get("counters")
    return counters or dict.fromkeys(COUNTER_NAMES)


def tcp_system_counters() -> dict[str, int]:
    """System-wide TCP segments sent and data segments retransmitted (`netstat -s -p tcp`)."""
    out = _run_tool(["netstat", "-s", "-p", "tcp"])
    if out is None:
        raise RuntimeError("netstat -s -p tcp failed or is missing: is this AIX?")
    return parse_netstat_tcp(out)


def _ioslevel() -> str | None:
    try:
        with open(IOS_LEVEL_FILE, encoding="ascii") as handle:
            return parse_ioslevel(handle.read())
    except OSError:
        pass
    return parse_ioslevel(_run_tool([IOSCLI, "ioslevel"])) if os.path.exists(IOSCLI) else None


def os_name() -> str:
    """E.g. "AIX 7.3", or "VIOS 3.1.4.31 (AIX 7.2)" where ioslevel exists."""
    uname = platform.uname()  # on AIX: version "7", release "3"
    return os_name_from(uname.version, uname.release, _ioslevel())
