"""The redundant MSP pair: judged only when the user ran one (``pair --redundant A2 B2``).

A single MSP pair is a single point of failure and carries every migration alone: worth saying on every run,
but most sites run one pair on purpose, so a default or scheduled run must be able to PASS with one. A run of
one pair therefore gives INFO (shown, verdict unchanged); a run with ``--redundant`` judges the second pair's
own path like the first's (see docs/reports.md).
"""

from __future__ import annotations

from typing import Any

from lpmbench.analysis.checks.base import FAIL, INFO, PASS, WARN, check

NAME = "redundant MSP pair"
# Checks of each pair's own result that judge the whole, not the pair: every pair alone "is" a single pair, and
# partitions alone get only its share of the bandwidth; the combined result judges both at the aggregate.
WHOLE_RESULT_CHECKS = (NAME, "LPM partition ")


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
    if len(pairs) < 2:
        return check(NAME, INFO, "only one MSP pair was tested: a single MSP pair is a single point of failure and "
                                 "carries every migration alone",
                     "if the frames have a second MSP each, test both pairs at once with "
                     "'lpmbench pair A B --redundant A2 B2' (redundant MSP pairs carry memory in parallel)")
    for status, verb in ((FAIL, "failed"), (WARN, "warns")):
        bad = [p for p in pairs[1:] if _pair_status(p) == status]
        if bad:  # a redundant pair's problems appear nowhere else in the result
            return check(NAME, status, f"redundant pair {', '.join(_pair_name(p) for p in bad)} {verb}: "
                                       f"{_pair_reasons(bad[0])}",
                         "fix the redundant pair as you would the first; LPM spreads memory over both")
    return check(NAME, PASS, f"{len(pairs)} MSP pairs ran at once")
