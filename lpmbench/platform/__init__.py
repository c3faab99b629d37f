"""What the host and its sockets say. Platform-specific parts live in one module per platform, chosen once.

``linux.py`` reads /sys, ethtool and /proc; ``aix.py`` parses lsattr, entstat and netstat (VIOS). Both expose
the same functions: route_interface, interface_facts, counters_snapshot, tcp_system_counters, os_name.
"""

from __future__ import annotations

import logging
import socket
import sys
import threading
from typing import Any

try:
    import psutil
except ImportError:  # AIX: PyPI has no psutil wheel and the VIOS may lack the Toolbox's (docs/vios.md)
    psutil = None

from lpmbench.platform import aggregate, capabilities, cpu, mover, reach, tcpinfo

if sys.platform.startswith("aix"):
    from lpmbench.platform import aix as platform_impl
else:
    from lpmbench.platform import linux as platform_impl

route_interface = platform_impl.route_interface
interface_facts = platform_impl.interface_facts
counters_snapshot = platform_impl.counters_snapshot
tcp_system_counters = platform_impl.tcp_system_counters
os_description = platform_impl.os_name

log = logging.getLogger(__name__)

__all__ = ["tcpinfo", "hostname", "os_description", "CpuMeter", "InterfaceAudit", "route_interface",
           "interface_facts", "counters_snapshot", "tcp_system_counters"]


NO_PSUTIL_CPU_NOTE = ("psutil is not installed: CPU figures unknown (install it: the AIX Toolbox's psutil, "
                      "or 'sh install.sh --build-psutil' from the VIOS bundle; see docs/vios.md)")


def hostname() -> str:
    return socket.gethostname()


class CpuMeter:
    """Whole-host CPU percent and this process's CPU seconds between start() and stop().

    Host CPU comes from deltas of psutil.cpu_times() taken by this meter, not psutil.cpu_percent(), whose
    single process-wide baseline concurrent runs would reset for each other.
    """

    def __init__(self) -> None:
        self._process = psutil.Process() if psutil is not None else None
        self._cpu_start: float | None = None
        self._host_start: Any = None

    def start(self) -> None:
        if self._process is None:
            return
        self._host_start = psutil.cpu_times()
        times = self._process.cpu_times()
        self._cpu_start = times.user + times.system

    def stop(self) -> dict[str, Any]:
        """The figures since start(); None when the run ended before it started moving data."""
        if self._process is None:
            return {"cpu_percent": None, "process_cpu_s": None, "cpu_note": NO_PSUTIL_CPU_NOTE}
        if self._cpu_start is None:
            return {"cpu_percent": None, "process_cpu_s": None}
        times = self._process.cpu_times()
        return {"cpu_percent": _busy_percent(self._host_start, psutil.cpu_times()),
                "process_cpu_s": round(times.user + times.system - self._cpu_start, 4)}


def _busy_percent(before: Any, after: Any) -> float | None:
    total = sum(after) - sum(before)
    idle = (after.idle - before.idle) + (getattr(after, "iowait", 0.0) - getattr(before, "iowait", 0.0))
    return round(100.0 * (1.0 - idle / total), 1) if total > 0 else None


def _delta(after: dict[str, Any], before: dict[str, Any]) -> dict[str, int | None]:
    out: dict[str, int | None] = {}
    for key, value in after.items():
        start = before.get(key)
        out[key] = value - start if isinstance(value, int) and isinstance(start, int) else None
    return out


class InterfaceAudit:
    """The interface that carries the route to the peer: its facts at the start, counter deltas at the end.

    Blocking (runs ethtool / lsattr / entstat / netstat): call start() and finish() from a thread. Never
    raises: what cannot be learned is logged and reported as an error string next to None values, so a
    report says why a figure is unknown (on AIX, netstat -s is the only source of retransmits).
    """

    def __init__(self) -> None:
        self.facts: dict[str, Any] | None = None
        self.error: str | None = None
        self.tcp_error: str | None = None
        self._name: str | None = None
        self._tcp_start: dict[str, Any] = {}
        self._msp: dict[str, Any] = {}
        self._reach: threading.Thread | None = None
        self._reach_facts: dict[str, Any] | None = None
        self._spread = aggregate.SpreadAudit(capabilities.AIX)

    def start(self, peer_address: str) -> None:
        try:
            self._name = route_interface(peer_address)
            if self._name is None:
                self.error = f"no route to {peer_address} found"
            else:
                self.facts = interface_facts(self._name)
        except Exception as exc:  # noqa: BLE001 - a platform tool failing must not fail the run
            self.error = f"interface audit failed: {exc}"
        if self.error:
            log.warning("%s", self.error)
        self._tcp_start = self._read_tcp_counters() or {}
        # The ping (up to ~3 s on AIX) runs beside the run, not before it: the sender's path probe and streams
        # must not wait for it (its run has to start within the orchestrator's arm window).
        self._reach = threading.Thread(target=self._ping, args=(peer_address,), name="lpmbench-ping", daemon=True)
        self._reach.start()
        self._msp = {"mover": mover.mover_facts(capabilities.AIX), "cpu": cpu.cpu_facts(capabilities.AIX)}
        if self._name is not None:
            self._spread.start(self._name, peer_address)

    def _read_tcp_counters(self) -> dict[str, Any] | None:
        try:
            return tcp_system_counters()
        except Exception as exc:  # noqa: BLE001 - e.g. netstat timing out on a busy VIOS
            self.tcp_error = self.tcp_error or f"system TCP counters unavailable: {exc}"
            log.warning("%s", self.tcp_error)
            return None

    def finish(self) -> dict[str, Any]:
        out: dict[str, Any] = {"interface": None, "system_tcp_delta": None}
        if self.facts is not None and self._name is not None:
            try:
                counters = counters_snapshot(self._name)
                out["interface"] = {**self.facts, "counters_delta": _delta(counters, self.facts.get("counters", {}))}
            except Exception as exc:  # noqa: BLE001 - see start()
                out["interface"] = {**self.facts, "counters_delta": None}
                self.error = self.error or f"counters: {exc}"
                log.warning("interface counters of %s unreadable: %s", self._name, exc)
        if self._tcp_start:
            after = self._read_tcp_counters()
            out["system_tcp_delta"] = _delta(after, self._tcp_start) if after is not None else None
        out["interface_error"] = self.error
        out["system_tcp_error"] = self.tcp_error
        out["msp"] = {**self._msp, "reach": self._reach_result(), "aggregate": self._spread.finish()}
        return out

    def _ping(self, peer_address: str) -> None:
        try:
            self._reach_facts = reach.ping_peer(peer_address, capabilities.AIX)
        except Exception as exc:  # noqa: BLE001 - a failing ping is a finding, never a failed run
            self._reach_facts = {"tool": "ping", "address": peer_address, "reachable": None,
                                 "error": f"ping failed: {exc}"}

    def _reach_result(self) -> dict[str, Any] | None:
        """The ping's facts; ping bounds itself (reach.PING_BOUND_S), so the join waits at most that long."""
        if self._reach is None:
            return None
        self._reach.join(reach.PING_BOUND_S + 1.0)
        return self._reach_facts or {"tool": "ping", "reachable": None,
                                     "error": f"ping did not end within {reach.PING_BOUND_S:.0f} s"}


