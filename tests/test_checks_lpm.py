"""LPM checks, one row per branch: each partition given with --lpar (redundant pairs: test_checks_redundancy.py)."""

from __future__ import annotations

from typing import Any

import pytest
from test_checks import ROW_ARGS, assert_row, row

from lpmbench.analysis.checks import FAIL, PASS, UNKNOWN, WARN, lpm

GIB = 1 << 30


def first_partition(result: dict[str, Any]) -> dict[str, str]:
    """lpm_checks makes one check per partition (or one UNKNOWN without any); the rows look at the first."""
    return lpm.lpm_checks(result)[0]


def partition(bandwidth_bps: float = 10e9, **fields: Any) -> dict[str, Any]:
    """A result with one partition db01 (64 GiB, 100 MiB/s dirty) that moves in 60 s unless ``fields`` say else."""
    entry = {"name": "db01", "memory_bytes": 64 * GIB, "dirty_rate_Bps": 100 << 20, "predicted_seconds": 60.0,
             "converges": True, "passes": 3, "residual_bytes": 0, "pass_limit_reached": False, "window_s": None,
             "fits_window": None, "required_bps": None, **fields}
    return {"lpm": [entry], "lpm_model": {"bandwidth_bps": bandwidth_bps}}


ROWS = [
    # One check per partition: stall, window missed (with and without a bandwidth that meets it), pass limit, pass.
    row(first_partition, {"lpm": None}, UNKNOWN, ("no partitions given", "--lpar"), id="partitions-none-given"),
    row(first_partition, partition(converges=False, predicted_seconds=None, passes=30, pass_limit_reached=True),
        FAIL, ("64 GiB", "dirtied faster than they move", "stall"), ("above the dirty rate",), id="partition-stall"),
    row(first_partition, partition(0.0, dirty_rate_Bps=0, converges=False, predicted_seconds=None, passes=0),
        FAIL, ("nothing moved",), ("see the other checks",), absent=("dirtied faster",),
        id="partition-nothing-moved"),
    row(first_partition, partition(predicted_seconds=3 * 3600.0, window_s=1800, fits_window=False,
                                   required_bps=40e9), FAIL, ("3h 00m, longer than the 30m 00s window"), ("40 Gbit/s",),
        id="partition-window-exceeded-bandwidth-meets-it"),
    row(first_partition, partition(predicted_seconds=3 * 3600.0, window_s=60, fits_window=False), FAIL,
        ("longer than the 1m 00s window",), ("no bandwidth meets this window", "widen the window"),
        id="partition-window-exceeded-no-bandwidth-meets-it"),
    row(first_partition, partition(pass_limit_reached=True, residual_bytes=2 * GIB, passes=30), WARN,
        ("2 GiB for demand paging",), ("quieter time",), id="partition-pass-limit-reached"),
    row(first_partition, partition(window_s=1800, fits_window=True, required_bps=1e9), PASS, ("in 3 pass(es)",),
        id="partition-pass-in-window"),
    row(first_partition, partition(), PASS, ("about 1m 00s", "over 10 Gbit/s"), id="partition-pass"),
    row(first_partition, {"lpm": partition()["lpm"]}, PASS, ("over the measured bandwidth",),
        id="partition-pass-without-lpm-model"),
]


@pytest.mark.parametrize(ROW_ARGS, ROWS)
def test_lpm_rows(rule, result, status, detail, remedy, absent):
    assert_row(rule(result), status, detail, remedy, absent)


def test_one_check_per_partition_in_the_order_given():
    result = partition()
    result["lpm"].append({**result["lpm"][0], "name": "web1", "converges": False})
    made = lpm.lpm_checks(result)
    assert [(c["name"], c["status"]) for c in made] == [("LPM partition db01", PASS), ("LPM partition web1", FAIL)]
