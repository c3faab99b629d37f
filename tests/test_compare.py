"""Before / after comparison (lpmbench.compare) over results saved from real runs."""

from __future__ import annotations

import copy
import json
import pathlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lpmbench.analysis import compare as comparison
from lpmbench.analysis.units import format_rate_bps

FIXTURES = pathlib.Path(__file__).parent / "fixtures" / "results"


def load(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


def rows_by_name(rows: list[comparison.Row], section: str) -> dict[str, comparison.Row]:
    return {row.metric: row for row in rows if row.section == section}


def test_two_real_runs_side_by_side():
    before, after = load("local.json"), load("local-8-streams.json")
    metrics = rows_by_name(comparison.compare(before, after), "metrics")
    goodput = metrics["goodput"]
    expected_rates = (format_rate_bps(before["goodput_bps"]), format_rate_bps(after["goodput_bps"]))
    assert (goodput.before, goodput.after) == expected_rates
    expected = (after["goodput_bps"] - before["goodput_bps"]) / before["goodput_bps"] * 100
    assert goodput.change == f"{expected:+.1f} %"
    assert goodput.trend == (comparison.BETTER if expected > 5 else comparison.WORSE if expected < -5
                             else comparison.SAME)
    # Runs made before path probing and interface facts existed: not measured on both sides, not judged.
    for name in ("path MTU", "efficiency"):
        assert metrics[name].before == metrics[name].after == comparison.NOT_MEASURED
        assert metrics[name].trend == comparison.UNKNOWN
    context = rows_by_name(comparison.compare(before, after), "context")
    assert (context["streams"].before, context["streams"].after, context["streams"].change) == ("4", "8",
                                                                                              "not comparable")
    assert context["streams"].trend == comparison.MISMATCH
    assert context["MSP pair"].trend == comparison.INFO


def test_checks_present_on_one_side_only_are_listed_not_judged():
    before, after = load("edited-jumbo-blackhole.json"), load("local.json")
    rows = comparison.compare(before, after)
    checks = rows_by_name(rows, "checks")
    assert list(checks)[:3] == ["retransmit rate", "run completed", "all streams moved data"]
    jumbo = checks["jumbo frames end to end"]
    assert (jumbo.before, jumbo.after, jumbo.trend) == ("fail", "not checked", comparison.UNKNOWN)
    metrics = rows_by_name(rows, "metrics")
    assert (metrics["verdict"].change, metrics["verdict"].trend) == ("fail -> pass", comparison.BETTER)
    assert metrics["path MTU"].before == "1500 B" and metrics["path MTU"].after == comparison.NOT_MEASURED


def _fixed(result: dict) -> dict:
    """The edited black-hole result after the admin enabled jumbo frames on the switch."""
    after = copy.deepcopy(result)
    after["path"]["mtu"] = 9000
    after["efficiency"] = 0.95
    for check in after["checks"]:
        if check["name"] == "jumbo frames end to end":
            check.update(status="pass", remedy="")
    after["verdict"] = "warn"
    return after


def test_runs_of_one_setup_are_comparable_whatever_their_ids_and_start_times():
    before = load("local.json")
    again = dict(copy.deepcopy(before), run_id="another", started_at="2030-01-01T00:00:00+00:00",
                 duration_s=before["duration_s"] * 1.1)
    assert comparison.comparability(before, again) == []
    context = rows_by_name(comparison.compare(before, again), "context")
    assert all(row.trend == comparison.INFO for row in context.values())
    assert not {"run", "started"} & set(context)  # ids and start times always differ: noise, not context


def _with(result: dict, **changes: dict) -> dict:
    out = copy.deepcopy(result)
    for key, value in changes.items():
        out[key] = {**out.get(key, {}), **value}
    return out


@pytest.mark.parametrize("changes,needle,row", [
    ({"sender": {"host": "127.0.0.2"}, "receiver": {"host": "127.0.0.1"}}, "the direction is reversed",
     "MSP pair"),
    ({"sender": {"host": "msp-c"}}, "different MSPs (127.0.0.1 -> 127.0.0.2, then msp-c -> 127.0.0.2)",
     "MSP pair"),
    ({"config": {"streams": 16}}, "a different number of streams (4, then 16)", "streams"),
    ({"config": {"duration_s": 30}}, "different durations (2 s, then 30 s)", "duration"),
    ({"config": {"rate_bps": 1e9}}, "a different rate cap (none, then 1 Gbit/s)", "rate cap"),
])
def test_runs_that_differ_in_setup_are_flagged_not_comparable(changes, needle, row):
    before = _with(load("local.json"), config={"duration_s": 2})
    after = _with(before, **changes)
    reasons = comparison.comparability(before, after)
    assert len(reasons) == 1 and needle in reasons[0]
    context = rows_by_name(comparison.compare(before, after), "context")
    assert (context[row].change, context[row].trend) == ("not comparable", comparison.MISMATCH)


def test_fixing_jumbo_frames_reads_better():
    before = load("edited-jumbo-blackhole.json")
    rows = comparison.compare(before, _fixed(before))
    metrics, checks = rows_by_name(rows, "metrics"), rows_by_name(rows, "checks")
    assert (metrics["path MTU"].before, metrics["path MTU"].after) == ("1500 B", "9000 B")
    assert (metrics["path MTU"].change, metrics["path MTU"].trend) == ("+7500 B", comparison.BETTER)
    assert (metrics["efficiency"].change, metrics["efficiency"].trend) == ("+33.0 pp", comparison.BETTER)
    assert checks["jumbo frames end to end"].change == "fail -> pass"
    assert checks["jumbo frames end to end"].trend == comparison.BETTER
    assert checks["same speed at both MSPs"].trend == comparison.SAME
    assert metrics["goodput"].change == "unchanged" and metrics["goodput"].trend == comparison.SAME


@pytest.mark.parametrize("before_rate,after_rate,trend", [
    (0.0, 0.02, comparison.WORSE),
    (0.02, 0.0, comparison.BETTER),
    (0.0003, 0.00035, comparison.SAME),  # 0.005 pp: below a tenth of the 0.1 % warn threshold
])
def test_retransmit_rate_trend(before_rate, after_rate, trend):
    before = load("local.json")
    after = dict(before, retransmit_rate=after_rate)
    row = rows_by_name(comparison.compare(dict(before, retransmit_rate=before_rate), after), "metrics")
    assert row["retransmit rate"].trend == trend
    assert row["retransmit rate"].change == f"{(after_rate - before_rate) * 100:+.3f} pp"


def test_small_goodput_change_is_noise_and_a_drop_is_worse():
    before = load("local.json")
    slightly = dict(before, goodput_bps=before["goodput_bps"] * 1.03)
    halved = dict(before, goodput_bps=before["goodput_bps"] / 2)
    assert rows_by_name(comparison.compare(before, slightly), "metrics")["goodput"].trend == comparison.SAME
    row = rows_by_name(comparison.compare(before, halved), "metrics")["goodput"]
    assert (row.change, row.trend) == ("-50.0 %", comparison.WORSE)


def test_efficiency_as_an_object_with_its_inputs():
    result = dict(load("local.json"), efficiency={"value": 0.8, "link_speed_bps": 10e9, "payload_fraction": 0.99})
    assert comparison.efficiency(result) == 0.8
    assert comparison.efficiency(dict(result, efficiency="80%")) is None


def test_status_becoming_unknown_is_not_called_better():
    before = load("local.json")
    after = copy.deepcopy(before)
    after["checks"][0]["status"] = "unknown"  # e.g. the same pair measured from an AIX sender
    before["checks"][0]["status"] = "warn"
    row = rows_by_name(comparison.compare(before, after), "checks")["retransmit rate"]
    assert (row.change, row.trend) == ("warn -> unknown", comparison.UNKNOWN)


def test_empty_documents_compare_as_not_measured():
    rows = comparison.compare({}, {})
    metrics = rows_by_name(rows, "metrics")
    assert all(r.trend == comparison.UNKNOWN for r in metrics.values())
    assert metrics["goodput"].before == comparison.NOT_MEASURED
    assert not rows_by_name(rows, "checks")


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=10)
RESULT_KEYS = ["verdict", "checks", "goodput_bps", "retransmit_rate", "path", "efficiency", "streams", "sender",
               "receiver", "config", "duration_s", "run_id", "started_at"]


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.sampled_from(RESULT_KEYS), JSON_VALUES), st.dictionaries(st.sampled_from(RESULT_KEYS),
                                                                                  JSON_VALUES))
def test_any_json_shapes_never_crash(before, after):
    assert all(isinstance(reason, str) for reason in comparison.comparability(before, after))
    rows = comparison.compare(before, after)
    assert {r.section for r in rows} <= {"context", "metrics", "checks"}
    assert all(isinstance(r.before, str) and isinstance(r.after, str) for r in rows)
