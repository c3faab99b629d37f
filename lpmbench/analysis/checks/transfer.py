"""Checks on the transfer itself: did the run complete, did every stream reach the port range and move data,
and how many segments were retransmitted.
"""

from __future__ import annotations

from typing import Any

from lpmbench.analysis.checks.base import FAIL, PASS, UNKNOWN, WARN, check
from lpmbench.analysis.checks.causes import LIMITED_WARN_FRACTION, limited_share
from lpmbench.analysis.units import finite_or_none, format_rate_bps

# Retransmitted segments / segments sent. A dedicated LPM network retransmits next to nothing; IBM names
# retransmissions (e.g. a 10 Gb MSP feeding a 1 Gb MSP) as the cause of slow or stalled migrations. Modern
# congestion control (BBR) can keep goodput up while the link drops frames, so the rate is judged, not goodput.
RETRANSMIT_WARN = 0.001  # 0.1 %: something drops frames; LPM will feel it under load
RETRANSMIT_FAIL = 0.01  # 1 %: loss at this level collapses loss-based TCP and stalls migrations


def retransmit_check(result: dict[str, Any]) -> dict[str, str]:
    rate, retrans, segs = result.get("retransmit_rate"), result.get("retransmits"), result.get("segments_out")
    name = "retransmit rate"
    if result.get("retransmit_source") == "system" and not result.get("bytes"):
        # Host-wide counters (netstat -s) count the host's other traffic: with no stream of ours, nothing to judge.
        return check(name, UNKNOWN, "no stream moved data, so the host-wide retransmit counters say nothing "
                                    "about this test", "")
    if rate is None:
        return check(name, UNKNOWN, "the sender's OS reports no per-socket retransmit counters",
                     "compare 'netstat -s' retransmit counters on the sending MSP before and after a run")
    detail = f"{rate:.3%} of {segs} segments retransmitted ({retrans})"
    remedy = ("look for a speed mismatch between the MSPs (10 Gb feeding 1 Gb: set the same speed, or enable "
              "flow control on the switch port of the slower side), a jumbo-frame mismatch, or a faulty "
              "cable / SFP; check NIC error counters (entstat -d entX on VIOS, ethtool -S on Linux)")
    if rate >= RETRANSMIT_FAIL:
        return check(name, FAIL, detail + f" (fail at {RETRANSMIT_FAIL:.1%}){_loss_pattern(result)}", remedy)
    if rate >= RETRANSMIT_WARN:
        return check(name, WARN, detail + f" (warn at {RETRANSMIT_WARN:.1%}){_loss_pattern(result)}", remedy)
    return check(name, PASS, detail)


BOTTLENECK_EFFICIENCY = 0.7  # goodput below 70 % of the wire limit while dropping: a bottleneck's pattern
LINK_FULL = 0.9  # goodput at 90 % of the wire limit or more while dropping: random loss, not a bottleneck


def _loss_pattern(result: dict[str, Any]) -> str:
    """What the losses look like (issue 19: a policer looks like loss). Segments dropped while the streams, free
    of window and buffer limits, stayed far below what the slowest link carries: something on the path drops
    what the sender sends beyond its rate. Dropped while the link stayed full: frames lost at random."""
    efficiency = finite_or_none(result.get("efficiency"))
    streams = result.get("streams") or []
    moved = bool(streams) and all(s.get("bytes") for s in streams) and not result.get("stalled")
    if efficiency is None or not moved or cap_set_the_pace(result):
        return ""
    held = [limited_share(result, key) for key in ("rwnd_limited_us", "sndbuf_limited_us")]
    if efficiency < BOTTLENECK_EFFICIENCY and all(h is not None and h < LIMITED_WARN_FRACTION for h in held):
        return (f"; goodput stayed at {efficiency:.0%} of what the slowest link carries though no window or buffer "
                f"held the streams back: the pattern of a bottleneck, a slower link, shaper or policer on the path "
                f"that drops what the sender sends beyond its rate (as a 10 Gb MSP feeding a 1 Gb one)")
    if efficiency >= LINK_FULL:
        return ("; the link stayed full meanwhile: the pattern of frames lost at random (a cable, an SFP, a NIC), "
                "not of a bottleneck")
    return ""


# A run whose goodput reached this share of its send-rate cap was held at the cap (pacing keeps a capped run
# within a few percent of it): its goodput says what the cap allowed, not what the link can do.
CAP_BOUND_FRACTION = 0.9


def rate_cap_text(result: dict[str, Any]) -> str | None:
    """How the sender's rate was capped, in words ("capped at 200 Mbit/s by the sending agent's --max-rate"), or
    None when it was not. ``rate_cap`` is {bps (None when the agent did not say), source: "rate" | "agent"}."""
    cap = result.get("rate_cap")
    if not isinstance(cap, dict) or cap.get("applied") is False:
        return None
    bps = finite_or_none(cap.get("bps"))
    at = f" at {format_rate_bps(bps)}" if bps is not None and bps > 0 else ""
    by = "--rate" if cap.get("source") == "rate" else "the sending agent's --max-rate"
    return f"the send rate was capped{at} by {by}"


def cap_set_the_pace(result: dict[str, Any]) -> bool:
    """Whether a send-rate cap, not the network, held the run back (a cap of unknown value is taken as holding
    it: the goodput cannot then say what the link can do)."""
    if rate_cap_text(result) is None:
        return False
    bps = finite_or_none(result["rate_cap"].get("bps"))
    goodput = finite_or_none(result.get("goodput_bps")) or 0.0
    return bps is None or goodput >= CAP_BOUND_FRACTION * bps


def completion_check(result: dict[str, Any]) -> dict[str, str]:
    if result.get("partial"):
        return check("run completed", FAIL, f"the run did not complete: {result.get('error') or 'unknown error'}",
                     "make sure both agents stay up and reachable for the whole run, then run again")
    detail = f"{result['config']['streams']} streams for {result['duration_s']:.1f} s"
    cap = rate_cap_text(result)
    return check("run completed", PASS, f"{detail}; {cap}" if cap else detail)


def data_port_check(result: dict[str, Any]) -> dict[str, str]:
    info = result.get("data_port") or {}
    name = "LPM port range reachable"
    port, span = info.get("port"), info.get("range")
    where = "data port" if port is None else f"data port {port}"  # older results have no data_port section
    if span and list(span) != [0, 0]:
        where += f" (from {span[0]}-{span[1]})"
    refused, intruders = _sources(info.get("refused_peers")), _sources(info.get("intruders"))
    if refused:
        return check(name, FAIL, f"the receiving agent's --allow-peer list refused data connections from {refused}",
                     "add the sending MSP's address to --allow-peer on the receiving agent (or drop --allow-peer)")
    if intruders and info.get("reachable") is not True:
        return check(name, UNKNOWN, f"not judged: connections without the run token held the receiver's {where}, "
                                    f"from {intruders}",
                     "find what at those addresses connects to the MSP's ports (a scanner, a probe) and stop it, or "
                     "keep it out of the LPM network; then run again")
    if info.get("reachable") is False:
        return check(name, FAIL, f"the sender could not reach the receiver's {where}: {info.get('error')}",
                     "open the LPM port range between the MSPs in every firewall on the path (LPM takes two "
                     "ephemeral ports per migration; on VIOS see vioslpm0 tcp_port_low / tcp_port_high), or "
                     "give the agent the range your firewall allows with --data-ports")
    if info.get("reachable") is None:
        return check(name, UNKNOWN, f"no stream reached the receiver's {where}", "")
    return check(name, PASS, f"the streams reached the receiver's {where}")


def _sources(rows: Any, most: int = 3) -> str:
    """'127.0.0.9 (412 connections), ...' from a receiver's intruders / refused_peers list; '' when none."""
    rows = [r for r in rows if isinstance(r, dict)] if isinstance(rows, list) else []
    named = [f"{str(r.get('address'))[:64]} ({r.get('connections')} "
             f"connection{'' if r.get('connections') == 1 else 's'})" for r in rows[:most]]
    return ", ".join(named) + (f" and {len(rows) - most} more" if len(rows) > most else "")


def _ids(stream_ids: list[Any]) -> str:
    return ", ".join(map(str, stream_ids))


def _start_error(result: dict[str, Any]) -> str:
    """Why the sender could not open its streams: its connect error, else the run's error."""
    return (result.get("data_port") or {}).get("error") or result.get("error") or "no reason reported"


NEVER_STARTED_REMEDY = ("look at the sender, whose agent could not open these streams: its connect error and log "
                        "say why (the receiver's data port refused or timed out: see the port range check); check "
                        "the sending MSP's limits (open files: ulimit -n; memory for socket buffers)")
IDLE_REMEDY = ("a firewall or a stateful middlebox may block some of the LPM port range; check the data ports "
               "between the MSPs")


def streams_check(result: dict[str, Any]) -> dict[str, str]:
    """Streams the sender never started (``started`` False) are its own failure, not the path's: a stream
    that connected but moved nothing points at a middlebox. Entries without ``started`` (older results) started."""
    name = "all streams moved data"
    streams = result.get("streams", [])
    never = [s["id"] for s in streams if s.get("started") is False]
    idle = [s["id"] for s in streams if s.get("started") is not False and not s.get("bytes")]
    details, remedies = [], []
    if never:
        details.append(f"stream(s) {_ids(never)} never started on the sender ({_start_error(result)})")
        remedies.append(NEVER_STARTED_REMEDY)
    if idle:
        details.append(f"stream(s) {_ids(idle)} moved no data")
        remedies.append(IDLE_REMEDY)
    if details:
        return check(name, FAIL, "; ".join(details), "; ".join(remedies))
    return check(name, PASS, f"{len(streams)} of {len(streams)} streams moved data")
