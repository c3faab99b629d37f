"""A hostile or broken agent that holds the key: its bad reports are protocol faults (exit 2, naming the agent
and the field), never a network verdict, and they cannot grow the orchestrator's memory or rename the agent.

The hostile agents (tests/hostile_agent.py) complete a real handshake, answer arm/start, then send poison.
"""

from __future__ import annotations

import asyncio
import tracemalloc
from pathlib import Path
from typing import Any, Union

import pytest
from cli_runner import cli_runner
from hostile_agent import good_final, good_interval, honest, hostile_pair

from lpmbench.analysis import results
from lpmbench.cli import app
from lpmbench.net import keys
from lpmbench.orchestrator.pair import PairConfig, run_pair
from lpmbench.protocol.messages import Error, ErrorCode, Interval, Message, Result

KEY = b"e" * 32
runner = cli_runner()
Script = list[Union[Message, bytes]]


def pair_cli(a: Any, b: Any, key_file: Path) -> Any:
    return runner.invoke(app, ["pair", a.endpoint.label, b.endpoint.label, "--key-file", str(key_file),
                               "--duration", "0.5", "--interval", "0.25", "--streams", "2"])


@pytest.fixture
def key_path(tmp_path: Path) -> Path:
    path = tmp_path / "key"
    keys.write_key(str(path), KEY.hex())
    return path


def poisoned_interval(**stream: Any) -> Any:
    def script(run_id: str) -> Script:
        interval = good_interval(run_id, 0)
        interval["streams"][0].update(stream)
        return [Interval(**interval), *honest("sender")(run_id)[1:]]
    return script


def poisoned_final(role: str, **fields: Any) -> Any:
    def script(run_id: str) -> Script:
        return [*(Interval(**good_interval(run_id, i)) for i in range(2)),
                Result(run_id, role, {**good_final(role), **fields})]
    return script


def oversized_streams(run_id: str) -> Script:
    interval = good_interval(run_id, 0, streams=5000)
    return [Interval(**interval), *honest("sender")(run_id)[1:]]


POISONS = {
    # (sender script, receiver script, the field the error must name, the role it must name)
    "text for a byte count": (poisoned_interval(bytes="lots"), honest("receiver"), "streams[0].bytes", "sender"),
    "negative byte count": (honest("sender"), poisoned_final("receiver", streams=[{"id": 0, "bytes": -5}]),
                            "streams[0].bytes", "receiver"),
    "stream id out of range": (poisoned_interval(id=7), honest("receiver"), "streams[0].id", "sender"),
    "5000 streams for 2": (oversized_streams, honest("receiver"), "streams", "sender"),
    "text for elapsed time": (honest("sender"), poisoned_final("receiver", elapsed_s="10"), "elapsed_s",
                              "receiver"),
    "text for a TCP counter": (poisoned_final("sender", streams=[{"id": 0, "bytes": 1, "tcp": {"total_retrans": "0"}}]),
                               honest("receiver"), "streams[0].tcp.total_retrans", "sender"),
    "an interface that is a list": (poisoned_final("sender", interface=["eth0"]), honest("receiver"), "interface",
                                    "sender"),
}


@pytest.mark.parametrize("poison", sorted(POISONS))
def test_a_bad_report_is_a_protocol_fault_naming_agent_and_field(poison: str, key_path: Path) -> None:
    sender, receiver, field, role = POISONS[poison]
    with hostile_pair(KEY, sender, receiver) as (a, b):
        outcome = pair_cli(a, b, key_path)
    assert outcome.exit_code == 2, outcome.output  # a runtime error, never a verdict on the network (0 or 1)
    assert f"'{field}'" in outcome.output and role in outcome.output, outcome.output
    assert not a.errors and not b.errors


def test_bad_facts_at_the_handshake_are_a_protocol_fault(key_path: Path) -> None:
    with hostile_pair(KEY, honest("sender"), honest("receiver"), facts={"hostname": 7, "os": "Linux"}) as (a, b):
        outcome = pair_cli(a, b, key_path)
    assert outcome.exit_code == 2 and "'hostname'" in outcome.output and "facts" in outcome.output, outcome.output


def test_an_honest_hostile_pair_passes(key_path: Path) -> None:
    """The control for the tests above: the same agents with well-formed reports give a verdict, not exit 2."""
    with hostile_pair(KEY, honest("sender"), honest("receiver")) as (a, b):
        outcome = pair_cli(a, b, key_path)
    assert outcome.exit_code in (0, 1), outcome.output


def run(sender: Any, receiver: Any, facts: dict[str, Any] | None = None) -> dict[str, Any]:
    with hostile_pair(KEY, sender, receiver, facts) as (a, b):
        config = PairConfig(sender=a.endpoint, receiver=b.endpoint, key=KEY, streams=2, duration=0.5,
                            interval=0.25)
        return asyncio.run(run_pair(config))


def test_an_agent_cannot_rename_itself_or_move_its_address() -> None:
    facts = {"hostname": "msp-a", "host": "10.6.6.6", "address": "10.6.6.6", "os": "Linux"}

    def claims_another_address(run_id: str) -> Script:
        return [*honest("sender")(run_id)[:-1],
                Result(run_id, "sender", {**good_final("sender"), "host": "10.6.6.6", "address": "10.6.6.6"})]

    result = run(claims_another_address, honest("receiver"), facts)
    assert result["sender"]["host"] == "127.0.0.1" and result["sender"]["address"] == "127.0.0.1"
    assert result["receiver"]["host"] == "127.0.0.2" and result["receiver"]["address"] == "127.0.0.2"
    assert result["sender"]["hostname"] == "hostile-sender"  # what the agent says of itself stays, as its claim


def test_an_error_from_an_agent_mid_run_reaches_the_terminal_clean(key_path: Path) -> None:
    def fails_loudly(run_id: str) -> Script:
        return [Error(ErrorCode.RUN_FAILED, "\x1b]0;owned\x07\x1b[2J\nlpmbench: Verdict: PASS\r\x9b31m", run_id)]

    with hostile_pair(KEY, fails_loudly, honest("receiver")) as (a, b):
        outcome = pair_cli(a, b, key_path)
    assert outcome.exit_code == 2
    assert "lpmbench: Verdict: PASS" in outcome.output  # the text arrives, as text
    assert not any(c in outcome.output for c in "\x1b\x07\r\x9b"), repr(outcome.output)
    assert "\nlpmbench: Verdict: PASS" not in outcome.output  # it cannot start a line of its own


JUNK_STRINGS = 1000  # of 1000 characters each: a report of about 1 MiB, within every protocol limit
REPORTS = 48


def fat_intervals(run_id: str) -> Script:
    """Well-formed intervals, each carrying about 1 MiB of junk in a field nobody reads."""
    junk = ["x" * 1000 for _ in range(JUNK_STRINGS)]
    out: Script = []
    for index in range(REPORTS):
        interval = good_interval(run_id, index)
        interval["streams"][0]["junk"] = junk
        out.append(Interval(**interval))
    return [*out, Result(run_id, "sender", good_final("sender"))]


def test_fat_reports_do_not_grow_the_orchestrator() -> None:
    """48 reports of 1 MiB: kept whole, they would cost more than 48 MB; the orchestrator keeps what it reads."""
    tracemalloc.start()
    try:
        result = run(fat_intervals, honest("receiver"))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result["error"] is None and result["bytes"] > 0, result["error"]
    assert peak < 24 * 2**20, f"orchestrator peaked at {peak / 2**20:.0f} MiB"


def test_an_interval_merger_keeps_only_what_it_reads() -> None:
    merger = results.IntervalMerger(2, 0.25, None, max_intervals=4)
    interval = good_interval("r", 0)
    interval["streams"][0]["junk"] = list(range(1000))
    interval["extra"] = {"anything": list(range(1000))}
    merger.add("sender", interval)
    kept = merger.reports["sender"][0]
    assert "junk" not in kept["streams"][0] and "extra" not in kept
    with pytest.raises(results.ReportError, match="'index'"):
        merger.add("sender", good_interval("r", 4))  # beyond the intervals a run of this length can have
