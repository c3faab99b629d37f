#!/usr/bin/env python3
"""lpmbench against iperf3 and iperf2, side by side in one run, as ratios: on loopback or across a netns lab.

    python benchmarks/vs_peers.py [--link loopback|netns] [--duration 5] [--streams 1,4,8] [--rounds 3] [--json]
    python benchmarks/vs_peers.py --link netns [--mtu 9000] [--rate 10gbit]   # needs root, ip, tc, nft, ethtool

Each round runs every tool once per stream count, the tools in a rotating order so that drift on
the host (other jobs, thermal, page cache) spreads evenly over them:

* lpmbench with the C data plane, and again with ``LPMBENCH_NO_EXTENSIONS=1`` in the agents' environment;
* ``iperf3 -Z -l 1M`` (zero-copy sendfile), server bound to the receiver's address with ``--one-off``;
* ``iperf`` (iperf2) with ``-l 1M``, server bound to the receiver's address.

``--link loopback`` (default): ``lpmbench pair --local`` (127.0.0.1 -> 127.0.0.2), iperf on 127.0.0.1.
``--link netns``: a ``lpmbench.lab.Lab`` (hosts a and b behind a bridge "switch" in network namespaces,
MTU ``--mtu`` on host and switch ports, optional ``--rate``; TSO/GSO/GRO are off on the veths, so
absolute numbers are far below loopback: compare the ratios). Every sender and client runs in host a,
every receiver and server in host b; ``pair`` runs from host a, as the orchestrator on the sending MSP.

It prints the median goodput, lpmbench's goodput divided by each tool's, and CPU seconds per GB
moved: for lpmbench the sender and receiver agents' own process CPU during the run (from the
result), for iperf the CPU of the client and server processes (they do nothing but the test).

Traffic stays on 127.0.0.0/8 or inside the lab's namespaces, every process is bounded in time and
the lab is torn down on exit. Nothing is installed: a missing iperf3 or iperf is reported and left out.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

HOST = "127.0.0.1"
SETUP_TIMEOUT_S = 60.0  # beyond the run itself: agent start-up, path probe, result
STOP_GRACE_S = 10.0
INSTALL_HINT = "apt-get install iperf3 iperf"
NETNS_TOOLS = ("ip", "tc", "nft", "ethtool")
CPU_NOTE = ("CPU s/GB = CPU seconds per GB moved; lpmbench: sender + receiver agent process CPU during the run "
            "(result process_cpu_s, orchestrator not counted); iperf: client + server process CPU (rusage of the "
            "reaped processes)")


@dataclass
class Sample:
    goodput_bps: float
    bytes_moved: int
    cpu_s: float


@dataclass
class Tool:
    name: str
    run: Callable[[int, float], Sample]


class BenchmarkError(RuntimeError):
    pass


@dataclass
class Placement:
    """Where iperf's servers and clients run and the address the server binds to."""

    server_address: str
    start_server: Callable[..., subprocess.Popen]  # (argv, **popen kwargs)
    run_client: Callable[[list[str], float], subprocess.CompletedProcess]  # (argv, timeout)
    pick_port: Callable[[], int]
    # False: an iperf2 server ends by its own -t and is waited for (loopback, as it always did).
    # True: it is stopped as soon as its client is done, which saves ~10 s a run.
    stop_iperf2_server: bool


def loopback_placement() -> Placement:
    def run_client(argv: list[str], timeout: float) -> subprocess.CompletedProcess:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)

    return Placement(HOST, subprocess.Popen, run_client, lambda: free_port(HOST), stop_iperf2_server=False)


def netns_placement(lab: Any) -> Placement:
    """Servers in lab host b, clients in lab host a."""
    server_address = lab.address("b")

    def run_client(argv: list[str], timeout: float) -> subprocess.CompletedProcess:
        return lab.run_in("a", argv, timeout=timeout, check=False)

    def start_server(argv: list[str], **popen_kwargs: Any) -> subprocess.Popen:
        return lab.popen_in("b", argv, stdin=subprocess.DEVNULL, **popen_kwargs)

    def pick_port() -> int:
        return lab.call_in("b", free_port, server_address, timeout=5.0)  # a socket in b's namespace

    return Placement(server_address, start_server, run_client, pick_port, stop_iperf2_server=True)


def stop(proc: subprocess.Popen, grace_s: float = STOP_GRACE_S) -> None:
    """Terminate (if still running), then kill after grace_s; always reaped so its CPU is counted."""
    if proc.poll() is None:
        proc.terminate()
    try:
        proc.communicate(timeout=grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()


# ------------------------------------------------------------------ lpmbench


def lpmbench_env(dataplane: str) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("LPMBENCH_NO_EXTENSIONS", None)
    if dataplane == "python":
        env["LPMBENCH_NO_EXTENSIONS"] = "1"
    return env


def lpmbench_sample(done: subprocess.CompletedProcess, dataplane: str) -> Sample:
    """A Sample from `lpmbench pair --json`, checking that both agents ran the data plane asked for."""
    if done.returncode not in (0, 1, 2) or not done.stdout.strip():
        raise BenchmarkError(f"lpmbench pair failed ({done.returncode}): {done.stderr.strip()[-400:]}")
    result = json.loads(done.stdout)
    if result.get("error") or result.get("partial"):
        raise BenchmarkError(f"lpmbench run incomplete: {result.get('error')}")
    used = {result.get("dataplane"), result["receiver"].get("dataplane")}
    if used != {dataplane}:
        raise BenchmarkError(f"asked for the {dataplane} data plane, the run used {sorted(map(str, used))}")
    cpu = sum(result[side].get("process_cpu_s") or 0.0 for side in ("sender", "receiver"))
    return Sample(result["goodput_bps"], result["bytes"], cpu)


def lpmbench_tool(dataplane: str) -> Tool:
    env = lpmbench_env(dataplane)

    def run(streams: int, duration: float) -> Sample:
        argv = [sys.executable, "-m", "lpmbench", "pair", "--local", "--json", "--streams", str(streams),
                "--duration", str(duration)]
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=duration + SETUP_TIMEOUT_S)
        return lpmbench_sample(done, dataplane)

    return Tool(f"lpmbench ({dataplane})", run)


@contextlib.contextmanager
def lab_agents(lab: Any, env: dict[str, str], key_path: str, log_dir: str) -> Iterator[list[str]]:
    """An agent in lab host a (sends) and one in b (receives); yields their "address:port"."""
    from lpmbench.orchestrator.local import LocalAgentError, wait_ready

    procs: list[subprocess.Popen] = []
    with contextlib.ExitStack() as logs:
        try:
            endpoints = []
            for host in ("a", "b"):
                address = lab.address(host)
                # The agent's log goes to a file: a pipe nobody reads would fill and block the agent.
                log = logs.enter_context(open(os.path.join(log_dir, f"agent-{host}.log"), "w+"))
                procs.append(lab.popen_in(
                    host, [sys.executable, "-m", "lpmbench", "agent", "--bind", address, "--port", "0",
                           "--key-file", key_path, "--data-ports", "0-0", "--metrics-port", "0"],
                    env=env, stdout=subprocess.PIPE, stderr=log, text=True, stdin=subprocess.DEVNULL))
                endpoints.append(f"{address}:{wait_ready(procs[-1], address, log)}")
            yield endpoints
        except LocalAgentError as exc:
            raise BenchmarkError(str(exc)) from None
        finally:
            for proc in procs:
                stop(proc)


def lpmbench_netns_tool(lab: Any, dataplane: str, key_path: str, log_dir: str) -> Tool:
    env = lpmbench_env(dataplane)

    def run(streams: int, duration: float) -> Sample:
        with lab_agents(lab, env, key_path, log_dir) as (sender, receiver):
            argv = [sys.executable, "-m", "lpmbench", "pair", sender, receiver, "--key-file", key_path, "--json",
                    "--streams", str(streams), "--duration", str(duration)]
            done = lab.run_in("a", argv, timeout=duration + SETUP_TIMEOUT_S, check=False)
        return lpmbench_sample(done, dataplane)

    return Tool(f"lpmbench ({dataplane})", run)


# ------------------------------------------------------------------ iperf3 and iperf2


def free_port(address: str = HOST) -> int:
    with socket.socket() as probe:
        probe.bind((address, 0))
        return int(probe.getsockname()[1])


def listening_ports(pid: int) -> set[int]:
    """TCP ports in LISTEN in the network namespace of process pid (/proc/PID/net is that namespace's)."""
    ports = set()
    for table in ("tcp", "tcp6"):
        try:
            with open(f"/proc/{pid}/net/{table}") as rows:
                next(rows, None)  # header
                for row in rows:
                    fields = row.split()
                    if len(fields) > 3 and fields[3] == "0A":  # 0A = TCP_LISTEN
                        ports.add(int(fields[1].rsplit(":", 1)[1], 16))
        except FileNotFoundError:  # no IPv6, or the process is gone (poll() below says so)
            continue
    return ports


def wait_listening(port: int, server: subprocess.Popen, address: str, timeout: float = 5.0) -> None:
    """Ready when the port is in LISTEN: a probe connection would count as a test to the servers."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise BenchmarkError(f"server exited early: {server.communicate()[1][-400:]}")
        if port in listening_ports(server.pid):
            return
        time.sleep(0.05)
    raise BenchmarkError(f"server did not listen on {address}:{port} within {timeout} s")


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_client_server(place: Placement, server_argv: list[str], client_argv: list[str], port: int,
                      duration: float, wait_server: bool = True) -> str:
    """Start the server, run the client; both bounded and both reaped (so their CPU is counted)."""
    server = place.start_server(server_argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_listening(port, server, place.server_address)
        client = place.run_client(client_argv, duration + SETUP_TIMEOUT_S)
        if client.returncode != 0:
            raise BenchmarkError(f"{client_argv[0]} client failed: {client.stderr.strip()[-400:]}")
        if wait_server:
            server.wait(timeout=SETUP_TIMEOUT_S)
        return client.stdout
    finally:
        if server.poll() is None and wait_server:
            server.kill()
        stop(server, grace_s=2.0)


def parse_iperf3(out: str) -> tuple[float, int]:
    received = json.loads(out)["end"]["sum_received"]
    return float(received["bits_per_second"]), int(received["bytes"])


def parse_iperf2(out: str) -> tuple[float, int]:
    # CSV: time,src,sport,dst,dport,id,interval,bytes,bits_per_second; a sum line has id -1.
    rows = [line.split(",") for line in out.splitlines() if line.count(",") >= 8]
    sums = [row for row in rows if row[5] == "-1"]
    rows = sums or rows
    if not rows:
        raise BenchmarkError(f"no CSV report from iperf: {out[-400:]}")
    return sum(float(row[8]) for row in rows), sum(int(row[7]) for row in rows)


def iperf3_tool(binary: str, place: Placement) -> Tool:
    def run(streams: int, duration: float) -> Sample:
        port, host = place.pick_port(), place.server_address
        cpu_before = children_cpu_s()
        out = run_client_server(
            place, [binary, "-s", "-B", host, "-p", str(port), "--one-off"],
            [binary, "-c", host, "-p", str(port), "-t", str(duration), "-P", str(streams), "-Z", "-l", "1M", "-J"],
            port, duration)
        goodput_bps, moved = parse_iperf3(out)
        return Sample(goodput_bps, moved, children_cpu_s() - cpu_before)

    return Tool("iperf3 -Z", run)


def iperf2_tool(binary: str, place: Placement) -> Tool:
    def run(streams: int, duration: float) -> Sample:
        port, host = place.pick_port(), place.server_address
        cpu_before = children_cpu_s()
        out = run_client_server(
            place, [binary, "-s", "-B", host, "-p", str(port), "-t", str(int(duration + 10))],  # -t: a backstop
            [binary, "-c", host, "-p", str(port), "-t", str(duration), "-P", str(streams), "-l", "1M", "-y", "C"],
            port, duration, wait_server=not place.stop_iperf2_server)
        goodput_bps, moved = parse_iperf2(out)
        return Sample(goodput_bps, moved, children_cpu_s() - cpu_before)

    return Tool("iperf2", run)


# ------------------------------------------------------------------ driver


def available_tools(make_lpmbench: Callable[[str], Tool], place: Placement) -> list[Tool]:
    tools = [make_lpmbench("c"), make_lpmbench("python")]
    try:
        import lpmbench.dataplane._lpmbench  # noqa: F401
    except ImportError as exc:
        print(f"note: lpmbench's C data plane is not built ({exc}); `pip install -e .` builds it", file=sys.stderr)
        tools = tools[1:]
    missing = []
    for binary, make in (("iperf3", iperf3_tool), ("iperf", iperf2_tool)):
        path = shutil.which(binary)
        if path:
            tools.append(make(path, place))
        else:
            missing.append(binary)
    if missing:
        print(f"note: {', '.join(missing)} not found, left out; to compare with it: {INSTALL_HINT}", file=sys.stderr)
    return tools


def measure(tools: list[Tool], stream_counts: list[int], duration: float, rounds: int) -> dict:
    samples: dict[tuple[int, str], list[Sample]] = {}
    errors: dict[tuple[int, str], str] = {}
    for round_number in range(rounds):
        for streams in stream_counts:
            shift = (round_number + streams) % len(tools)
            for tool in tools[shift:] + tools[:shift]:
                print(f"round {round_number + 1}/{rounds}: {tool.name}, {streams} stream(s)", file=sys.stderr)
                try:
                    samples.setdefault((streams, tool.name), []).append(tool.run(streams, duration))
                except (BenchmarkError, subprocess.TimeoutExpired, json.JSONDecodeError, KeyError) as exc:
                    errors[(streams, tool.name)] = str(exc)
                    print(f"  failed: {exc}", file=sys.stderr)
    return {"samples": samples, "errors": errors}


def summarise(tools: list[Tool], stream_counts: list[int], measured: dict) -> list[dict]:
    rows = []
    for streams in stream_counts:
        medians = {}
        for tool in tools:
            runs = measured["samples"].get((streams, tool.name), [])
            if runs:
                moved_gb = sum(run.bytes_moved for run in runs) / 1e9
                medians[tool.name] = {
                    "goodput_gbps": statistics.median(run.goodput_bps for run in runs) / 1e9,
                    "cpu_s_per_gb": sum(run.cpu_s for run in runs) / moved_gb if moved_gb else None,
                    "runs": len(runs),
                }
        for tool in tools:
            if tool.name not in medians:
                error = measured["errors"].get((streams, tool.name))
                rows.append({"streams": streams, "tool": tool.name, "error": error})
                continue
            row = {"streams": streams, "tool": tool.name, **medians[tool.name]}
            for ours in ("lpmbench (c)", "lpmbench (python)"):
                if ours in medians and medians[tool.name]["goodput_gbps"]:
                    row[f"{ours} / this"] = medians[ours]["goodput_gbps"] / medians[tool.name]["goodput_gbps"]
            rows.append(row)
    return rows


def describe_link(args: argparse.Namespace) -> str:
    if args.link == "loopback":
        return "loopback"
    rate = f"{args.rate_bps / 1e9:g} Gbit/s" if args.rate_bps else "unshaped"
    return f"netns lab a -> bridge -> b, MTU {args.mtu}, {rate}, TSO/GSO/GRO off"


def print_table(rows: list[dict], args: argparse.Namespace) -> None:
    print(f"{describe_link(args)}, {args.duration:g} s per run, median of {args.rounds} round(s)")
    print(CPU_NOTE)
    header = f"{'streams':>7}  {'tool':<18}{'Gb/s':>8}{'CPU s/GB':>10}{'C / this':>10}{'Py / this':>11}"
    print(header)
    print("-" * len(header))
    for row in rows:
        if "goodput_gbps" not in row:
            print(f"{row['streams']:>7}  {row['tool']:<18}  failed: {row.get('error')}")
            continue
        cpu = f"{row['cpu_s_per_gb']:.3f}" if row["cpu_s_per_gb"] is not None else "-"
        ratio_c = row.get("lpmbench (c) / this")
        ratio_py = row.get("lpmbench (python) / this")
        print(f"{row['streams']:>7}  {row['tool']:<18}{row['goodput_gbps']:>8.2f}{cpu:>10}"
              f"{f'{ratio_c:.2f}' if ratio_c else '-':>10}{f'{ratio_py:.2f}' if ratio_py else '-':>11}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--link", choices=("loopback", "netns"), default="loopback",
                        help="loopback (default), or two network namespaces behind a bridge (needs root)")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per run (default 5)")
    parser.add_argument("--streams", default="1,4,8", help="comma-separated stream counts (default 1,4,8)")
    parser.add_argument("--rounds", type=int, default=3, help="runs per tool and stream count (default 3)")
    parser.add_argument("--mtu", type=int, default=None, help="netns: MTU of host and switch ports (default 9000)")
    parser.add_argument("--rate", default=None, help="netns: link rate of both ports, e.g. 10gbit (default unshaped)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON instead of a table")
    args = parser.parse_args(argv)
    try:
        args.stream_counts = [int(part) for part in args.streams.split(",") if part.strip()]
    except ValueError:
        parser.error(f"--streams wants numbers like 1,4,8, not {args.streams!r}")
    if not args.stream_counts or min(args.stream_counts) < 1 or max(args.stream_counts) > 128:
        parser.error("--streams: each count must be between 1 and 128")
    if not 0.5 <= args.duration <= 120 or not 1 <= args.rounds <= 20:
        parser.error("--duration must be 0.5-120 s and --rounds 1-20")
    check_link_args(parser, args)
    return args


def check_link_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    args.rate_bps = None
    if args.link == "loopback":
        if args.mtu is not None or args.rate is not None:
            parser.error("--mtu and --rate shape the lab link: they need --link netns")
        return
    args.mtu = 9000 if args.mtu is None else args.mtu
    if not 576 <= args.mtu <= 65535:  # 576: the smallest MTU every IPv4 host must take
        parser.error(f"--mtu must be between 576 and 65535, not {args.mtu}")
    if args.rate is not None:
        from lpmbench.analysis.units import parse_rate_bps

        try:
            args.rate_bps = int(parse_rate_bps(args.rate))
        except ValueError as exc:
            parser.error(f"--rate: {exc}")
        if args.rate_bps < 1_000_000:
            parser.error(f"--rate must be at least 1 Mbit/s, not {args.rate}")


def netns_missing() -> list[str]:
    """What this host lacks for --link netns (empty when nothing)."""
    missing = [] if sys.platform.startswith("linux") else ["Linux"]
    if os.geteuid() != 0:
        missing.append("root")
    return missing + [tool for tool in NETNS_TOOLS if shutil.which(tool) is None]


def measure_netns(args: argparse.Namespace) -> tuple[list[Tool], dict]:
    """Build the lab, measure every tool across it, tear it down (also on errors and Ctrl-C)."""
    from lpmbench.lab import Lab, PortSpec
    from lpmbench.net import keys

    port = PortSpec(host_mtu=args.mtu, switch_mtu=args.mtu, rate_bps=args.rate_bps)
    with tempfile.TemporaryDirectory(prefix="vs-peers-") as tmp, Lab({"a": port, "b": port}) as lab:
        key_path = os.path.join(tmp, "key")
        keys.write_key(key_path, keys.generate_key())
        tools = available_tools(lambda dataplane: lpmbench_netns_tool(lab, dataplane, key_path, tmp),
                                netns_placement(lab))
        return tools, measure(tools, args.stream_counts, args.duration, args.rounds)


def raise_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through the finally blocks: agents stopped, lab torn down


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.link == "loopback":
        tools = available_tools(lpmbench_tool, loopback_placement())
        measured = measure(tools, args.stream_counts, args.duration, args.rounds)
    else:
        missing = netns_missing()
        if missing:
            print(f"vs_peers: --link netns needs root and {', '.join(NETNS_TOOLS)}; missing here: "
                  f"{', '.join(missing)}", file=sys.stderr)
            return 2
        signal.signal(signal.SIGTERM, raise_on_sigterm)
        from lpmbench.lab import LabError

        try:
            tools, measured = measure_netns(args)
        except LabError as exc:
            print(f"vs_peers: cannot build the netns lab: {exc}", file=sys.stderr)
            return 2
    rows = summarise(tools, args.stream_counts, measured)
    if args.json:
        print(json.dumps({"link": describe_link(args), "duration_s": args.duration, "rounds": args.rounds,
                          "cpu": CPU_NOTE, "rows": rows}, indent=2))
    else:
        print_table(rows, args)
    return 1 if measured["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
