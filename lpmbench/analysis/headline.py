"""The answer first: what in a result needs action, worst first, each as one sentence and its fix, and two
verdicts kept apart: is the network between the MSPs healthy, and will these partitions move in their window.

Pure functions over the result document (docs/result-contract.md, ``headline``). Every renderer (terminal,
HTML, JSON) leads with this, so an admin never has to find the one FAIL in the fourteenth row of a table.

Order: FAIL before WARN; within a status, checks that name a root cause (a blocked port range, a receive
window, a black hole, a speed mismatch) before the checks that see its symptoms (retransmits, a stall, low
goodput, a partition that does not converge), so the first line is the thing to fix first. The order is a
fixed table (``PRIORITY``), the same for every run, so two runs of one fault give the same headline. A symptom
never needs to outrank its cause here: the checks already name the cause that explains a symptom
(:mod:`lpmbench.analysis.checks.explain`), and a symptom that would fail where its cause only warns says so with
a note instead (a receiver's CPU spent on a tiny window). docs/diagnosis.md measures the result on the lab.
"""

from __future__ import annotations

from typing import Any, Optional

from lpmbench.analysis.checks.base import FAIL, INFO, PASS, SEVERITY, UNKNOWN, WARN
from lpmbench.analysis.units import finite_or_none, format_duration, format_rate_bps, shown

NETWORK, LPM = "network", "lpm"
PARTITION_PREFIX = "LPM partition "
LPM_CHECKS = (PARTITION_PREFIX, "LPM bandwidth for partitions")

# Check name -> what its finding means, per status, as the start of the headline sentence (none where the
# check's own detail already says it: "the sender could not reach the receiver's data port ..."). Listed root
# causes first, symptoms after: the index is the priority within one status.
PRIORITY: tuple[tuple[str, dict[str, str]], ...] = (
    ("LPM port range reachable", {}),
    ("LPM validation reachability (ICMP)", {}),
    # A CPU-starved MSP looks like a slow network: it goes before everything the slow streams show.
    ("MSP CPU headroom", {}),
    # A small receive window also shrinks the MSS Linux advertises, so it goes before the jumbo check's WARN.
    ("what limited the streams", {}),
    ("jumbo frames end to end", {FAIL: "Full-size frames are dropped between the MSPs",
                                 WARN: "Jumbo frames are not in use end to end"}),
    ("same speed at both MSPs", {WARN: "The MSPs' adapters run at different speeds"}),
    ("link speed at least 10 Gb", {FAIL: "An MSP link is far slower than the 10 Gb LPM needs",
                                   WARN: "An MSP link is slower than the 10 Gb LPM needs"}),
    ("streams spread over the aggregate's members", {}),
    ("NIC errors and drops during the run", {FAIL: "The adapters counted errors during the run",
                                             WARN: "The adapters dropped frames during the run"}),
    ("large_send and large_receive on", {WARN: "Adapter offloads are off"}),
    ("IP on a physical adapter", {WARN: "An MSP address sits on a virtual adapter"}),
    # The LPM mover's own settings on VIOS (vioslpm0): what the run tested against what LPM would use.
    ("LPM port range tested (vioslpm0)", {}),
    ("streams match the LPM mover (vioslpm0)", {}),
    ("concurrent migrations fit the link (cfg_msp_lpm_ops)", {}),
    ("redundant MSP pair", {}),
    ("jumbo frame effectiveness", {WARN: "Jumbo frames do not pay off on this path"}),
    # Symptoms: each of these is what a cause above looks like from the streams.
    ("run completed", {}),
    ("all streams moved data", {FAIL: "Some streams moved no data"}),
    ("streams kept moving", {}),
    ("retransmit rate", {FAIL: "Many segments were retransmitted", WARN: "Segments were retransmitted"}),
    ("goodput against the wire limit", {WARN: "Goodput is well below what the slowest link can carry"}),
)
_RANK = {name: rank for rank, (name, _) in enumerate(PRIORITY)}
_TITLES = dict(PRIORITY)


def area(name: str) -> str:
    """``lpm`` for the checks that judge partitions against the measured bandwidth, else ``network``."""
    return LPM if name.startswith(LPM_CHECKS) else NETWORK


def _rank(name: str) -> int:
    if name.startswith(PARTITION_PREFIX):
        return len(PRIORITY)  # a partition that does not fit is the consequence of everything above
    return _RANK.get(name, len(PRIORITY) + 1)  # checks added later: after the known ones, in result order


def _title(name: str, status: str) -> str:
    if name.startswith(PARTITION_PREFIX):
        partition = name[len(PARTITION_PREFIX):]
        return (f"Partition {partition} will not move in time" if status == FAIL else
                f"Partition {partition} leaves memory to page in after it resumes")
    if name not in _TITLES:
        return name[:1].upper() + name[1:]
    return _TITLES[name].get(status, "")  # none: the detail says it all


def _clause(text: str) -> str:
    """Text as the end of a sentence: no trailing period of its own, whitespace trimmed."""
    return text.strip().rstrip(".").strip()


def _sentence_case(text: str) -> str:
    """A sentence: capitalised, unless it starts with a command ("chdev -dev ...", "ethtool -K ...")."""
    text = _clause(text)
    if not text:
        return ""
    words = text.split(None, 2)
    command = len(words) > 1 and words[1].startswith("-")
    return f"{text if command else text[:1].upper() + text[1:]}."


def finding(check: dict[str, Any]) -> dict[str, str]:
    """One check as a headline entry: the sentence says what is wrong and why, the fix what to do."""
    name, status = str(check.get("name", "?")), str(check.get("status", UNKNOWN))
    detail = _clause(str(check.get("detail") or ""))
    title = _title(name, status)
    sentence = f"{title}: {detail}." if detail and title else _sentence_case(detail or title)
    return {"check": name, "status": status, "area": area(name), "sentence": sentence,
            "fix": _sentence_case(str(check.get("remedy") or ""))}


def _valid_checks(result: dict[str, Any]) -> list[dict[str, Any]]:
    checks = result.get("checks")
    return [c for c in checks if isinstance(c, dict) and isinstance(c.get("name"), str)
            and c.get("status") in SEVERITY] if isinstance(checks, list) else []


def findings(checks: list[dict[str, Any]]) -> list[dict[str, str]]:
    """The checks that need action (FAIL, then WARN), root causes before symptoms; ties keep result order."""
    needs_action = [(i, c) for i, c in enumerate(checks) if c["status"] in (FAIL, WARN)]
    needs_action.sort(key=lambda item: (-SEVERITY[item[1]["status"]], _rank(item[1]["name"]), item[0]))
    return [finding(c) for _, c in needs_action]


def _verdict(checks: list[dict[str, Any]]) -> str:
    """The worst status among checks that judged something; ``unknown`` when none did."""
    judged = [c["status"] for c in checks if c["status"] in (PASS, WARN, FAIL)]
    if not judged:
        return UNKNOWN
    return max(judged, key=lambda s: SEVERITY[s])


def _count(entries: list[dict[str, str]]) -> str:
    fails = sum(1 for e in entries if e["status"] == FAIL)
    warns = len(entries) - fails
    parts = [f"{n} {word}{'s' if n != 1 else ''}" for n, word in ((fails, "problem"), (warns, "warning")) if n]
    return " and ".join(parts) + " need action" if len(entries) != 1 else parts[0] + " needs action"


def _percent(fraction: Optional[float]) -> str:
    return "retransmits not measured" if fraction is None else f"{fraction:.3%} of segments retransmitted"


def _network_summary(result: dict[str, Any], verdict: str, entries: list[dict[str, str]]) -> str:
    if entries:
        return _count(entries)
    goodput = finite_or_none(result.get("goodput_bps"))
    streams = len(result["streams"]) if isinstance(result.get("streams"), list) else 0
    moved = "nothing measured" if goodput is None else f"{shown(format_rate_bps, goodput)} over {streams} streams"
    head = "healthy" if verdict == PASS else "not judged"
    return f"{head}: {moved}, {_percent(finite_or_none(result.get('retransmit_rate')))}"


def _partition_summary(result: dict[str, Any]) -> str:
    """The partitions that move, each with its predicted time, at most three named."""
    parts = result.get("lpm") if isinstance(result.get("lpm"), list) else []
    times = []
    for part in [p for p in parts if isinstance(p, dict)][:3]:
        seconds = finite_or_none(part.get("predicted_seconds"))
        about = f"about {shown(format_duration, seconds)}" if seconds is not None else "time not known"
        times.append(f"{part.get('name', '?')} {about}")
    more = f" and {len(parts) - 3} more" if len(parts) > 3 else ""
    return ", ".join(times) + more


def _lpm_summary(result: dict[str, Any], verdict: str, checks: list[dict[str, Any]],
                 entries: list[dict[str, str]]) -> str:
    if entries:
        return _count(entries)
    if verdict == UNKNOWN:
        if not result.get("lpm"):
            return "no partitions given: pass --lpar NAME:MEMORY[:DIRTY_RATE] (and --window) to judge them"
        why = next((c["detail"] for c in checks if c["status"] == UNKNOWN and c.get("detail")), "")
        return f"the partitions could not be judged: {why}" if why else "the partitions could not be judged"
    window = finite_or_none((result.get("config") or {}).get("window_s")) if isinstance(result.get("config"),
                                                                                       dict) else None
    where = f"moves in the {shown(format_duration, window)} window" if window else "converges"
    return f"every partition given {where}: {_partition_summary(result)}"


def build(result: dict[str, Any]) -> dict[str, Any]:
    """The ``headline`` of a result: findings that need action (worst first), informational notes, and the
    network and LPM-outlook verdicts, each with a one-line summary."""
    checks = _valid_checks(result)
    entries = findings(checks)
    by_area = {key: [c for c in checks if area(c["name"]) == key] for key in (NETWORK, LPM)}
    lines = {}
    for key in (NETWORK, LPM):
        verdict = _verdict(by_area[key])
        mine = [e for e in entries if e["area"] == key]
        summary = (_network_summary(result, verdict, mine) if key == NETWORK
                   else _lpm_summary(result, verdict, by_area[key], mine))
        lines[key] = {"verdict": verdict, "summary": summary}
    notes = [finding(c) for c in checks if c["status"] == INFO]
    return {"findings": entries, "notes": notes, **lines}


def _entries(value: Any) -> Optional[list[dict[str, str]]]:
    """Stored findings or notes, when every entry has the shape ``finding`` gives; None otherwise."""
    if not isinstance(value, list):
        return None
    keys = ("check", "status", "area", "sentence", "fix")
    if not all(isinstance(e, dict) and all(isinstance(e.get(k), str) for k in keys) for e in value):
        return None
    return [{k: e[k] for k in keys} for e in value]


def _line(value: Any) -> Optional[dict[str, str]]:
    if isinstance(value, dict) and value.get("verdict") in SEVERITY and isinstance(value.get("summary"), str):
        return {"verdict": value["verdict"], "summary": value["summary"]}
    return None


def of(result: dict[str, Any]) -> dict[str, Any]:
    """The headline a result carries when it is well formed (the rules of the version that made the run), or
    one built from its checks (results saved before headlines existed, or a headline edited out of shape)."""
    stored = result.get("headline") if isinstance(result.get("headline"), dict) else {}
    kept = {"findings": _entries(stored.get("findings")), "notes": _entries(stored.get("notes")),
            NETWORK: _line(stored.get(NETWORK)), LPM: _line(stored.get(LPM))}
    return kept if all(value is not None for value in kept.values()) else build(result)
