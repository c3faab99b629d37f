"""Results for the report tests: saved real runs, and a failing run made from a real one by the real rules.

``black_hole()`` takes the real 10 s run (local-10s-lpars.json) and gives it the facts of two VIOS MSPs on a
path that drops jumbo frames (hosts at MTU 9000, the path passes 1500), a 10 Gb sender into a 1 Gb receiver
with its offload off and drops counted, its goodput scaled to what a 1 Gb link carries; then the checks, the
LPM model and the headline are computed by lpmbench's own rules, as a run would.
"""

from __future__ import annotations

import copy
import json
import pathlib

from lpmbench.analysis import headline, results, wire

FIXTURES = pathlib.Path(__file__).parent / "fixtures" / "results"
GOODPUT_1GB = 0.94e9


def load(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


def _scaled(result: dict, factor: float) -> None:
    for stream in result["streams"]:
        stream["bytes"] = int(stream["bytes"] * factor)
        stream["goodput_bps"] *= factor
    for interval in result["intervals"]:
        interval["goodput_bps"] *= factor
        for sample in interval["streams"]:
            sample["goodput_bps"] *= factor
    result["bytes"] = sum(s["bytes"] for s in result["streams"])
    result["goodput_bps"] *= factor


def _interface(name: str, speed: int, offload: bool, dropped: int) -> dict:
    return {"name": name, "speed_mbps": speed, "duplex": "full", "mtu": 9000, "large_send": offload,
            "large_receive": offload, "jumbo_frames": True, "virtual": False, "driver": f"ent{name[2:]} (PCIe)",
            "flow_control": {"rx": False, "tx": False},
            "counters": {"rx_errors": 0, "tx_errors": 0, "rx_dropped": 1200 + dropped, "tx_dropped": 0},
            "counters_delta": {"rx_errors": 0, "tx_errors": 0, "rx_dropped": dropped, "tx_dropped": 0}}


def black_hole() -> dict:
    result = copy.deepcopy(load("local-10s-lpars.json"))
    for key in ("headline", "lpm", "lpm_model"):
        result.pop(key, None)
    result["sender"].update(host="vios1-msp", address="10.1.1.11")
    result["receiver"].update(host="vios2-msp", address="10.1.1.12")
    _scaled(result, GOODPUT_1GB / result["goodput_bps"])
    result["path"].update(mtu=1500, sender_interface="en4", receiver_interface="en6", sender_mtu=9000,
                          receiver_mtu=9000, data_address="10.1.1.12")
    result["interfaces"] = {"sender": _interface("en4", 10000, True, 0),
                            "receiver": _interface("en6", 1000, False, 310)}
    result["wire_limit_bps"] = wire.wire_limit_bps(result)
    result["efficiency"] = result["goodput_bps"] / result["wire_limit_bps"] if result["wire_limit_bps"] else None
    results.finalize(result)
    result["headline"] = headline.build(result)
    return result
