"""Transfer checks, one row per branch: retransmit rate, run completed, data port, streams that moved data."""

from __future__ import annotations

from typing import Any

import pytest
from test_checks import ROW_ARGS, assert_row, row

from lpmbench.analysis.checks import FAIL, PASS, UNKNOWN, WARN, transfer


def retrans(count: int | None, segments: int = 100_000) -> dict[str, Any]:
    rate = count / segments if count is not None else None
    return {"retransmit_rate": rate, "retransmits": count, "segments_out": segments}


def streams(*entries: dict[str, Any]) -> dict[str, Any]:
    return {"streams": [{"id": i, **entry} for i, entry in enumerate(entries)]}


def moved(efficiency: float, rwnd_us: int = 0) -> dict[str, Any]:
    """Streams that moved data at ``efficiency`` of the wire limit, window-limited for ``rwnd_us`` of 1 s."""
    entry = {"bytes": 10**9, "busy_us": 1_000_000, "rwnd_limited_us": rwnd_us, "sndbuf_limited_us": 0}
    return {"efficiency": efficiency, "wire_limit_bps": 9.9e9, **streams(entry, entry)}


FIREWALL = "firewall"
EMFILE = "sender a: cannot open data streams to b:32770: [Errno 24] Too many open files"
REFUSED = "cannot open data streams to b:32770: [Errno 111] Connection refused"

ROWS = [
    # Retransmit rate: WARN at 0.1 %, FAIL at 1 %, each just under and exactly at the threshold.
    row(transfer.retransmit_check, retrans(0), PASS, ("0.000% of 100000",), id="retransmits-none"),
    row(transfer.retransmit_check, retrans(99), PASS, ("0.099%",), id="retransmits-just-under-warn"),
    row(transfer.retransmit_check, retrans(100), WARN, ("0.100%", "warn at 0.1%"), ("flow control", "entstat"),
        id="retransmits-at-warn"),
    row(transfer.retransmit_check, retrans(999), WARN, ("0.999%",), ("jumbo",), id="retransmits-just-under-fail"),
    row(transfer.retransmit_check, retrans(1000), FAIL, ("1.000%", "fail at 1.0%"), ("flow control",),
        id="retransmits-at-fail"),
    # Issue 19: a policer looks like loss. Dropped while far below the link and free of window limits: a
    # bottleneck; dropped while the link stayed full: random loss. Neither when the window held the streams.
    row(transfer.retransmit_check, {**retrans(2000), **moved(0.09)}, FAIL, ("pattern of a bottleneck", "9%",
                                                                           "policer"), ("flow control",),
        absent=("at random",), id="retransmits-bottleneck-pattern"),
    row(transfer.retransmit_check, {**retrans(1100), **moved(1.2)}, FAIL, ("lost at random",),
        absent=("pattern of a bottleneck",), id="retransmits-random-loss-pattern"),
    row(transfer.retransmit_check, {**retrans(300), **moved(0.07, rwnd_us=800_000)}, WARN, ("0.300%",),
        absent=("bottleneck", "at random"), id="retransmits-window-limited-no-pattern"),
    row(transfer.retransmit_check, {**retrans(300), **moved(0.8)}, WARN, ("0.300%",),
        absent=("bottleneck", "at random"), id="retransmits-between-patterns"),
    row(transfer.retransmit_check, retrans(None), UNKNOWN, ("no per-socket",), ("netstat -s",),
        id="retransmits-unknown"),
    # Run completed.
    row(transfer.completion_check, {"partial": False, "config": {"streams": 4}, "duration_s": 10.0}, PASS,
        ("4 streams for 10.0 s",), id="run-complete"),
    row(transfer.completion_check, {"partial": True, "error": "receiver b went silent"}, FAIL,
        ("did not complete", "went silent"), ("both agents",), id="run-incomplete"),
    row(transfer.completion_check, {"partial": True, "error": None}, FAIL, ("unknown error",),
        id="run-incomplete-why-unknown"),
    # LPM port range reachable.
    row(transfer.data_port_check, {"data_port": {"port": 32770, "range": [32768, 32800], "reachable": True}}, PASS,
        ("data port 32770 (from 32768-32800)",), id="port-reached"),
    row(transfer.data_port_check, {"data_port": {"port": 40001, "range": [0, 0], "reachable": True}}, PASS,
        ("data port 40001",), absent=("from",), id="port-reached-any-port"),
    row(transfer.data_port_check, {"data_port": {"port": 32770, "range": [32768, 32800], "reachable": False,
                                                 "error": REFUSED}}, FAIL,
        ("could not reach", "Connection refused"), (FIREWALL, "tcp_port_low", "--data-ports"), id="port-unreachable"),
    row(transfer.data_port_check, {"data_port": {"port": 32770, "range": [32768, 32800], "reachable": None}}, UNKNOWN,
        ("no stream reached the receiver's data port 32770",), id="port-unknown"),
    row(transfer.data_port_check, {}, UNKNOWN, ("no stream reached the receiver's data port",), absent=("None",),
        id="port-unknown-older-result"),
    row(transfer.data_port_check, {"data_port": {"reachable": False, "error": REFUSED}}, FAIL,
        ("could not reach the receiver's data port: cannot open",), (FIREWALL,), absent=("None", "receiver's receiver"),
        id="port-unreachable-port-unknown"),
    # All streams moved data: streams that never started blame the sender; started but idle, a middlebox.
    row(transfer.streams_check, streams({"bytes": 5}, {"bytes": 7}), PASS, ("2 of 2 streams",), id="streams-all-moved"),
    row(transfer.streams_check, streams({"bytes": 5, "started": True}, {"bytes": 0, "started": True}), FAIL,
        ("stream(s) 1 moved no data",), (FIREWALL, "data ports"), id="stream-started-moved-nothing"),
    row(transfer.streams_check, streams({"bytes": 5}, {"bytes": 0}), FAIL, ("stream(s) 1 moved no data",), (FIREWALL,),
        id="stream-idle-older-result-without-started"),
    row(transfer.streams_check, {**streams({"bytes": 5, "started": True}, {"bytes": 0, "started": False},
                                           {"bytes": 0, "started": False}), "error": EMFILE},
        FAIL, ("stream(s) 1, 2 never started on the sender", "Too many open files"), ("sender", "ulimit -n"),
        absent=(FIREWALL, "moved no data"), id="streams-never-started"),
    row(transfer.streams_check, {**streams({"bytes": 0, "started": False}),
                                 "data_port": {"reachable": False, "error": REFUSED}}, FAIL,
        ("stream(s) 0 never started on the sender (" + REFUSED,), ("connect",), absent=(FIREWALL,),
        id="stream-never-started-connect-error"),
    row(transfer.streams_check, streams({"bytes": 0, "started": False}), FAIL, ("never started", "no reason reported"),
        ("sender",), absent=(FIREWALL,), id="stream-never-started-no-reason"),
    row(transfer.streams_check, streams({"bytes": 0, "started": False}, {"bytes": 0, "started": True}), FAIL,
        ("stream(s) 0 never started", "stream(s) 1 moved no data"), ("ulimit -n", FIREWALL),
        id="streams-one-never-started-one-idle"),
]


@pytest.mark.parametrize(ROW_ARGS, ROWS)
def test_transfer_rows(rule, result, status, detail, remedy, absent):
    assert_row(rule(result), status, detail, remedy, absent)
