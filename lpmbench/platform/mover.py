"""The VIOS partition-mobility mover's settings: the vioslpm0 pseudo-device (``lsattr -El vioslpm0``).

IBM ("Specifying the attributes for a partition mobility operation by using the VIOS"): ``cfg_msp_lpm_ops``
(1-8, default 8 since VIOS 2.2.2.0; 4 on a single 1 Gb adapter) caps concurrent migrations on the MSP;
``concurrency_lvl`` (1-5, default 4 since VIOS 2.2.4; lower numbers give each migration more resources, i.e.
more mover threads) sets how hard one migration pushes; ``tcp_port_low`` / ``tcp_port_high`` (0: any
ephemeral port) pin the two ports each migration takes (VIOS 2.2.2.0 or later). A host that is not a VIOS has
no vioslpm0: its facts say so, and the checks that need them are UNKNOWN.
"""

from __future__ import annotations

from typing import Any

from lpmbench.platform._tools import run_tool

ATTRIBUTES = ("concurrency_lvl", "cfg_msp_lpm_ops", "tcp_port_low", "tcp_port_high")
NO_MOVER = "no VIOS mover on this host (vioslpm0 exists only on a Virtual I/O Server)"
_COMMAND_TIMEOUT_S = 10.0


def facts_from_lsattr(text: str) -> dict[str, Any]:
    """The mover facts from ``lsattr -El vioslpm0`` text; an attribute this VIOS level lacks (older levels
    have no concurrency_lvl) or a value that is not a number is None, and listed in ``missing``."""
    from lpmbench.platform.aix import parse_lsattr  # the lsattr column rules live with the other AIX parsers

    attrs = parse_lsattr(text)
    out: dict[str, Any] = {"available": bool(attrs), "reason": None if attrs else "lsattr -El vioslpm0 printed "
                           "no attributes", "source": "lsattr -El vioslpm0"}
    missing = []
    for name in ATTRIBUTES:
        value = attrs.get(name, "")
        out[name] = int(value) if value.isdigit() else None
        if out[name] is None:
            missing.append(name)
    out["missing"] = missing
    return out


def mover_facts(aix: bool) -> dict[str, Any]:
    """vioslpm0's settings on a VIOS; elsewhere (or without the device) available False with the reason."""
    if not aix:
        return {"available": False, "reason": NO_MOVER, "source": None}
    text = run_tool(["lsattr", "-El", "vioslpm0"], _COMMAND_TIMEOUT_S)
    if text is None:
        return {"available": False, "reason": f"lsattr -El vioslpm0 failed: {NO_MOVER}", "source": None}
    return facts_from_lsattr(text)


def pinned_port_range(facts: dict[str, Any]) -> tuple[int, int] | None:
    """LPM's own data ports when vioslpm0 pins them (tcp_port_low / tcp_port_high, both non-zero), else None
    (0 means LPM takes any ephemeral port)."""
    low, high = facts.get("tcp_port_low"), facts.get("tcp_port_high")
    if facts.get("available") and isinstance(low, int) and isinstance(high, int) and 0 < low <= high <= 65535:
        return low, high
    return None
