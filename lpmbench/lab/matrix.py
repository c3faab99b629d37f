"""The diagnosis matrix: one injected cause per scenario, and the finding that must head the result.

lpmbench promises to say what is wrong, and an admin fixes the first thing it names. Each scenario builds the
namespace lab (:mod:`lpmbench.lab.netns`) with exactly one fault, runs real agents through ``pair`` and reads
``result["headline"]["findings"]``: the first finding must be the injected cause (no finding at all for the
healthy path) and say what the scenario expects, and no other check may FAIL unless it names that finding as
its cause (``see '<check>'``, lpmbench.analysis.checks.explain). The accuracy is the share of scenarios that
meet both::

    python -m lpmbench.lab matrix            # every scenario, a table and the accuracy (needs root)
    python -m lpmbench.lab matrix --only rmem-8k --json

How the lab stands in for two MSPs (docs/diagnosis.md lists what it cannot model):

- Each lab host is an LPAR: its agent runs in a cgroup of its own whose CPU quota (cgroup v1
  ``cpu.cfs_quota_us`` or v2 ``cpu.max``) is its entitlement, which the MSP CPU check reads as on any Linux
  host; and it has a machine id of its own (``/etc/netns/<namespace>/machine-id``, which ``ip netns exec``
  mounts over ``/etc/machine-id``, iproute2's convention for per-namespace files) and a host name of its own
  (a UTS namespace), so the check sees two hosts. ``ip netns exec`` mounts a fresh /sys without cgroups, so
  the agent's shell mounts the cpu controller back where every Linux host has it before it execs the agent.
  No code path of lpmbench knows it runs in the lab.
- A lab host's eth0 is a veth with offloads off (real MTU-sized frames on the wire): the offload and
  physical-adapter checks WARN about that on every scenario, truthfully. Those are the lab's artefacts
  (:data:`LAB_ARTEFACTS`), left out when the headline is judged; every other finding counts.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Optional

from lpmbench.lab.netns import HOSTS, SWITCH, Lab, LabError, PortSpec, lab_unavailable_reason
from lpmbench.orchestrator import local

AGENT_START_S = 20.0
CGROUP_ROOT = "/sys/fs/cgroup"
LPM_PORTS = (18001, 18008)  # the receiver's data ports in every scenario: the range a firewall can block
HOST_CPU = 1.0  # each lab host's entitlement: the 2-core machine split between the two hosts


@dataclass(frozen=True)
class Scenario:
    """One injected cause: how the lab builds it, and the check that must head the result (None: no finding)."""

    name: str
    cause: str
    how: str
    expected: Optional[str]
    ports: dict[str, PortSpec] = field(default_factory=dict)
    sysctls: dict[str, dict[str, str]] = field(default_factory=dict)  # host -> {sysctl: value} in its netns
    block_ports: bool = False  # nftables on the bridge drops TCP to the receiver's LPM port range
    cpu: dict[str, float] = field(default_factory=dict)  # host -> CPU quota (processors), else HOST_CPU
    words: tuple[str, ...] = ()  # what the first finding's sentence must say, beyond naming the right check
    not_here: str = ""  # why this lab cannot produce the fault's symptom (then it runs, but is not scored)
    duration: float = 2.0


JUMBO = PortSpec(host_mtu=9000)
SCENARIOS: tuple[Scenario, ...] = (
    Scenario("healthy-jumbo", "none: a healthy jumbo path",
             "both hosts and switch ports at MTU 9000", None,
             ports={"a": JUMBO, "b": JUMBO}),
    Scenario("jumbo-black-hole", "the switch drops jumbo frames",
             "hosts at MTU 9000, both switch ports at 1500 (no ICMP 'fragmentation needed')",
             "jumbo frames end to end", words=("black hole",),
             ports={"a": PortSpec(host_mtu=9000, switch_mtu=1500), "b": PortSpec(host_mtu=9000, switch_mtu=1500)}),
    Scenario("mtu-mismatch", "the hosts disagree on the MTU",
             "host a at MTU 9000, host b at 1500, switch ports at 9000",
             "jumbo frames end to end", words=("disagree on the MTU",),
             ports={"a": JUMBO, "b": PortSpec(host_mtu=1500, switch_mtu=9000)}),
    Scenario("bottleneck-1g", "a 1 Gb bottleneck with a shallow queue behind a faster sender",
             "host b's link shaped to 1 Gbit/s (tbf, both ends) with a 30 kB queue; the sender's link unshaped",
             "retransmit rate", words=("pattern of a bottleneck",),
             ports={"a": JUMBO, "b": PortSpec(host_mtu=9000, rate_bps=1_000_000_000, queue_bytes=30_000)}),
    Scenario("loss-1pct", "1 % random frame loss",
             "nftables on the bridge drops 1 % of frames at host a's port (numgen random)",
             "retransmit rate", words=("lost at random",),
             ports={"a": PortSpec(host_mtu=9000, loss=0.01), "b": JUMBO}),
    Scenario("rmem-8k", "a tiny receive buffer on the receiver",
             "in host b's namespace: sysctl net.ipv4.tcp_rmem='4096 8192 8192'",
             "what limited the streams", words=("receive buffer is tiny",),
             ports={"a": JUMBO, "b": JUMBO},
             sysctls={"b": {"net.ipv4.tcp_rmem": "4096 8192 8192"}}),
    Scenario("wmem-8k", "a tiny send buffer on the sender",
             "in host a's namespace: sysctl net.ipv4.tcp_wmem='4096 8192 8192'",
             "what limited the streams",
             ports={"a": JUMBO, "b": JUMBO},
             sysctls={"a": {"net.ipv4.tcp_wmem": "4096 8192 8192"}},
             not_here="a send buffer limits a stream to about one buffer per round trip, and the lab's round trip is "
                      "some 20 microseconds (this kernel has no netem or fq to add delay): 8 KiB per 20 us is still "
                      "3 Gbit/s per stream, so nothing on this path is held back; on a real MSP pair (100 us or "
                      "more) it is"),
    Scenario("ports-blocked", "a firewall blocks the LPM port range",
             f"nftables on the bridge drops TCP to ports {LPM_PORTS[0]}-{LPM_PORTS[1]} (the receiver's data ports)",
             "LPM port range reachable", words=("could not reach",),
             ports={"a": JUMBO, "b": JUMBO}, block_ports=True),
    Scenario("cpu-starved", "the sending MSP is short of CPU",
             "the sending agent in a cgroup with a CPU quota of 0.2 processors (cgroup v1 cpu.cfs_quota_us 20000 "
             "of cpu.cfs_period_us 100000; v2 cpu.max '20000 100000'); the receiver keeps its 1.0",
             "MSP CPU headroom", words=("out of CPU",),
             # 0.3 processors already move 7 Gbit/s over these veths, near the 9.9 Gbit/s the check compares with:
             # 0.2 keeps the starved sender clearly below the link (about 45 %) on this machine and faster ones.
             ports={"a": JUMBO, "b": JUMBO}, cpu={"a": 0.2}),
)


# -- each lab host as an LPAR: a cgroup with a CPU quota, a machine id ---------------------------------------
def cgroup_version(root: str = CGROUP_ROOT) -> Optional[int]:
    """1 when the cpu controller is a cgroup v1 hierarchy (cpu.cfs_quota_us), 2 for the unified one, else None."""
    for mount in ("cpu", "cpu,cpuacct"):
        if os.path.exists(os.path.join(root, mount, "cpu.cfs_quota_us")):
            return 1
    controllers = os.path.join(root, "cgroup.controllers")
    if os.path.exists(controllers):
        with open(controllers, encoding="ascii") as handle:
            if "cpu" in handle.read().split():
                return 2
    return None


class HostCgroup:
    """A cgroup with a CPU quota for one lab host's agent; removed on close (after the agent exited)."""

    PERIOD_US = 100_000

    def __init__(self, name: str, cores: float, version: int) -> None:
        self.name, self.version = name, version
        base = os.path.join(CGROUP_ROOT, "cpu") if version == 1 else CGROUP_ROOT
        if version == 1 and not os.path.isdir(base):
            base = os.path.join(CGROUP_ROOT, "cpu,cpuacct")
        self.path = os.path.join(base, name)
        os.mkdir(self.path)
        quota = max(1000, int(cores * self.PERIOD_US))
        if version == 1:
            self._write("cpu.cfs_period_us", str(self.PERIOD_US))
            self._write("cpu.cfs_quota_us", str(quota))
        else:
            self._write("cpu.max", f"{quota} {self.PERIOD_US}")

    def _write(self, name: str, value: str) -> None:
        with open(os.path.join(self.path, name), "w", encoding="ascii") as handle:
            handle.write(value)

    def mount_script(self) -> str:
        """Shell lines run inside ``ip netns exec`` (its fresh /sys has no cgroup mounts): mount the cpu
        controller where every host has it, then move this shell (and so the agent it execs) into the group."""
        if self.version == 1:
            mount = ("mount -t tmpfs lpmb-cgroup /sys/fs/cgroup && mkdir /sys/fs/cgroup/cpu && "
                     "mount -t cgroup -o cpu cgroup /sys/fs/cgroup/cpu")
            procs = f"/sys/fs/cgroup/cpu/{self.name}/cgroup.procs"
        else:
            mount = "mount -t cgroup2 cgroup2 /sys/fs/cgroup"
            procs = f"/sys/fs/cgroup/{self.name}/cgroup.procs"
        return f"{mount} && echo $$ > {procs}"

    def close(self) -> None:
        for _ in range(50):  # the group empties when its last process has been reaped
            try:
                os.rmdir(self.path)
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.05)


@contextlib.contextmanager
def own_machine_id(netns: str) -> Iterator[None]:
    """A machine id for the namespace: ``ip netns exec`` mounts /etc/netns/NAME/* over /etc/*."""
    folder = os.path.join("/etc/netns", netns)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "machine-id"), "w", encoding="ascii") as handle:
        handle.write(secrets.token_hex(16) + "\n")
    try:
        yield
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        with contextlib.suppress(OSError):
            os.rmdir("/etc/netns")  # only when no other namespace keeps files there


class LabAgent:
    """A real agent process on one lab host, in its own cgroup, with its own machine id."""

    def __init__(self, lab: Lab, host: str, key_path: str, log_dir: str, cgroup: HostCgroup,
                 extra: Sequence[str] = ()) -> None:
        self.address = lab.address(host)
        agent = [sys.executable, "-m", "lpmbench", "agent", "--bind", self.address, "--port", "0", "--key-file",
                 key_path, "--metrics-port", "0", *extra]
        # A host name of its own too (a UTS namespace), as two MSPs have: the checks name hosts by it.
        script = f'hostname lab-{host} && {cgroup.mount_script()} && exec "$@"'
        argv = ["ip", "netns", "exec", lab.netns(host), "unshare", "--uts", "sh", "-c", script, "sh", *agent]
        self.log_path = os.path.join(log_dir, f"agent-{host}.log")
        self._log = open(self.log_path, "w")  # noqa: SIM115 - closed in stop()
        env = local.agent_environment()
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=self._log, stdin=subprocess.DEVNULL,
                                     text=True, env=env, cwd=log_dir)
        self.port = 0

    def wait_ready(self) -> LabAgent:
        port, _ = local.ready_port(self.proc, AGENT_START_S)
        if port is not None:
            self.port = port
            return self
        self.stop()
        with open(self.log_path, encoding="utf-8", errors="replace") as log:
            raise LabError(f"agent on {self.address} did not start: {log.read()[-800:]}")

    def stop(self) -> None:
        local.stop_process(self.proc)
        self._log.close()


# -- one scenario ------------------------------------------------------------------------------------------------
def _inject(lab: Lab, scenario: Scenario) -> None:
    """The fault beyond the ports: sysctls in a host's namespace, a firewall rule on the bridge."""
    for host, values in scenario.sysctls.items():
        for name, value in values.items():
            lab.run_in(host, ["sysctl", "-q", "-w", f"{name}={value}"])
    if scenario.block_ports:
        low, high = LPM_PORTS
        # A table of its own, so the lab's port rules (flushed when a port changes) never touch it.
        script = ("table bridge lpmb_firewall {\n chain forward {\n  type filter hook forward priority -10;\n"
                  f"  policy accept;\n  tcp dport {low}-{high} drop\n }}\n}}\n")
        lab.run_in(SWITCH, ["nft", "-f", "-"], input_text=script)


@contextlib.contextmanager
def _agents(lab: Lab, scenario: Scenario, version: int) -> Iterator[tuple[LabAgent, LabAgent, bytes]]:
    from lpmbench.net import keys

    with tempfile.TemporaryDirectory(prefix="lpmbench-matrix-") as tmp, contextlib.ExitStack() as stack:
        key_path = os.path.join(tmp, "key")
        keys.write_key(key_path, keys.generate_key())
        agents = []
        for host in HOSTS:
            stack.enter_context(own_machine_id(lab.netns(host)))
            group = HostCgroup(f"lpmb-{lab.name}-{host}", scenario.cpu.get(host, HOST_CPU), version)
            stack.callback(group.close)
            extra = ["--data-ports", f"{LPM_PORTS[0]}-{LPM_PORTS[1]}"] if host == "b" else ["--data-ports", "0-0"]
            agent = LabAgent(lab, host, key_path, tmp, group, extra)
            stack.callback(agent.stop)  # before its cgroup is removed: callbacks run last in, first out
            agents.append(agent)
        sender, receiver = (agent.wait_ready() for agent in agents)
        yield sender, receiver, keys.load_key(key_path)


def run_scenario(scenario: Scenario, version: int) -> dict[str, Any]:
    """Build the lab with the scenario's fault, run ``pair`` from host a to host b; the result document."""
    from lpmbench.net import eventloop
    from lpmbench.orchestrator.pair import Endpoint, PairConfig, run_pair

    with Lab(scenario.ports, name=f"mx{os.getpid() % 100000}") as lab:
        _inject(lab, scenario)
        with _agents(lab, scenario, version) as (sender, receiver, key):
            config = PairConfig(sender=Endpoint(sender.address, sender.port),
                                receiver=Endpoint(receiver.address, receiver.port), key=key, streams=4,
                                duration=scenario.duration, interval=0.5)
            return lab.call_in("a", lambda: eventloop.run(run_pair(config)), timeout=2 * scenario.duration + 60)


# -- judging and the table ------------------------------------------------------------------------------------
# What the lab cannot avoid, on every scenario: true findings about the lab's own links, not faults injected.
LAB_ARTEFACTS = {
    "large_send and large_receive on": "the lab turns TSO, GSO and GRO off on every veth so that the frames on the "
                                       "wire are real MTU-sized frames (what the MTU faults need)",
    "IP on a physical adapter": "a lab host's eth0 is a veth, a virtual adapter",
}


def judge(scenario: Scenario, result: dict[str, Any]) -> dict[str, Any]:
    """The scenario's outcome: the first finding that is not a lab artefact, every other WARN / FAIL, and
    whether it is right: that finding is the expected check (none for a healthy path) and says the expected
    words, and no other check FAILs unless it names that finding as its cause (``see '<check>'``)."""
    from lpmbench.analysis import headline

    findings = [f for f in headline.of(result)["findings"] if f["check"] not in LAB_ARTEFACTS]
    first = findings[0] if findings else None
    details = {c["name"]: c["detail"] for c in result.get("checks", [])}
    others = findings[1:]
    wrong_fails = [f["check"] for f in others if f["status"] == "fail"
                   and (first is None or f"see '{first['check']}'" not in details.get(f["check"], ""))]
    head_ok = (first is None) if scenario.expected is None else (
        first is not None and first["check"] == scenario.expected
        and all(word in first["sentence"] for word in scenario.words))
    return {"scenario": scenario.name, "cause": scenario.cause, "how": scenario.how, "expected": scenario.expected,
            "headline": None if first is None else {"check": first["check"], "status": first["status"],
                                                    "sentence": first["sentence"]},
            "others": [f"{f['status'].upper()} {f['check']}" for f in others], "wrong_fails": wrong_fails,
            "right": head_ok and not wrong_fails, "scored": not scenario.not_here, "not_here": scenario.not_here,
            "goodput_bps": result.get("goodput_bps")}


def accuracy(outcomes: Sequence[dict[str, Any]]) -> float:
    """The share of scored scenarios (those whose fault this lab can produce) that came out right."""
    scored = [o for o in outcomes if o["scored"]]
    return sum(1 for o in scored if o["right"]) / len(scored) if scored else 0.0


def table(outcomes: Sequence[dict[str, Any]]) -> str:
    """The outcomes as a Markdown table (docs/diagnosis.md shows one), then the accuracy line."""
    lines = ["| scenario | expected root cause | headline found | other WARN / FAIL | right |",
             "|---|---|---|---|---|"]
    for o in outcomes:
        found = "none" if o["headline"] is None else f"{o['headline']['status'].upper()} {o['headline']['check']}"
        others = "; ".join(o["others"]) or "none"
        verdict = ("yes" if o["right"] else "NO") if o["scored"] else "not scored: the lab cannot produce it"
        lines.append(f"| {o['scenario']} | {o['expected'] or 'none (healthy)'} | {found} | {others} | {verdict} |")
    scored = [o for o in outcomes if o["scored"]]
    right = sum(1 for o in scored if o["right"])
    lines.append("")
    lines.append(f"Accuracy: {right} of {len(scored)} scored scenarios ({accuracy(outcomes):.0%}): the headline is "
                 f"the injected cause and no other check fails without naming it.")
    lines += [f"Not scored: {o['scenario']}: {o['not_here']}." for o in outcomes if not o["scored"]]
    return "\n".join(lines)


def unavailable_reason() -> Optional[str]:
    """Why the matrix cannot run here: the lab's own reasons, or no cgroup CPU controller for the entitlements."""
    reason = lab_unavailable_reason()
    if reason:
        return reason
    if cgroup_version() is None:
        return "the matrix needs the cgroup CPU controller (v1 cpu.cfs_quota_us or v2 cpu.max) under /sys/fs/cgroup"
    if shutil.which("unshare") is None:
        return "the matrix needs unshare (util-linux) for each lab host's own host name"
    return None


def run_matrix(names: Sequence[str] = (), progress: Any = None, save: Optional[str] = None) -> list[dict[str, Any]]:
    """Run the scenarios (all, or those named) one after the other; their outcomes. ``save``: a folder that
    gets each result document as SCENARIO.json."""
    unknown = set(names) - {s.name for s in SCENARIOS}
    if unknown:
        raise ValueError(f"unknown scenario(s) {sorted(unknown)}; known: {', '.join(s.name for s in SCENARIOS)}")
    reason = unavailable_reason()
    if reason:
        raise LabError(reason)
    version = cgroup_version()
    assert version is not None
    outcomes = []
    for scenario in SCENARIOS:
        if names and scenario.name not in names:
            continue
        result = run_scenario(scenario, version)
        if save:
            from lpmbench.render.terminal import render_json

            with open(os.path.join(save, f"{scenario.name}.json"), "w", encoding="utf-8") as out:
                out.write(render_json(result) + "\n")
        outcome = judge(scenario, result)
        if progress:
            progress(outcome)
        outcomes.append(outcome)
    return outcomes


def add_parser(sub: Any) -> None:
    """The ``matrix`` subcommand on the lab's command line (``sub``: its argparse subparsers)."""
    matrix = sub.add_parser("matrix", help="run the diagnosis matrix (lpmbench.lab.matrix): one fault per "
                                           "scenario, the headline must name it")
    matrix.add_argument("--only", action="append", default=[], metavar="SCENARIO", help="run only these scenarios")
    matrix.add_argument("--json", action="store_true", help="the outcomes as JSON instead of a table")
    matrix.add_argument("--save", metavar="DIR", help="write each scenario's result document to DIR/SCENARIO.json")


def main(names: Sequence[str], as_json: bool, save: Optional[str] = None) -> int:
    """``python -m lpmbench.lab matrix``: 0 when every scenario is right, 1 when one is not, 2 on a lab error."""
    import json

    def progress(outcome: dict[str, Any]) -> None:
        head = outcome["headline"]["check"] if outcome["headline"] else "none"
        said = ("right" if outcome["right"] else "WRONG") if outcome["scored"] else "not scored"
        print(f"{outcome['scenario']}: {said} (headline: {head})", file=sys.stderr)

    try:
        outcomes = run_matrix(names, progress, save)
    except (ValueError, LabError) as exc:
        print(f"lab matrix: {exc}", file=sys.stderr)
        return 2
    if as_json:
        print(json.dumps({"scenarios": outcomes, "accuracy": accuracy(outcomes)}, indent=2))
    else:
        print(table(outcomes))
    return 0 if all(o["right"] for o in outcomes if o["scored"]) else 1


if __name__ == "__main__":  # python -m lpmbench.lab.matrix [--only NAME] [--json] [--save DIR]
    import argparse

    _parser = argparse.ArgumentParser(prog="python -m lpmbench.lab.matrix", description=__doc__.split("\n")[0])
    add_parser(_parser.add_subparsers(dest="command", required=True))
    _args = _parser.parse_args(["matrix", *sys.argv[1:]])
    sys.exit(main(_args.only, _args.json, _args.save))
