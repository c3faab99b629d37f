"""Result merging and verdict rules as pure functions."""

from __future__ import annotations

import pytest

from lpmbench.analysis import results
from lpmbench.analysis.checks import base as verdict
from lpmbench.orchestrator.pair import Endpoint, PairConfig


def cfg(streams=2):
    return PairConfig(sender=Endpoint("a"), receiver=Endpoint("b"), key=None, streams=streams, duration=2.0,
                      interval=1.0)


def tcp(retrans, segs, rtt=100):
    return {"total_retrans": retrans, "segs_out": segs, "rtt_us": rtt, "snd_mss": 1448, "snd_cwnd": 10}


def build(sender_result, receiver_result, merger=None, errors=()):
    return results.build_result(config=cfg(), run_id="r", started_at="t", merger=merger or
                                results.IntervalMerger(2, 1.0, None), sender={"host": "a"}, receiver={"host": "b"},
                                sender_result=sender_result, receiver_result=receiver_result, errors=list(errors))


def complete(retrans=0, segs=100_000):
    sender = {"streams": [{"id": 0, "bytes": 1000, "tcp": tcp(retrans, segs)},
                          {"id": 1, "bytes": 1000, "tcp": tcp(0, segs)}], "dataplane": "c", "send_method": "send"}
    receiver = {"streams": [{"id": 0, "bytes": 1000}, {"id": 1, "bytes": 1000}], "elapsed_s": 2.0}
    return build(sender, receiver)


def test_goodput_from_receiver_bytes_and_elapsed():
    result = complete()
    assert result["goodput_bps"] == 2000 * 8 / 2.0
    assert result["streams"][0]["goodput_bps"] == 1000 * 8 / 2.0
    assert result["dataplane"] == "c" and result["sender"]["send_method"] == "send"
    assert result["partial"] is False
    assert {c["name"]: c["status"] for c in result["checks"]}["retransmit rate"] == "pass"
    assert result["verdict"] == "pass"  # one MSP pair only is a note (INFO), not a warning


def test_retransmit_thresholds():
    assert complete(retrans=0)["checks"][0]["status"] == "pass"
    warn = complete(retrans=int(200_000 * 0.002))
    assert warn["checks"][0]["status"] == "warn" and warn["verdict"] == "warn" and warn["checks"][0]["remedy"]
    fail = complete(retrans=int(200_000 * 0.05))
    assert fail["checks"][0]["status"] == "fail" and fail["verdict"] == "fail"
    assert "flow control" in fail["checks"][0]["remedy"]


def test_unknown_retransmits_do_not_change_verdict():
    sender = {"streams": [{"id": 0, "bytes": 10}, {"id": 1, "bytes": 10}]}
    receiver = {"streams": [{"id": 0, "bytes": 10}, {"id": 1, "bytes": 10}], "elapsed_s": 1.0}
    result = build(sender, receiver)
    assert result["checks"][0]["status"] == "unknown"
    assert verdict.overall([c for c in result["checks"] if c["name"] != "redundant MSP pair"]) == "pass"
    assert result["retransmit_rate"] is None


def test_missing_receiver_result_is_partial_from_last_interval():
    merger = results.IntervalMerger(2, 1.0, None)
    merger.add("receiver", {"index": 0, "t": 1.0, "streams": [{"id": 0, "bytes": 500}, {"id": 1, "bytes": 400}]})
    result = build({"streams": []}, None, merger, errors=["receiver b:7520 went silent"])
    assert result["partial"] is True and "went silent" in result["error"]
    assert result["bytes"] == 900 and result["verdict"] == "fail"


def test_intervals_pair_sender_and_receiver_by_index():
    seen = []
    merger = results.IntervalMerger(1, 1.0, seen.append)
    merger.add("receiver", {"index": 0, "t": 1.0, "streams": [{"id": 0, "bytes": 1000}]})
    assert not seen  # waits for the sender's half
    merger.add("sender", {"index": 0, "t": 1.0, "streams": [{"id": 0, "bytes": 1100, "tcp": tcp(2, 50)}]})
    merger.add("receiver", {"index": 1, "t": 2.0, "streams": [{"id": 0, "bytes": 3000}]})
    merger.add("sender", {"index": 1, "t": 2.0, "streams": [{"id": 0, "bytes": 3100, "tcp": tcp(5, 90)}]})
    assert [i["goodput_bps"] for i in seen] == [8000.0, 16000.0]
    assert [i["retransmits"] for i in seen] == [2, 3]


def test_malformed_agent_reports_are_protocol_faults_not_measurements():
    merger = results.IntervalMerger(1, 1.0, None)
    with pytest.raises(results.ReportError, match="'index'"):
        merger.add("receiver", {"index": "x", "t": 1.0, "streams": []})
    with pytest.raises(results.ReportError, match="'streams'"):
        merger.add("receiver", {"index": 0, "t": 1.0, "streams": ["junk", {"id": "0", "bytes": 1}, {"id": 0}]})
    result = build({"streams": "nope"}, {"streams": [{"id": 0, "bytes": True}], "elapsed_s": "2"}, merger)
    assert result["bytes"] == 0 and result["partial"] and result["agent_lost"]  # exit 2, not a verdict
    assert "sender a: the sender's final report is not valid: field 'streams'" in result["error"]
    assert "receiver b: the receiver's final report is not valid: field 'streams[0].bytes'" in result["error"]


def test_idle_stream_fails():
    sender = {"streams": []}
    receiver = {"streams": [{"id": 0, "bytes": 100}, {"id": 1, "bytes": 0}], "elapsed_s": 1.0}
    checks = {c["name"]: c for c in build(sender, receiver)["checks"]}
    assert checks["all streams moved data"]["status"] == "fail"


def test_overall_ignores_unknown():
    assert verdict.overall([verdict.check("x", "unknown", "")]) == "pass"
    assert verdict.overall([verdict.check("x", "warn", ""), verdict.check("y", "fail", "")]) == "fail"


def test_one_stalled_stream_ends_the_run_naming_it(monkeypatch):
    """The stall detector over real SenderRun code, fed TCP_INFO values: stream 1 stops being acknowledged."""
    import asyncio

    from lpmbench.agent import runs

    async def no_report(kind, fields):
        return None

    async def build():
        return runs.SenderRun(runs.RunSpec("r", "0" * 32, 2, 30.0, 1.0), no_report, {}, "127.0.0.1", 9)

    run = asyncio.run(build())
    clock = [100.0]
    acked = {0: 0, 1: 0}
    monkeypatch.setattr(runs.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(run, "_tcp_info", lambda sid: {"bytes_acked": acked[sid]})
    for _ in range(5):
        acked[0] += 1000  # stream 0 keeps moving; stream 1 never gets anything acknowledged
        run._after_interval()
        clock[0] += 1.0
    assert run.stalled
    assert "stream(s) 1 of 2" in run._abort_reason


def test_ill_typed_agent_reports_never_crash_the_orchestrator():
    junk_tcp = {"total_retrans": "7", "segs_out": None, "snd_mss": [1], "rtt_us": True}
    sender = {"streams": [{"id": 0, "bytes": 10, "tcp": junk_tcp}, {"id": 1, "bytes": 5, "tcp": "x"}],
              "interface": "eth0", "path_probe": ["mtu"], "system_tcp_delta": "many", "stalled": "yes"}
    receiver = {"streams": [{"id": 0, "bytes": 10}, {"id": 1, "bytes": 5}], "elapsed_s": 1.0,
                "interface": {"name": 5, "speed_mbps": "10000", "mtu": 9000, "flow_control": "on",
                              "counters_delta": {"rx_errors": "3"}}}
    result = build(sender, receiver)
    assert result["retransmits"] is None and result["stalled"] is False
    assert result["interfaces"]["sender"] is None and result["interfaces"]["receiver"] is None
    # Ill-typed reports are protocol faults naming the field: the run is partial (exit 2), never judged.
    assert result["partial"] and result["agent_lost"]
    assert "field 'streams[0].tcp.total_retrans'" in result["error"] and "field 'interface.name'" in result["error"]


def test_absurd_numbers_from_an_agent_are_not_measurements():
    from lpmbench.analysis.results import _num

    assert _num(10**400) is None and _num(float("nan")) is None and _num(True) is None and _num("5") is None
    assert _num(5) == 5.0
