"""Aggregated links and equal-cost paths toward the peer, and how a run's bytes spread over them.

A TCP flow hashes onto one member of an aggregate (or one path of an equal-cost multipath route), so a few
streams can all land on one link. The audit reads the members before and after the run and reports the bytes
each carried.

- Linux bond: /proc/net/bonding/BOND ("Bonding Mode", "Transmit Hash Policy", "Currently Active Slave",
  one "Slave Interface" block per member with its "MII Status"), else sysfs (bonding/mode, xmit_hash_policy,
  slaves, active_slave). Counters: /sys/class/net/MEMBER/statistics/{tx,rx}_bytes.
- AIX EtherChannel / IEEE 802.3ad link aggregation: ``lsattr -El entN`` of the pseudo-adapter
  (``adapter_names`` the members, ``backup_adapter`` the standby or NONE, ``mode`` standard / round_robin /
  netif_backup / 8023ad, ``hash_mode`` default / src_port / dst_port / src_dst_port), bytes from the per-member
  sections of ``entstat -d entN``.
- Linux ECMP: the route to the peer with ``nexthops`` in ``ip -j route show`` (``ip route get`` names one
  path only). AIX multipath routes are not read.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
from typing import Any

from lpmbench.platform._tools import read_text, run_tool

SYS_NET = "/sys/class/net"
PROC_BONDING = "/proc/net/bonding"
_COMMAND_TIMEOUT_S = 10.0


# -- Linux bonds ---------------------------------------------------------------------------------------------
def parse_proc_bonding(text: str) -> dict[str, Any]:
    """/proc/net/bonding/BOND as {"mode", "hash_policy", "members": [{"name", "up", "role"}]}."""
    head, *blocks = re.split(r"^Slave Interface:\s*", text, flags=re.MULTILINE)
    fields = dict(_colon_fields(head))
    active = fields.get("Currently Active Slave")
    members = []
    for block in blocks:
        name = block.splitlines()[0].strip()
        status = dict(_colon_fields(block)).get("MII Status")
        backup = bool(active) and active != "None" and name != active
        members.append({"name": name, "up": None if status is None else status == "up",
                        "role": "backup" if backup else "active"})
    policy = fields.get("Transmit Hash Policy")
    return {"kind": "bond", "mode": fields.get("Bonding Mode"),
            "hash_policy": policy.split(" (")[0] if policy else None, "members": members}


def _colon_fields(text: str) -> list[tuple[str, str]]:
    out = []
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip():
            out.append((key.strip(), value.strip()))
    return out


def bond_from_sysfs(base: str) -> dict[str, Any] | None:
    """A bond from /sys/class/net/BOND/bonding (when /proc/net/bonding is not readable)."""
    slaves = read_text(os.path.join(base, "bonding", "slaves"))
    if slaves is None:
        return None
    active = read_text(os.path.join(base, "bonding", "active_slave")) or ""
    mode, policy = (read_text(os.path.join(base, "bonding", n)) for n in ("mode", "xmit_hash_policy"))
    members = [{"name": name, "up": read_text(os.path.join(SYS_NET, name, "operstate")) == "up",
                "role": "backup" if active and name != active else "active"} for name in slaves.split()]
    return {"kind": "bond", "mode": mode.split()[0] if mode else None,
            "hash_policy": policy.split()[0] if policy else None, "members": members}


def linux_bond(name: str) -> dict[str, Any] | None:
    text = read_text(os.path.join(PROC_BONDING, name))
    if text:
        return parse_proc_bonding(text)
    return bond_from_sysfs(os.path.join(SYS_NET, name))


# -- Linux ECMP ----------------------------------------------------------------------------------------------
def _route_network(route: dict[str, Any], ipv6: bool) -> ipaddress._BaseNetwork | None:
    dst = route.get("dst")
    if dst == "default":
        return ipaddress.ip_network("::/0" if ipv6 else "0.0.0.0/0")
    try:
        return ipaddress.ip_network(str(dst), strict=False)
    except ValueError:
        return None


def parse_multipath(route_json: str, address: str) -> list[str]:
    """The egress devices of the longest-prefix route to address in ``ip -j route show`` output, when that
    route has nexthops (ECMP); [] for a single-path route or none."""
    try:
        routes = json.loads(route_json or "[]")
    except json.JSONDecodeError:
        return []
    target = ipaddress.ip_address(address.split("%", 1)[0])
    best: tuple[int, list[str]] = (-1, [])
    for route in routes if isinstance(routes, list) else []:
        network = _route_network(route, target.version == 6) if isinstance(route, dict) else None
        if network is None or network.version != target.version or target not in network:
            continue
        if network.prefixlen > best[0]:
            hops = route.get("nexthops") or []
            best = (network.prefixlen, [h["dev"] for h in hops if isinstance(h, dict) and h.get("dev")])
    return best[1]


def linux_ecmp(address: str) -> dict[str, Any] | None:
    family = "-6" if ipaddress.ip_address(address.split("%", 1)[0]).version == 6 else "-4"
    devices = parse_multipath(run_tool(["ip", "-j", family, "route", "show"], _COMMAND_TIMEOUT_S) or "", address)
    if len(devices) < 2:
        return None
    policy = read_text(f"/proc/sys/net/ipv{family[1]}/fib_multipath_hash_policy")
    return {"kind": "ecmp", "mode": None, "hash_policy": policy,
            "members": [{"name": dev, "up": read_text(os.path.join(SYS_NET, dev, "operstate")) in ("up", "unknown"),
                         "role": "active"} for dev in devices]}


def linux_bytes(members: list[str]) -> dict[str, dict[str, int | None]]:
    out = {}
    for name in members:
        values = {d: read_text(os.path.join(SYS_NET, name, "statistics", f"{d}_bytes")) for d in ("tx", "rx")}
        out[name] = {d: int(v) if v and v.isdigit() else None for d, v in values.items()}
    return out


# -- AIX EtherChannel ----------------------------------------------------------------------------------------
def etherchannel_from_lsattr(attrs: dict[str, str]) -> dict[str, Any] | None:
    """The EtherChannel facts of a pseudo-adapter's lsattr attributes; None for an adapter that is not one."""
    names = attrs.get("adapter_names")
    if not names:
        return None
    backup = attrs.get("backup_adapter", "")
    members = [{"name": n, "up": None, "role": "active"} for n in names.split(",") if n]
    if backup and backup.upper() != "NONE":
        members.append({"name": backup, "up": None, "role": "backup"})
    return {"kind": "etherchannel", "mode": attrs.get("mode") or None, "hash_policy": attrs.get("hash_mode") or None,
            "members": members}


def parse_entstat_bytes(text: str) -> dict[str, dict[str, int | None]]:
    """{adapter: {"tx", "rx"}} bytes of each "ETHERNET STATISTICS (entN)" section of ``entstat [-d]`` (an
    EtherChannel prints one for itself and one per member). The Transmit column is left of "Receive
    Statistics:", the Receive column right of it."""
    out: dict[str, dict[str, int | None]] = {}
    sections = re.split(r"^ETHERNET STATISTICS \((\w+)\)\s*:", text, flags=re.MULTILINE)
    for name, body in zip(sections[1::2], sections[2::2]):
        if name not in out:
            out[name] = _section_bytes(body)
    return out


def _section_bytes(body: str) -> dict[str, int | None]:
    lines = body.splitlines()
    header = next((line for line in lines if "Receive Statistics:" in line), None)
    found: dict[str, int | None] = {"tx": None, "rx": None}
    if header is None:
        return found
    column = header.index("Receive Statistics:")
    for line in lines:
        if line.startswith("General Statistics"):
            break
        for side, part in (("tx", line[:column]), ("rx", line[column:])):
            match = re.match(r"^\s*Bytes:\s*(\d+)", part)
            if match and found[side] is None:
                found[side] = int(match.group(1))
    return found


def aix_etherchannel(adapter: str) -> dict[str, Any] | None:
    from lpmbench.platform.aix import parse_lsattr

    return etherchannel_from_lsattr(parse_lsattr(run_tool(["lsattr", "-El", adapter], _COMMAND_TIMEOUT_S) or ""))


def aix_bytes(adapter: str, members: list[str]) -> dict[str, dict[str, int | None]]:
    sections = parse_entstat_bytes(run_tool(["entstat", "-d", adapter], _COMMAND_TIMEOUT_S) or "")
    return {name: sections.get(name, {"tx": None, "rx": None}) for name in members}


# -- the audit -----------------------------------------------------------------------------------------------
class SpreadAudit:
    """The aggregate or ECMP route under the interface toward the peer; member bytes at start and finish.

    Blocking (sysfs, ip, lsattr, entstat): run from the audit thread. Never raises.
    """

    def __init__(self, aix: bool) -> None:
        self.aix = aix
        self.facts: dict[str, Any] | None = None
        self._adapter: str | None = None
        self._start: dict[str, dict[str, int | None]] = {}

    def start(self, interface: str, peer_address: str) -> None:
        try:
            self.facts = self._describe(interface, peer_address)
            if self.facts is not None:
                self._start = self._bytes()
        except Exception as exc:  # noqa: BLE001 - an odd bond or route table must not fail the run
            self.facts = {"kind": None, "error": f"aggregate audit failed: {exc}"}

    def _describe(self, interface: str, peer_address: str) -> dict[str, Any] | None:
        if self.aix:
            from lpmbench.platform.aix import split_name

            self._adapter = split_name(interface)[1]
            found = aix_etherchannel(self._adapter) if self._adapter else None
        else:
            found = linux_ecmp(peer_address) or linux_bond(interface)
        if found is not None:
            found["name"] = self._adapter or (interface if found["kind"] == "bond" else f"to {peer_address}")
        return found

    def _bytes(self) -> dict[str, dict[str, int | None]]:
        names = [m["name"] for m in (self.facts or {}).get("members", [])]
        return aix_bytes(self._adapter or "", names) if self.aix else linux_bytes(names)

    def finish(self) -> dict[str, Any] | None:
        """The facts with each member's bytes moved since start ({"tx", "rx"}, None where unreadable)."""
        if not self.facts or not self.facts.get("members"):
            return self.facts
        try:
            after = self._bytes()
        except Exception as exc:  # noqa: BLE001 - see start()
            return {**self.facts, "error": f"member counters unreadable: {exc}"}
        spread = {}
        for name, now in after.items():
            before = self._start.get(name, {})
            spread[name] = {d: now[d] - before[d] if isinstance(now.get(d), int) and isinstance(before.get(d), int)
                            else None for d in ("tx", "rx")}
        return {**self.facts, "bytes": spread}
