"""What the host and its sockets say. Platform-specific parts live in one module per platform."""

from __future__ import annotations

import platform
import socket

import psutil

from . import tcpinfo

__all__ = ["tcpinfo", "hostname", "os_description", "CpuMeter"]


def hostname() -> str:
    return socket.gethostname()


def os_description() -> str:
    uname = platform.uname()
    return f"{uname.system} {uname.release} {uname.machine}".strip()


class CpuMeter:
    """Whole-host CPU percent and this process's CPU seconds between start() and stop()."""

    def __init__(self) -> None:
        self._process = psutil.Process()
        self._cpu_start = 0.0

    def start(self) -> None:
        psutil.cpu_percent(interval=None)  # primes psutil's counter: the next call covers the run
        times = self._process.cpu_times()
        self._cpu_start = times.user + times.system

    def stop(self) -> dict[str, float]:
        times = self._process.cpu_times()
        return {
            "cpu_percent": psutil.cpu_percent(interval=None),
            "process_cpu_s": round(times.user + times.system - self._cpu_start, 4),
        }
