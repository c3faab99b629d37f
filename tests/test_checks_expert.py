"""The expert checks as tables (issue 13): LPM validation reachability, vioslpm0, MSP CPU, aggregates.

One row per branch, over small result documents whose ``sender.msp`` / ``receiver.msp`` hold what the agents
report (the msp block of lpmbench.platform.InterfaceAudit, with the aggregate audit; docs/result-contract.md).
"""

from __future__ import annotations

from typing import Any, Optional

import pytest
from test_checks import ROW_ARGS, assert_row, row

from lpmbench.analysis.checks import FAIL, INFO, PASS, UNKNOWN, WARN, aggregate, cpu, mover, reach


def pair(sender: Optional[dict[str, Any]] = None, receiver: Optional[dict[str, Any]] = None,
         **top: Any) -> dict[str, Any]:
    """A result with each side's msp facts (``sender`` / ``receiver``), hosts msp-a / msp-b."""
    return {"sender": {"host": "msp-a", "hostname": "msp-a", "msp": sender or {}},
            "receiver": {"host": "msp-b", "hostname": "msp-b", "msp": receiver or {}},
            "config": {"streams": 4}, **top}


# -- reachability ----------------------------------------------------------------------------------------------
def ping(reachable: Optional[bool], received: int = 3, error: Optional[str] = None) -> dict[str, Any]:
    return {"reach": {"tool": "ping", "address": "10.0.0.2", "sent": None if reachable is None else 3,
                      "received": None if reachable is None else received, "rtt_ms": 0.2 if reachable else None,
                      "reachable": reachable, "error": error}}


NO_PING = ping(None, error="no ping command on this host (PATH has none)")
REACH_ROWS = [
    row(reach.reach_check, pair(ping(True), ping(True)), PASS, ("sender -> peer and receiver -> peer", "0.20 ms"),
        id="reach-both"),
    row(reach.reach_check, pair(ping(False, 0), ping(True)), FAIL, ("sender msp-a: 0 of 3 echoes", "ICMP blocked"),
        ("genfilt", "-p 8", "echo_request", "echo_reply", "mkfilt -v 4 -u", "viosecure"), id="reach-blocked"),
    row(reach.reach_check, pair(ping(False, 0), NO_PING), FAIL, ("sender msp-a",), ("genfilt",),
        absent=("no ping command",), id="reach-blocked-other-unknown"),
    row(reach.reach_check, pair(NO_PING, NO_PING), UNKNOWN, ("sender msp-a: no ping command",
                                                           "receiver msp-b: no ping command"), id="reach-no-ping"),
    row(reach.reach_check, pair(ping(True), NO_PING), PASS, ("sender -> peer answered", "receiver msp-b: no ping"),
        id="reach-one-side-known"),
    row(reach.reach_check, {"sender": {"host": "a"}, "receiver": {"host": "b"}}, UNKNOWN,
        ("no ping result reported",), id="reach-older-agents"),
    row(reach.reach_check, pair({"reach": "yes"}, {"reach": ["x"]}), UNKNOWN, ("no ping result",),
        id="reach-malformed-facts-ignored"),
]


# -- vioslpm0 --------------------------------------------------------------------------------------------------
def vios(level: int = 4, ops: int = 8, low: int = 0, high: int = 0, **extra: Any) -> dict[str, Any]:
    return {"mover": {"available": True, "reason": None, "source": "lsattr -El vioslpm0", "concurrency_lvl": level,
                      "cfg_msp_lpm_ops": ops, "tcp_port_low": low, "tcp_port_high": high, "missing": [], **extra}}


LINUX = {"mover": {"available": False, "reason": "no VIOS mover on this host (vioslpm0 exists only on a Virtual "
                                                 "I/O Server)", "source": None}}


def on_links(sender: dict[str, Any], receiver: dict[str, Any], tx_mbps: Optional[int] = 10_000,
             rx_mbps: Optional[int] = 10_000, **top: Any) -> dict[str, Any]:
    return pair(sender, receiver, interfaces={"sender": {"speed_mbps": tx_mbps}, "receiver": {"speed_mbps": rx_mbps}},
                **top)


def data_port(port: int, span: tuple[int, int] = (0, 0)) -> dict[str, Any]:
    return {"data_port": {"port": port, "range": list(span), "reachable": True, "error": None}}


MOVER_ROWS = [
    row(mover.streams_match_check, pair(LINUX, LINUX), UNKNOWN, ("both MSPs: no VIOS mover on this host",),
        id="mover-linux"),
    row(mover.streams_match_check, pair(vios(), vios()), PASS, ("4 streams", "concurrency_lvl 4"),
        id="mover-streams-match"),
    row(mover.streams_match_check, {**pair(vios(), vios()), "config": {"streams": 8}}, WARN,
        ("8 streams tested", "--streams overrode"), ("--streams 4",), id="mover-streams-overridden"),
    row(mover.streams_match_check, {**pair(vios(level=2), vios()), "sender": {
        "host": "msp-a", "os": "VIOS 3.1.4.31 (AIX 7.3)", "msp": vios(level=2)}}, WARN,
        ("msp-a has concurrency_lvl 2", "more mover threads"), ("HMC 9.2.950", "concurrency_lvl=4"),
        id="mover-level-off-default-new-vios"),
    row(mover.streams_match_check, {**pair(vios(), vios(level=5)), "receiver": {
        "host": "msp-b", "os": "VIOS 2.2.6.65 (AIX 7.2)", "msp": vios(level=5)}}, WARN, ("concurrency_lvl 5",),
        ("concurrency_lvl=4",), absent=("HMC 9.2.950",), id="mover-level-off-default-old-vios"),
    row(mover.streams_match_check, pair(vios(level=None), LINUX), PASS, ("without concurrency_lvl",),
        id="mover-level-missing-attribute"),
    row(mover.lpm_ops_check, pair(LINUX, LINUX), UNKNOWN, ("no VIOS mover",), id="ops-linux"),
    row(mover.lpm_ops_check, on_links(vios(), vios()), PASS, ("8 concurrent migrations over 10000 Mb/s",),
        id="ops-8-at-10g"),
    row(mover.lpm_ops_check, on_links(vios(), vios(ops=4), 1_000, 1_000), WARN,
        ("sender msp-a allows 8 concurrent migrations over a 1000 Mb/s",), ("cfg_msp_lpm_ops=4",),
        absent=("receiver msp-b allows",), id="ops-8-at-1g"),
    row(mover.lpm_ops_check, on_links(vios(ops=4), vios(ops=4), 1_000, 1_000), PASS, ("4 concurrent",),
        id="ops-4-at-1g"),
    row(mover.lpm_ops_check, on_links(vios(), vios(), None, 10_000), UNKNOWN, ("sender msp-a: link speed not known",),
        id="ops-speed-unknown"),
    row(mover.lpm_ops_check, on_links(vios(ops=None), LINUX), UNKNOWN, ("cfg_msp_lpm_ops not reported",),
        id="ops-missing-attribute"),
    row(mover.port_range_check, pair(vios(), LINUX), UNKNOWN, ("receiver msp-b: no VIOS mover",),
        id="ports-receiver-linux"),
    row(mover.port_range_check, pair(LINUX, vios(), **data_port(40123)), PASS, ("any ephemeral port",
                                                                                "data port 40123"), id="ports-any"),
    row(mover.port_range_check, pair(LINUX, vios(low=40001, high=40010), **data_port(40003, (40001, 40010))), PASS,
        ("data port 40003 from 40001-40010", "inside LPM's pinned range 40001-40010"), id="ports-pinned-tested"),
    row(mover.port_range_check, pair(LINUX, vios(low=40001, high=40010), **data_port(51234)), WARN,
        ("pins LPM to ports 40001-40010", "data port 51234"), ("--data-ports 40001-40010",),
        id="ports-pinned-not-tested"),
]


# -- MSP CPU ---------------------------------------------------------------------------------------------------
def cpu_facts(limit: float, host_id: str, quota: Optional[float] = None) -> dict[str, Any]:
    return {"cpu": {"source": "lparstat -i", "limit_cores": limit, "quota_cores": quota, "host_id": host_id}}


def cpu_run(tx_process_s: Optional[float], tx_busy: Optional[float], efficiency: Optional[float],
            rx_id: str = "b", tx_quota: Optional[float] = None, **top: Any) -> dict[str, Any]:
    result = pair(cpu_facts(1.0, "a", tx_quota), cpu_facts(2.0, rx_id), duration_s=10.0, efficiency=efficiency,
                  goodput_bps=4e9, wire_limit_bps=9.4e9 if efficiency else None, **top)
    result["sender"].update(process_cpu_s=tx_process_s, cpu_percent=tx_busy)
    result["receiver"].update(process_cpu_s=4.0, cpu_percent=30.0)
    return result


def rx_saturated(tiny_window: bool) -> dict[str, Any]:
    """A receiver out of CPU on a window-limited jumbo path, its streams at MSS 2048 (a 4 KiB window) or full."""
    result = cpu_run(3.0, 40.0, 0.07)
    result["receiver"].update(process_cpu_s=19.8)
    mss = 2048 if tiny_window else 8948
    result["path"] = {"mtu": 9000, "sender_mtu": 9000, "receiver_mtu": 9000}
    result["streams"] = [{"id": 0, "mss": mss, "bytes": 10**9, "busy_us": 10**6, "rwnd_limited_us": 8 * 10**5}]
    return result


CPU_ROWS = [
    row(cpu.msp_cpu_check, cpu_run(9.8, 99.0, 0.43), FAIL,
        ("sender msp-a used 0.99 of 1.00 processors", "out of CPU while the link had room", "43%"),
        ("give sender msp-a about 1.4 more processor(s)", "entitled capacity"), id="cpu-starved-link-room"),
    row(cpu.msp_cpu_check, cpu_run(9.8, 99.0, 0.8), WARN, ("out of CPU while the link had room",),
        ("entitled capacity",), id="cpu-starved-some-room"),
    row(cpu.msp_cpu_check, cpu_run(5.0, 95.0, None), WARN, ("wire limit is unknown",), ("one processor per side",),
        id="cpu-starved-wire-unknown"),
    row(cpu.msp_cpu_check, cpu_run(9.8, 99.0, 0.97), PASS, ("the link was full",), id="cpu-starved-link-full"),
    row(cpu.msp_cpu_check, cpu_run(3.0, 40.0, 0.43), PASS, ("used 0.40 of 1.00", "headroom left"),
        id="cpu-headroom"),
    row(cpu.msp_cpu_check, cpu_run(9.5, 20.0, 0.5, tx_quota=1.0), FAIL, ("used 0.95 of 1.00",), ("cpu.max",),
        absent=("entitled capacity",), id="cpu-cgroup-quota-reached"),
    row(cpu.msp_cpu_check, cpu_run(3.0, 99.0, 0.5, tx_quota=1.0), PASS, ("used 0.30 of 1.00",),
        id="cpu-cgroup-quota-other-tenants-busy"),
    row(cpu.msp_cpu_check, cpu_run(9.8, 99.0, 0.43, rx_id="a"), UNKNOWN, ("one host",), id="cpu-same-host-id"),
    row(cpu.msp_cpu_check, {**cpu_run(9.8, 99.0, 0.43), "interfaces": {"sender": {"name": "lo"}}}, UNKNOWN,
        ("one host",), id="cpu-loopback"),
    row(cpu.msp_cpu_check, pair(duration_s=10.0), UNKNOWN, ("not known on either MSP",), id="cpu-no-figures"),
    # Issue 19: a receive window of a few KiB makes the receiver spend its CPU per read; the buffer is the fix.
    row(cpu.msp_cpu_check, rx_saturated(tiny_window=True), INFO,
        ("receiver msp-b used 1.98 of 2.00", "window of only about 4096 bytes", "what limited the streams"),
        absent=("entitled capacity",), id="cpu-receiver-starved-by-a-tiny-window"),
    row(cpu.msp_cpu_check, rx_saturated(tiny_window=False), FAIL, ("receiver msp-b used 1.98 of 2.00",),
        ("entitled capacity",), id="cpu-receiver-starved-with-full-mss"),
]


# -- aggregates ------------------------------------------------------------------------------------------------
def members(kind: str, spread: dict[str, Optional[int]], direction: str = "tx", mode: Optional[str] = None,
            backup: tuple[str, ...] = (), policy: str = "layer2") -> dict[str, Any]:
    listed = [{"name": n, "up": True, "role": "active"} for n in spread] + \
             [{"name": n, "up": True, "role": "backup"} for n in backup]
    return {"aggregate": {"kind": kind, "name": "bond0" if kind == "bond" else "ent5", "mode": mode,
                          "hash_policy": policy, "members": listed,
                          "bytes": {n: {direction: v, "other": 0} for n, v in spread.items()}}}


GB = 10**9
AGGREGATE_ROWS = [
    row(aggregate.aggregate_check, pair(members("bond", {"eth0": 5 * GB, "eth1": 10**6}), {}), WARN,
        ("sender msp-a bond bond0 (xmit_hash_policy layer2): 1 of 2 members", "eth0 5.00 GB (100%)"),
        ("xmit_hash_policy=layer3+4", "more streams"), id="bond-one-member-used"),
    row(aggregate.aggregate_check, pair(members("bond", {"eth0": 3 * GB, "eth1": 2 * GB}), {}), PASS,
        ("2 of 2 members",), id="bond-spread"),
    row(aggregate.aggregate_check, pair({}, members("etherchannel", {"ent0": 4 * GB, "ent1": 0}, "rx",
                                                    backup=("ent2",), policy="default")), WARN,
        ("receiver msp-b EtherChannel ent5 (hash_mode default): 1 of 2 members",), ("hash_mode=src_dst_port",),
        absent=("ent2",), id="etherchannel-backup-adapter-not-counted"),
    row(aggregate.aggregate_check, pair(members("bond", {"eth0": 5 * GB, "eth1": 0}, mode="active-backup"), {}),
        PASS, ("1 of 1 members",), id="bond-active-backup-one-carries"),
    row(aggregate.aggregate_check, pair(members("ecmp", {"v1": 5 * GB, "v2": 10**5}, policy="0"), {}), WARN,
        ("multipath route", "1 of 2 paths"), ("fib_multipath_hash_policy=1",), id="ecmp-one-path"),
    row(aggregate.aggregate_check, pair(members("bond", {"eth0": None, "eth1": 3}), {}), UNKNOWN,
        ("member counters not readable",), id="bond-counters-unreadable"),
    row(aggregate.aggregate_check, pair({"aggregate": None}, {"aggregate": None}), PASS, ("no aggregated link",),
        id="no-aggregate"),
    row(aggregate.aggregate_check, {"sender": {"host": "a"}, "receiver": {"host": "b"}}, UNKNOWN,
        ("no aggregate facts",), id="aggregate-older-agents"),
    row(aggregate.aggregate_check, pair({"aggregate": {"kind": None, "error": "aggregate audit failed: x"}}, {}),
        UNKNOWN, ("aggregate audit failed",), id="aggregate-audit-error"),
    row(aggregate.aggregate_check, pair({"aggregate": {"kind": ["bond"], "members": 3}},
                                        {"aggregate": {"kind": "bond", "name": "b", "members": [{"name": "e0"}],
                                                       "bytes": {"e0": [1, 2]}}}), UNKNOWN,
        ("receiver msp-b bond b", "member counters not readable"), absent=("sender",),
        id="aggregate-malformed-facts-ignored"),
]

ROWS = REACH_ROWS + MOVER_ROWS + CPU_ROWS + AGGREGATE_ROWS


@pytest.mark.parametrize(ROW_ARGS, ROWS)
def test_expert_rows(rule, result, status, detail, remedy, absent):
    assert_row(rule(result), status, detail, remedy, absent)
