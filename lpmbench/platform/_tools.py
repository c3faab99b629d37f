"""Running the platform's own tools (ethtool, ip, lsattr, entstat, netstat) and reading its text files (sysfs,
procfs, cgroup) for the platform modules."""

from __future__ import annotations

import os
import shutil
import subprocess


def run_tool(argv: list[str], timeout: float) -> str | None:
    """stdout of a tool in the C locale, or None when it is missing, fails, times out or does not apply."""
    if shutil.which(argv[0]) is None and not os.path.isfile(argv[0]):
        return None
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, "LC_ALL": "C"}, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout if proc.returncode == 0 else None


def read_text(path: str) -> str | None:
    """A small text file (sysfs, procfs, cgroup), stripped; None when it is missing or unreadable (a sysfs speed
    reads EINVAL while a link is down or on lo)."""
    try:
        with open(path, encoding="ascii") as handle:
            return handle.read().strip()
    except (OSError, UnicodeDecodeError):
        return None
