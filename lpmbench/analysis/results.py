"""Merging what the sender and the receiver reported into the result contract (docs/result-contract.md).

Pure functions over plain dicts: the receiver counts payload bytes (goodput), the sender's TCP_INFO tells
retransmits, RTT, congestion window and MSS. Missing reports (a dead agent) give a partial result built from
the last interval each side sent.

Reports are checked where they come in (:mod:`lpmbench.analysis.reports`): a bad interval raises
:class:`ReportError` from :meth:`IntervalMerger.add`; a bad final report or bad facts make the result
partial, with an error naming the agent and the field (a protocol fault, an exit 2, never a verdict on the
network), and the orchestrator keeps only the checked copy.
"""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any, Callable

from lpmbench import __version__
from lpmbench.analysis import checks, headline, lpm, reports, wire
from lpmbench.analysis.checks import lpm as lpm_checks
from lpmbench.analysis.reports import ReportError
from lpmbench.analysis.units import finite_or_none


def utc_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _num(value: Any) -> float | None:
    """A finite number from an agent's report, or None: a 400-digit integer or NaN is not a measurement."""
    return finite_or_none(value)


def _ints(value: Any) -> dict[str, int]:
    """The integer entries of a dict from an agent; anything else is dropped, not trusted."""
    if not isinstance(value, dict):
        return {}
    return {k: v for k, v in value.items() if isinstance(v, int) and not isinstance(v, bool)}


def _tcp(sample: dict[str, Any]) -> dict[str, int]:
    return _ints(sample.get("tcp"))


_INTERFACE_TYPES: dict[str, tuple[type, ...]] = {
    "name": (str,), "speed_mbps": (int,), "duplex": (str,), "mtu": (int,), "large_send": (bool,),
    "large_receive": (bool,), "jumbo_frames": (bool,), "virtual": (bool,), "driver": (str,),
}


def _interface(value: Any) -> dict[str, Any] | None:
    """An agent's interface facts, keeping only fields of the expected types (agents may be other versions)."""
    if not isinstance(value, dict):
        return None
    clean: dict[str, Any] = {k: v for k, v in value.items() if k in _INTERFACE_TYPES
                             and isinstance(v, _INTERFACE_TYPES[k]) and (k != "speed_mbps" or not isinstance(v, bool))}
    flow = value.get("flow_control")
    clean["flow_control"] = {k: flow.get(k) if isinstance(flow.get(k), bool) else None for k in ("rx", "tx")} \
        if isinstance(flow, dict) else {"rx": None, "tx": None}
    clean["counters"] = _ints(value.get("counters"))
    clean["counters_delta"] = _ints(value.get("counters_delta"))
    return clean


def _probe(value: Any) -> dict[str, Any] | None:
    if not isinstance(value, dict):
        return None
    return {"mtu": value["mtu"] if isinstance(value.get("mtu"), int) else None,
            "complete": value.get("complete") is True, "error": str(value["error"]) if value.get("error") else None,
            "elapsed_s": _num(value.get("elapsed_s")),
            "unsupported": str(value["unsupported"])[:300] if value.get("unsupported") else None}


def _sanitized(report: dict[str, Any] | None) -> dict[str, Any] | None:
    """A final report with its nested facts type-checked; the rest is read through _num / _ints."""
    if not isinstance(report, dict):
        return None
    return {**report, "interface": _interface(report.get("interface")), "path_probe": _probe(report.get("path_probe")),
            "system_tcp_delta": _ints(report.get("system_tcp_delta")) or None,
            "stalled": report.get("stalled") is True, "error": str(report["error"]) if report.get("error") else None}


def _streams_of(report: dict[str, Any] | None) -> dict[int, dict[str, Any]]:
    """Stream samples of a report, by id; anything malformed is skipped, not trusted."""
    out: dict[int, dict[str, Any]] = {}
    for sample in (report or {}).get("streams", []) if isinstance(report, dict) else []:
        if isinstance(sample, dict) and isinstance(sample.get("id"), int) and _num(sample.get("bytes")) is not None:
            out[sample["id"]] = sample
    return out


class IntervalMerger:
    """Pairs the receiver's and the sender's interval reports by index and yields the contract's intervals."""

    def __init__(self, streams: int, interval: float, on_interval: Callable[[dict[str, Any]], None] | None,
                 max_intervals: int = 100_000) -> None:
        self.streams = streams
        self.interval = interval
        self._on_interval = on_interval
        self.reports: dict[str, dict[int, dict[str, Any]]] = {"sender": {}, "receiver": {}}
        self.max_intervals = max_intervals
        self._announced: set[int] = set()
        self._check = reports.interval_report(streams, max_intervals)

    def add(self, role: str, report: dict[str, Any]) -> None:
        """Keep the checked copy of one interval report; ReportError (naming role and field) if it is bad.

        At most ``max_intervals`` reports of at most ``streams`` streams each are kept per role.
        """
        kept = reports.checked(self._check, report, role, "interval report")
        index = kept.get("index")
        if index is None or kept.get("t") is None or kept.get("streams") is None:
            raise ReportError(role, "interval report", "index" if index is None else
                              "t" if kept.get("t") is None else "streams", "is missing")
        self.reports[role][index] = kept
        if self._on_interval and index not in self._announced and all(index in r for r in self.reports.values()):
            self._announced.add(index)
            self._on_interval(self.interval_at(index))

    def last(self, role: str) -> dict[str, Any] | None:
        reports = self.reports[role]
        return reports[max(reports)] if reports else None

    def intervals(self) -> list[dict[str, Any]]:
        return [self.interval_at(i) for i in sorted(self.reports["receiver"])]

    def interval_at(self, index: int) -> dict[str, Any]:
        rx = self.reports["receiver"].get(index)
        rx_prev = self.reports["receiver"].get(index - 1)
        tx = self.reports["sender"].get(index)
        tx_prev = self.reports["sender"].get(index - 1)
        t = float(rx["t"]) if rx else float(tx["t"]) if tx else (index + 1) * self.interval
        t_prev = float(rx_prev["t"]) if rx_prev else 0.0 if index == 0 else t - self.interval
        span = max(t - t_prev, 1e-9)
        rx_now, rx_before = _streams_of(rx), _streams_of(rx_prev)
        tx_now, tx_before = _streams_of(tx), _streams_of(tx_prev)
        streams = []
        for sid in range(self.streams):
            moved = _delta(rx_now.get(sid, {}).get("bytes"), rx_before.get(sid, {}).get("bytes"))
            tcp, tcp_prev = _tcp(tx_now.get(sid, {})), _tcp(tx_before.get(sid, {}))
            rtt = _num(tcp.get("rtt_us"))
            streams.append({"id": sid, "goodput_bps": moved * 8 / span if moved is not None else None,
                            "retransmits": _delta(tcp.get("total_retrans"), tcp_prev.get("total_retrans")),
                            "rtt_ms": rtt / 1000 if rtt is not None else None, "cwnd": tcp.get("snd_cwnd")})
        return {"t": round(t, 6), "goodput_bps": _sum(s["goodput_bps"] for s in streams),
                "retransmits": _sum(s["retransmits"] for s in streams),
                "rtt_ms": _mean(s["rtt_ms"] for s in streams), "streams": streams}


def _delta(now: Any, before: Any) -> int | None:
    now_n = _num(now)
    if now_n is None:
        return None
    return int(now_n - (_num(before) or 0))


def _sum(values: Any) -> Any:
    present = [v for v in values if v is not None]
    return sum(present) if present else None


def _mean(values: Any) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None


def _stream_entry(sid: int, rx: dict[str, Any], tx: dict[str, Any], elapsed: float) -> dict[str, Any]:
    tcp = _tcp(tx)
    received = int(_num(rx.get("bytes")) or 0)

    def ms(name: str) -> float | None:
        value = _num(tcp.get(name))
        return value / 1000 if value is not None else None

    delivery = _num(tcp.get("delivery_rate"))
    return {
        "id": sid, "bytes": received, "goodput_bps": received * 8 / elapsed if elapsed > 0 else 0.0,
        "sent_bytes": int(_num(tx.get("bytes")) or 0), "started": _started(rx, tx),
        "retransmits": tcp.get("total_retrans"), "segments_out": tcp.get("segs_out"),
        "rtt_ms": ms("rtt_us"), "rttvar_ms": ms("rttvar_us"), "min_rtt_ms": ms("min_rtt_us"),
        "mss": tcp.get("snd_mss"), "pmtu": tcp.get("pmtu"), "cwnd": tcp.get("snd_cwnd"),
        "delivery_rate_bps": delivery * 8 if delivery is not None else None,
        "busy_us": tcp.get("busy_time_us"), "rwnd_limited_us": tcp.get("rwnd_limited_us"),
        "sndbuf_limited_us": tcp.get("sndbuf_limited_us"),
    }


def _started(rx: dict[str, Any], tx: dict[str, Any]) -> bool | None:
    """Whether the stream ran under the run's clock on both sides: False when either side says it never
    started (connect failed, thread never ran); None when the sender did not say (an older agent, a lost one)."""
    if rx.get("started") is False or tx.get("started") is False:
        return False
    return True if tx.get("started") is True else None


def build_result(*, config: Any, run_id: str, started_at: str, merger: IntervalMerger,
                 sender: dict[str, Any], receiver: dict[str, Any], sender_result: dict[str, Any] | None,
                 receiver_result: dict[str, Any] | None, errors: list[str]) -> dict[str, Any]:
    """The result document; ``config`` is a pair.PairConfig.

    ``sender`` / ``receiver`` are the agents' handshake facts with the orchestrator's own ``host`` and
    ``address`` (where it connected); the agents' reports never override those two.
    """
    errors = list(errors)
    sender, sender_result = _checked_agent("sender", sender, sender_result, config.streams, errors)
    receiver, receiver_result = _checked_agent("receiver", receiver, receiver_result, config.streams, errors)
    sender_result, receiver_result = _sanitized(sender_result), _sanitized(receiver_result)
    # The orchestrator lost an agent (died, went silent) or could not trust its reports, as opposed to a run
    # that failed: a runtime error, not a judgment of the network.
    agent_lost = bool(errors)
    for role, final in (("sender", sender_result), ("receiver", receiver_result)):
        if final and final.get("error"):
            host = (sender if role == "sender" else receiver)["host"]
            errors.append(f"{role} {host}: {final['error']}")
    rx_report = receiver_result or merger.last("receiver") or {}
    tx_report = sender_result or merger.last("sender") or {}
    elapsed = _num(rx_report.get("elapsed_s")) or _num(rx_report.get("t")) or 0.0
    rx_streams, tx_streams = _streams_of(rx_report), _streams_of(tx_report)
    streams = [_stream_entry(sid, rx_streams.get(sid, {}), tx_streams.get(sid, {}), elapsed)
               for sid in range(config.streams)]
    total = sum(s["bytes"] for s in streams)
    retrans = _sum(s["retransmits"] for s in streams)
    segs = _sum(s["segments_out"] for s in streams)
    retransmit_source = "tcp_info" if retrans is not None else None
    system_tcp = tx_report.get("system_tcp_delta") or {}
    if retrans is None and _counted(system_tcp.get("retransmits")) and _counted(system_tcp.get("segments_out")) \
            and system_tcp["segments_out"] > 0:  # a negative change is a reset counter: no evidence
        # AIX has no per-socket TCP_INFO: fall back to the host's counters over the run (netstat -s).
        retrans, segs, retransmit_source = system_tcp["retransmits"], system_tcp["segments_out"], "system"
    partial = bool(errors) or sender_result is None or receiver_result is None
    sender_info = {**sender, **_host_facts(sender_result), "send_method": (sender_result or {}).get("send_method")}
    receiver_info = {**receiver, **_host_facts(receiver_result)}
    result: dict[str, Any] = {
        "lpmbench_version": __version__, "run_id": run_id, "started_at": started_at,
        "verdict": "fail", "checks": [],
        "goodput_bps": total * 8 / elapsed if elapsed > 0 else 0.0, "duration_s": round(elapsed, 6),
        "bytes": total, "retransmits": retrans, "segments_out": segs,
        "retransmit_rate": retrans / segs if retrans is not None and segs else None,
        "retransmit_source": retransmit_source,
        "streams": streams, "intervals": merger.intervals(),
        "sender": sender_info, "receiver": receiver_info,
        "dataplane": sender_info.get("dataplane"),
        "config": {"streams": config.streams, "duration_s": config.duration, "interval_s": config.interval,
                   **config.options, "lpars": config.lpars, "window_s": config.window_s,
                   "compression": config.compression},
        "data_port": _data_port(sender_result, receiver_result),
        "path": wire.path_facts(tx_report, rx_report),
        "interfaces": {"sender": tx_report.get("interface"), "receiver": rx_report.get("interface")},
        "stalled": bool(tx_report.get("stalled")),
        "partial": partial,
        "agent_lost": agent_lost,
        "error": "; ".join(errors) if errors else ("a final report is missing" if partial else None),
    }
    wire.apply_tcp_evidence(result)
    result["wire_limit_bps"] = wire.wire_limit_bps(result)
    result["efficiency"] = (result["goodput_bps"] / result["wire_limit_bps"]) if result["wire_limit_bps"] else None
    return finalize(result)


def finalize(result: dict[str, Any]) -> dict[str, Any]:
    """(Re)compute the LPM assessment, the checks and the verdict from the facts in ``result``."""
    assess_lpm(result)
    result["checks"] = checks.evaluate(result)
    result["verdict"] = checks.overall(result["checks"])
    result["headline"] = headline.build(result)
    return result


def assess_lpm(result: dict[str, Any]) -> None:
    """``lpm``: each partition in ``config.lpars`` moved at the measured (aggregate) goodput.

    The demand-paging cost after resume uses the smallest RTT the streams saw: after switch-over the bulk
    copy is over, so queueing delay from the test itself would overstate it.
    """
    config = result.get("config", {})
    specs = [lpm.LparSpec(**spec) for spec in config.get("lpars", [])]
    if not specs:
        return
    # A run held back by a send-rate cap is judged on what the link could carry (the checks do the same), so
    # the JSON's predictions agree with the verdict; unknown link: the capped goodput, flagged.
    judged_on_link = lpm_checks.outlook_bandwidth(result)
    bandwidth = judged_on_link if judged_on_link is not None else (
        result.get("aggregate_goodput_bps") or result["goodput_bps"])
    rtt_ms = _mean(s.get("min_rtt_ms") or s.get("rtt_ms") for s in result.get("streams", []))
    rtt_s = (rtt_ms or 0.0) / 1000
    if bandwidth <= 0:  # nothing moved: every partition fails, each named
        result["lpm"] = [{"name": s.name, "memory_bytes": s.memory_bytes, "dirty_rate_Bps": s.dirty_rate_Bps,
                          "predicted_seconds": None, "converges": False, "passes": 0, "residual_bytes": s.memory_bytes,
                          "demand_paging_seconds": None, "pass_limit_reached": False,
                          "window_s": config.get("window_s"), "fits_window": False if config.get("window_s") else None,
                          "required_bps": None} for s in specs]
        result["lpm_model"] = {"bandwidth_bps": 0.0, "rtt_ms": rtt_ms, "window_s": config.get("window_s"),
                               "compression": config.get("compression", 1.0),
                               "assumptions": dataclasses.asdict(lpm.DEFAULT_ASSUMPTIONS)}
        return
    result["lpm"] = lpm.assess_lpars(specs, bandwidth, rtt_s, config.get("window_s"),
                                     config.get("compression", 1.0))
    result["lpm_model"] = {"bandwidth_bps": bandwidth, "rtt_ms": rtt_ms, "window_s": config.get("window_s"),
                           "compression": config.get("compression", 1.0),
                           "bandwidth_source": _bandwidth_source(result, judged_on_link),
                           "assumptions": dataclasses.asdict(lpm.DEFAULT_ASSUMPTIONS)}


def _bandwidth_source(result: dict[str, Any], judged_on_link: float | None) -> str:
    """What ``lpm_model.bandwidth_bps`` is: the measured goodput, the wire limit (a capped run), or the capped
    goodput when the link's rate is unknown (the partition checks then say they cannot judge)."""
    if not lpm_checks.cap_set_the_pace(result):
        return "measured"
    return "wire_limit" if judged_on_link is not None else "capped_goodput"


def _cpu_s_per_gb(result: dict[str, Any]) -> float | None:
    cpu = [result[side].get("process_cpu_s") for side in ("sender", "receiver")]
    if result["bytes"] <= 0 or any(not isinstance(c, (int, float)) for c in cpu):
        return None
    return sum(cpu) / (result["bytes"] / 1e9)  # type: ignore[arg-type]


def jumbo_comparison(jumbo: dict[str, Any], standard: dict[str, Any]) -> dict[str, Any]:
    """Goodput and CPU per GB of the run as configured against the same run clamped to standard frames."""
    def side(result: dict[str, Any]) -> dict[str, Any]:
        mss = [s["mss"] for s in result["streams"] if isinstance(s.get("mss"), int)]
        return {"mss": min(mss) if mss else None, "goodput_bps": result["goodput_bps"],
                "cpu_s_per_gb": _cpu_s_per_gb(result), "retransmit_rate": result["retransmit_rate"],
                "partial": result["partial"]}

    a, b = side(jumbo), side(standard)
    gain = a["goodput_bps"] / b["goodput_bps"] - 1 if b["goodput_bps"] > 0 else None
    cpu = (a["cpu_s_per_gb"] / b["cpu_s_per_gb"] - 1) if a["cpu_s_per_gb"] and b["cpu_s_per_gb"] else None
    return {"jumbo": a, "standard": b, "goodput_gain": gain, "cpu_per_gb_change": cpu}


def _pair_entry(result: dict[str, Any]) -> dict[str, Any]:
    return {"sender": result["sender"].get("host"), "receiver": result["receiver"].get("host"),
            "run_id": result["run_id"], "goodput_bps": result["goodput_bps"],
            "retransmit_rate": result["retransmit_rate"], "verdict": result["verdict"],
            "partial": result["partial"], "error": result["error"],
            "failed_checks": [c for c in result["checks"] if c["status"] in ("warn", "fail")]}


def combine_pairs(per_pair: list[dict[str, Any]]) -> dict[str, Any]:
    """One document for redundant MSP pairs that ran at the same time.

    The first pair's result is the base (its streams and intervals stay where the contract puts them);
    ``pairs`` lists every pair, and ``aggregate_goodput_bps`` is their sum, as LPM's redundant MSP pairs
    carry memory in parallel.
    """
    combined = dict(per_pair[0])
    combined["pairs"] = [_pair_entry(r) for r in per_pair]
    combined["aggregate_goodput_bps"] = lpm.aggregate_bandwidth([r["goodput_bps"] for r in per_pair])
    errors = [f"pair {i + 1}: {r['error']}" for i, r in enumerate(per_pair) if r["error"]]
    combined["partial"] = any(r["partial"] for r in per_pair)
    combined["agent_lost"] = any(r.get("agent_lost") for r in per_pair)
    combined["error"] = "; ".join(errors) if errors else None
    return finalize(combined)


def _data_port(sender_result: dict[str, Any] | None, receiver_result: dict[str, Any] | None) -> dict[str, Any]:
    """Whether the sender reached the receiver's data port, taken from LPM's port range."""
    rx, tx = receiver_result or {}, sender_result or {}
    connected = any(_num(s.get("bytes")) for s in _streams_of(rx).values())
    error = tx.get("connect_error")
    return {"port": rx.get("data_port"), "range": rx.get("data_port_range"),
            "reachable": False if error else (True if connected else None), "error": error,
            "intruders": rx.get("intruders") or [], "refused_peers": rx.get("refused_peers") or []}


def _counted(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def check_facts(role: str, facts: dict[str, Any]) -> dict[str, Any]:
    """The checked copy of what an agent said of itself at the handshake; ReportError if a field is bad."""
    return reports.checked(reports.AGENT, facts, role, "facts")


def check_final(role: str, report: dict[str, Any], streams: int) -> dict[str, Any]:
    """The checked copy of an agent's final report for a run of ``streams``; ReportError if a field is bad.

    Idempotent: build_result checks again what a caller checked on receipt.
    """
    return reports.checked(reports.final_report(streams), report, role, "final report")


def _checked_agent(role: str, agent: dict[str, Any], final: dict[str, Any] | None, streams: int,
                   errors: list[str]) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The checked copies of an agent's facts and final report; a bad one is left out and named in ``errors``."""
    host, address = agent.get("host"), agent.get("address")
    try:
        facts = check_facts(role, agent)
    except ReportError as exc:
        errors.append(f"{role} {host}: {exc}")
        facts = {}
    facts.update(host=host, address=address)  # where the orchestrator connected: its own knowledge
    if final is None:
        return facts, None
    try:
        return facts, check_final(role, final, streams)
    except ReportError as exc:
        errors.append(f"{role} {host}: {exc}")
        return facts, None


def _host_facts(final: dict[str, Any] | None) -> dict[str, Any]:
    keys = ("hostname", "os", "version", "dataplane", "event_loop", "cpu_percent", "process_cpu_s", "cpu_note",
            "msp")
    return {k: final[k] for k in keys if final and k in final}


SUMMARY_KEYS = ("verdict", "goodput_bps", "retransmit_rate", "partial", "efficiency", "lpm")


def summary(result: dict[str, Any]) -> dict[str, Any]:
    """What the orchestrator tells both agents after a run, for their last-run metrics."""
    out = {k: result.get(k) for k in SUMMARY_KEYS}
    out["rtt_ms"] = _mean(s.get("rtt_ms") for s in result.get("streams", []))
    out["path_mtu"] = (result.get("path") or {}).get("mtu")
    out["sender"] = result["sender"].get("host")
    out["receiver"] = result["receiver"].get("host")
    return out
