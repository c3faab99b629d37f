"""Strict unit parsing and the human formatters (lpmbench.units)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lpmbench.analysis.units import (
    format_byte_rate,
    format_bytes,
    format_duration,
    format_rate_bps,
    parse_duration_seconds,
    parse_rate_bps,
    parse_size_bytes,
)

GiB = 2**30
MiB = 2**20


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("256GiB", 256 * GiB),
        ("256 GiB", 256 * GiB),
        ("  256GiB  ", 256 * GiB),
        ("256gib", 256 * GiB),
        ("256GIB", 256 * GiB),
        ("1.5TiB", 3 * 2**39),
        ("4KiB", 4096),
        ("64MiB", 64 * MiB),
        ("1.5 TB", 1_500_000_000_000),
        ("256GB", 256_000_000_000),
        ("256gb", 256_000_000_000),
        ("1KB", 1000),
        ("10MB", 10_000_000),
        ("4096", 4096),
        ("4096B", 4096),
        ("4096 b", 4096),
        ("0", 0),
        ("0.3KiB", 307),  # rounded to the nearest byte
    ],
)
def test_parse_size_accepts_canonical_units(text: str, expected: int) -> None:
    assert parse_size_bytes(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "GiB",
        "-1GiB",
        "+1GiB",
        "nan",
        "inf",
        "infGiB",
        "1e9",
        "1,5GiB",
        "1_000",
        "0x10",
        "1.5",  # a bare number is a whole count of bytes
        "1.5B",
        "256Gb",  # gigabits? refused rather than guessed
        "256gB",
        "256G",
        "256 PiB",
        "256GiB extra",
        "256 GiB/s",
        "99999999999TiB",
    ],
)
def test_parse_size_rejects_garbage_with_a_helpful_message(text: str) -> None:
    with pytest.raises(ValueError, match="KiB"):
        parse_size_bytes(text)


def test_parsers_refuse_non_text() -> None:
    for parse in (parse_size_bytes, parse_rate_bps, parse_duration_seconds):
        with pytest.raises(TypeError):
            parse(256)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "expected_bps"),
    [
        ("10Gbit/s", 10e9),
        ("10 Gbit", 10e9),
        ("10gbit", 10e9),
        ("10 Gbits/s", 10e9),
        ("9.41Gbit/s", 9.41e9),
        ("940Mbps", 940e6),
        ("1Gbps", 1e9),
        ("100kbit/s", 100e3),
        ("100Kbit", 100e3),
        ("1Tbit/s", 1e12),
        ("8bit/s", 8.0),
        ("8bps", 8.0),
        ("0Mbit/s", 0.0),
        ("600MiB/s", 600 * MiB * 8),
        ("600 MiB/s", 600 * MiB * 8),
        ("1GiB/s", GiB * 8),
        ("2KiB/s", 2048 * 8),
        ("1TiB/s", 2**40 * 8),
        ("1GB/s", 8e9),
        ("80MB/s", 640e6),
        ("1KB/s", 8000.0),
        ("1kB/s", 8000.0),
        ("1TB/s", 8e12),
        ("3B/s", 24.0),
    ],
)
def test_parse_rate_in_bits_per_second(text: str, expected_bps: float) -> None:
    assert parse_rate_bps(text) == pytest.approx(expected_bps, rel=1e-15)


@pytest.mark.parametrize("text", ["10Mb", "10Mb/s", "10 Gb/s", "10MBps", "10mib/s", "10MB", "10 GiB"])
def test_parse_rate_refuses_bit_byte_ambiguity(text: str) -> None:
    with pytest.raises(ValueError, match="ambiguous"):
        parse_rate_bps(text)


@pytest.mark.parametrize(
    "text",
    ["", "10", "1.5", "-1Gbit", "nanGbit", "infMbps", "Gbit/s", "10 furlongs/s", "1iB/s", "10Gbit/h", "1e9bps"],
)
def test_parse_rate_rejects_garbage_with_a_helpful_message(text: str) -> None:
    with pytest.raises(ValueError, match="Mbit"):
        parse_rate_bps(text)


def test_parse_rate_rejects_a_number_too_long_for_a_float() -> None:
    with pytest.raises(ValueError, match="too large"):
        parse_rate_bps("9" * 400 + "Gbit")


@pytest.mark.parametrize(
    ("text", "expected_seconds"),
    [
        ("90s", 90.0),
        ("90 s", 90.0),
        ("30m", 1800.0),
        ("1h", 3600.0),
        ("1.5h", 5400.0),
        ("1H", 3600.0),
        ("1h30m", 5400.0),
        ("1h 02m", 3720.0),
        ("55m 10s", 3310.0),
        ("2h 0m 1s", 7201.0),
        ("12.3 s", 12.3),
        ("90", 90.0),
        ("0.5", 0.5),
        ("0s", 0.0),
    ],
)
def test_parse_duration_in_seconds(text: str, expected_seconds: float) -> None:
    assert parse_duration_seconds(text) == pytest.approx(expected_seconds, rel=1e-15)


@pytest.mark.parametrize(
    "text",
    ["", "h", "-5m", "5ms", "1h30", "30m 1h", "1m 1m", "5 minutes", "nan", "inf", "1e3", "P1D", "9" * 400],
)
def test_parse_duration_rejects_garbage_with_a_helpful_message(text: str) -> None:
    with pytest.raises(ValueError, match="90s"):
        parse_duration_seconds(text)


@pytest.mark.parametrize(
    ("formatter", "value", "expected"),
    [
        (format_bytes, 0, "0 B"),
        (format_bytes, 512, "512 B"),
        (format_bytes, 1536, "1.50 KiB"),
        (format_bytes, 1.5 * GiB, "1.50 GiB"),
        (format_bytes, 256 * GiB, "256 GiB"),
        (format_bytes, 15.3 * GiB, "15.3 GiB"),
        (format_bytes, 4096 * 2**40, "4096 TiB"),
        (format_byte_rate, 600 * MiB, "600 MiB/s"),
        (format_rate_bps, 9.41e9, "9.41 Gbit/s"),
        (format_rate_bps, 640e6, "640 Mbit/s"),
        (format_rate_bps, 80.5e6, "80.5 Mbit/s"),
        (format_rate_bps, 1e3, "1 kbit/s"),
        (format_rate_bps, 12, "12 bit/s"),
        (format_duration, 12.34, "12.3 s"),
        (format_duration, 0, "0.0 s"),
        (format_duration, 59.97, "1m 00s"),
        (format_duration, 3310, "55m 10s"),
        (format_duration, 3720, "1h 02m"),
        (format_duration, 3599.7, "1h 00m"),
        (format_duration, 100 * 3600, "100h 00m"),
        (format_duration, float("inf"), "never"),
    ],
)
def test_formatters(formatter, value, expected: str) -> None:
    assert formatter(value) == expected


@pytest.mark.parametrize("formatter", [format_bytes, format_rate_bps, format_duration])
@pytest.mark.parametrize("bad", [-1, float("nan")])
def test_formatters_reject_negative_and_nan(formatter, bad: float) -> None:
    with pytest.raises(ValueError):
        formatter(bad)


@given(st.integers(min_value=0, max_value=2**52))
def test_bytes_round_trip_within_half_a_percent(count: int) -> None:
    parsed = parse_size_bytes(format_bytes(count))
    assert parsed == pytest.approx(count, rel=0.0051, abs=0.5)


@given(st.floats(min_value=0, max_value=2**45))
def test_byte_rate_round_trip_within_half_a_percent(bytes_per_second: float) -> None:
    parsed_bps = parse_rate_bps(format_byte_rate(bytes_per_second))
    assert parsed_bps / 8 == pytest.approx(bytes_per_second, rel=0.0051, abs=0.5)


@given(st.floats(min_value=1, max_value=1e14))
def test_rate_round_trip_within_half_a_percent(bits_per_second: float) -> None:
    assert parse_rate_bps(format_rate_bps(bits_per_second)) == pytest.approx(bits_per_second, rel=0.0051)


@given(st.floats(min_value=0, max_value=1e7))
def test_duration_round_trip_within_display_precision(seconds: float) -> None:
    parsed = parse_duration_seconds(format_duration(seconds))
    if seconds < 59.95:
        tolerance = 0.05
    elif seconds < 3599.5:
        tolerance = 0.5
    else:
        tolerance = 30.0
    assert abs(parsed - seconds) <= tolerance + 1e-9


@pytest.mark.parametrize("text", ["256 GiB", "1.50 GiB", "512 B"])
def test_canonical_size_text_survives_parse_then_format(text: str) -> None:
    assert format_bytes(parse_size_bytes(text)) == text
