"""Durations, sizes and rates on the command line: a window says its unit, a bare 0 rate is 0, a prefix alone
is answered with the units it could mean, in one line."""

from __future__ import annotations

import pytest
from cli_runner import cli_runner

from lpmbench.cli import app

runner = cli_runner()
PLAN = ["plan", "--memory", "256GiB", "--bandwidth", "10Gbit"]


@pytest.mark.parametrize("args", [
    [*PLAN, "--window", "30"],
    ["pair", "--local", "--lpar", "db01:1GiB", "--window", "30"],
    ["pair", "a", "b", "--lpar", "db01:1GiB", "--window", "30"],
])
def test_a_bare_window_is_refused_with_the_unit_it_probably_meant(args: list[str]) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "--window" in result.stderr and "did you mean 30m?" in result.stderr


def test_a_bare_zero_dirty_rate_is_zero() -> None:
    result = runner.invoke(app, [*PLAN, "--dirty-rate", "0", "--json"])
    assert result.exit_code == 0, result.output
    assert '"dirty_rate_Bps": 0.0' in result.stdout


def test_a_size_with_only_a_prefix_names_both_units_in_one_line() -> None:
    result = runner.invoke(app, ["plan", "--memory", "256G", "--bandwidth", "10Gbit"])
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and "--memory" in result.stderr
    assert "did you mean 256GiB or 256GB?" in result.stderr


def test_a_rate_with_only_a_prefix_names_bits_and_bytes() -> None:
    result = runner.invoke(app, ["plan", "--memory", "256GiB", "--bandwidth", "10G"])
    assert result.exit_code == 2
    assert "did you mean 10Gbit/s (bits) or 10GB/s (bytes)?" in result.stderr


@pytest.mark.parametrize("duration", ["2m", "90s", "1", "0.5"])
def test_pair_run_lengths_take_units_and_bare_seconds(duration: str) -> None:
    """The run length is documented in seconds, and scripts pass bare numbers: both forms stay valid (the run
    then stops at the missing key, after every option was parsed)."""
    result = runner.invoke(app, ["pair", "a", "b", "--duration", duration, "--interval", "0.5s"])
    assert result.exit_code == 2 and "no key" in result.stderr, result.output


@pytest.mark.parametrize("args,needle", [
    (["--duration", "25h"], "--duration 25h: must be from 0.2 s to 24h 00m"),
    (["--duration", "soon"], "--duration: not a duration"),
    (["--duration", "10s", "--interval", "2h"], "--interval 2h: must be from 0.1 s to 1h 00m"),
    (["--duration", "1s", "--interval", "2s"], "must not exceed --duration"),
])
def test_pair_bad_run_lengths_exit_2_naming_the_option(args: list[str], needle: str) -> None:
    result = runner.invoke(app, ["pair", "a", "b", *args])
    assert result.exit_code == 2 and needle in result.stderr, result.output


@pytest.mark.parametrize("args,needle", [
    (["--max-duration", "soon"], "--max-duration: not a duration"),
    (["--max-duration", "0.5s"], "--max-duration must be at least 1.0 s"),
    (["--scheduled-duration", "10", "--peer", "127.0.0.2", "--every", "30"], "did you mean 30m?"),
    (["--scheduled-duration", "6m", "--peer", "127.0.0.2", "--every", "6h"], "--scheduled-duration"),
])
def test_agent_duration_options_exit_2_naming_the_option(args: list[str], needle: str) -> None:
    result = runner.invoke(app, ["agent", "--insecure", "--port", "0", "--metrics-port", "0", *args])
    assert result.exit_code == 2 and needle in result.stderr, result.output
