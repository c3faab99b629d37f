"""How causes interact (analysis/checks/explain.py), as a table: each row is a cause, a symptom, and whether the
symptom names the cause. A symptom keeps its status and names the first cause found, root causes first."""

from __future__ import annotations

import pytest

from lpmbench.analysis.checks import FAIL, INFO, PASS, WARN, explain


def check(name: str, status: str, detail: str = "seen", remedy: str = "do this") -> dict[str, str]:
    return {"name": name, "status": status, "detail": detail, "remedy": remedy if status != PASS else ""}


PORTS, JUMBO, CPU = "LPM port range reachable", "jumbo frames end to end", "MSP CPU headroom"
LIMITS, SPEED, RETRANS = "what limited the streams", "same speed at both MSPs", "retransmit rate"
GOODPUT, STREAMS, COMPLETED = "goodput against the wire limit", "all streams moved data", "run completed"

ROWS = [
    # (cause, its status, symptom, its status, the cause it must name, or None)
    pytest.param(PORTS, FAIL, COMPLETED, FAIL, PORTS, id="blocked-ports-explain-the-incomplete-run"),
    pytest.param(PORTS, FAIL, STREAMS, FAIL, PORTS, id="blocked-ports-explain-idle-streams"),
    pytest.param(JUMBO, FAIL, RETRANS, FAIL, JUMBO, id="black-hole-explains-retransmits"),
    pytest.param(JUMBO, FAIL, STREAMS, FAIL, JUMBO, id="black-hole-explains-idle-streams"),
    pytest.param(JUMBO, FAIL, "NIC errors and drops during the run", WARN, JUMBO, id="black-hole-explains-drops"),
    pytest.param(JUMBO, WARN, RETRANS, FAIL, None, id="an-mtu-warning-explains-no-retransmits"),
    pytest.param(CPU, WARN, GOODPUT, WARN, CPU, id="cpu-starved-explains-low-goodput"),
    pytest.param(CPU, FAIL, LIMITS, WARN, CPU, id="cpu-starved-explains-window-limits"),
    pytest.param(CPU, INFO, GOODPUT, WARN, None, id="a-cpu-note-explains-nothing"),
    pytest.param(CPU, PASS, GOODPUT, WARN, None, id="cpu-headroom-explains-nothing"),
    pytest.param(LIMITS, WARN, GOODPUT, WARN, LIMITS, id="buffers-explain-low-goodput"),
    pytest.param(SPEED, WARN, RETRANS, FAIL, SPEED, id="speed-mismatch-explains-retransmits"),
    pytest.param(RETRANS, FAIL, GOODPUT, WARN, RETRANS, id="retransmits-explain-low-goodput"),
    pytest.param(RETRANS, FAIL, STREAMS, FAIL, None, id="retransmits-do-not-explain-idle-streams"),
    pytest.param(JUMBO, FAIL, RETRANS, PASS, None, id="a-passing-check-needs-no-cause"),
]


@pytest.mark.parametrize("cause, cause_status, symptom, symptom_status, named", ROWS)
def test_a_symptom_names_the_cause_that_explains_it(cause, cause_status, symptom, symptom_status, named):
    checks = [check(symptom, symptom_status), check(cause, cause_status)]
    out = {c["name"]: c for c in explain.explain(checks)}
    assert [c["name"] for c in explain.explain(checks)] == [symptom, cause]  # the result's order is kept
    assert out[symptom]["status"] == symptom_status and out[cause] == checks[1]
    if named is None:
        assert out[symptom] == checks[0]
    else:
        assert out[symptom]["detail"].startswith("seen; explained by ") and f"see '{named}'" in out[symptom]["detail"]
        assert out[symptom]["remedy"] == f"fix what the '{named}' check names first; if this remains, do this"


def test_the_root_cause_first_in_the_table_is_named_when_several_explain():
    # A black hole also makes the retransmits: the goodput names the black hole, not the retransmits.
    checks = [check(GOODPUT, WARN), check(RETRANS, FAIL), check(JUMBO, FAIL)]
    goodput = explain.explain(checks)[0]
    assert "see 'jumbo frames end to end'" in goodput["detail"] and "see 'retransmit rate'" not in goodput["detail"]
