"""Facts in words with units for the HTML report: no raw key, no bare number, "not known" where a fact is missing.
"""

from __future__ import annotations

import re
from typing import Any

from lpmbench.analysis.units import finite_or_none as number
from lpmbench.analysis.units import format_duration

_UNIT_SUFFIXES = (("_bps", " (bit/s)"), ("_Bps", " (bytes/s)"), ("_mbps", " (Mb/s)"), ("_ms", " (ms)"),
                  ("_us", " (µs)"), ("_s", " (seconds)"), ("_bytes", " (bytes)"), ("_percent", " (%)"))


def words(key: str) -> str:
    """A key no label was written for (added by a newer agent), in words: ``probe_elapsed_s`` reads
    "probe elapsed (seconds)". Never shown raw."""
    unit = ""
    for suffix, text in _UNIT_SUFFIXES:
        if key.endswith(suffix) and len(key) > len(suffix):
            key, unit = key[: -len(suffix)], text
            break
    return re.sub(r"[_\s]+", " ", key).strip() + unit


def fact(value: Any) -> str:
    """A fact for display (not yet escaped): None reads not known, booleans yes/no, dicts in words."""
    if value is None:
        return "not known"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, dict):
        return ", ".join(f"{words(str(k))} {fact(v)}" for k, v in value.items()) or "none"
    if isinstance(value, list):
        return ", ".join(fact(v) for v in value) or "none"
    return str(value)


def on_off(value: Any) -> str:
    return "not known" if value is None else ("on" if value else "off") if isinstance(value, bool) else fact(value)


def bytes_unit(value: Any) -> str:
    count = number(value)
    return "not known" if count is None else f"{int(count)} bytes"


def seconds(value: Any) -> str:
    seconds = number(value)
    if seconds is None:
        return "not known"
    return f"{seconds * 1000:.1f} ms" if seconds < 1 else format_duration(seconds)


def milliseconds(value: Any) -> str:
    ms = number(value)
    return "-" if ms is None else f"{ms:.3f} ms"


def speed(value: Any) -> str:
    mbps = number(value)
    if mbps is None:
        return "not known"
    return f"{mbps / 1000:g} Gb/s" if mbps >= 1000 else f"{mbps:g} Mb/s"


def percent(value: Any, digits: int = 0) -> str:
    share = number(value)
    return "not known" if share is None else f"{share * 100:.{digits}f} %"


def counter_name(name: str) -> str:
    """``rx_dropped`` reads "receive drops"."""
    direction, _, what = name.partition("_")
    side = {"rx": "receive", "tx": "transmit"}.get(direction)
    what = {"dropped": "drops"}.get(what, what)
    return f"{side} {words(what)}" if side and what else words(name)


def counters(value: Any) -> str:
    if not isinstance(value, dict) or not value:
        return "not known"
    return ", ".join(f"{counter_name(str(k))} {fact(v)}" for k, v in value.items())


def flow_control(value: Any) -> str:
    if not isinstance(value, dict) or all(value.get(k) is None for k in ("rx", "tx")):
        return "not known"
    return f"receive {on_off(value.get('rx'))}, transmit {on_off(value.get('tx'))}"
