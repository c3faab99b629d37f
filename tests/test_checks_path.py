"""Path checks, one row per branch (jumbo frames, stalls, stream limits, efficiency, jumbo gain), and the wire
limit of wire.py at IPv4 and IPv6 header sizes."""

from __future__ import annotations

from typing import Any

import pytest
from test_checks import ROW_ARGS, assert_row, row

from lpmbench.analysis import wire
from lpmbench.analysis.checks import FAIL, PASS, UNKNOWN, WARN, path

NO_DF = "this platform cannot set don't-fragment on IPv4 UDP"
LOOPBACK = {"interfaces": {"sender": {"name": "lo"}, "receiver": {"name": "lo"}}}


def mtus(probed: int | None, sender: int | None, receiver: int | None, complete: bool = True,
         mss: int | None = None, **path_extra: Any) -> dict[str, Any]:
    """A path section (probed MTU, both interface MTUs) and, with mss, one stream that used it."""
    result: dict[str, Any] = {"path": {"mtu": probed, "probe_complete": complete, "sender_mtu": sender,
                                       "receiver_mtu": receiver, "sender_interface": "en4", **path_extra}}
    if mss is not None:
        result["streams"] = [{"id": 0, "bytes": 1, "mss": mss}]
    return result


def limited(rwnd_us: int, sndbuf_us: int, busy_us: int = 1_000_000) -> dict[str, Any]:
    """Two streams sharing the busy and limited times."""
    half = {"busy_us": busy_us // 2, "rwnd_limited_us": rwnd_us // 2, "sndbuf_limited_us": sndbuf_us // 2}
    return {"streams": [{"id": 0, **half}, {"id": 1, **half}]}


def window_limited(mss: int, rwnd_share: float = 0.8) -> dict[str, Any]:
    """Two streams at one MSS, limited by the receive window for ``rwnd_share`` of their busy time."""
    entry = {"mss": mss, "bytes": 10**9, "busy_us": 1_000_000, "rwnd_limited_us": int(rwnd_share * 1_000_000),
             "sndbuf_limited_us": 0}
    return {"streams": [{"id": 0, **entry}, {"id": 1, **entry}]}


def compared(jumbo_mss: int | None, standard_mss: int | None, gain: float | None, cpu: float | None = None,
             partial: str = "") -> dict[str, Any]:
    def side(mss: int | None, name: str) -> dict[str, Any]:
        return {"mss": mss, "goodput_bps": 1e9, "cpu_s_per_gb": None, "retransmit_rate": 0.0,
                "partial": partial == name}

    return {"jumbo_compare": {"jumbo": side(jumbo_mss, "jumbo"), "standard": side(standard_mss, "standard"),
                              "goodput_gain": gain, "cpu_per_gb_change": cpu}}


ROWS = [
    # Jumbo frames end to end.
    row(path.jumbo_check, {**LOOPBACK, **mtus(65536, 65536, 65536)}, UNKNOWN, ("loopback",), id="jumbo-loopback"),
    row(path.jumbo_check, mtus(None, 9000, 9000, probe_error="no reply to any probe"), UNKNOWN,
        ("not measured", "no reply to any probe"), ("UDP",), id="jumbo-probe-failed"),
    row(path.jumbo_check, mtus(1500, 9000, 9000, complete=False), WARN, ("ran out of time", "at least 1500"),
        ("run again",), absent=("black hole",), id="jumbo-probe-timeout"),
    row(path.jumbo_check, mtus(1500, 9000, 9000), FAIL, ("9000 / 9000", "only 1500-byte", "black hole"),
        ("every switch port", "jumbo_frames=no", "ip link set en4 mtu 1500"), id="jumbo-black-hole"),
    row(path.jumbo_check, mtus(4000, 9000, 9000), FAIL, ("only 4000-byte", "black hole"),
        ("every switch port", "mtu=4000"), absent=("jumbo_frames=no",), id="jumbo-black-hole-path-passes-4000"),
    row(path.jumbo_check, mtus(1400, 1500, 1500), FAIL, ("1500 / 1500", "only 1400-byte", "black hole"),
        ("mtu=1400", "ICMP"), absent=("jumbo",), id="black-hole-below-standard-frames"),
    row(path.jumbo_check, mtus(1500, 9000, 1500), WARN, ("disagree", "9000 vs 1500"), ("same MTU",),
        id="jumbo-mtu-disagreement"),
    row(path.jumbo_check, mtus(9000, 9000, 9000, mss=1448), WARN, ("MSS 1448", "clamps"), ("MSS clamping",),
        id="jumbo-mss-clamped"),
    row(path.jumbo_check, mtus(9000, 9000, 9000, mss=8948), PASS, ("9000-byte jumbo", "MSS 8948"), id="jumbo-pass"),
    # Issue 19: a receive window of a few KiB shrinks the MSS to half of it; the buffer is named, not a firewall.
    row(path.jumbo_check, {**mtus(9000, 9000, 9000), **window_limited(2048)}, WARN,
        ("MSS 2048 because", "window of only about 4096 bytes", "receive buffer is tiny", "what limited the streams"),
        ("tcp_rmem", "MSS grows with the window"), absent=("firewall", "tcp_mssdflt", "clamping"),
        id="jumbo-mss-of-a-small-window"),
    row(path.jumbo_check, {**mtus(9000, 9000, 9000), **window_limited(2048, rwnd_share=0.1)}, WARN,
        ("MSS 2048", "clamps"), ("MSS clamping",), absent=("window",), id="jumbo-small-mss-without-window-limit"),
    row(path.jumbo_check, {**mtus(None, 9000, 9000, probe_unsupported=NO_DF), **window_limited(2048)}, WARN,
        ("MSS 2048", "window of only about 4096 bytes"), ("tcp_rmem",), absent=("firewall", "clamping"),
        id="no-probe-mss-of-a-small-window"),
    # A platform that cannot probe (AIX): the interfaces and TCP's own evidence, never a PASS from the interfaces.
    row(path.jumbo_check, mtus(None, 9000, 9000, probe_unsupported=NO_DF), UNKNOWN, ("no TCP evidence", NO_DF),
        ("run longer",), id="no-probe-no-evidence"),
    row(path.jumbo_check, {**mtus(None, 9000, 9000, probe_unsupported=NO_DF, mss=8948), "stalled": True}, FAIL,
        ("stalled", "black hole", NO_DF), ("every switch port", "jumbo_frames=no"), id="no-probe-stall-black-hole"),
    row(path.jumbo_check, {**mtus(None, 9000, 9000, probe_unsupported=NO_DF), "stalled": True,
                           "streams": [{"id": 0, "mss": 8948, "bytes": 2 * 10**9}]}, UNKNOWN,
        ("not explained by the MTU",), ("stall check",), absent=("black hole",), id="no-probe-stall-after-data"),
    row(path.jumbo_check, {**mtus(None, 9000, 9000, probe_unsupported=NO_DF), "streams": [
        {"id": 0, "mss": 1448, "bytes": 10**9}]}, WARN, ("MSS 1448", "limits segments"), ("clamp",),
        id="no-probe-mss-below-mtu"),
    row(path.jumbo_check, mtus(9000, 9000, 9000, mss=8948, probe_unsupported=NO_DF, mtu_source="tcp evidence"),
        PASS, ("TCP evidence", "MSS 8948", "9000-byte"), id="no-probe-tcp-evidence-pass"),
    row(path.jumbo_check, mtus(None, 9000, 1500, probe_unsupported=NO_DF), WARN, ("disagree", NO_DF),
        ("same MTU",), id="no-probe-mtu-disagreement"),
    row(path.jumbo_check, mtus(None, 1500, 1500, probe_unsupported=NO_DF), WARN, ("standard frames only",),
        ("jumbo_frames=yes",), id="no-probe-standard-frames"),
    row(path.jumbo_check, mtus(None, None, 9000, probe_unsupported=NO_DF), UNKNOWN, ("not known",),
        id="no-probe-no-interface-mtu"),
    row(path.jumbo_check, mtus(9000, 9000, 9000, mss=8928), PASS, ("MSS 8928",), id="jumbo-pass-ipv6-mss"),
    row(path.jumbo_check, mtus(9000, 9000, 9000), PASS, ("9000-byte jumbo",), absent=("MSS",),
        id="jumbo-pass-mss-unknown"),
    row(path.jumbo_check, mtus(1500, 1500, 1500), WARN, ("standard frames only",),
        ("jumbo_frames=yes", "--jumbo-compare"), id="standard-frames-only"),
    row(path.jumbo_check, mtus(4000, 4000, 4000), WARN, ("4000", "below jumbo"), ("jumbo_frames=yes",),
        absent=("standard frames",), id="frames-between-standard-and-jumbo"),
    # Streams kept moving (applies to stalled runs only).
    row(path.stall_check, {"stalled": True, **mtus(1500, 9000, 9000)}, FAIL,
        ("stalled", "full-size frames (9000)", "only 1500"), ("MTU mismatch",), id="stall-mtu-cause"),
    row(path.stall_check, {"stalled": True, **mtus(1500, 9000, None)}, FAIL, ("only 1500",), ("MTU mismatch",),
        id="stall-mtu-cause-receiver-mtu-unknown"),
    row(path.stall_check, {"stalled": True, **mtus(1500, 9000, 9000, complete=False)}, FAIL,
        ("confirmed only 1500", "ran out of time"), ("jumbo frames check",), id="stall-probe-timed-out"),
    row(path.stall_check, {"stalled": True, **mtus(9000, 9000, 9000)}, FAIL, ("stalled",), ("LAG", "receiving MSP"),
        absent=("MTU mismatch", "do not cross"), id="stall-no-mtu-cause"),
    row(path.stall_check, {"stalled": True}, FAIL, ("stalled",), ("LAG", "jumbo frames check"),
        absent=("MTU mismatch",), id="stall-path-not-probed"),
    row(path.stall_check, {"stalled": True, **mtus(1500, 9000, 1500)}, FAIL, ("stalled",), ("LAG",),
        absent=("MTU mismatch",), id="stall-receiver-at-1500-is-no-mtu-cause"),
    # What limited the streams: 20 % of busy time limited by the receive window or the send buffer.
    row(path.stream_limits_check, {"streams": [{"id": 0, "busy_us": None}]}, UNKNOWN, ("no TCP_INFO",),
        id="limits-unknown"),
    row(path.stream_limits_check, limited(0, 0), PASS, ("the network set the pace",), id="limits-none"),
    row(path.stream_limits_check, limited(198_000, 198_000), PASS, ("receive window 20%",), id="limits-just-under"),
    row(path.stream_limits_check, limited(200_000, 0), WARN, ("the receiver's window", "receive window 20%"),
        ("tcp_recvspace", "tcp_rmem"), absent=("tcp_sendspace",), id="limits-rwnd"),
    row(path.stream_limits_check, limited(0, 400_000), WARN, ("the sender's buffer", "send buffer 40%"),
        ("tcp_sendspace", "tcp_wmem"), absent=("tcp_recvspace",), id="limits-sndbuf"),
    row(path.stream_limits_check, {**mtus(9000, 9000, 9000), **window_limited(2048)}, WARN,
        ("the receiver's window held", "window of only about 4096 bytes", "receive buffer is tiny"),
        ("tcp_rmem",), absent=("short of CPU",), id="limits-rwnd-tiny-window-names-the-buffer"),
    row(path.stream_limits_check, {**mtus(9000, 9000, 9000), **window_limited(8948)}, WARN,
        ("the receiver's window",), ("short of CPU",), absent=("about",), id="limits-rwnd-full-mss-could-be-cpu"),
    row(path.stream_limits_check, limited(300_000, 400_000), WARN, ("the receiver's window", "the sender's buffer"),
        ("tcp_recvspace", "tcp_sendspace"), id="limits-rwnd-and-sndbuf"),
    # Goodput against the wire limit: WARN below 70 %.
    row(path.efficiency_check, {"efficiency": None, "wire_limit_bps": None}, UNKNOWN,
        ("wire limit unknown", "MSS (no TCP_INFO on AIX)"), id="efficiency-unknown"),
    row(path.efficiency_check, {"efficiency": 0.69, "wire_limit_bps": 9.41e9}, WARN, ("69%", "9.41 Gbit/s"),
        ("retransmits",), id="efficiency-below-threshold"),
    row(path.efficiency_check, {"efficiency": 0.70, "wire_limit_bps": 9.41e9}, PASS, ("70%",),
        id="efficiency-at-threshold"),
    row(path.efficiency_check, {"efficiency": 0.97, "wire_limit_bps": 9.9e9}, PASS, ("97%", "9.90 Gbit/s"),
        id="efficiency-high"),
    # Jumbo frame effectiveness (--jumbo-compare).
    row(path.jumbo_gain_check, compared(8948, 1448, 0.25, -0.3), PASS, ("MSS 8948 vs 1448", "+25%", "CPU per GB -30%"),
        id="jumbo-gain"),
    row(path.jumbo_gain_check, compared(8948, 1448, -0.05, -0.3), PASS, ("-5%", "-30%"),
        id="jumbo-no-goodput-gain-but-less-cpu"),
    row(path.jumbo_gain_check, compared(8948, 1448, -0.05, 0.1), WARN, ("do not help",), ("large_send", "ring"),
        id="jumbo-no-gain"),
    row(path.jumbo_gain_check, compared(8948, 1448, -0.05), WARN, ("do not help",), id="jumbo-no-gain-cpu-unknown"),
    row(path.jumbo_gain_check, compared(1448, 1448, 0.0), WARN, ("did not use jumbo frames",),
        ("jumbo frames check",), id="jumbo-not-used"),
    row(path.jumbo_gain_check, compared(None, None, 0.2), PASS, ("MSS not reported", "+20%"),
        absent=("did not use",), id="jumbo-gain-mss-unknown"),
    row(path.jumbo_gain_check, compared(None, None, -0.1), WARN, ("do not help",), absent=("did not use",),
        id="jumbo-no-gain-mss-unknown"),
    row(path.jumbo_gain_check, compared(8948, None, None), UNKNOWN, ("did not complete",),
        id="jumbo-compare-incomplete"),
    row(path.jumbo_gain_check, compared(8948, 1448, 0.3, partial="standard"), UNKNOWN, ("did not complete",),
        id="jumbo-compare-standard-run-partial"),
]


@pytest.mark.parametrize(ROW_ARGS, ROWS)
def test_path_rows(rule, result, status, detail, remedy, absent):
    assert_row(rule(result), status, detail, remedy, absent)


@pytest.mark.parametrize("rule, result", [
    (path.stall_check, {"stalled": False}), (path.stall_check, {}),
    (path.jumbo_gain_check, {}), (path.jumbo_gain_check, {"jumbo_compare": None}),
], ids=["not-stalled", "stall-unknown", "no-jumbo-compare", "jumbo-compare-null"])
def test_rules_that_do_not_apply_return_none(rule, result):
    assert rule(result) is None


# -- the wire limit: slowest link x payload / (frame + 38) ------------------------------------------------------
def wired(mss: int | None, mtu: int | None = 1500, *, sender: str = "10.0.0.1", receiver: str = "10.0.0.2",
          data_address: str | None = None, speeds: tuple[Any, Any] = (10_000, 10_000),
          names: tuple[str, str] = ("en4", "en6")) -> dict[str, Any]:
    return {"sender": {"address": sender}, "receiver": {"address": receiver},
            "path": {"mtu": mtu, "data_address": data_address},
            "streams": [{"id": 0, "mss": mss}, {"id": 1, "mss": None}],
            "interfaces": {"sender": {"name": names[0], "speed_mbps": speeds[0]},
                           "receiver": {"name": names[1], "speed_mbps": speeds[1]}}}


@pytest.mark.parametrize("result, payload, frame", [
    (wired(1448), 1448, 1500),
    (wired(1428, receiver="fd00::2", data_address="fd00::2"), 1428, 1500),
    (wired(1448, receiver="fd00::2", data_address="fd00::2"), 1428, 1500),
    (wired(8948, 9000), 8948, 9000),
    (wired(8928, 9000, data_address="fd00::2"), 8928, 9000),
    (wired(1200), 1200, 1252),
    (wired(1428, sender="::1", receiver="10.0.0.2"), 1428, 1480),
    (wired(1428, sender="10.0.0.1", receiver="10.0.0.2", data_address="fd00::2"), 1428, 1500),
    (wired(1448, receiver="::ffff:10.0.0.2"), 1448, 1500),
    (wired(1448, receiver="fe80::2%en4"), 1428, 1500),
    (wired(1448, receiver="msp-b.example"), 1448, 1500),
    (wired(1448, speeds=(10_000, 1_000)), 1448, 1500),
], ids=["ipv4-1500", "ipv6-1500", "ipv6-header-caps-the-payload", "ipv4-jumbo", "ipv6-jumbo", "clamped-mss-ipv4",
        "older-result-family-from-receiver-not-sender", "data-address-decides-not-control-addresses",
        "ipv4-mapped-is-ipv4", "ipv6-link-local-with-zone", "host-name-taken-as-ipv4", "slowest-link"])
def test_wire_limit_counts_the_headers_of_the_address_family(result, payload, frame):
    slowest = min(result["interfaces"][side]["speed_mbps"] for side in ("sender", "receiver"))
    assert wire.wire_limit_bps(result) == pytest.approx(slowest * 1e6 * payload / (frame + 38))


def test_wire_limit_at_the_design_figures():
    """The design figures: 1448/1538 = 94.1 % at MTU 1500 and 8948/9038 = 99.0 % at MTU 9000 (IPv4, timestamps)."""
    assert wire.wire_limit_bps(wired(1448)) / 10e9 == pytest.approx(0.941, abs=5e-4)
    assert wire.wire_limit_bps(wired(8948, 9000)) / 10e9 == pytest.approx(0.990, abs=5e-4)


@pytest.mark.parametrize("result", [
    wired(1448, names=("lo", "lo")),
    wired(1448, speeds=(10_000, None)),
    wired(1448, speeds=(0, 10_000)),
    wired(None),
    wired(1448, mtu=None),
], ids=["loopback", "speed-unknown", "speed-zero", "mss-unknown", "path-mtu-unknown"])
def test_wire_limit_is_none_without_the_facts(result):
    assert wire.wire_limit_bps(result) is None


def test_path_facts_keep_the_address_the_streams_used():
    sender = {"interface": {"name": "en4", "mtu": 9000}, "address": "fd00::2",
              "path_probe": {"mtu": 9000, "complete": True, "error": None, "elapsed_s": 0.4}}
    facts = wire.path_facts(sender, {"interface": {"name": "en6", "mtu": 9000}})
    assert facts == {"mtu": 9000, "mtu_source": "udp probe", "probe_complete": True, "probe_error": None,
                     "probe_elapsed_s": 0.4, "probe_unsupported": None,
                     "sender_interface": "en4", "receiver_interface": "en6", "sender_mtu": 9000,
                     "receiver_mtu": 9000, "data_address": "fd00::2"}
    assert wire.path_facts({"address": ["not", "an", "address"]}, {})["data_address"] is None


def evidence(stalled: bool = False, mss: int = 8948, moved_segments: int = 200, partial: bool = False,
             unsupported: str | None = NO_DF, sender_mtu: int = 9000) -> dict[str, Any]:
    return {"path": {"mtu": None, "probe_unsupported": unsupported, "sender_mtu": sender_mtu, "receiver_mtu": 9000},
            "streams": [{"id": i, "mss": mss, "bytes": moved_segments * mss} for i in range(2)],
            "stalled": stalled, "partial": partial}


@pytest.mark.parametrize("result, mtu", [
    (evidence(), 9000),
    (evidence(stalled=True), None),  # a black hole stalls the streams: the path MTU stays unknown
    (evidence(moved_segments=50), None),  # too few full-size segments to prove anything
    (evidence(mss=1448), None),  # the segments were not full-size for these interfaces
    (evidence(partial=True), None),
    (evidence(unsupported=None), None),  # the probe could run: its answer (here none) stands
    (evidence(sender_mtu=1500, mss=1448), 1500),  # full-size for the smaller end
    (evidence(sender_mtu=1500), None),  # MSS 8948 with both MTUs below it: impossible facts prove nothing
    ({**evidence(), "streams": [{"id": 0, "mss": None, "bytes": 10**9}]}, None),  # no MSS: no evidence
    ({**evidence(), "path": {**evidence()["path"], "receiver_mtu": None}}, None),  # an MTU unknown
], ids=["evidence", "stalled", "too-little-data", "small-mss", "partial", "probe-supported", "mixed-mtu",
        "mss-above-mtu",
        "mss-unknown", "receiver-mtu-unknown"])
def test_tcp_evidence_sets_the_path_mtu_only_when_full_size_segments_crossed(result, mtu):
    wire.apply_tcp_evidence(result)
    assert result["path"]["mtu"] == mtu
    assert result["path"].get("mtu_source") == ("tcp evidence" if mtu else None)
