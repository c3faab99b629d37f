"""The VIOS mover's settings (vioslpm0) against the run: the stream count, the concurrent migrations the link
can carry, and the LPM port range. Source: IBM, "Specifying the attributes for a partition mobility operation
by using the VIOS" and "Configuring the VIOS firewall for partition mobility".

On hosts without vioslpm0 (Linux, AIX that is not a VIOS) each check is UNKNOWN with the reason.
"""

from __future__ import annotations

import re
from typing import Any

from lpmbench.analysis.checks.base import PASS, UNKNOWN, WARN, check
from lpmbench.analysis.checks.msp import ROLES, host_label, msp_fact

DEFAULT_CONCURRENCY = 4  # vioslpm0 concurrency_lvl default since VIOS 2.2.4
MODELLED_STREAMS = 4  # lpmbench's model of one migration's mover at the default level (an assumption, docs/vios.md)
SINGLE_1GB_OPS = 4  # IBM: cfg_msp_lpm_ops 4 on a VIOS with a single 1 Gb adapter
TEN_GB_MBPS = 10_000
HMC_CHOOSES_FROM = (3, 1, 2)  # from VIOS 3.1.2+ (with HMC 9.2.950+): leave concurrency_lvl at 4, the HMC sets it


def _movers(result: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(role, m) for role in ROLES for m in [msp_fact(result, role, "mover")] if m and m.get("available")]


def _int(mover: dict[str, Any], key: str) -> int | None:
    value = mover.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _vios_level(result: dict[str, Any], role: str) -> tuple[int, ...] | None:
    match = re.match(r"^VIOS (\d+(?:\.\d+)*)", str((result.get(role) or {}).get("os") or ""))
    return tuple(int(p) for p in match.group(1).split(".")) if match else None


def _no_mover(result: dict[str, Any]) -> str:
    reasons = [str((msp_fact(result, role, "mover") or {}).get("reason") or "no mover facts reported")
               for role in ROLES]
    if reasons[0] == reasons[1]:
        return f"both MSPs: {reasons[0]}"
    return "; ".join(f"{host_label(result, role)}: {reason}" for role, reason in zip(ROLES, reasons))


def _level_advice(result: dict[str, Any], role: str) -> str:
    level = _vios_level(result, role)
    if level is not None and level[:3] >= HMC_CHOOSES_FROM:
        return ("IBM: on VIOS 3.1.2 and later with HMC 9.2.950 or later leave concurrency_lvl at 4 and let the HMC "
                "choose per partition: chdev -dev vioslpm0 -attr concurrency_lvl=4")
    return "IBM recommends the default for most migrations: chdev -dev vioslpm0 -attr concurrency_lvl=4"


def streams_match_check(result: dict[str, Any]) -> dict[str, str]:
    """The streams tested stand for what the mover will run (concurrency_lvl)."""
    name = "streams match the LPM mover (vioslpm0)"
    movers = _movers(result)
    if not movers:
        return check(name, UNKNOWN, _no_mover(result))
    streams = (result.get("config") or {}).get("streams")
    off_default = [(role, _int(m, "concurrency_lvl")) for role, m in movers
                   if _int(m, "concurrency_lvl") not in (None, DEFAULT_CONCURRENCY)]
    if off_default:
        role, level = off_default[0]
        return check(name, WARN, f"{host_label(result, role)} has concurrency_lvl {level} (default "
                                 f"{DEFAULT_CONCURRENCY}; lower levels give each migration more mover threads, higher "
                                 f"fewer): the {streams} streams tested stand for the default level, not this one",
                     _level_advice(result, role))
    levels = ", ".join(f"{host_label(result, r)} " + (f"concurrency_lvl {_int(m, 'concurrency_lvl')}"
                                                      if _int(m, "concurrency_lvl") else "without concurrency_lvl "
                                                      "(VIOS before 2.2.4: one level)") for r, m in movers)
    if streams != MODELLED_STREAMS:
        return check(name, WARN, f"{streams} streams tested (--streams overrode the default), but at {levels} "
                                 f"lpmbench models one migration's mover with {MODELLED_STREAMS}",
                     f"run with --streams {MODELLED_STREAMS} to test what one migration does (more streams stand for "
                     f"concurrent migrations)")
    return check(name, PASS, f"{streams} streams, as the mover runs at {levels}")


def _link_speed(result: dict[str, Any], role: str) -> int | None:
    speed = ((result.get("interfaces") or {}).get(role) or {}).get("speed_mbps")
    return speed if isinstance(speed, int) and not isinstance(speed, bool) and speed > 0 else None


def lpm_ops_check(result: dict[str, Any]) -> dict[str, str]:
    """cfg_msp_lpm_ops fits the MSP's link: IBM says 4 on a single 1 Gb adapter (8, the default, at 10 Gb)."""
    name = "concurrent migrations fit the link (cfg_msp_lpm_ops)"
    movers = _movers(result)
    if not movers:
        return check(name, UNKNOWN, _no_mover(result))
    known = [(role, m, _int(m, "cfg_msp_lpm_ops"), _link_speed(result, role)) for role, m in movers]
    too_many = [(role, ops, speed) for role, _, ops, speed in known
                if ops is not None and speed is not None and speed < TEN_GB_MBPS and ops > SINGLE_1GB_OPS]
    if too_many:
        return check(name, WARN, "; ".join(f"{host_label(result, role)} allows {ops} concurrent migrations over a "
                                           f"{speed} Mb/s link" for role, ops, speed in too_many),
                     f"IBM: on a single 1 Gb adapter allow {SINGLE_1GB_OPS}: chdev -dev vioslpm0 -attr "
                     f"cfg_msp_lpm_ops={SINGLE_1GB_OPS} (or give the MSP a 10 Gb link); concurrent migrations share "
                     f"the link, so each converges slower")
    unknown = [f"{host_label(result, role)}: " + ("cfg_msp_lpm_ops not reported" if ops is None else "link speed "
                                                   "not known") for role, _, ops, speed in known
               if ops is None or speed is None]
    if unknown:
        return check(name, UNKNOWN, "; ".join(unknown))
    return check(name, PASS, "; ".join(f"{host_label(result, role)}: {ops} concurrent migrations over {speed} Mb/s"
                                       for role, _, ops, speed in known))


def port_range_check(result: dict[str, Any]) -> dict[str, str]:
    """When the receiving MSP pins LPM's ports (tcp_port_low / high), the run should cross the same firewall
    rules: the receiver's data port should come from that range."""
    name = "LPM port range tested (vioslpm0)"
    mover = msp_fact(result, "receiver", "mover")
    if not mover or not mover.get("available"):
        return check(name, UNKNOWN, f"{host_label(result, 'receiver')}: "
                                    f"{(mover or {}).get('reason') or 'no mover facts reported'}")
    low, high = _int(mover, "tcp_port_low"), _int(mover, "tcp_port_high")
    info = result.get("data_port") or {}
    port, span = info.get("port"), info.get("range")
    tested = f"data port {port}" + (f" from {span[0]}-{span[1]}" if isinstance(span, list) and len(span) == 2 else "")
    if not low or not high:
        return check(name, PASS, f"the receiving MSP lets LPM take any ephemeral port (tcp_port_low/high 0); the run "
                                 f"used {tested}")
    if isinstance(port, int) and low <= port <= high:
        return check(name, PASS, f"the run used {tested}, inside LPM's pinned range {low}-{high}")
    return check(name, WARN, f"{host_label(result, 'receiver')} pins LPM to ports {low}-{high}, but the run used "
                             f"{tested}: the firewall rules LPM meets were not tested",
                 f"start the receiving agent with --data-ports {low}-{high} so the streams cross the rules LPM's "
                 f"ports meet")
