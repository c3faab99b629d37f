"""The evacuation model (lpmbench.analysis.evacuation): properties, worked examples, limits, advice."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lpmbench.analysis.evacuation import (
    BLOCKED,
    INACTIVE,
    EvacuationAssumptions,
    Migration,
    MspPair,
    _processor_sharing,
    assess,
    lower_bound_seconds,
    plan_evacuation,
)
from lpmbench.analysis.lpm import predict

GiB, MiB = 2**30, 2**20
NO_LIMITS = EvacuationAssumptions()
# The schedule adds and subtracts floats event by event; two inputs that are equal in exact arithmetic can
# come out a few ulps apart. This is that rounding, nothing more: 1e-9 of the total.
ROUNDING = 1e-9

memories = st.integers(min_value=0, max_value=2**41)
dirty_rates = st.floats(min_value=0, max_value=4e8)
bandwidths = st.floats(min_value=1e8, max_value=1e11)
migrations = st.lists(st.tuples(memories, dirty_rates), min_size=1, max_size=10).map(
    lambda rows: [Migration(f"p{i}", m, d) for i, (m, d) in enumerate(rows)])
pair_lists = st.lists(bandwidths, min_size=1, max_size=3).map(
    lambda rates: [MspPair(f"pair {i}", b) for i, b in enumerate(rates)])
assumption_sets = st.builds(
    EvacuationAssumptions,
    per_system_limit=st.integers(1, 16),
    per_msp_limit=st.one_of(st.none(), st.integers(1, 8)),
    per_migration_max_bps=st.one_of(st.none(), st.floats(min_value=5e7, max_value=5e10)),
    rtt_s=st.floats(min_value=0, max_value=0.01),
    compression=st.floats(min_value=1, max_value=3),
)


def total(ms, pairs, a=NO_LIMITS) -> float:
    return plan_evacuation(ms, pairs, a).total_seconds


def not_sooner(after: float, before: float) -> bool:
    return after >= before * (1 - ROUNDING)


@given(migrations, pair_lists, assumption_sets)
def test_never_faster_than_all_memory_over_all_bandwidth(ms, pairs, a):
    assert not_sooner(total(ms, pairs, a), lower_bound_seconds(ms, pairs, a.compression))


@given(migrations, pair_lists, assumption_sets, st.data())
def test_more_memory_never_finishes_sooner(ms, pairs, a, data):
    i = data.draw(st.integers(0, len(ms) - 1))
    bigger = list(ms)
    bigger[i] = Migration(ms[i].name, ms[i].memory_bytes + data.draw(st.integers(1, 2**40)), ms[i].dirty_rate_Bps)
    assert not_sooner(total(bigger, pairs, a), total(ms, pairs, a))


@given(migrations, pair_lists, assumption_sets, st.data())
def test_busier_partition_never_finishes_sooner(ms, pairs, a, data):
    i = data.draw(st.integers(0, len(ms) - 1))
    busier = list(ms)
    busier[i] = Migration(ms[i].name, ms[i].memory_bytes, ms[i].dirty_rate_Bps + data.draw(st.floats(1, 4e8)))
    assert not_sooner(total(busier, pairs, a), total(ms, pairs, a))


@given(migrations, pair_lists, assumption_sets, memories, dirty_rates, st.data())
def test_one_more_partition_anywhere_never_finishes_sooner(ms, pairs, a, memory, dirty, data):
    at = data.draw(st.integers(0, len(ms)))
    more = ms[:at] + [Migration("new", memory, dirty)] + ms[at:]
    assert not_sooner(total(more, pairs, a), total(ms, pairs, a))


@given(migrations, pair_lists, assumption_sets, bandwidths)
def test_a_second_pair_never_slows_it(ms, pairs, a, extra):
    assert total(ms, [*pairs, MspPair("extra", extra)], a) <= total(ms, pairs, a)


@given(memories, bandwidths, dirty_rates, st.floats(0, 0.01), st.floats(1, 3))
def test_one_partition_is_what_plan_predicts(memory, bandwidth, dirty, rtt, compression):
    a = EvacuationAssumptions(rtt_s=rtt, compression=compression)
    alone = plan_evacuation([Migration("only", memory, dirty)], [MspPair("pair", bandwidth)], a)
    expected = predict(memory, bandwidth, dirty, rtt, compression)
    assert alone.total_seconds == expected.seconds
    assert alone.migrations[0].passes == expected.passes


@given(migrations, bandwidths, assumption_sets, st.data())
def test_on_one_pair_no_partition_ends_sooner_when_another_grows(ms, bandwidth, a, data):
    # Stronger than the total: every partition's own end only moves later (one pair: one pool, no choice).
    i = data.draw(st.integers(0, len(ms) - 1))
    bigger = list(ms)
    bigger[i] = Migration(ms[i].name, ms[i].memory_bytes + data.draw(st.integers(1, 2**40)), ms[i].dirty_rate_Bps)
    before = plan_evacuation(ms, [MspPair("p", bandwidth)], a).migrations
    after = plan_evacuation(bigger, [MspPair("p", bandwidth)], a).migrations
    for b, c in zip(before, after):
        if b.end_s is not None:
            assert c.end_s is None or not_sooner(c.end_s, b.end_s)


def test_clean_partitions_fill_the_pair_so_the_total_is_memory_over_bandwidth():
    ms = [Migration("a", 64 * GiB), Migration("b", 32 * GiB), Migration("c", 16 * GiB)]
    plan = plan_evacuation(ms, [MspPair("p", 10e9)], NO_LIMITS)
    assert plan.slots == 8 and plan.share_bps == pytest.approx(10e9 / 3)
    assert plan.total_seconds == pytest.approx(112 * GiB * 8 / 10e9)
    # Three at once: c finishes first at 3x its alone time, then b at the pair's pace, then a.
    ends = {s.name: s.end_s for s in plan.migrations}
    assert ends["c"] == pytest.approx(3 * 16 * GiB * 8 / 10e9)
    assert ends["b"] == pytest.approx((16 * 3 + 16 * 2) * GiB * 8 / 10e9)


def test_processor_sharing_admits_in_order_as_slots_free():
    starts, done = _processor_sharing([1.0, 1.0, 2.0], 2, lambda n: 2 / n)
    assert starts == [0.0, 0.0, 1.0] and done == [1.0, 1.0, 2.0]
    starts, done = _processor_sharing([math.inf, 1.0, 1.0], 2, lambda n: 2 / n)
    assert done[0] is None and done[1:] == [1.0, 2.0]
    assert _processor_sharing([math.inf, math.inf, 1.0], 2, lambda n: 1.0) == ([0.0, 0.0, None], [None] * 3)


@pytest.mark.parametrize("bandwidth,per_msp", [(0.94e9, 4), (1e9, 4), (1.5e9, 8), (9.4e9, 8), (25e9, 8)])
def test_ibm_concurrency_per_msp_follows_the_link(bandwidth, per_msp):
    ms = [Migration(f"p{i}", GiB) for i in range(20)]
    assert plan_evacuation(ms, [MspPair("p", bandwidth)], NO_LIMITS).slots == per_msp


def test_more_than_eight_needs_a_second_pair_and_the_system_stops_at_sixteen():
    ms = [Migration(f"p{i}", GiB) for i in range(40)]
    assert plan_evacuation(ms, [MspPair("p1", 10e9)], NO_LIMITS).slots == 8
    assert plan_evacuation(ms, [MspPair("p1", 10e9), MspPair("p2", 10e9)], NO_LIMITS).slots == 16
    assert plan_evacuation(ms, [MspPair(f"p{i}", 10e9) for i in range(3)], NO_LIMITS).slots == 16
    limited = EvacuationAssumptions(per_system_limit=4, per_msp_limit=2)
    assert plan_evacuation(ms, [MspPair(f"p{i}", 10e9) for i in range(3)], limited).slots == 4


def test_a_slow_pair_is_left_out():
    ms = [Migration(f"p{i}", 64 * GiB, 100 * MiB) for i in range(12)]
    plan = plan_evacuation(ms, [MspPair("fast", 10e9), MspPair("slow", 1e9)], NO_LIMITS)
    assert [p.name for p in plan.pairs_used] == ["fast"]
    doc = assess(ms, [MspPair("fast", 10e9), MspPair("slow", 1e9)], NO_LIMITS)
    assert [p["used"] for p in doc["pairs"]] == [True, False]


def test_converges_alone_but_not_while_sharing():
    busy = Migration("db", 256 * GiB, 300 * MiB)  # 2.5 Gbit/s of dirty pages
    ms = [busy] + [Migration(f"app{i}", 32 * GiB, 8 * MiB) for i in range(9)]
    pairs = [MspPair("p", 10e9)]
    assert predict(busy.memory_bytes, 10e9, busy.dirty_rate_Bps).converges
    doc = assess(ms, pairs, NO_LIMITS, window_s=3600)
    assert doc["plan"]["total_seconds"] is None and not doc["finishes"] and doc["fits_window"] is False
    assert doc["bottleneck"]["kind"] == "convergence" and "db dirties" in doc["bottleneck"]["detail"]
    db = doc["plan"]["partitions"][0]
    assert db["end_s"] is None and db["converges"] is False
    advice = {s["what"]: s for s in doc["suggestions"]}
    alone = advice["move db alone first, then the rest"]
    assert alone["fits_window"] is True
    expected = predict(busy.memory_bytes, 10e9, busy.dirty_rate_Bps).seconds + total(ms[1:], pairs)
    assert alone["total_seconds"] == pytest.approx(expected)
    json.dumps(doc, allow_nan=False)  # never converging is null, not Infinity


def test_bandwidth_bottleneck_names_the_resent_pages_and_what_fits():
    ms = [Migration(f"p{i}", 128 * GiB, 32 * MiB) for i in range(16)]
    doc = assess(ms, [MspPair("p", 10e9)], NO_LIMITS, window_s=30 * 60)
    assert doc["bottleneck"]["kind"] == "bandwidth" and "dirty pages sent again" in doc["bottleneck"]["detail"]
    assert doc["fits_window"] is False
    advice = {s["what"].split(" (")[0].split(":")[0]: s for s in doc["suggestions"]}
    assert advice["add an MSP pair like p"]["fits_window"] is True
    faster = next(s for s in doc["suggestions"] if s["what"].startswith("faster links"))
    assert faster["fits_window"] is True and faster["total_seconds"] <= 30 * 60
    assert all(s["total_seconds"] <= doc["plan"]["total_seconds"] - 1 for s in doc["suggestions"])


def test_concurrency_cap_is_the_bottleneck_when_one_migration_cannot_fill_the_pair():
    ms = [Migration(f"p{i}", 16 * GiB) for i in range(20)]
    a = EvacuationAssumptions(per_migration_max_bps=2e9)
    doc = assess(ms, [MspPair("p", 40e9)], a)
    assert doc["bottleneck"]["kind"] == "concurrency"
    assert doc["plan"]["total_seconds"] == pytest.approx(3 * 16 * GiB * 8 / 2e9)  # 20 in 8 slots: 3 rounds


def test_the_soonest_order_is_reported_when_it_differs():
    # One migration moves at most half the pair: two slots behave like two fixed lanes.
    ms = [Migration("small1", GiB), Migration("small2", GiB), Migration("big", 10 * GiB)]
    a = EvacuationAssumptions(per_system_limit=2, per_migration_max_bps=5e9)
    doc = assess(ms, [MspPair("p", 10e9)], a)
    lane = GiB * 8 / 5e9
    assert doc["plan"]["total_seconds"] == pytest.approx(11 * lane)
    assert doc["soonest"]["order_name"] == "longest pre-copy first"
    assert doc["soonest"]["order"][0] == "big" and doc["soonest"]["total_seconds"] == pytest.approx(10 * lane)


def test_stopped_partitions_move_only_configuration_and_blocked_ones_stop_the_evacuation():
    ms = [Migration("up", 8 * GiB), Migration("off", 0, kind=INACTIVE, state="Not Activated"),
          Migration("broken", 8 * GiB, kind=BLOCKED, state="Error")]
    doc = assess(ms, [MspPair("p", 10e9)], NO_LIMITS, window_s=3600)
    rows = {r["name"]: r for r in doc["plan"]["partitions"]}
    assert rows["off"]["start_s"] == rows["off"]["end_s"] == 0.0
    assert rows["broken"]["start_s"] is None and doc["plan"]["blocked"] == ["broken"]
    assert doc["plan"]["total_seconds"] == pytest.approx(predict(8 * GiB, 10e9).seconds)
    assert doc["finishes"] is False and doc["fits_window"] is False
    assert doc["bottleneck"]["kind"] == "state" and doc["suggestions"] == []


@pytest.mark.parametrize("call,needle", [
    (lambda: plan_evacuation([Migration("a", 1)], [], NO_LIMITS), "1 to 8 MSP pairs"),
    (lambda: plan_evacuation([Migration("a", 1)], [MspPair(str(i), 1e9) for i in range(9)], NO_LIMITS),
     "1 to 8 MSP pairs"),
    (lambda: plan_evacuation([Migration("a", 1), Migration("a", 2)], [MspPair("p", 1e9)], NO_LIMITS), "unique"),
    (lambda: plan_evacuation([Migration("a", 1)], [MspPair("p", 1e9)], NO_LIMITS, [0, 0]), "every migration once"),
    (lambda: MspPair("p", 0), "above 0"),
    (lambda: Migration("a", -1), "not negative"),
    (lambda: Migration("a", 1, kind="flying"), "unknown migration kind"),
    (lambda: EvacuationAssumptions(per_system_limit=0), "at least 1"),
    (lambda: assess([Migration("a", 1)], [MspPair("p", 1e9)], NO_LIMITS, window_s=0), "window_s"),
])
def test_bad_model_input_is_refused(call, needle):
    with pytest.raises(ValueError, match=needle):
        call()
