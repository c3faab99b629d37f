"""The headline (analysis/headline.py): what needs action, worst first, root causes before symptoms, each a
sentence and its fix; the network verdict and the LPM outlook kept apart; carried first in the JSON."""

from __future__ import annotations

import copy
import json
import pathlib

from lpmbench.analysis import headline, results
from lpmbench.render.terminal import render_json

FIXTURES = pathlib.Path(__file__).parent / "fixtures" / "results"


def load(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


def check(name: str, status: str, detail: str = "something", remedy: str = "do this") -> dict:
    return {"name": name, "status": status, "detail": detail, "remedy": remedy if status != "pass" else ""}


def names(head: dict) -> list[str]:
    return [f["check"] for f in head["findings"]]


def test_fail_before_warn_and_causes_before_symptoms_whatever_the_result_order():
    # A jumbo black hole as the checks list it: the symptoms come first in the result's order.
    result = {"checks": [check("retransmit rate", "fail"), check("streams kept moving", "fail"),
                         check("same speed at both MSPs", "warn"), check("jumbo frames end to end", "fail"),
                         check("retransmit rate (copy)", "pass"), check("LPM partition db01", "fail"),
                         check("goodput against the wire limit", "warn")]}
    assert names(headline.build(result)) == ["jumbo frames end to end", "streams kept moving", "retransmit rate",
                                             "LPM partition db01", "same speed at both MSPs",
                                             "goodput against the wire limit"]


def test_a_blocked_port_range_heads_what_it_causes():
    result = {"checks": [check("run completed", "fail"), check("all streams moved data", "fail"),
                         check("LPM port range reachable", "fail")]}
    assert names(headline.build(result))[0] == "LPM port range reachable"


def test_a_small_receive_window_heads_the_mss_warning_it_explains():
    # Issue 19's example: a tiny tcp_rmem shrinks the MSS Linux advertises; the buffer is the cause to name first.
    result = {"checks": [check("jumbo frames end to end", "warn", "the streams used MSS 3136"),
                         check("what limited the streams", "warn", "the receiver's window held the streams back")]}
    assert names(headline.build(result)) == ["what limited the streams", "jumbo frames end to end"]


def test_checks_unknown_to_the_table_follow_the_known_ones_in_result_order():
    result = {"checks": [check("a newer check", "warn"), check("another newer check", "warn"),
                         check("IP on a physical adapter", "warn")]}
    assert names(headline.build(result)) == ["IP on a physical adapter", "a newer check", "another newer check"]


def test_each_finding_is_one_sentence_with_its_fix():
    result = load("edited-jumbo-blackhole.json")
    first = headline.build(result)["findings"][0]
    assert first["sentence"] == ("Full-size frames are dropped between the MSPs: both MSPs use MTU 9000 but the path "
                                 "passes only 1500 bytes: a switch drops jumbo frames.")
    assert first["fix"] == ("Enable jumbo frames (MTU 9000 or more) on every switch port between the MSPs, or set "
                            "MTU 1500 on both MSPs.")
    assert (first["status"], first["area"]) == ("fail", "network")
    commands = headline.finding(check("large_send and large_receive on", "warn", "off", "chdev -dev ent0 -attr x"))
    assert commands["fix"] == "chdev -dev ent0 -attr x."  # a command keeps its case


def test_network_and_lpm_outlook_have_their_own_verdicts():
    result = {"checks": [check("retransmit rate", "pass", "0.000%"), check("jumbo frames end to end", "fail"),
                         check("LPM partition db01", "pass", "64 GiB: about 1m 00s")],
              "lpm": [{"name": "db01", "predicted_seconds": 60.0}], "config": {"window_s": 1800}}
    head = headline.build(result)
    assert head["network"] == {"verdict": "fail", "summary": "1 problem needs action"}
    assert head["lpm"]["verdict"] == "pass"
    assert head["lpm"]["summary"] == "every partition given moves in the 30m 00s window: db01 about 1m 00s"
    moved = headline.build({**result, "checks": [check("jumbo frames end to end", "pass"),
                                                 check("LPM partition db01", "fail", "would stall")]})
    assert moved["network"]["verdict"] == "pass" and moved["lpm"]["verdict"] == "fail"
    assert moved["findings"][0]["sentence"] == "Partition db01 will not move in time: would stall."


def test_a_real_healthy_single_pair_run_passes_with_a_note():
    result = load("local-10s-lpars.json")
    head = headline.build(result)
    assert result["verdict"] == "pass" and head["findings"] == []
    assert head["network"]["verdict"] == head["lpm"]["verdict"] == "pass"
    assert head["network"]["summary"].startswith("healthy: ")
    assert [n["check"] for n in head["notes"]] == ["redundant MSP pair"]
    assert "--redundant A2 B2" in head["notes"][0]["fix"]


def test_no_partitions_given_leaves_the_outlook_not_judged_and_says_how():
    result = load("local-10s-lpars.json")
    result["config"]["lpars"], result["config"]["window_s"] = [], None
    result.pop("lpm"), result.pop("lpm_model")
    results.finalize(result)
    head = headline.build(result)
    assert head["lpm"]["verdict"] == "unknown" and "--lpar NAME:MEMORY" in head["lpm"]["summary"]
    assert result["verdict"] == "pass"


def test_a_stored_headline_is_kept_a_malformed_one_is_rebuilt():
    result = load("local-10s-lpars.json")
    assert headline.of(result) == result["headline"]
    edited = copy.deepcopy(result)
    edited["headline"]["network"]["summary"] = "as the run said"
    assert headline.of(edited)["network"]["summary"] == "as the run said"
    for broken in ({"findings": "x"}, {**result["headline"], "notes": [{"sentence": 1}]}, [], None):
        edited["headline"] = broken
        assert headline.of(edited) == headline.build(result)


def test_json_leads_with_the_verdict_and_the_headline():
    result = load("edited-jumbo-blackhole.json")  # saved before headlines: the JSON gets one built
    document = json.loads(render_json(result))
    assert list(document)[list(document).index("verdict") + 1] == "headline"
    assert list(document).index("headline") < list(document).index("checks")
    assert document["headline"]["findings"][0]["check"] == "jumbo frames end to end"
    assert {k: v for k, v in document.items() if k != "headline"} == result


def test_partitions_that_could_not_be_judged_say_why():
    result = {"lpm": [{"name": "db01"}], "checks": [
        check("LPM partition db01", "unknown", "64 GiB: not judged: the send rate was capped at 1 Gbit/s", "")]}
    head = headline.build(result)
    assert head["lpm"] == {"verdict": "unknown", "summary": "the partitions could not be judged: 64 GiB: not "
                                                            "judged: the send rate was capped at 1 Gbit/s"}


def test_a_cpu_starved_msp_heads_the_slow_streams_it_causes():
    # Issue 19: a CPU-bound sender looks like a slow network; its CPU is what to fix.
    result = {"checks": [check("goodput against the wire limit", "warn"), check("what limited the streams", "warn"),
                         check("MSP CPU headroom", "warn", "the sender used 0.3 of its 0.3 cores")]}
    assert names(headline.build(result)) == ["MSP CPU headroom", "what limited the streams",
                                             "goodput against the wire limit"]


def refinalized(name: str) -> dict:
    """A saved lab run with its checks computed again by today's rules."""
    result = load(name)
    result.pop("headline", None)
    return results.finalize(result)


def test_a_tiny_receive_buffer_heads_and_the_mss_it_shrank_names_it_not_a_firewall():
    # Issue 19's example, as the lab ran it: tcp_rmem max 8 KiB on the receiver of a 9000-byte path.
    result = refinalized("lab-rmem-8k.json")
    head, checks = headline.build(result), {c["name"]: c for c in result["checks"]}
    lab_artefacts = ("large_send and large_receive on", "IP on a physical adapter")
    first = [f for f in head["findings"] if f["check"] not in lab_artefacts][0]
    assert first["check"] == "what limited the streams" and "receive buffer is tiny" in first["sentence"]
    jumbo = checks["jumbo frames end to end"]
    assert "because the receiver advertised a window of only about" in jumbo["detail"], jumbo
    assert "firewall" not in jumbo["detail"] + jumbo["remedy"] and "tcp_rmem" in jumbo["remedy"]
    # The receiver burned its CPU on reads of a few KiB: a note, not the fix.
    assert checks["MSP CPU headroom"]["status"] == "info", checks["MSP CPU headroom"]
    assert not [f for f in head["findings"] if f["status"] == "fail"]


def test_a_cpu_starved_sender_heads_and_the_slow_goodput_names_it():
    result = refinalized("lab-cpu-starved.json")
    head = headline.build(result)
    assert head["findings"][0]["check"] == "MSP CPU headroom" and "out of CPU" in head["findings"][0]["sentence"]
    goodput = {c["name"]: c for c in result["checks"]}["goodput against the wire limit"]
    assert goodput["status"] == "pass" or "see 'MSP CPU headroom'" in goodput["detail"]


def test_a_blocked_port_range_heads_and_every_other_fail_names_it():
    result = refinalized("lab-ports-blocked.json")
    head = headline.build(result)
    assert head["findings"][0]["check"] == "LPM port range reachable"
    other_fails = [c for c in result["checks"] if c["status"] == "fail" and c["name"] != "LPM port range reachable"]
    assert other_fails and all("see 'LPM port range reachable'" in c["detail"] for c in other_fails)
    assert {c["name"]: c for c in result["checks"]}["retransmit rate"]["status"] != "fail"


def test_a_black_hole_heads_and_its_symptoms_name_it():
    result = refinalized("lab-jumbo-black-hole.json")
    head = headline.build(result)
    assert head["findings"][0]["check"] == "jumbo frames end to end"
    symptoms = [c for c in result["checks"] if c["name"] in ("retransmit rate", "all streams moved data",
                                                             "goodput against the wire limit")]
    assert len(symptoms) == 3 and all("see 'jumbo frames end to end'" in c["detail"] for c in symptoms), symptoms
