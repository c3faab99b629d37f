"""The expert gauges (issue 13): CPU headroom, ICMP reach and aggregate members used of members present, from
an agent's own final report (its ``msp`` facts), read as the checks read them."""

from __future__ import annotations

from lpmbench.metrics.collector import MetricsState, build_registry

PEER = "10.0.0.2"


def finished(role: str, msp: dict, **data: object) -> dict:
    return {"run_id": "r1", "role": role, "peer": PEER,
            "data": {"streams": [{"id": 0, "bytes": 1000}], "elapsed_s": 10.0, "msp": msp, **data}}


def test_expert_gauges_of_a_cpu_bound_sender_on_one_member_of_two():
    state = MetricsState()
    msp = {"reach": {"reachable": False}, "cpu": {"limit_cores": 2.0, "quota_cores": None},
           "aggregate": {"kind": "bond", "name": "bond0", "members": [{"name": "eth0", "role": "active"},
                                                                      {"name": "eth1", "role": "active"}],
                         "bytes": {"eth0": {"tx": 5 * 10**9, "rx": 1}, "eth1": {"tx": 10, "rx": 1}}}}
    state("run_finished", finished("sender", msp, process_cpu_s=18.0, cpu_percent=95.0))
    value = build_registry(state, {"version": "x"}, process=False).get_sample_value
    labels = {"peer": PEER, "role": "sender"}
    assert value("lpmbench_last_run_cpu_headroom_ratio", labels) == 0.05
    assert value("lpmbench_last_run_icmp_reachable", labels) == 0
    assert value("lpmbench_last_run_aggregate_members", labels) == 2
    assert value("lpmbench_last_run_aggregate_members_used", labels) == 1


def test_no_expert_facts_no_expert_gauges():
    state = MetricsState()
    state("run_finished", finished("receiver", {"reach": {"reachable": True}, "cpu": {}, "aggregate": None}))
    state("run_finished", {**finished("sender", {}), "data": {"streams": [], "msp": "junk"}})
    value = build_registry(state, {"version": "x"}, process=False).get_sample_value
    labels = {"peer": PEER, "role": "receiver"}
    assert value("lpmbench_last_run_icmp_reachable", labels) == 1
    assert value("lpmbench_last_run_cpu_headroom_ratio", labels) is None
    assert value("lpmbench_last_run_aggregate_members", labels) is None
    assert value("lpmbench_last_run_icmp_reachable", {"peer": PEER, "role": "sender"}) is None
