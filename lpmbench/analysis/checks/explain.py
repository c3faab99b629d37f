"""How causes interact: a check that sees the symptom of another check's finding says so.

Each rule runs on its own, so a jumbo black hole also shows as retransmits, streams that moved nothing and low
goodput; a blocked port range as a run that did not complete; a CPU-starved MSP as a slow network. Left alone,
each of those names its own remedy and sends the admin to the wrong team. After every rule has run, each
symptom below that a cause explains keeps its status (the symptom is real) but names the cause, and its fix
starts with the cause's. One cause per symptom: the first in :data:`EXPLAINS` that applies, root causes
first, as in the headline's order (lpmbench/analysis/headline.py).
"""

from __future__ import annotations

from lpmbench.analysis.checks.base import FAIL, WARN, Check

NEEDS_ACTION = (FAIL, WARN)
# (cause check, the statuses in which it explains, why in words, the symptom checks it explains)
EXPLAINS: tuple[tuple[str, tuple[str, ...], str, tuple[str, ...]], ...] = (
    ("LPM port range reachable", (FAIL,), "a blocked LPM port range: the streams could not connect",
     ("run completed", "all streams moved data", "streams kept moving", "retransmit rate",
      "goodput against the wire limit")),
    ("jumbo frames end to end", (FAIL,), "the jumbo black hole: the path drops every full-size frame",
     ("all streams moved data", "streams kept moving", "retransmit rate", "what limited the streams",
      "goodput against the wire limit", "NIC errors and drops during the run")),
    ("MSP CPU headroom", NEEDS_ACTION, "an MSP out of CPU: it cannot move data faster",
     ("what limited the streams", "goodput against the wire limit", "jumbo frame effectiveness")),
    ("what limited the streams", NEEDS_ACTION, "the TCP buffers that held the streams back",
     ("goodput against the wire limit",)),
    ("same speed at both MSPs", NEEDS_ACTION, "the speed mismatch: the faster MSP overruns the slower one",
     ("retransmit rate", "goodput against the wire limit")),
    ("retransmit rate", NEEDS_ACTION, "the retransmits: lost segments slow TCP down",
     ("goodput against the wire limit",)),
)


def explained(check: Check, cause: str, why: str) -> Check:
    """The symptom with its cause named; ``see '<cause>'`` is what tools (the lab's matrix) look for."""
    fix = f"fix what the '{cause}' check names first"
    return {**check, "detail": f"{check['detail']}; explained by {why} (see '{cause}')",
            "remedy": f"{fix}; if this remains, {check['remedy']}" if check["remedy"] else fix}


def explain(checks: list[Check]) -> list[Check]:
    """The checks in the same order, each symptom that a found cause explains rewritten to name it."""
    status = {c["name"]: c["status"] for c in checks}
    out = []
    for each in checks:
        cause = next(((name, why) for name, when, why, symptoms in EXPLAINS
                      if each["name"] in symptoms and status.get(name) in when), None)
        if cause and each["status"] in NEEDS_ACTION:
            each = explained(each, *cause)
        out.append(each)
    return out
