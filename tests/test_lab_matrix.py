"""The diagnosis matrix on the namespace lab (issue 19): one injected cause per scenario, real agents, and the
headline must name it, with no other check failing unless it names that cause. 100 % or the test fails.

Needs root, iproute2, nftables, ethtool, unshare and the cgroup CPU controller (.ci/run has them); elsewhere
it skips with the reason. The whole matrix takes under a minute on the 2-core CI machine.
"""

from __future__ import annotations

import time

import pytest

from lpmbench.lab import matrix

pytest_plugins = ["conftest_lab"]


@pytest.mark.lab
def test_every_scenario_is_diagnosed_right(lab_required):
    reason = matrix.unavailable_reason()
    if reason:
        pytest.skip(reason)
    started = time.monotonic()
    outcomes = matrix.run_matrix()
    took = time.monotonic() - started
    assert [o["scenario"] for o in outcomes] == [s.name for s in matrix.SCENARIOS]
    wrong = [o for o in outcomes if o["scored"] and not o["right"]]
    assert not wrong, matrix.table(outcomes)
    assert matrix.accuracy(outcomes) == 1.0
    assert took < 150, f"the matrix must stay well under 3 minutes in CI ({took:.0f} s)"


def test_the_matrix_scores_what_it_claims():
    """judge() on hand-made results: a wrong headline, a FAIL that does not name the cause, the lab's artefacts."""
    black_hole = next(s for s in matrix.SCENARIOS if s.name == "jumbo-black-hole")

    def result(*checks: tuple[str, str, str]) -> dict:
        return {"checks": [{"name": n, "status": st, "detail": d, "remedy": "r"} for n, st, d in checks]}

    right = result(("IP on a physical adapter", "warn", "veth"), ("jumbo frames end to end", "fail", "black hole"),
                   ("retransmit rate", "fail", "50%; explained by it (see 'jumbo frames end to end')"))
    assert matrix.judge(black_hole, right)["right"]
    unexplained = result(("jumbo frames end to end", "fail", "black hole"), ("retransmit rate", "fail", "50%"))
    assert matrix.judge(black_hole, unexplained)["wrong_fails"] == ["retransmit rate"]
    wrong_head = result(("LPM port range reachable", "fail", "x"), ("jumbo frames end to end", "fail", "black hole"))
    assert not matrix.judge(black_hole, wrong_head)["right"]
    wrong_words = result(("jumbo frames end to end", "warn", "the MSPs disagree on the MTU"))
    assert not matrix.judge(black_hole, wrong_words)["right"]
    healthy = matrix.SCENARIOS[0]
    assert healthy.expected is None
    assert matrix.judge(healthy, result(("IP on a physical adapter", "warn", "veth")))["right"]
    assert not matrix.judge(healthy, result(("retransmit rate", "warn", "0.2%")))["right"]
