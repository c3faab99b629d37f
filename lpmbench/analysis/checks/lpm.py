"""Checks of LPM's own needs: partitions against the measured bandwidth and window, and a redundant MSP pair.
"""

from __future__ import annotations

from typing import Any

from lpmbench.analysis import lpm
from lpmbench.analysis.checks.base import FAIL, PASS, UNKNOWN, WARN, check
from lpmbench.analysis.checks.transfer import cap_set_the_pace, rate_cap_text
from lpmbench.analysis.units import finite_or_none, format_byte_rate, format_bytes, format_duration, format_rate_bps

# Checks of each pair's own result that judge the whole, not the pair: every pair alone "is" a single pair, and
# partitions alone get only its share of the bandwidth; the combined result judges both at the aggregate.
WHOLE_RESULT_CHECKS = ("redundant MSP pair", "LPM partition ")


def _own_problems(pair: dict[str, Any]) -> list[dict[str, str]]:
    return [c for c in pair.get("failed_checks", []) if not c["name"].startswith(WHOLE_RESULT_CHECKS)]


def _pair_status(pair: dict[str, Any]) -> str:
    own = _own_problems(pair)
    if pair["partial"] or any(c["status"] == FAIL for c in own):
        return FAIL
    return WARN if own else PASS


def _pair_reasons(pair: dict[str, Any]) -> str:
    reasons = "; ".join(f"{c['name']}: {c['detail']}" for c in _own_problems(pair)[:3])
    return reasons or pair.get("error") or "no reason reported"


def _pair_name(pair: dict[str, Any]) -> str:
    return f"{pair['sender']} -> {pair['receiver']}"


def redundant_pairs_check(result: dict[str, Any]) -> dict[str, str]:
    """The first pair's own checks are the result's other checks; this one judges the redundant pairs."""
    pairs = result.get("pairs") or []
    name = "redundant MSP pair"
    if len(pairs) < 2:
        return check(name, WARN, "one MSP pair tested; a single MSP pair is a single point of failure and "
                                 "carries every migration alone",
                     "configure a second MSP on each frame (redundant MSP pairs carry memory in parallel) "
                     "and test both at once with 'lpmbench pair A B --redundant A2 B2'")
    for status, verb in ((FAIL, "failed"), (WARN, "warns")):
        bad = [p for p in pairs[1:] if _pair_status(p) == status]
        if bad:  # a redundant pair's problems appear nowhere else in the result
            return check(name, status, f"redundant pair {', '.join(_pair_name(p) for p in bad)} {verb}: "
                                       f"{_pair_reasons(bad[0])}",
                         "fix the redundant pair as you would the first; LPM spreads memory over both")
    return check(name, PASS, f"{len(pairs)} MSP pairs ran at once")


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
