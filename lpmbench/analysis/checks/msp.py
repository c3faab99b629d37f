"""Reading what each agent reported about its MSP (``sender.msp`` / ``receiver.msp``: ping, vioslpm0, CPU,
aggregate; docs/result-contract.md). Agents may be other versions or hostile: only dicts are trusted, and
each rule checks the types of the values it uses."""

from __future__ import annotations

from typing import Any

ROLES = ("sender", "receiver")


def msp_fact(result: dict[str, Any], role: str, key: str) -> dict[str, Any] | None:
    """``result[role]["msp"][key]`` when it is a dict, else None (an older agent, a missing fact)."""
    side = result.get(role)
    msp = side.get("msp") if isinstance(side, dict) else None
    value = msp.get(key) if isinstance(msp, dict) else None
    return value if isinstance(value, dict) else None


def host_label(result: dict[str, Any], role: str) -> str:
    side = result.get(role) or {}
    return f"{role} {side.get('host') or side.get('hostname') or '?'}"


def number(value: Any) -> float | None:
    """A finite, non-negative number, else None (bools are not numbers here)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if value >= 0 and value == value and value != float("inf") else None
