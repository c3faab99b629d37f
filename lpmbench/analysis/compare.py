"""Before / after comparison of two result documents: pure functions over plain dicts, no I/O.

An admin changes something (turns jumbo frames on at a switch, swaps an adapter) and runs lpmbench again.
``compare`` lines the two results up, metric by metric and check by check, and says how each changed and
whether that is better or worse; ``comparability`` says why two runs cannot be compared at all (another pair or
direction, other streams, duration or rate cap). Both renderers (the terminal in cli/report.py, the HTML page in
render/html.py) show the same rows.

Results come from files and may be older or partial: any key may be missing, and a missing value reads
"not measured" rather than breaking the comparison.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional

from lpmbench.analysis.checks import base as verdict
from lpmbench.analysis.checks.transfer import RETRANSMIT_WARN
from lpmbench.analysis.units import finite_or_none as number
from lpmbench.analysis.units import format_rate_bps, shown

NOT_MEASURED = "not measured"
BETTER, WORSE, SAME, UNKNOWN, INFO = "better", "worse", "same", "unknown", "info"
MISMATCH = "mismatch"  # a context line in which the runs differ so much their figures are not comparable

# Goodput and RTT wobble by a few percent from run to run on a quiet network; a smaller change is not
# called better or worse (it is still shown).
NOISE_FRACTION = 0.05
# A retransmit-rate change below a tenth of the WARN threshold is noise on any network LPM can use.
RETRANSMIT_NOISE = RETRANSMIT_WARN / 10
# Efficiency is a fraction of the wire limit; two points either way is within run-to-run spread.
EFFICIENCY_NOISE = 0.02

_SEVERITY = {verdict.PASS: 0, verdict.UNKNOWN: 0, verdict.INFO: 0, verdict.WARN: 1, verdict.FAIL: 2}


@dataclass(frozen=True)
class Row:
    """One line of a comparison. ``before`` / ``after`` / ``change`` are display text; ``trend`` is one of
    better, worse, same, unknown (a side not measured), info (context, not judged) or mismatch (context in
    which the runs differ: their figures are not comparable)."""

    metric: str
    before: str
    after: str
    change: str
    trend: str
    section: str = "metrics"



def section(result: dict[str, Any], key: str) -> dict[str, Any]:
    value = result.get(key)
    return value if isinstance(value, dict) else {}


def path_mtu(result: dict[str, Any]) -> Optional[float]:
    return number(section(result, "path").get("mtu"))


def efficiency(result: dict[str, Any]) -> Optional[float]:
    """Efficiency as a fraction of the wire limit. The key holds a number, or an object whose ``value``
    (or ``efficiency``) is that number with the inputs beside it."""
    value = result.get("efficiency")
    if isinstance(value, dict):
        value = value.get("value", value.get("efficiency"))
    return number(value)


def mean_rtt_ms(result: dict[str, Any]) -> Optional[float]:
    """Mean of the streams' smoothed RTT at the end of the run (TCP_INFO), None where the OS has none."""
    streams = result.get("streams") if isinstance(result.get("streams"), list) else []
    rtts = [r for r in (number(s.get("rtt_ms")) for s in streams if isinstance(s, dict)) if r is not None]
    return sum(rtts) / len(rtts) if rtts else None


def _percent(fraction: Optional[float], digits: int = 3) -> str:
    return NOT_MEASURED if fraction is None else f"{fraction * 100:.{digits}f} %"


def _plain(value: Optional[float], unit: str = "") -> str:
    return NOT_MEASURED if value is None else f"{value:g}{unit}"


def _relative_change(before: float, after: float) -> str:
    if before == 0:
        return "from zero" if after else "0 %"
    return f"{(after - before) / before * 100:+.1f} %"


def _trend(before: float, after: float, higher_is_better: bool, noise: float, relative: bool) -> str:
    delta = after - before
    scale = abs(before) if relative else 1.0
    if abs(delta) <= noise * scale:
        return SAME
    return BETTER if (delta > 0) == higher_is_better else WORSE


@dataclass(frozen=True)
class _Metric:
    name: str
    value: Callable[[dict[str, Any]], Optional[float]]
    show: Callable[[Optional[float]], str]
    change: Callable[[float, float], str]
    higher_is_better: bool
    noise: float
    relative: bool


_METRICS = (
    _Metric("goodput", lambda r: number(r.get("goodput_bps")),
            lambda v: NOT_MEASURED if v is None else shown(format_rate_bps, v), _relative_change, True,
            NOISE_FRACTION, True),
    _Metric("retransmit rate", lambda r: number(r.get("retransmit_rate")), _percent,
            lambda b, a: f"{(a - b) * 100:+.3f} pp", False, RETRANSMIT_NOISE, False),
    _Metric("path MTU", path_mtu, lambda v: _plain(v if v is None else int(v), " B"),
            lambda b, a: f"{a - b:+.0f} B", True, 0, False),
    _Metric("efficiency", efficiency, lambda v: _percent(v, 1),
            lambda b, a: f"{(a - b) * 100:+.1f} pp", True, EFFICIENCY_NOISE, False),
    _Metric("RTT (mean of streams)", mean_rtt_ms, lambda v: NOT_MEASURED if v is None else f"{v:.3f} ms",
            _relative_change, False, NOISE_FRACTION, True),
)


def _metric_row(metric: _Metric, before: dict[str, Any], after: dict[str, Any]) -> Row:
    b, a = metric.value(before), metric.value(after)
    if b is None or a is None:
        return Row(metric.name, metric.show(b), metric.show(a), "", UNKNOWN)
    trend = _trend(b, a, metric.higher_is_better, metric.noise, metric.relative)
    change = "unchanged" if a == b else metric.change(b, a)
    return Row(metric.name, metric.show(b), metric.show(a), change, trend)


def _verdict_row(before: dict[str, Any], after: dict[str, Any]) -> Row:
    b, a = _status_of(before.get("verdict")), _status_of(after.get("verdict"))
    return _status_row("verdict", b, a, "metrics")


def _status_of(value: Any) -> Optional[str]:
    return value if isinstance(value, str) and value in _SEVERITY else None


def _status_row(name: str, before: Optional[str], after: Optional[str], where: str) -> Row:
    shown_b, shown_a = before or "not checked", after or "not checked"
    if before is None or after is None:
        return Row(name, shown_b, shown_a, "", UNKNOWN, where)
    if before == after:
        return Row(name, shown_b, shown_a, "unchanged", SAME, where)
    if {verdict.UNKNOWN, verdict.INFO} & {before, after}:  # not judged on one side: neither better nor worse
        return Row(name, shown_b, shown_a, f"{before} -> {after}", UNKNOWN, where)
    delta = _SEVERITY[after] - _SEVERITY[before]
    trend = BETTER if delta < 0 else WORSE
    return Row(name, shown_b, shown_a, f"{before} -> {after}", trend, where)


def checks_by_name(result: dict[str, Any]) -> dict[str, str]:
    """Check name -> status, in the result's order; malformed entries are skipped."""
    checks = result.get("checks") if isinstance(result.get("checks"), list) else []
    out: dict[str, str] = {}
    for check in checks:
        if isinstance(check, dict) and isinstance(check.get("name"), str):
            status = _status_of(check.get("status"))
            out[check["name"]] = status if status is not None else verdict.UNKNOWN
    return out


def _check_rows(before: dict[str, Any], after: dict[str, Any]) -> list[Row]:
    b, a = checks_by_name(before), checks_by_name(after)
    names = list(b) + [name for name in a if name not in b]
    return [_status_row(name, b.get(name), a.get(name), "checks") for name in names]


DURATION_TOLERANCE = 0.2  # measured durations within 20 % of each other are the same run length


def _hosts(result: dict[str, Any]) -> tuple[str, str]:
    return str(section(result, "sender").get("host", "?")), str(section(result, "receiver").get("host", "?"))


def _streams(result: dict[str, Any]) -> Optional[float]:
    return number(section(result, "config").get("streams"))


def _duration(result: dict[str, Any]) -> Optional[float]:
    """The duration asked for, else the one measured (results of older versions have no config)."""
    return number(section(result, "config").get("duration_s")) or number(result.get("duration_s"))


def _rate_cap(result: dict[str, Any]) -> Optional[float]:
    return number(section(result, "config").get("rate_bps"))


def _durations_differ(before: Optional[float], after: Optional[float]) -> bool:
    if before is None or after is None:
        return False
    return abs(after - before) > DURATION_TOLERANCE * max(before, after)


def _pair_reason(before: dict[str, Any], after: dict[str, Any]) -> Optional[str]:
    b, a = _hosts(before), _hosts(after)
    if b == a:
        return None
    if b == a[::-1]:
        return (f"the direction is reversed ({b[0]} -> {b[1]}, then {a[0]} -> {a[1]}): a path can differ by "
                f"direction, e.g. a faster MSP overruns a slower one only one way")
    return f"different MSPs ({b[0]} -> {b[1]}, then {a[0]} -> {a[1]})"


def comparability(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """Why the two runs are not comparable, one reason each (empty when they are): a different pair or
    direction, number of streams, duration or rate cap changes the figures whatever the network did."""
    reasons = [_pair_reason(before, after)]
    streams = (_streams(before), _streams(after))
    if None not in streams and streams[0] != streams[1]:
        reasons.append(f"a different number of streams ({streams[0]:g}, then {streams[1]:g}): more streams "
                       f"carry more, up to what the link allows")
    durations = (_duration(before), _duration(after))
    if _durations_differ(*durations):
        reasons.append(f"different durations ({durations[0]:g} s, then {durations[1]:g} s): a short run "
                       f"measures more of TCP's ramp-up")
    caps = (_rate_cap(before), _rate_cap(after))
    if caps[0] != caps[1]:
        reasons.append(f"a different rate cap ({_cap(caps[0])}, then {_cap(caps[1])})")
    return [reason for reason in reasons if reason]


def _cap(rate: Optional[float]) -> str:
    return "none" if rate is None else format_rate_bps(rate)


def _context_rows(before: dict[str, Any], after: dict[str, Any]) -> list[Row]:
    """What was run, each line flagged when it makes the two runs not comparable."""

    def pair(result: dict[str, Any]) -> str:
        return " -> ".join(_hosts(result))

    def count(result: dict[str, Any]) -> str:
        value = _streams(result)
        return NOT_MEASURED if value is None else f"{value:g}"

    def duration(result: dict[str, Any]) -> str:
        value = _duration(result)
        return NOT_MEASURED if value is None else f"{value:g} s"

    differs = {"MSP pair": _pair_reason(before, after) is not None,
               "streams": None not in (_streams(before), _streams(after)) and _streams(before) != _streams(after),
               "duration": _durations_differ(_duration(before), _duration(after)),
               "rate cap": _rate_cap(before) != _rate_cap(after)}
    rows = []
    for name, show in (("MSP pair", pair), ("streams", count), ("duration", duration),
                       ("rate cap", lambda r: _cap(_rate_cap(r)))):
        mismatch = differs[name]
        rows.append(Row(name, show(before), show(after), "not comparable" if mismatch else "same",
                        MISMATCH if mismatch else INFO, "context"))
    return rows


def compare(before: dict[str, Any], after: dict[str, Any]) -> list[Row]:
    """Context rows, then the verdict and the metrics, then every check of either run."""
    metrics = [_verdict_row(before, after)] + [_metric_row(m, before, after) for m in _METRICS]
    return _context_rows(before, after) + metrics + _check_rows(before, after)
