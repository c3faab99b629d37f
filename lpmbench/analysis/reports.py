"""What an agent may report, checked where its reports enter the orchestrator: types, ranges and sizes.

An agent's interval and final reports become the result; a field of the wrong type or out of range is a
protocol fault (:class:`ReportError`, naming the agent's role and the field), never a measurement, so it can
never turn into a network verdict. What passes is copied field by field into what the orchestrator keeps:
the fields it reads, checked, plus a few small unknown ones (an agent may add a fact before the orchestrator
reads it); anything else is dropped, so a report that fills its frame with junk costs only its own decoding.

The protocol layer has already cleaned and cut every string (:mod:`lpmbench.protocol.messages`).
"""

from __future__ import annotations

import math
from typing import Any, Callable

MAX_COUNT = 2**64  # counters are unsigned 64-bit at most
MAX_SECONDS = 1e7  # about 115 days: longer than any run
MAX_PORT = 65535
MAX_UNKNOWN_KEYS = 32  # small unknown fields kept per object
MAX_UNKNOWN_VALUES = 16  # values (containers included) in one kept unknown field

Check = Callable[[Any, str], Any]  # (value, field path) -> the value to keep; raises _Bad


class ReportError(ValueError):
    """An agent's report breaks the contract. ``role`` is the agent's role, ``field`` the offending field."""

    def __init__(self, role: str, what: str, field: str, problem: str) -> None:
        super().__init__(f"the {role}'s {what} is not valid: field {field!r} {problem}")
        self.role = role
        self.field = field

    def __repr__(self) -> str:  # shown as is where a caller formats the exception with !r
        return str(self)


class _Bad(Exception):
    def __init__(self, field: str, problem: str) -> None:
        super().__init__(problem)
        self.field = field
        self.problem = problem


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    return {str: "text", list: "a list", dict: "an object", int: "an integer", float: "a number"}.get(
        type(value), type(value).__name__)


def count(limit: int = MAX_COUNT) -> Check:
    """A whole number from 0 to ``limit``."""
    def check(value: Any, field: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _Bad(field, f"must be a whole number, not {_describe(value)}")
        if value < 0:
            raise _Bad(field, f"must not be negative, not {str(value)[:24]}")
        if value > limit:
            raise _Bad(field, f"must be at most {limit}, not {str(value)[:24]}")
        return value
    return check


def signed(limit: int = MAX_COUNT) -> Check:
    """A whole number from -``limit`` to ``limit`` (a counter's change: a reset makes it negative)."""
    def check(value: Any, field: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not -limit <= value <= limit:
            raise _Bad(field, f"must be a whole number within 64 bits, not {_describe(value)}")
        return value
    return check


def number(high: float) -> Check:
    """A finite number from 0 to ``high``."""
    def check(value: Any, field: str) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _Bad(field, f"must be a number, not {_describe(value)}")
        if not (math.isfinite(value) and 0 <= value <= high):
            raise _Bad(field, f"must be from 0 to {high:g}, not {str(value)[:24]}")
        return value
    return check


def text(value: Any, field: str) -> str:
    if not isinstance(value, str):
        raise _Bad(field, f"must be text, not {_describe(value)}")
    return value


def flag(value: Any, field: str) -> bool:
    if not isinstance(value, bool):
        raise _Bad(field, f"must be true or false, not {_describe(value)}")
    return value


def optional(inner: Check) -> Check:
    """``inner``, or null."""
    def check(value: Any, field: str) -> Any:
        return None if value is None else inner(value, field)
    return check


def items(inner: Check, limit: int) -> Check:
    """A list of at most ``limit`` items, each ``inner``."""
    def check(value: Any, field: str) -> list[Any]:
        if not isinstance(value, list):
            raise _Bad(field, f"must be a list, not {_describe(value)}")
        if len(value) > limit:
            raise _Bad(field, f"must hold at most {limit} items, not {len(value)}")
        return [inner(item, f"{field}[{i}]") for i, item in enumerate(value)]
    return check


def table(inner: Check, limit: int = 64) -> Check:
    """An object of at most ``limit`` entries of any name, each ``inner`` (counters, TCP facts)."""
    def check(value: Any, field: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise _Bad(field, f"must be an object, not {_describe(value)}")
        if len(value) > limit:
            raise _Bad(field, f"must hold at most {limit} entries, not {len(value)}")
        return {key: inner(item, f"{field}.{key}") for key, item in value.items()}
    return check


def _size(value: Any, budget: int) -> int:
    """How many values ``value`` holds (containers included), counting no further than ``budget``."""
    if isinstance(value, dict):
        value = list(value.values())
    if not isinstance(value, list):
        return 1
    total = 1
    for item in value:
        total += _size(item, budget - total)
        if total > budget:
            break
    return total


def record(fields: dict[str, Check]) -> Check:
    """An object whose known ``fields`` are checked (each may be missing); unknown ones kept only if small."""
    def check(value: Any, field: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise _Bad(field, f"must be an object, not {_describe(value)}")
        kept: dict[str, Any] = {}
        unknown = 0
        for key, item in value.items():
            path = f"{field}.{key}" if field else key
            if key in fields:
                kept[key] = fields[key](item, path)
            elif unknown < MAX_UNKNOWN_KEYS and _size(item, MAX_UNKNOWN_VALUES) <= MAX_UNKNOWN_VALUES:
                unknown += 1
                kept[key] = item
        return kept
    return check


def checked(check: Check, value: Any, role: str, what: str) -> Any:
    """``value`` through ``check``; ReportError naming the role and the field if it fails."""
    try:
        return check(value, "")
    except _Bad as bad:
        raise ReportError(role, what, bad.field or what, bad.problem) from None


# --- The reports -------------------------------------------------------------------------------------------

LABEL = optional(text)
TCP_FACTS = optional(table(optional(count())))


def stream_sample(streams: int) -> Check:
    return record({"id": count(max(streams - 1, 0)), "bytes": count(), "tcp": TCP_FACTS, "started": optional(flag)})


def interval_report(streams: int, max_intervals: int) -> Check:
    return record({"index": count(max(max_intervals - 1, 0)), "t": number(MAX_SECONDS),
                   "streams": items(stream_sample(streams), streams)})


INTERFACE = record({
    "name": LABEL, "speed_mbps": optional(count()), "duplex": LABEL, "mtu": optional(count()),
    "large_send": optional(flag), "large_receive": optional(flag), "jumbo_frames": optional(flag),
    "virtual": optional(flag), "driver": LABEL,
    "flow_control": optional(record({"rx": optional(flag), "tx": optional(flag)})),
    "offloads": optional(table(optional(flag), 32)),
    "counters": optional(table(optional(count()))), "counters_delta": optional(table(optional(signed()))),
})
PATH_PROBE = record({
    "mtu": optional(count()), "probes": optional(count()), "elapsed_s": optional(number(MAX_SECONDS)),
    "max_tried": optional(count()), "complete": optional(flag), "local_limit": optional(count()), "error": LABEL,
    "passed": optional(items(count(), 256)), "unsupported": LABEL,
})
# Each MSP's expert facts (ICMP reach, the VIOS mover, CPU entitlement, aggregate members): platform's msp block.
REACH = record({"tool": LABEL, "address": LABEL, "sent": optional(count()), "received": optional(count()),
                "rtt_ms": optional(number(MAX_SECONDS * 1000)), "reachable": optional(flag), "error": LABEL})
MOVER = record({"available": optional(flag), "reason": LABEL, "source": LABEL,
                "concurrency_lvl": optional(count(1000)), "cfg_msp_lpm_ops": optional(count(1000)),
                "tcp_port_low": optional(count(MAX_PORT)), "tcp_port_high": optional(count(MAX_PORT)),
                "missing": optional(items(text, 16))})
CPU = record({"source": LABEL, "logical_cpus": optional(count()), "quota_cores": optional(number(1e6)),
              "limit_cores": optional(number(1e6)), "host_id": LABEL, "partition_type": LABEL, "mode": LABEL,
              "dedicated": optional(flag), "entitled_cores": optional(number(1e6)), "online_vcpus": optional(count()),
              "shared_pool_id": optional(count()), "pool_cpus": optional(number(1e6)), "error": LABEL})
AGGREGATE = record({"kind": LABEL, "name": LABEL, "mode": LABEL, "hash_policy": LABEL, "error": LABEL,
                    "members": optional(items(record({"name": LABEL, "up": optional(flag), "role": LABEL}), 64)),
                    "bytes": optional(table(record({"tx": optional(signed()), "rx": optional(signed())}), 64))})
MSP = record({"reach": optional(REACH), "mover": optional(MOVER), "cpu": optional(CPU),
              "aggregate": optional(AGGREGATE)})
SOURCE_COUNT = record({"address": text, "connections": count()})  # lpmbench.agent.admission.SourceCounts rows
# What an agent says about itself, at the handshake and again in its final report.
FACTS: dict[str, Check] = {
    "hostname": LABEL, "os": LABEL, "version": LABEL, "dataplane": LABEL, "dataplane_fallback_reason": LABEL,
    "event_loop": LABEL, "send_methods": optional(items(text, 16)),
    "capabilities": optional(record({"available": optional(items(text, 64)), "missing": optional(table(text))})),
    "instance_id": LABEL, "max_rate_bps": optional(number(1e15)),
}
AGENT = record(FACTS)


def final_report(streams: int) -> Check:
    return record({
        **FACTS, "role": LABEL, "cpu_percent": optional(number(1e6)), "process_cpu_s": optional(number(1e9)),
        "cpu_note": LABEL, "elapsed_s": optional(number(MAX_SECONDS)),
        "streams": items(stream_sample(streams), streams),
        "error": LABEL, "aborted": optional(flag), "keepalive": optional(flag), "stalled": optional(flag),
        "rx_discard": optional(flag), "rate_capped": optional(flag), "send_method": LABEL, "address": LABEL,
        "data_port": optional(count(MAX_PORT)), "data_port_range": optional(items(count(MAX_PORT), 2)),
        "connect_error": LABEL, "interface": optional(INTERFACE), "interface_error": LABEL,
        "system_tcp_delta": optional(table(optional(signed()))), "system_tcp_error": LABEL,
        "path_probe": optional(PATH_PROBE), "msp": optional(MSP),
        # A receiver's count of the connections on its data port that were not the sender's streams.
        "intruders": optional(items(SOURCE_COUNT, 17)), "refused_peers": optional(items(SOURCE_COUNT, 17)),
    })
