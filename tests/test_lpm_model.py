"""The LPM pre-copy model (lpmbench.lpm): properties, worked examples and bad input."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lpmbench.analysis.lpm import (
    DEFAULT_ASSUMPTIONS,
    RULE_OF_THUMB_1GBE_BYTES_PER_S,
    LparSpec,
    ModelAssumptions,
    aggregate_bandwidth,
    assess_lpars,
    parse_lpar_spec,
    predict,
    required_bandwidth_bps,
)

GiB = 2**30
MiB = 2**20

memories = st.integers(min_value=0, max_value=2**44)
bandwidths_bps = st.floats(min_value=1e6, max_value=4e11)
dirty_rates_Bps = st.floats(min_value=0, max_value=6e10)
rtts_s = st.floats(min_value=0, max_value=0.05)
compressions = st.floats(min_value=1, max_value=4)


@given(memories, memories, bandwidths_bps, dirty_rates_Bps, rtts_s, compressions)
def test_bigger_partition_never_predicts_faster(m1, m2, bandwidth, dirty, rtt, compression) -> None:
    smaller, larger = sorted((m1, m2))
    assert (
        predict(smaller, bandwidth, dirty, rtt, compression).seconds
        <= predict(larger, bandwidth, dirty, rtt, compression).seconds
    )


@given(memories, bandwidths_bps, dirty_rates_Bps, dirty_rates_Bps, rtts_s, compressions)
def test_busier_partition_never_predicts_faster(memory, bandwidth, d1, d2, rtt, compression) -> None:
    calmer, busier = sorted((d1, d2))
    assert (
        predict(memory, bandwidth, calmer, rtt, compression).seconds
        <= predict(memory, bandwidth, busier, rtt, compression).seconds
    )


@given(
    bandwidths_bps,
    st.floats(min_value=0.01, max_value=0.9),
    st.integers(min_value=1, max_value=6),
    st.floats(min_value=1e-5, max_value=0.05),
)
def test_one_more_pass_never_makes_migration_faster(bandwidth, ratio, passes, rtt) -> None:
    # Random sizes rarely land where one more pre-copy pass becomes necessary, which is exactly where a
    # careless model gets faster (the residual left for slow demand paging shrinks). Straddle it.
    threshold = DEFAULT_ASSUMPTIONS.switchover_threshold_bytes
    boundary_memory = threshold / ratio**passes
    dirty = ratio * bandwidth / 8
    below = predict(boundary_memory * (1 - 1e-6), bandwidth, dirty, rtt)
    above = predict(boundary_memory * (1 + 1e-6), bandwidth, dirty, rtt)
    assert below.seconds <= above.seconds
    boundary_dirty = (threshold / boundary_memory) ** (1 / passes) * bandwidth / 8
    calmer = predict(boundary_memory, bandwidth, boundary_dirty * (1 - 1e-6), rtt)
    busier = predict(boundary_memory, bandwidth, boundary_dirty * (1 + 1e-6), rtt)
    assert calmer.seconds <= busier.seconds


@given(memories, bandwidths_bps, bandwidths_bps, dirty_rates_Bps, rtts_s)
def test_faster_link_never_predicts_slower(memory, b1, b2, dirty, rtt) -> None:
    slower, faster = sorted((b1, b2))
    assert predict(memory, faster, dirty, rtt).seconds <= predict(memory, slower, dirty, rtt).seconds


@given(
    st.integers(min_value=1, max_value=2**44),
    bandwidths_bps,
    st.floats(min_value=1, max_value=10),
    rtts_s,
    compressions,
)
def test_no_convergence_once_dirty_rate_reaches_bandwidth(memory, bandwidth, overload, rtt, compression) -> None:
    effective_Bps = bandwidth / 8 * compression
    prediction = predict(memory, bandwidth, effective_Bps * overload, rtt, compression)
    assert not prediction.converges
    assert prediction.seconds == math.inf
    assert prediction.to_dict()["seconds"] is None


@given(st.integers(min_value=1, max_value=2**44), bandwidths_bps, st.floats(0, 0.999), rtts_s)
def test_converges_below_bandwidth(memory, bandwidth, load, rtt) -> None:
    prediction = predict(memory, bandwidth, bandwidth / 8 * load, rtt)
    assert prediction.converges
    assert math.isfinite(prediction.seconds)
    assert 1 <= prediction.passes <= DEFAULT_ASSUMPTIONS.max_passes


@given(memories, bandwidths_bps, rtts_s)
def test_without_dirtying_time_is_memory_over_bandwidth(memory, bandwidth, rtt) -> None:
    # Nothing is dirtied, so nothing is left for demand paging and the RTT costs nothing.
    prediction = predict(memory, bandwidth, 0.0, rtt)
    assert prediction.seconds == pytest.approx(memory * 8 / bandwidth, rel=1e-12)
    assert prediction.residual_bytes == 0
    assert prediction.demand_paging_seconds == 0
    assert prediction.passes == (1 if memory else 0)


@given(
    st.integers(min_value=1, max_value=2**44),
    bandwidths_bps,
    st.floats(min_value=0.01, max_value=0.99),
    st.integers(min_value=0, max_value=29),
)
def test_precopy_time_is_the_geometric_series(memory, bandwidth, ratio, resends) -> None:
    # With no switch-over threshold pre-copy runs to the pass limit: T = (M/B)(1 - r^(n+1)) / (1 - r).
    assumptions = ModelAssumptions(switchover_threshold_bytes=0, max_passes=resends + 1)
    rate_Bps = bandwidth / 8
    prediction = predict(memory, bandwidth, ratio * rate_Bps, assumptions=assumptions)
    expected = (memory / rate_Bps) * (1 - ratio ** (resends + 1)) / (1 - ratio)
    assert prediction.precopy_seconds == pytest.approx(expected, rel=1e-9)
    assert prediction.passes == resends + 1


@given(st.integers(min_value=1, max_value=2**44), bandwidths_bps, dirty_rates_Bps, rtts_s)
def test_residual_respects_the_switchover_rule(memory, bandwidth, dirty, rtt) -> None:
    prediction = predict(memory, bandwidth, dirty, rtt)
    if prediction.converges and not prediction.pass_limit_reached:
        assert prediction.residual_bytes <= DEFAULT_ASSUMPTIONS.switchover_threshold_bytes
    if prediction.pass_limit_reached and prediction.converges:
        assert prediction.passes == DEFAULT_ASSUMPTIONS.max_passes
        assert prediction.residual_bytes > DEFAULT_ASSUMPTIONS.switchover_threshold_bytes


def test_worked_example_with_demand_paging() -> None:
    # 1 GiB over 1 GB/s, dirtying 100 MB/s (r = 0.1), 1 ms RTT, default assumptions.
    prediction = predict(GiB, 8e9, 100e6, rtt_s=0.001)
    # Pass 0 takes 1.073741824 s and dirties 107 MB (> 64 MiB threshold); pass 1 re-sends that in
    # 0.107 s and dirties 10.7 MB, under the threshold: switch over after 2 passes.
    assert prediction.passes == 2
    assert prediction.precopy_seconds == pytest.approx(1.073741824 * 1.1, rel=1e-12)
    # The residual charged is the threshold: 64 MiB = 16384 pages of 4 KiB, one 1 ms fault at a time.
    assert prediction.residual_bytes == 64 * MiB
    assert prediction.demand_paging_seconds == pytest.approx(64 * MiB / 1e9 + 16384 * 0.001, rel=1e-12)
    assert prediction.seconds == pytest.approx(prediction.precopy_seconds + prediction.demand_paging_seconds)
    assert not prediction.pass_limit_reached


def test_round_trip_time_costs_one_rtt_per_residual_page() -> None:
    without_rtt = predict(256 * GiB, 10e9, 300 * MiB, rtt_s=0.0)
    with_rtt = predict(256 * GiB, 10e9, 300 * MiB, rtt_s=0.0005)
    pages = math.ceil(with_rtt.residual_bytes / DEFAULT_ASSUMPTIONS.page_bytes)
    assert with_rtt.seconds - without_rtt.seconds == pytest.approx(pages * 0.0005, rel=1e-9)
    parallel = predict(
        256 * GiB, 10e9, 300 * MiB, rtt_s=0.0005, assumptions=ModelAssumptions(demand_paging_concurrency=4)
    )
    assert parallel.demand_paging_seconds < with_rtt.demand_paging_seconds


def test_pass_limit_leaves_a_large_residual() -> None:
    # r = 0.95: thirty passes cannot shrink 256 GiB under 64 MiB, so much is left for demand paging.
    prediction = predict(256 * GiB, 8e9, 0.95e9, rtt_s=0.0002)
    assert prediction.converges
    assert prediction.pass_limit_reached
    assert prediction.passes == 30
    assert prediction.residual_bytes == pytest.approx(256 * GiB * 0.95**30, rel=1e-9)


@pytest.mark.parametrize("factor", [2.0, 4.0])
@given(memories, bandwidths_bps, dirty_rates_Bps, rtts_s)
def test_compression_acts_as_more_bandwidth(factor, memory, bandwidth, dirty, rtt) -> None:
    compressed = predict(memory, bandwidth, dirty, rtt, compression=factor)
    assert compressed.seconds == predict(memory, bandwidth * factor, dirty, rtt).seconds
    assert compressed.seconds <= predict(memory, bandwidth, dirty, rtt).seconds


@given(memories, st.lists(bandwidths_bps, min_size=1, max_size=4), dirty_rates_Bps, rtts_s)
def test_redundant_pairs_never_slower_than_any_single_pair(memory, pairs, dirty, rtt) -> None:
    together = predict(memory, aggregate_bandwidth(pairs), dirty, rtt).seconds
    for pair in pairs:
        assert together <= predict(memory, pair, dirty, rtt).seconds


def test_aggregate_bandwidth_sums_pairs() -> None:
    assert aggregate_bandwidth([9.4e9, 9.6e9]) == pytest.approx(19e9)
    assert aggregate_bandwidth([5e9]) == 5e9


@pytest.mark.parametrize("pairs", [[], [-1.0], [float("nan")], [float("inf")], "10Gbit"])
def test_aggregate_bandwidth_rejects_bad_input(pairs) -> None:
    with pytest.raises((ValueError, TypeError)):
        aggregate_bandwidth(pairs)


@settings(deadline=None)
@given(
    st.integers(min_value=MiB, max_value=2**42),
    st.floats(min_value=0, max_value=2e9),
    st.floats(min_value=10, max_value=86400),
    st.floats(min_value=0, max_value=0.005),
)
def test_required_bandwidth_is_the_least_that_fits(memory, dirty, window, rtt) -> None:
    required = required_bandwidth_bps(memory, dirty, window, rtt)
    if math.isinf(required):
        assert predict(memory, 1e21, dirty, rtt).seconds > window
        return
    assert predict(memory, required, dirty, rtt).seconds <= window
    assert predict(memory, required * (1 - 1e-6), dirty, rtt).seconds > window


def test_required_bandwidth_without_dirtying_is_memory_over_window() -> None:
    assert required_bandwidth_bps(256 * GiB, 0, 3600) == pytest.approx(256 * GiB * 8 / 3600, rel=1e-9)
    assert required_bandwidth_bps(0, 1e9, 60) == 0.0


def test_required_bandwidth_is_infinite_below_the_round_trip_floor() -> None:
    # Even at infinite bandwidth one residual page costs a 1 s round trip, more than the 0.5 s window.
    assert required_bandwidth_bps(GiB, 1e6, 0.5, rtt_s=1.0) == math.inf


def test_ibm_rule_of_thumb_256_gb_over_gigabit_takes_at_least_53_minutes() -> None:
    # IBM: "Gigabit Ethernet can transmit 80 MB/sec ... 256 GB ... at least 3276.8 seconds".
    assert predict(256e9, 80e6 * 8).seconds >= 53 * 60
    assert predict(256 * GiB, RULE_OF_THUMB_1GBE_BYTES_PER_S * 8).seconds == pytest.approx(3276.8)
    # Re-dirtied pages only make it longer, as IBM warns.
    assert predict(256 * GiB, RULE_OF_THUMB_1GBE_BYTES_PER_S * 8, 10 * MiB, 0.0002).seconds > 3276.8


@pytest.mark.parametrize(
    "arguments",
    [
        {"memory_bytes": -1},
        {"memory_bytes": float("nan")},
        {"bandwidth_bps": -1.0},
        {"bandwidth_bps": float("inf")},
        {"dirty_rate_Bps": -5.0},
        {"rtt_s": float("nan")},
        {"rtt_s": -0.001},
        {"compression": 0.5},
    ],
)
def test_predict_rejects_bad_numbers(arguments) -> None:
    call = {"memory_bytes": GiB, "bandwidth_bps": 1e9, **arguments}
    with pytest.raises(ValueError, match=next(iter(arguments))):
        predict(**call)


def test_predict_rejects_non_numbers() -> None:
    with pytest.raises(TypeError):
        predict("256GiB", 1e9)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        predict(GiB, True)


def test_zero_bandwidth_never_finishes_rather_than_crashing() -> None:
    prediction = predict(GiB, 0.0)
    assert not prediction.converges
    assert prediction.seconds == math.inf


@pytest.mark.parametrize(
    "arguments",
    [
        {"max_passes": 0},
        {"page_bytes": 0},
        {"demand_paging_concurrency": 0},
        {"switchover_threshold_bytes": -1},
        {"max_passes": 2.5},
    ],
)
def test_model_assumptions_reject_nonsense(arguments) -> None:
    with pytest.raises(ValueError, match=next(iter(arguments))):
        ModelAssumptions(**arguments)


def test_prediction_to_dict_is_strict_json() -> None:
    stalled = predict(256 * GiB, 1e9, 1e9).to_dict()
    finished = predict(256 * GiB, 10e9, 100 * MiB, 0.0003).to_dict()
    for document in (stalled, finished):
        json.dumps(document, allow_nan=False)
    assert stalled["converges"] is False
    assert finished["seconds"] > 0
    assert finished["assumptions"]["max_passes"] == DEFAULT_ASSUMPTIONS.max_passes
    for key in ("seconds", "converges", "passes", "residual_bytes", "demand_paging_seconds", "bandwidth_bps"):
        assert key in finished


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("db01:256GiB:600MiB/s", LparSpec("db01", 256 * GiB, 600 * MiB)),
        ("web1:32GiB", LparSpec("web1", 32 * GiB, 0.0)),
        ("db02:1TB:5Gbit", LparSpec("db02", 10**12, 625e6)),
        ("batch_3.prod:64 GiB:0MB/s", LparSpec("batch_3.prod", 64 * GiB, 0.0)),
    ],
)
def test_parse_lpar_spec(text: str, expected: LparSpec) -> None:
    assert parse_lpar_spec(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "db01",
        "db01:",
        ":256GiB",
        " :256GiB",
        "db01:256Gb",
        "db01:0GiB",
        "db01:256GiB:600",
        "db01:256GiB:600Mb/s",
        "db01:256GiB:-1MiB/s",
        "a:1GiB:1MiB/s:extra",
        "x" * 65 + ":1GiB",
        "bad\tname:1GiB",
    ],
)
def test_parse_lpar_spec_rejects_bad_specs(text: str) -> None:
    with pytest.raises(ValueError, match="NAME:MEMORY"):
        parse_lpar_spec(text)


def test_assess_lpars_without_window() -> None:
    lpars = [parse_lpar_spec("db01:256GiB:600MiB/s"), parse_lpar_spec("hot:64GiB:2GiB/s")]
    rows = assess_lpars(lpars, goodput_bps=9.41e9, rtt_s=0.0003)
    json.dumps(rows, allow_nan=False)
    db01, hot = rows
    assert db01["name"] == "db01" and db01["memory_bytes"] == 256 * GiB
    assert db01["dirty_rate_Bps"] == 600 * MiB
    assert db01["converges"] is True
    assert db01["predicted_seconds"] == pytest.approx(predict(256 * GiB, 9.41e9, 600 * MiB, 0.0003).seconds)
    assert db01["fits_window"] is None and db01["required_bps"] is None
    # 2 GiB/s of dirtying outruns a 9.41 Gbit/s pair: LPM would stall.
    assert hot["converges"] is False and hot["predicted_seconds"] is None


def test_assess_lpars_with_window() -> None:
    lpars = [parse_lpar_spec("db01:256GiB:600MiB/s"), parse_lpar_spec("big:2TiB:900MiB/s")]
    db01, big = assess_lpars(lpars, goodput_bps=9.41e9, rtt_s=0.0003, window_s=3600)
    assert db01["fits_window"] is True
    assert db01["required_bps"] < 9.41e9
    assert big["fits_window"] is False
    assert big["required_bps"] > 9.41e9
    assert predict(2 * 2**40, big["required_bps"], 900 * MiB, 0.0003).seconds <= 3600


def test_assess_lpars_reports_an_unreachable_window_as_null() -> None:
    (row,) = assess_lpars([LparSpec("db01", GiB, 1e6)], goodput_bps=1e9, rtt_s=1.0, window_s=0.5)
    assert row["fits_window"] is False
    assert row["required_bps"] is None


def test_assess_lpars_rejects_a_bad_window() -> None:
    with pytest.raises(ValueError, match="window_s"):
        assess_lpars([LparSpec("db01", GiB)], goodput_bps=1e9, rtt_s=0.0, window_s=0)
