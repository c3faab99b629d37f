"""A run held back by a send-rate cap (the agent's --max-rate, or --rate) says so, and does not judge LPM on it:
the goodput of a capped run is what the cap allowed, not what the link could carry."""

from __future__ import annotations

from typing import Any

import pytest
from agent_helpers import KEY, in_process_agents

from lpmbench.agent.server import AgentLimits
from lpmbench.analysis import results
from lpmbench.analysis.checks import lpm as lpm_checks
from lpmbench.net import eventloop, sockopts
from lpmbench.orchestrator.pair import PairConfig, run_pair

pytestmark = pytest.mark.skipif(not sockopts.PACING_AVAILABLE, reason="no SO_MAX_PACING_RATE: no rate cap here")

CAP_BPS = 200e6
# 100 MiB/s of dirtying is 839 Mbit/s: far above the cap, far below what loopback carries.
BUSY_PARTITION = {"name": "db01", "memory_bytes": 2**30, "dirty_rate_Bps": 100 * 2**20}


def _capped_run(options: dict[str, Any], limits: AgentLimits | None = None) -> dict[str, Any]:
    async def main() -> dict[str, Any]:
        async with in_process_agents(limits=limits) as (ends, _):
            return await run_pair(PairConfig(sender=ends[0], receiver=ends[1], key=KEY, streams=2, duration=1.0,
                                             interval=0.5, options=options, lpars=[BUSY_PARTITION]))

    return eventloop.run(main())


def _checks(result: dict[str, Any]) -> dict[str, dict[str, str]]:
    return {c["name"]: c for c in result["checks"]}


@pytest.mark.parametrize("how", ["agent --max-rate", "--rate"])
def test_a_capped_run_reports_the_cap_and_does_not_judge_lpm_on_it(how: str) -> None:
    if how == "--rate":
        result = _capped_run({"rate_bps": CAP_BPS})
    else:
        result = _capped_run({}, AgentLimits(max_rate_bps=CAP_BPS))
    assert result["partial"] is False, result["error"]
    assert result["goodput_bps"] < CAP_BPS * 1.3
    checks = _checks(result)
    # The agent tells its --max-rate in its facts: the cap is named with its value either way.
    said = "the send rate was capped at 200 Mbit/s by --rate" if how == "--rate" else \
        "the send rate was capped at 200 Mbit/s by the sending agent's --max-rate"
    assert said in checks["run completed"]["detail"]
    limits = checks["what limited the streams"]
    assert "network set the pace" not in limits["detail"] and "the cap set the pace" in limits["detail"]
    partition = checks["LPM partition db01"]
    assert partition["status"] != "fail" and "would stall" not in partition["detail"]
    assert "capped" in partition["detail"]


def test_a_cap_the_link_never_reached_changes_nothing() -> None:
    """A cap far above what the run moved did not set the pace: the usual judgement stands."""
    result = results.finalize({**_hand_result(goodput_bps=500e6), "rate_cap": {"bps": 10e9, "source": "rate"}})
    assert lpm_checks.outlook_bandwidth(result) == 500e6
    assert "pages are dirtied faster" in _checks(result)["LPM partition db01"]["detail"]


def test_a_capped_run_over_a_known_link_is_judged_on_the_link() -> None:
    result = results.finalize({**_hand_result(goodput_bps=CAP_BPS), "wire_limit_bps": 9.41e9,
                               "rate_cap": {"bps": CAP_BPS, "source": "agent"}})
    partition = _checks(result)["LPM partition db01"]
    assert partition["status"] == "pass" and "9.41 Gbit/s" in partition["detail"]
    assert "what the link can carry" in partition["detail"]


def _hand_result(goodput_bps: float) -> dict[str, Any]:
    return {"goodput_bps": goodput_bps, "duration_s": 10.0, "streams": [], "partial": False,
            "config": {"streams": 4, "duration_s": 10.0, "lpars": [BUSY_PARTITION], "window_s": None,
                       "compression": 1.0}}


def test_the_json_predictions_of_a_capped_run_use_the_link_like_the_checks() -> None:
    """The `lpm` section and `lpm_model` agree with the partition checks: judged on the wire limit, and say so."""
    result = results.finalize({**_hand_result(goodput_bps=CAP_BPS), "wire_limit_bps": 9.41e9,
                               "rate_cap": {"bps": CAP_BPS, "source": "agent"}})
    assert result["lpm_model"]["bandwidth_bps"] == 9.41e9
    assert result["lpm_model"]["bandwidth_source"] == "wire_limit"
    assert result["lpm"][0]["converges"] is True
    unknown_link = results.finalize({**_hand_result(goodput_bps=CAP_BPS),
                                     "rate_cap": {"bps": CAP_BPS, "source": "agent"}})
    assert unknown_link["lpm_model"]["bandwidth_source"] == "capped_goodput"
    assert results.finalize(_hand_result(goodput_bps=500e6))["lpm_model"]["bandwidth_source"] == "measured"
