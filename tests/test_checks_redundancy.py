"""The redundant MSP pair check (analysis/checks/redundancy.py): one row per branch. One MSP pair is INFO, so a
default or scheduled run of one pair can PASS; a run with --redundant judges the second pair's own path."""

from __future__ import annotations

from typing import Any

import pytest
from test_checks import ROW_ARGS, assert_row, row

from lpmbench.analysis import checks
from lpmbench.analysis.checks import FAIL, INFO, PASS, WARN, redundancy

check = redundancy.redundant_pairs_check


def pair(verdict: str = "pass", partial: bool = False, error: str | None = None,
         failed: tuple[tuple[str, str, str], ...] = ()) -> dict[str, Any]:
    return {"sender": "a2", "receiver": "b2", "verdict": verdict, "partial": partial, "error": error,
            "failed_checks": [{"name": n, "status": s, "detail": d, "remedy": "r"} for n, s, d in failed]}


FIRST = {"sender": "a1", "receiver": "b1", "verdict": "pass", "partial": False, "error": None, "failed_checks": []}
SINGLE = ("redundant MSP pair", "info", "only one MSP pair was tested")

ROWS = [  # test_checks.py also walks these: every rule has PASS and WARN / FAIL rows under one name
    row(check, {}, INFO, ("one MSP pair", "single point of failure"), ("--redundant A2 B2",), id="one-pair-is-info"),
    row(check, {"pairs": [FIRST]}, INFO, ("one MSP pair",), ("--redundant",), id="one-pair-entry-is-info"),
    row(check, {"pairs": [FIRST, pair()]}, PASS, ("2 MSP pairs",), id="redundant-pair-passes"),
    row(check, {"pairs": [{**FIRST, "verdict": "fail"}, pair()]}, PASS, ("2 MSP pairs",),
        id="first-pair-failing-is-judged-by-the-other-checks"),
    row(check, {"pairs": [FIRST, pair("fail", failed=(("retransmit rate", "fail", "2.000% of 100 segments"),
                                                       ("same speed at both MSPs", "warn", "sender at 10000")))]},
        FAIL, ("a2 -> b2 failed", "retransmit rate: 2.000%", "same speed at both MSPs"), ("redundant pair",),
        id="redundant-pair-failed"),
    row(check, {"pairs": [FIRST, pair("fail", True, "receiver b2 went silent")]}, FAIL,
        ("a2 -> b2 failed", "went silent"), id="redundant-pair-partial-error-only"),
    row(check, {"pairs": [FIRST, pair("warn", failed=(("link speed at least 10 Gb", "warn", "sender at 1000"),))]},
        WARN, ("a2 -> b2", "link speed at least 10 Gb: sender at 1000"), ("redundant pair",),
        id="redundant-pair-warns"),
    # Each pair's own result notes that it is a single pair: that is not the redundant pair's fault.
    row(check, {"pairs": [FIRST, pair("pass", failed=(SINGLE,))]}, PASS, ("2 MSP pairs",),
        id="redundant-pair-own-single-pair-note-ignored"),
    row(check, {"pairs": [FIRST, pair("fail", failed=(("LPM partition db01", "fail", "dirtied faster"),))]}, PASS,
        ("2 MSP pairs",), id="redundant-pair-partition-judged-on-the-aggregate"),
]


@pytest.mark.parametrize(ROW_ARGS, ROWS)
def test_redundancy_rows(rule, result, status, detail, remedy, absent):
    assert_row(rule(result), status, detail, remedy, absent)


def test_a_healthy_single_pair_run_can_pass():
    """The rule list uses this check, and its INFO leaves the verdict alone: a scheduled run of one pair passes."""
    assert check in checks.RULES
    healthy = [{"name": "retransmit rate", "status": PASS, "detail": "", "remedy": ""}, check({})]
    assert checks.overall(healthy) == PASS
    assert checks.overall(healthy + [{"name": "x", "status": WARN, "detail": "", "remedy": ""}]) == WARN
