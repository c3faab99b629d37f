"""Verdict rules over a result document: each check is PASS / WARN / FAIL / UNKNOWN with a detail and a remedy.

Pure functions, no I/O. The verdict is the worst of the checks; an UNKNOWN check (a fact this platform or
run could not see) is shown but does not change the verdict.
"""

from __future__ import annotations

from typing import Any

from .units import format_byte_rate, format_bytes, format_duration, format_rate_bps

PASS, WARN, FAIL, UNKNOWN = "pass", "warn", "fail", "unknown"
_SEVERITY = {PASS: 0, UNKNOWN: 0, WARN: 1, FAIL: 2}

# Retransmitted segments / segments sent. A dedicated LPM network retransmits next to nothing; IBM names
# retransmissions (e.g. a 10 Gb MSP feeding a 1 Gb MSP) as the cause of slow or stalled migrations. Modern
# congestion control (BBR) can keep goodput up while the link drops frames, so the rate is judged, not goodput.
RETRANSMIT_WARN = 0.001  # 0.1 %: something drops frames; LPM will feel it under load
RETRANSMIT_FAIL = 0.01  # 1 %: loss at this level collapses loss-based TCP and stalls migrations


def check(name: str, status: str, detail: str, remedy: str = "") -> dict[str, str]:
    return {"name": name, "status": status, "detail": detail, "remedy": remedy if status != PASS else ""}


def retransmit_check(result: dict[str, Any]) -> dict[str, str]:
    rate, retrans, segs = result.get("retransmit_rate"), result.get("retransmits"), result.get("segments_out")
    name = "retransmit rate"
    if rate is None:
        return check(name, UNKNOWN, "the sender's OS reports no per-socket retransmit counters",
                     "compare 'netstat -s' retransmit counters on the sending MSP before and after a run")
    detail = f"{rate:.3%} of {segs} segments retransmitted ({retrans})"
    remedy = ("look for a speed mismatch between the MSPs (10 Gb feeding 1 Gb: set the same speed, or enable "
              "flow control on the switch port of the slower side), a jumbo-frame mismatch, or a faulty "
              "cable / SFP; check NIC error counters (entstat -d entX on VIOS, ethtool -S on Linux)")
    if rate >= RETRANSMIT_FAIL:
        return check(name, FAIL, detail + f" (fail at {RETRANSMIT_FAIL:.1%})", remedy)
    if rate >= RETRANSMIT_WARN:
        return check(name, WARN, detail + f" (warn at {RETRANSMIT_WARN:.1%})", remedy)
    return check(name, PASS, detail)


def completion_check(result: dict[str, Any]) -> dict[str, str]:
    if result.get("partial"):
        return check("run completed", FAIL, f"the run did not complete: {result.get('error') or 'unknown error'}",
                     "make sure both agents stay up and reachable for the whole run, then run again")
    return check("run completed", PASS, f"{result['config']['streams']} streams for {result['duration_s']:.1f} s")


def streams_check(result: dict[str, Any]) -> dict[str, str]:
    streams = result.get("streams", [])
    idle = [s["id"] for s in streams if not s.get("bytes")]
    if idle:
        return check("all streams moved data", FAIL, f"stream(s) {', '.join(map(str, idle))} moved no data",
                     "a firewall or a stateful middlebox may block some of the LPM port range; check the data "
                     "ports between the MSPs")
    return check("all streams moved data", PASS, f"{len(streams)} of {len(streams)} streams moved data")


def redundant_pairs_check(result: dict[str, Any]) -> dict[str, str]:
    pairs = result.get("pairs") or []
    name = "redundant MSP pair"
    if len(pairs) < 2:
        return check(name, WARN, "one MSP pair tested; a single MSP pair is a single point of failure and "
                                 "carries every migration alone",
                     "configure a second MSP on each frame (redundant MSP pairs carry memory in parallel) "
                     "and test both at once with 'lpmbench pair A B --redundant A2 B2'")
    bad = [f"{p['sender']} -> {p['receiver']}" for p in pairs[1:] if p["verdict"] == FAIL or p["partial"]]
    if bad:
        first = next(p for p in pairs[1:] if p["verdict"] == FAIL or p["partial"])
        reasons = "; ".join(f"{c['name']}: {c['detail']}" for c in first["failed_checks"][:3]) or first["error"]
        return check(name, FAIL, f"redundant pair {', '.join(bad)} failed: {reasons}",
                     "fix the redundant pair as you would the first; LPM spreads memory over both")
    return check(name, PASS, f"{len(pairs)} MSP pairs ran at once")


def data_port_check(result: dict[str, Any]) -> dict[str, str]:
    info = result.get("data_port") or {}
    name = "LPM port range reachable"
    port, span = info.get("port"), info.get("range")
    where = f"data port {port}" + (f" (from {span[0]}-{span[1]})" if span and span != [0, 0] else "")
    if info.get("reachable") is False:
        return check(name, FAIL, f"the sender could not reach the receiver's {where}: {info.get('error')}",
                     "open the LPM port range between the MSPs in every firewall on the path (LPM takes two "
                     "ephemeral ports per migration; on VIOS see vioslpm0 tcp_port_low / tcp_port_high), or "
                     "give the agent the range your firewall allows with --data-ports")
    if info.get("reachable") is None:
        return check(name, UNKNOWN, f"no stream reached the {where}", "")
    return check(name, PASS, f"the streams reached the {where}")


def _duration(seconds: float | None) -> str:
    return format_duration(seconds) if seconds is not None else "never"


def lpm_checks(result: dict[str, Any]) -> list[dict[str, str]]:
    """One check per partition given with --lpar: does it converge, and within the window?"""
    partitions = result.get("lpm")
    if partitions is None:
        return [check("LPM bandwidth for partitions", UNKNOWN,
                      "no partitions given; pass --lpar NAME:MEMORY[:DIRTY_RATE] (and --window) to judge them",
                      "")]
    model = result.get("lpm_model") or {}
    bandwidth = format_rate_bps(model.get("bandwidth_bps") or 0)
    out = []
    for part in partitions:
        name = f"LPM partition {part['name']}"
        what = (f"{format_bytes(part['memory_bytes'])} dirtied at {format_byte_rate(part['dirty_rate_Bps'])} "
                f"over {bandwidth}")
        if not part["converges"]:
            out.append(check(name, FAIL, f"{what}: pages are dirtied faster than they move; LPM would stall",
                             "raise the bandwidth (faster or redundant MSP pairs, jumbo frames) above the dirty "
                             "rate, or migrate when the partition is quieter"))
        elif part["fits_window"] is False:
            need = part["required_bps"]
            out.append(check(name, FAIL, f"{what}: about {_duration(part['predicted_seconds'])}, longer than the "
                             f"{_duration(part['window_s'])} window",
                             f"the window needs about {format_rate_bps(need)} between the MSPs" if need else
                             "no bandwidth meets this window at this dirty rate; widen the window"))
        elif part["pass_limit_reached"]:
            out.append(check(name, WARN, f"{what}: about {_duration(part['predicted_seconds'])}, but the dirty "
                             f"rate keeps {format_bytes(part['residual_bytes'])} for demand paging after resume",
                             "migrate at a quieter time or add bandwidth, to shorten the slow post-resume phase"))
        else:
            out.append(check(name, PASS, f"{what}: about {_duration(part['predicted_seconds'])} in "
                             f"{part['passes']} pass(es)"))
    return out


def evaluate(result: dict[str, Any]) -> list[dict[str, str]]:
    """The checks in their documented order: the retransmit rate always comes first."""
    from . import diagnosis  # diagnosis builds on this module's check() and statuses

    return [retransmit_check(result), completion_check(result), data_port_check(result), streams_check(result),
            *diagnosis.evaluate(result), redundant_pairs_check(result), *lpm_checks(result)]


def overall(checks: list[dict[str, str]]) -> str:
    worst = max((_SEVERITY[c["status"]] for c in checks), default=0)
    return {0: PASS, 1: WARN, 2: FAIL}[worst]
