"""How much CPU an MSP may use: the entitlement the mover's streams run under.

LPM's mover is CPU-bound on the MSPs (IBM: about one processor per side at 1 Gb, more at 10 Gb and up), so a
run that saturates its MSP's CPU below the wire limit says more about the MSP than about the network.

- AIX / VIOS: ``lparstat -i`` gives the partition type (Shared-SMT-n or Dedicated-SMT-n), the mode (Capped,
  Uncapped; Donating for a dedicated partition that lends idle cycles), the entitled capacity in processor
  units, the online virtual CPUs and the shared pool ID. A capped partition can use its entitlement; an
  uncapped one up to its online virtual CPUs when the pool has idle cycles; a dedicated one its processors.
- Linux: the CPUs the agent may run on, and the CPU quota of the agent's own cgroup and its ancestors (cgroup
  v2 ``cpu.max``, v1 ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``): the container's or slice's analogue of an
  entitlement.

``host_id`` tells whether two agents share a host (then their CPU use is one host's and no check judges it):
/etc/machine-id on Linux, the machine ID of ``uname -m`` on AIX.
"""

from __future__ import annotations

import os
import platform
import re
from typing import Any

from lpmbench.platform._tools import read_text, run_tool

CGROUP_ROOT = "/sys/fs/cgroup"
MACHINE_ID_FILES = ("/etc/machine-id", "/var/lib/dbus/machine-id")
_COMMAND_TIMEOUT_S = 10.0


# -- AIX: lparstat -i ----------------------------------------------------------------------------
def _number(text: str | None) -> float | None:
    match = re.match(r"^\s*(\d+(?:\.\d+)?)", text or "")
    return float(match.group(1)) if match else None


def parse_lparstat_i(text: str) -> dict[str, Any]:
    """The entitlement facts of ``lparstat -i`` ("Name : value" lines, names padded with blanks)."""
    fields = {}
    for line in text.splitlines():
        name, sep, value = line.partition(":")
        if sep:
            fields.setdefault(name.strip(), value.strip())
    kind = fields.get("Type", "")
    dedicated = kind.lower().startswith("dedicated")
    mode = (fields.get("Mode") or "").lower() or None
    entitled = _number(fields.get("Entitled Capacity"))
    vcpus = _number(fields.get("Online Virtual CPUs"))
    pool = fields.get("Shared Pool ID")
    out = {"source": "lparstat -i", "partition_type": kind or None, "mode": mode, "dedicated": dedicated,
           "entitled_cores": entitled, "online_vcpus": int(vcpus) if vcpus is not None else None,
           "shared_pool_id": int(pool) if pool and pool.isdigit() else None,
           "pool_cpus": _number(fields.get("Active CPUs in Pool"))}
    out["limit_cores"] = _limit(out)
    return out


def _limit(facts: dict[str, Any]) -> float | None:
    """The most processors the partition can use: its entitlement when capped, its online virtual CPUs when
    uncapped (if the pool has idle cycles), its processors when dedicated."""
    entitled, vcpus = facts["entitled_cores"], facts["online_vcpus"]
    if facts["dedicated"] or facts["mode"] == "uncapped":
        return float(vcpus) if vcpus else entitled
    return entitled


# -- Linux: cgroups --------------------------------------------------------------------------------
def parse_proc_cgroup(text: str) -> dict[str, str]:
    """/proc/self/cgroup as {"v2": path} and/or {"v1": path of the cpu controller}."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if controllers == "":
            out["v2"] = path
        elif "cpu" in controllers.split(","):
            out["v1"] = path
    return out


def parse_cpu_max(text: str) -> float | None:
    """cgroup v2 cpu.max ("max 100000" or "150000 100000") as CPUs, None when unlimited."""
    parts = text.split()
    if len(parts) != 2 or parts[0] == "max" or not parts[0].isdigit() or not parts[1].isdigit():
        return None
    return int(parts[0]) / int(parts[1]) if int(parts[1]) else None


def parse_cfs(quota: str, period: str) -> float | None:
    """cgroup v1 cpu.cfs_quota_us / cpu.cfs_period_us as CPUs, None when unlimited (quota -1)."""
    try:
        q, p = int(quota), int(period)
    except ValueError:
        return None
    return q / p if q > 0 and p > 0 else None


def _ancestors(path: str) -> list[str]:
    """"/a/b" -> ["/a/b", "/a", "/"]: a quota on any ancestor bounds the agent too."""
    parts = [p for p in path.split("/") if p and p != ".."]
    return ["/" + "/".join(parts[:i]) for i in range(len(parts), -1, -1)]


def cgroup_quota(proc_cgroup: str, root: str = CGROUP_ROOT) -> tuple[float | None, str | None]:
    """(CPUs, source) of the tightest CPU quota over the agent's cgroup and its ancestors; (None, None) when
    there is none or the files are not visible (a cgroup namespace, no /sys/fs/cgroup)."""
    paths = parse_proc_cgroup(proc_cgroup)
    found: list[tuple[float, str]] = []
    for path in _ancestors(paths["v2"]) if "v2" in paths else []:
        text = read_text(os.path.join(root, path.lstrip("/"), "cpu.max"))
        quota = parse_cpu_max(text) if text else None
        if quota is not None:
            found.append((quota, f"cgroup v2 cpu.max of {path}"))
    for mount in ("cpu,cpuacct", "cpu"):
        for path in _ancestors(paths["v1"]) if "v1" in paths else []:
            base = os.path.join(root, mount, path.lstrip("/"))
            quota = parse_cfs(read_text(os.path.join(base, "cpu.cfs_quota_us")) or "",
                              read_text(os.path.join(base, "cpu.cfs_period_us")) or "")
            if quota is not None:
                found.append((quota, f"cgroup v1 cpu.cfs_quota_us of {path}"))
    return min(found) if found else (None, None)


def _logical_cpus() -> int | None:
    affinity = getattr(os, "sched_getaffinity", None)
    return len(affinity(0)) if affinity else os.cpu_count()


def _machine_id() -> str | None:
    for path in MACHINE_ID_FILES:
        value = read_text(path)
        if value:
            return value
    return None


def linux_cpu_facts() -> dict[str, Any]:
    cpus = _logical_cpus()
    quota, source = cgroup_quota(read_text("/proc/self/cgroup") or "")
    limit = min(float(cpus), quota) if cpus and quota else (quota or (float(cpus) if cpus else None))
    return {"source": source or "CPU count", "logical_cpus": cpus, "quota_cores": quota,
            "limit_cores": round(limit, 3) if limit else None, "host_id": _machine_id()}


def aix_cpu_facts() -> dict[str, Any]:
    text = run_tool(["lparstat", "-i"], _COMMAND_TIMEOUT_S)
    base = {"logical_cpus": os.cpu_count(), "host_id": platform.uname().machine or None}
    if text is None:
        return {**base, "source": None, "limit_cores": None, "error": "lparstat -i failed or is missing"}
    return {**base, **parse_lparstat_i(text)}


def cpu_facts(aix: bool) -> dict[str, Any]:
    """This MSP's CPU entitlement facts; never raises (an unreadable fact is None with ``error``)."""
    try:
        return aix_cpu_facts() if aix else linux_cpu_facts()
    except Exception as exc:  # noqa: BLE001 - an odd /proc or lparstat must not fail the run
        return {"source": None, "limit_cores": None, "error": f"CPU facts unreadable: {exc}"}
