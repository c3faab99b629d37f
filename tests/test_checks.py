"""The checks as tables: one row per branch of every rule, over small result documents.

Each family's rows live in test_checks_<family>.py (transfer, path, nic, lpm, redundancy) and are judged by
``assert_row`` below. This module holds what holds across all of them: the documented order of the rules,
``overall()``, and that every rule has rows for its PASS and its WARN / FAIL branches, always under the same check name.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Callable, Optional

import pytest

from lpmbench.analysis import checks
from lpmbench.analysis.checks import FAIL, INFO, PASS, RULES, UNKNOWN, WARN, base, path

README = Path(__file__).resolve().parent.parent / "README.md"
FAMILIES = ("transfer", "path", "nic", "lpm", "redundancy", "expert")
ROW_ARGS = "rule, result, status, detail, remedy, absent"
Rule = Callable[[dict[str, Any]], Optional[dict[str, str]]]


def row(rule: Rule, result: dict[str, Any], status: str, detail: tuple[str, ...] = (),
        remedy: tuple[str, ...] = (), *, id: str, absent: tuple[str, ...] = ()) -> Any:
    """One branch of a rule: the words its detail and remedy must hold, and words neither may hold."""
    return pytest.param(rule, result, status, detail, remedy, absent, id=id)


def assert_row(check: dict[str, str] | None, status: str, detail: tuple[str, ...], remedy: tuple[str, ...],
               absent: tuple[str, ...]) -> None:
    assert check is not None, "the rule did not apply"
    assert set(check) == {"name", "status", "detail", "remedy"}
    assert check["status"] == status, check
    for word in detail:
        assert word in check["detail"], (word, check)
    for word in remedy:
        assert word in check["remedy"], (word, check)
    for word in absent:
        assert word not in check["detail"] + check["remedy"], (word, check)
    # The result contract: a WARN or FAIL tells the admin what to do (a PASS has no remedy by check()).
    if status in (WARN, FAIL):
        assert check["remedy"].strip(), check


def family_rows() -> list[Any]:
    """Every row of every family (imported here, at run time: the family modules import this one)."""
    return [param for family in FAMILIES for param in importlib.import_module(f"test_checks_{family}").ROWS]


def test_every_rule_has_pass_and_warn_or_fail_rows_under_one_name():
    by_rule: dict[Rule, list[dict[str, str]]] = {}
    for param in family_rows():
        rule, result = param.values[0], param.values[1]
        by_rule.setdefault(rule, []).append(rule(result))
    for rule in RULES:
        made = by_rule.get(rule)
        assert made, f"{rule.__name__} has no rows"
        assert len({c["name"] for c in made}) == 1, f"{rule.__name__} changes its name: compare matches by name"
        statuses = {c["status"] for c in made}
        # A stall check exists only for a stalled run: its "pass" is no check at all (see test_checks_path).
        assert PASS in statuses or rule is path.stall_check, f"{rule.__name__}: {statuses}"
        assert statuses & {WARN, FAIL}, f"{rule.__name__}: {statuses}"


def test_every_warn_or_fail_row_has_a_remedy_and_every_pass_row_none():
    """Walks all rows again by status, so a row added without expectations is still held to the contract."""
    seen = set()
    for param in family_rows():
        rule, result = param.values[0], param.values[1]
        made = rule(result)
        seen.add(made["status"])
        if made["status"] in (WARN, FAIL):
            assert made["remedy"].strip(), (param.id, made)
    assert seen == {PASS, WARN, FAIL, UNKNOWN, INFO}


def documented_names() -> list[str]:
    """The check names in the order README's "What lpmbench checks" table lists them (first column)."""
    names: list[str] = []
    for line in README.read_text().split("## What lpmbench checks", 1)[1].splitlines():
        if line.startswith("| check ") or line.startswith("|---"):
            continue
        if line.startswith("| "):
            names += [name.strip().replace(" NAME", " ") for name in line.split("|")[1].split(",")]
        elif names:
            break
    return names


def every_rule_applies() -> dict[str, Any]:
    """A result for which every rule returns a check (a stall, a jumbo comparison, one partition)."""
    nic = {"name": "en4", "speed_mbps": 10000, "mtu": 9000, "large_send": True, "large_receive": True,
           "flow_control": {"rx": True, "tx": True}, "virtual": False, "counters_delta": {"rx_errors": 0}}
    side = {"mss": 8948, "goodput_bps": 9e9, "cpu_s_per_gb": 1.0, "retransmit_rate": 0.0, "partial": False}
    return {
        "retransmit_rate": 0.0, "retransmits": 0, "segments_out": 1000, "partial": False, "error": None,
        "config": {"streams": 1}, "duration_s": 10.0, "stalled": True,
        "data_port": {"port": 32770, "range": [32768, 32800], "reachable": True, "error": None},
        "streams": [{"id": 0, "bytes": 10, "mss": 8948, "busy_us": 100, "rwnd_limited_us": 0}],
        "path": {"mtu": 9000, "probe_complete": True, "sender_mtu": 9000, "receiver_mtu": 9000},
        "interfaces": {"sender": nic, "receiver": {**nic, "name": "en6"}},
        "efficiency": 0.9, "wire_limit_bps": 9.9e9,
        "jumbo_compare": {"jumbo": side, "standard": {**side, "mss": 1448}, "goodput_gain": 0.1,
                          "cpu_per_gb_change": -0.2},
        "lpm": [{"name": "db01", "memory_bytes": 1 << 30, "dirty_rate_Bps": 0, "predicted_seconds": 1.0,
                 "converges": True, "passes": 1, "residual_bytes": 0, "pass_limit_reached": False,
                 "window_s": None, "fits_window": None, "required_bps": None}],
        "lpm_model": {"bandwidth_bps": 9e9},
    }


def test_checks_come_in_the_order_the_readme_documents():
    made = [c["name"] for c in checks.evaluate(every_rule_applies())]
    documented = documented_names()
    assert documented[0] == "retransmit rate"
    assert len(made) == len(documented) == len(RULES) + 1, (made, documented)
    for name, doc_name in zip(made, documented):
        assert name.startswith(doc_name), (made, documented)


def test_rules_that_do_not_apply_are_left_out():
    """No stall, no --jumbo-compare: those two rules return None and evaluate() lists the rest."""
    result = {**every_rule_applies(), "stalled": False, "jumbo_compare": None}
    names = [c["name"] for c in checks.evaluate(result)]
    assert "streams kept moving" not in names and "jumbo frame effectiveness" not in names
    assert len(names) == len(RULES) - 2 + 1


@pytest.mark.parametrize("statuses, verdict", [
    ((), PASS),
    ((UNKNOWN,), PASS),
    ((PASS, UNKNOWN), PASS),
    ((WARN, UNKNOWN), WARN),
    ((UNKNOWN, WARN, PASS), WARN),
    ((PASS, FAIL, UNKNOWN), FAIL),
    ((WARN, FAIL), FAIL),
], ids=["nothing", "unknown-only", "pass-unknown", "warn-unknown", "unknown-warn-pass", "fail-wins",
        "fail-over-warn"])
def test_overall_is_the_worst_status_and_unknown_never_changes_it(statuses, verdict):
    assert base.overall([base.check(f"c{i}", s, "d", "r") for i, s in enumerate(statuses)]) == verdict


def test_a_pass_check_never_carries_a_remedy():
    assert base.check("x", PASS, "fine", "do something")["remedy"] == ""
    assert base.check("x", WARN, "odd", "do something")["remedy"] == "do something"
