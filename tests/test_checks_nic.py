"""Adapter checks, one row per branch: link speed, same speed or flow control, offloads, physical adapter, errors."""

from __future__ import annotations

from typing import Any, Optional

import pytest
from test_checks import ROW_ARGS, assert_row, row

from lpmbench.analysis.checks import FAIL, PASS, UNKNOWN, WARN, nic

FLOW_ON = {"rx": True, "tx": True}
FLOW_OFF = {"rx": False, "tx": False}
LOOPBACK = {"interfaces": {"sender": {"name": "lo", "speed_mbps": None}, "receiver": {"name": "lo"}}}


def nics(sender: Optional[dict[str, Any]] = None, receiver: Optional[dict[str, Any]] = None,
         **both: Any) -> dict[str, Any]:
    """Interface facts of the sending MSP (en4) and the receiving one (en6): ``both`` for each, then per side."""
    return {"interfaces": {"sender": {"name": "en4", **both, **(sender or {})},
                           "receiver": {"name": "en6", **both, **(receiver or {})}}}


def speeds(tx: Any, rx: Any, tx_flow: Any = None, rx_flow: Any = None) -> dict[str, Any]:
    return nics({"speed_mbps": tx, "flow_control": tx_flow}, {"speed_mbps": rx, "flow_control": rx_flow})


def offloads(tx_send: Any = True, tx_receive: Any = True, rx_send: Any = True, rx_receive: Any = True
             ) -> dict[str, Any]:
    return nics({"large_send": tx_send, "large_receive": tx_receive},
                {"large_send": rx_send, "large_receive": rx_receive})


def deltas(sender: Optional[dict[str, int]], receiver: Optional[dict[str, int]]) -> dict[str, Any]:
    return nics({"counters_delta": sender}, {"counters_delta": receiver})


ZERO = {"rx_errors": 0, "tx_errors": 0, "rx_dropped": 0, "tx_dropped": 0}

ROWS = [
    # Link speed at least 10 Gb: WARN below 10 Gb, FAIL below 1 Gb.
    row(nic.link_speed_check, LOOPBACK, UNKNOWN, ("loopback",), id="link-loopback"),
    row(nic.link_speed_check, speeds(10_000, 25_000), PASS, ("10000 / 25000",), id="link-10g-and-25g"),
    row(nic.link_speed_check, speeds(10_000, 1_000), WARN, ("receiver at 1000 Mb/s",), ("10 Gb", "1 GbE"),
        absent=("sender at",), id="link-under-10g"),
    row(nic.link_speed_check, speeds(1_000, 1_000), WARN, ("sender at 1000", "receiver at 1000"), ("10 Gb",),
        id="link-both-1g"),
    row(nic.link_speed_check, speeds(100, 10_000), FAIL, ("sender at 100 Mb/s",), ("10 Gb",), id="link-under-1g"),
    row(nic.link_speed_check, speeds(1_000, 100), FAIL, ("sender at 1000", "receiver at 100"),
        id="link-under-1g-on-one-side"),
    row(nic.link_speed_check, speeds(10_000, None), UNKNOWN, ("the receiver interface reports no link speed",),
        absent=("sender",), id="link-speed-unknown-receiver"),
    row(nic.link_speed_check, speeds(None, 0), UNKNOWN, ("the sender and receiver interfaces report no link speed",),
        id="link-speed-unknown-both"),
    row(nic.link_speed_check, {"interfaces": {"sender": None, "receiver": {"name": "en6", "speed_mbps": 10_000}}},
        UNKNOWN, ("no interface facts from the sender",), absent=("virtual",), id="link-sender-facts-missing"),
    # Same speed at both MSPs, or flow control on at the slower side.
    row(nic.speed_match_check, LOOPBACK, UNKNOWN, ("loopback",), id="speed-match-loopback"),
    row(nic.speed_match_check, speeds(10_000, None), UNKNOWN, ("not known",), id="speed-match-unknown"),
    row(nic.speed_match_check, speeds(10_000, 10_000), PASS, ("both at 10000",), id="speed-match-same"),
    row(nic.speed_match_check, speeds(10_000, 1_000, FLOW_OFF, FLOW_ON), PASS, ("flow control on at the slower",),
        id="speed-mismatch-flow-control-on-slower-receiver"),
    row(nic.speed_match_check, speeds(1_000, 10_000, FLOW_ON, FLOW_OFF), PASS, ("flow control on at the slower",),
        id="speed-mismatch-flow-control-on-slower-sender"),
    row(nic.speed_match_check, speeds(10_000, 1_000, FLOW_ON, FLOW_OFF), WARN,
        ("sender at 10000 Mb/s feeds receiver at 1000",), ("flow_ctrl=yes", "ethtool -A en6", "same speed"),
        id="speed-mismatch-flow-control-off-on-slower-side"),
    row(nic.speed_match_check, speeds(10_000, 1_000, None, {"rx": True, "tx": False}), WARN, ("feeds",),
        ("ethtool -A en6",), id="speed-mismatch-flow-control-half-on"),
    row(nic.speed_match_check, speeds(10_000, 1_000), WARN, ("feeds",), ("flow_ctrl=yes",),
        id="speed-mismatch-flow-control-unknown"),
    row(nic.speed_match_check, speeds(1_000, 10_000, FLOW_OFF, FLOW_ON), WARN,
        ("sender at 1000 Mb/s, receiver at 10000", "the other way"), ("ethtool -A en4",),
        id="speed-mismatch-slower-sender"),
    # large_send and large_receive on, judged per side and per offload.
    row(nic.offload_check, LOOPBACK, UNKNOWN, ("loopback",), id="offload-loopback"),
    row(nic.offload_check, {"interfaces": {"sender": None, "receiver": None}}, UNKNOWN, ("no interface facts",),
        id="offload-no-facts"),
    row(nic.offload_check, offloads(), PASS, ("on at both MSPs",), id="offload-all-on"),
    row(nic.offload_check, offloads(tx_send=False), WARN, ("large_send off on the sender (en4)",),
        ("large_send=yes", "largesend=1", "tso on"), absent=("large_receive", "receiver"),
        id="offload-large-send-off-sender"),
    row(nic.offload_check, offloads(rx_receive=False), WARN, ("large_receive off on the receiver (en6)",),
        ("large_receive=yes", "gro on"), absent=("large_send", "sender"), id="offload-large-receive-off-receiver"),
    row(nic.offload_check, offloads(tx_receive=False, rx_send=False), WARN,
        ("large_receive off on the sender (en4)", "large_send off on the receiver (en6)"),
        ("large_send=yes", "large_receive=yes"), id="offload-one-off-on-each-side"),
    row(nic.offload_check, offloads(rx_send=None, rx_receive=None), UNKNOWN,
        ("large_send and large_receive not known on the receiver (en6)",), absent=("sender",),
        id="offload-unknown-not-pass"),
    row(nic.offload_check, offloads(tx_send=False, rx_receive=None), WARN,
        ("large_send off on the sender", "large_receive not known on the receiver"), ("large_send=yes",),
        id="offload-off-and-unknown"),
    row(nic.offload_check, {"interfaces": {"sender": {"name": "en4", "large_send": True, "large_receive": True},
                                           "receiver": None}}, UNKNOWN, ("not known on the receiver",),
        id="offload-receiver-facts-missing"),
    # IP on a physical adapter.
    row(nic.physical_adapter_check, LOOPBACK, UNKNOWN, ("loopback",), id="physical-loopback"),
    row(nic.physical_adapter_check, {"interfaces": {}}, UNKNOWN, ("no interface facts",), id="physical-no-facts"),
    row(nic.physical_adapter_check, nics(virtual=False), PASS, ("physical adapters",), id="physical-both"),
    row(nic.physical_adapter_check, nics(receiver={"virtual": True, "driver": "Virtual I/O Ethernet Adapter (l-lan)"},
                                         virtual=False), WARN,
        ("receiver (en6, Virtual I/O Ethernet Adapter (l-lan))",), ("physical adapter",), absent=("sender",),
        id="virtual-adapter-receiver"),
    row(nic.physical_adapter_check, nics(virtual=True), WARN, ("sender (en4)", "receiver (en6)"),
        ("physical adapter",), id="virtual-adapter-both"),
    row(nic.physical_adapter_check, nics(sender={"virtual": None}, receiver={"virtual": False}), UNKNOWN,
        ("not known", "sender"), id="physical-unknown-not-pass"),
    # NIC errors (FAIL) and drops (WARN) during the run.
    row(nic.nic_errors_check, deltas(None, None), UNKNOWN, ("not available",), id="nic-counters-unknown"),
    row(nic.nic_errors_check, deltas(ZERO, ZERO), PASS, ("either interface",), id="nic-clean"),
    row(nic.nic_errors_check, deltas(ZERO, None), PASS, ("on the sender", "receiver's counters not available"),
        absent=("either",), id="nic-clean-one-side-known"),
    row(nic.nic_errors_check, deltas(ZERO, {**ZERO, "rx_errors": 3}), FAIL, ("receiver en6: receive errors +3",),
        ("cabling", "entstat -d"), id="nic-errors"),
    row(nic.nic_errors_check, deltas({**ZERO, "tx_dropped": 7}, ZERO), WARN, ("sender en4: transmit drops +7",),
        ("queue sizes",), id="nic-drops-only"),
    row(nic.nic_errors_check, deltas({**ZERO, "tx_dropped": 7}, {**ZERO, "rx_errors": 1, "rx_dropped": 2}), FAIL,
        ("transmit drops +7", "receive drops +2, receive errors +1"), ("cabling",), id="nic-errors-and-drops"),
    row(nic.nic_errors_check, nics({"name": "errors0", "counters_delta": {**ZERO, "rx_dropped": 1}},
                                   {"counters_delta": ZERO}), WARN, ("receive drops +1",),
        id="nic-drops-on-an-interface-named-errors"),
    row(nic.nic_errors_check, deltas({**ZERO, "rx_errors": -4}, ZERO), PASS, (), id="nic-counter-reset-ignored"),
]


@pytest.mark.parametrize(ROW_ARGS, ROWS)
def test_nic_rows(rule, result, status, detail, remedy, absent):
    assert_row(rule(result), status, detail, remedy, absent)
