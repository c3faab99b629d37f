"""Checks of LPM's own needs: each partition against the measured bandwidth and its window (the redundant MSP
pair is checks/redundancy.py)."""

from __future__ import annotations

from typing import Any

from lpmbench.analysis import lpm
from lpmbench.analysis.checks.base import FAIL, PASS, UNKNOWN, WARN, check
from lpmbench.analysis.checks.transfer import cap_set_the_pace, rate_cap_text
from lpmbench.analysis.units import finite_or_none, format_byte_rate, format_bytes, format_duration, format_rate_bps


def _duration(seconds: float | None) -> str:
    return format_duration(seconds) if seconds is not None else "never"


def outlook_bandwidth(result: dict[str, Any]) -> float | None:
    """The bandwidth LPM's outlook is judged on: the measured goodput (redundant pairs added up), unless a
    send-rate cap set the pace. Then it is what the link could carry (the wire limit of a single pair), or None
    when that is not known: a capped goodput says what the cap allowed, not what a migration would get."""
    measured = result.get("aggregate_goodput_bps") or result.get("goodput_bps")
    if not cap_set_the_pace(result):
        return measured
    several_pairs = len(result.get("pairs") or []) > 1  # the wire limit is the first pair's alone
    link = finite_or_none(result.get("wire_limit_bps"))
    return link if link and not several_pairs else None


def lpm_checks(result: dict[str, Any]) -> list[dict[str, str]]:
    """One check per partition given with --lpar: does it converge, and within the window?"""
    partitions = result.get("lpm")
    if partitions is None:
        return [check("LPM bandwidth for partitions", UNKNOWN,
                      "no partitions given; pass --lpar NAME:MEMORY[:DIRTY_RATE] (and --window) to judge them",
                      "")]
    if cap_set_the_pace(result):
        return _capped_partition_checks(result, partitions)
    bandwidth_bps = (result.get("lpm_model") or {}).get("bandwidth_bps")  # None in hand-made results
    return [_partition_check(part, bandwidth_bps) for part in partitions]


def _capped_partition_checks(result: dict[str, Any], partitions: list[dict[str, Any]]) -> list[dict[str, str]]:
    """A capped run judges the partitions on what the link could carry, or says it cannot judge them."""
    cap = rate_cap_text(result)
    link_bps = outlook_bandwidth(result)
    if link_bps is None:
        return [check(f"LPM partition {part['name']}", UNKNOWN,
                      f"{format_bytes(part['memory_bytes'])} dirtied at {format_byte_rate(part['dirty_rate_Bps'])}: "
                      f"not judged: {cap}, so the run measured the cap, not what the link can carry",
                      "run again without the cap to judge the partition, or give the link's rate to 'lpmbench plan "
                      "--memory SIZE --dirty-rate RATE --bandwidth RATE'")
                for part in partitions]
    model = result.get("lpm_model") or {}
    specs = [lpm.LparSpec(**spec) for spec in (result.get("config") or {}).get("lpars", [])]
    rtt_s = (finite_or_none(model.get("rtt_ms")) or 0.0) / 1000
    on_link = lpm.assess_lpars(specs, link_bps, rtt_s, model.get("window_s"), model.get("compression", 1.0))
    judged = []
    for part in on_link:
        one = _partition_check(part, link_bps)
        judged.append({**one, "detail": f"{one['detail']} (what the link can carry; {cap})"})
    return judged


def _partition_check(part: dict[str, Any], bandwidth_bps: float | None) -> dict[str, str]:
    name = f"LPM partition {part['name']}"
    over = format_rate_bps(bandwidth_bps) if bandwidth_bps is not None else "the measured bandwidth"
    what = f"{format_bytes(part['memory_bytes'])} dirtied at {format_byte_rate(part['dirty_rate_Bps'])} over {over}"
    if bandwidth_bps is not None and bandwidth_bps <= 0:  # no dirty rate outran the network: nothing crossed it
        return check(name, FAIL, f"{what}: nothing moved between the MSPs, so the partition could not move either",
                     "see the other checks for why the streams moved no data")
    if not part["converges"]:
        return check(name, FAIL, f"{what}: pages are dirtied faster than they move; LPM would stall",
                     "raise the bandwidth (faster or redundant MSP pairs, jumbo frames) above the dirty "
                     "rate, or migrate when the partition is quieter")
    about = f"about {_duration(part['predicted_seconds'])}"
    if part["fits_window"] is False:
        need = part["required_bps"]
        return check(name, FAIL, f"{what}: {about}, longer than the {_duration(part['window_s'])} window",
                     f"the window needs about {format_rate_bps(need)} between the MSPs" if need else
                     "no bandwidth meets this window at this dirty rate; widen the window")
    if part["pass_limit_reached"]:
        return check(name, WARN, f"{what}: {about}, but the dirty rate keeps "
                                 f"{format_bytes(part['residual_bytes'])} for demand paging after resume",
                     "migrate at a quieter time or add bandwidth, to shorten the slow post-resume phase")
    return check(name, PASS, f"{what}: {about} in {part['passes']} pass(es)")
