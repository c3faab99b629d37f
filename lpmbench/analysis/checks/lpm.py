"""Checks of LPM's own needs: partitions against the measured bandwidth and window, and a redundant MSP pair.
"""

from __future__ import annotations

from typing import Any

from lpmbench.analysis.checks.base import FAIL, PASS, UNKNOWN, WARN, check
from lpmbench.analysis.units import format_byte_rate, format_bytes, format_duration, format_rate_bps


def redundant_pairs_check(result: dict[str, Any]) -> dict[str, str]:
    pairs = result.get("pairs") or []
    name = "redundant MSP pair"
    if len(pairs) < 2:
        return check(name, WARN, "one MSP pair tested; a single MSP pair is a single point of failure and "
                                 "carries every migration alone",
                     "configure a second MSP on each frame (redundant MSP pairs carry memory in parallel) "
                     "and test both at once with 'lpmbench pair A B --redundant A2 B2'")
    bad = [f"{p['sender']} -> {p['receiver']}" for p in pairs[1:] if p["verdict"] == FAIL or p["partial"]]
    if bad:
        first = next(p for p in pairs[1:] if p["verdict"] == FAIL or p["partial"])
        reasons = "; ".join(f"{c['name']}: {c['detail']}" for c in first["failed_checks"][:3]) or first["error"]
        return check(name, FAIL, f"redundant pair {', '.join(bad)} failed: {reasons}",
                     "fix the redundant pair as you would the first; LPM spreads memory over both")
    return check(name, PASS, f"{len(pairs)} MSP pairs ran at once")


def _duration(seconds: float | None) -> str:
    return format_duration(seconds) if seconds is not None else "never"


def lpm_checks(result: dict[str, Any]) -> list[dict[str, str]]:
    """One check per partition given with --lpar: does it converge, and within the window?"""
    partitions = result.get("lpm")
    if partitions is None:
        return [check("LPM bandwidth for partitions", UNKNOWN,
                      "no partitions given; pass --lpar NAME:MEMORY[:DIRTY_RATE] (and --window) to judge them",
                      "")]
    model = result.get("lpm_model") or {}
    bandwidth = format_rate_bps(model.get("bandwidth_bps") or 0)
    out = []
    for part in partitions:
        name = f"LPM partition {part['name']}"
        what = (f"{format_bytes(part['memory_bytes'])} dirtied at {format_byte_rate(part['dirty_rate_Bps'])} "
                f"over {bandwidth}")
        if not part["converges"]:
            out.append(check(name, FAIL, f"{what}: pages are dirtied faster than they move; LPM would stall",
                             "raise the bandwidth (faster or redundant MSP pairs, jumbo frames) above the dirty "
                             "rate, or migrate when the partition is quieter"))
        elif part["fits_window"] is False:
            need = part["required_bps"]
            out.append(check(name, FAIL, f"{what}: about {_duration(part['predicted_seconds'])}, longer than the "
                             f"{_duration(part['window_s'])} window",
                             f"the window needs about {format_rate_bps(need)} between the MSPs" if need else
                             "no bandwidth meets this window at this dirty rate; widen the window"))
        elif part["pass_limit_reached"]:
            out.append(check(name, WARN, f"{what}: about {_duration(part['predicted_seconds'])}, but the dirty "
                             f"rate keeps {format_bytes(part['residual_bytes'])} for demand paging after resume",
                             "migrate at a quieter time or add bandwidth, to shorten the slow post-resume phase"))
        else:
            out.append(check(name, PASS, f"{what}: about {_duration(part['predicted_seconds'])} in "
                             f"{part['passes']} pass(es)"))
    return out
