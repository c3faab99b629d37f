"""Aggregated links (Linux bond, AIX EtherChannel / 802.3ad) and equal-cost multipath routes under the MSPs'
interfaces: did the run's streams use every member? A TCP flow hashes onto one member, so four streams on a
2 x 10 Gb aggregate can all land on one link, and LPM gets half of what the aggregate promises.

The sender's bytes per member are what it transmitted (its hash decides), the receiver's what it received
(the switch's or router's hash decides).
"""

from __future__ import annotations

from typing import Any

from lpmbench.analysis.checks.base import PASS, UNKNOWN, WARN, check
from lpmbench.analysis.checks.msp import ROLES, host_label, msp_fact, number

NAME = "streams spread over the aggregate's members"
USED_SHARE = 0.1  # a member that carried at least 10 % of the run's bytes was used by the streams
DIRECTION = {"sender": "tx", "receiver": "rx"}
REMEDY = {
    "bond": "set the bond's transmit hash to layer3+4 (xmit_hash_policy=layer3+4) and the switch's port-channel "
            "hash to source and destination ports",
    "etherchannel": "hash on ports: chdev -dev {name} -attr hash_mode=src_dst_port (EtherChannel in standard or "
                    "8023ad mode), and the switch's port-channel hash on source and destination ports",
    "ecmp": "hash multipath routes on ports: sysctl -w net.ipv4.fib_multipath_hash_policy=1 (IPv6: "
            "net.ipv6.fib_multipath_hash_policy=1) on the sending host and on every router between the MSPs",
}
BACKUP_MODES = ("active-backup", "fault-tolerance", "netif_backup")


def _active_members(facts: dict[str, Any]) -> list[str]:
    mode = str(facts.get("mode") or "").lower()
    members = [m for m in facts.get("members") or [] if isinstance(m, dict) and isinstance(m.get("name"), str)]
    active = [m["name"] for m in members if m.get("role") != "backup" and m.get("up") is not False]
    return active[:1] if any(b in mode for b in BACKUP_MODES) else active  # one carries, the rest stand by


def spread(result: dict[str, Any], role: str) -> dict[str, Any] | None:
    """{"kind", "name", "present", "used", "bytes": {member: bytes}} of one side's aggregate over the run, or
    None when that side has no aggregate; "bytes" is None when the member counters were not readable."""
    facts = msp_fact(result, role, "aggregate")
    if not facts or not isinstance(facts.get("kind"), str) or facts["kind"] not in REMEDY:
        return None
    active = _active_members(facts)
    moved = facts.get("bytes") if isinstance(facts.get("bytes"), dict) else {}
    direction = DIRECTION[role]
    per_member = {name: number(moved[name].get(direction)) if isinstance(moved.get(name), dict) else None
                  for name in active}
    if not active or any(v is None for v in per_member.values()):
        return {"kind": facts["kind"], "name": facts.get("name"), "present": len(active), "used": None,
                "bytes": None, "facts": facts}
    total = sum(per_member.values()) or 1.0  # type: ignore[arg-type]
    used = sum(1 for v in per_member.values() if v / total >= USED_SHARE)  # type: ignore[operator]
    return {"kind": facts["kind"], "name": facts.get("name"), "present": len(active), "used": used,
            "bytes": per_member, "facts": facts}


def _describe(result: dict[str, Any], role: str, found: dict[str, Any]) -> str:
    facts = found["facts"]
    kind = {"bond": "bond", "etherchannel": "EtherChannel", "ecmp": "multipath route"}.get(found["kind"], "aggregate")
    knob = {"bond": "xmit_hash_policy", "etherchannel": "hash_mode", "ecmp": "fib_multipath_hash_policy"}
    head = (f"{host_label(result, role)} {kind} {found['name']} ({knob.get(found['kind'], 'hash')} "
            f"{facts.get('hash_policy') or 'not reported'})")
    if found["bytes"] is None:
        return f"{head}: member counters not readable"
    total = sum(found["bytes"].values()) or 1.0
    shares = ", ".join(f"{name} {value / 1e9:.2f} GB ({value / total:.0%})" for name, value in found["bytes"].items())
    parts = "paths" if found["kind"] == "ecmp" else "members"
    return f"{head}: {found['used']} of {found['present']} {parts} carried the run ({shares})"


def _none_found(result: dict[str, Any]) -> dict[str, str]:
    """No aggregate on either side: a fact when both agents reported one (null), unknown otherwise."""
    silent = [host_label(result, role) for role in ROLES
              if not isinstance((result.get(role) or {}).get("msp"), dict)]
    if silent:
        return check(NAME, UNKNOWN, f"no aggregate facts from the {' and '.join(silent)} (older agent?)")
    errors = [f"{host_label(result, role)}: {facts['error']}" for role in ROLES
              for facts in [msp_fact(result, role, "aggregate")] if facts and facts.get("error")]
    if errors:
        return check(NAME, UNKNOWN, "; ".join(errors))
    return check(NAME, PASS, "no aggregated link or multipath route under either MSP's interface: one link, "
                             "nothing to spread")


def aggregate_check(result: dict[str, Any]) -> dict[str, str]:
    sides = [(role, spread(result, role)) for role in ROLES]
    found = [(role, s) for role, s in sides if s is not None]
    if not found:
        return _none_found(result)
    detail = "; ".join(_describe(result, role, s) for role, s in found)
    short = [(role, s) for role, s in found if s["used"] is not None and s["used"] < s["present"]]
    if short:
        streams = (result.get("config") or {}).get("streams")
        remedies = {REMEDY.get(s["kind"], "").format(name=s["name"]) for _, s in short}
        return check(NAME, WARN, detail + f": {streams} streams left members idle, so LPM gets less than the "
                                          f"aggregate's capacity", "; ".join(sorted(remedies)) + "; or more streams "
                     "(concurrent migrations, redundant MSP pairs) so the hash has more flows to spread")
    if any(s["used"] is None for _, s in found):
        return check(NAME, UNKNOWN, detail)
    return check(NAME, PASS, detail)
