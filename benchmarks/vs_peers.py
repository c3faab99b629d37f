#!/usr/bin/env python3
"""lpmbench against iperf3 and iperf2 on loopback, side by side in one run, as ratios.

    python benchmarks/vs_peers.py [--duration 5] [--streams 1,4,8] [--rounds 3] [--json]

Each round runs every tool once per stream count, the tools in a rotating order so that drift on
the host (other jobs, thermal, page cache) spreads evenly over them:

* ``lpmbench pair --local`` with the C data plane, and again with ``LPMBENCH_NO_EXTENSIONS=1``;
* ``iperf3 -Z -l 1M`` (zero-copy sendfile), server bound to 127.0.0.1 with ``--one-off``;
* ``iperf`` (iperf2) with ``-l 1M``, server bound to 127.0.0.1 and limited with ``-t``.

It prints the median goodput, lpmbench's goodput divided by each tool's, and CPU seconds per GB
moved: for lpmbench the sender and receiver agents' own process CPU during the run (from the
result), for iperf the CPU of the client and server processes (they do nothing but the test).

Everything stays on 127.0.0.1 (lpmbench --local uses 127.0.0.1 -> 127.0.0.2) and every process is
bounded in time. Nothing is installed: a missing iperf3 or iperf is reported and left out.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import psutil

HOST = "127.0.0.1"
SETUP_TIMEOUT_S = 60.0  # beyond the run itself: agent start-up, path probe, result
INSTALL_HINT = "apt-get install iperf3 iperf"


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


# ------------------------------------------------------------------ lpmbench


def lpmbench_tool(dataplane: str) -> Tool:
    env = dict(os.environ)
    env.pop("LPMBENCH_NO_EXTENSIONS", None)
    if dataplane == "python":
        env["LPMBENCH_NO_EXTENSIONS"] = "1"

    def run(streams: int, duration: float) -> Sample:
        argv = [sys.executable, "-m", "lpmbench", "pair", "--local", "--json", "--streams", str(streams),
                "--duration", str(duration)]
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=duration + SETUP_TIMEOUT_S)
        if done.returncode not in (0, 1, 2) or not done.stdout.strip():
            raise BenchmarkError(f"lpmbench pair --local failed ({done.returncode}): {done.stderr.strip()[-400:]}")
        result = json.loads(done.stdout)
        if result.get("error") or result.get("partial"):
            raise BenchmarkError(f"lpmbench run incomplete: {result.get('error')}")
        if result.get("dataplane") != dataplane:
            raise BenchmarkError(f"asked for the {dataplane} data plane, the run used {result.get('dataplane')}")
        cpu = sum(result[side].get("process_cpu_s") or 0.0 for side in ("sender", "receiver"))
        return Sample(result["goodput_bps"], result["bytes"], cpu)

    return Tool(f"lpmbench ({dataplane})", run)


# ------------------------------------------------------------------ iperf3 and iperf2


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def wait_listening(port: int, server: subprocess.Popen, timeout: float = 5.0) -> None:
    """Ready when the port is in LISTEN: a probe connection would count as a test to the servers."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise BenchmarkError(f"server exited early: {server.communicate()[1][-400:]}")
        for conn in psutil.net_connections(kind="tcp"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port:
                return
        time.sleep(0.05)
    raise BenchmarkError(f"server did not listen on {HOST}:{port} within {timeout} s")


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_client_server(server_argv: list[str], client_argv: list[str], port: int, duration: float) -> str:
    """Start the server, run the client; both bounded and both reaped (so their CPU is counted)."""
    server = subprocess.Popen(server_argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_listening(port, server)
        client = subprocess.run(client_argv, capture_output=True, text=True, timeout=duration + SETUP_TIMEOUT_S)
        if client.returncode != 0:
            raise BenchmarkError(f"{client_argv[0]} client failed: {client.stderr.strip()[-400:]}")
        server.wait(timeout=SETUP_TIMEOUT_S)
        return client.stdout
    finally:
        if server.poll() is None:
            server.kill()
        server.communicate()


def iperf3_tool(binary: str) -> Tool:
    def run(streams: int, duration: float) -> Sample:
        port = free_port()
        cpu_before = children_cpu_s()
        out = run_client_server(
            [binary, "-s", "-B", HOST, "-p", str(port), "--one-off"],
            [binary, "-c", HOST, "-p", str(port), "-t", str(duration), "-P", str(streams), "-Z", "-l", "1M", "-J"],
            port, duration)
        received = json.loads(out)["end"]["sum_received"]
        return Sample(received["bits_per_second"], int(received["bytes"]), children_cpu_s() - cpu_before)

    return Tool("iperf3 -Z", run)


def iperf2_tool(binary: str) -> Tool:
    def run(streams: int, duration: float) -> Sample:
        port = free_port()
        cpu_before = children_cpu_s()
        out = run_client_server(
            [binary, "-s", "-B", HOST, "-p", str(port), "-t", str(int(duration + 10))],
            [binary, "-c", HOST, "-p", str(port), "-t", str(duration), "-P", str(streams), "-l", "1M", "-y", "C"],
            port, duration)
        # CSV: time,src,sport,dst,dport,id,interval,bytes,bits_per_second; a sum line has id -1.
        rows = [line.split(",") for line in out.splitlines() if line.count(",") >= 8]
        sums = [row for row in rows if row[5] == "-1"]
        rows = sums or rows
        if not rows:
            raise BenchmarkError(f"no CSV report from iperf: {out[-400:]}")
        return Sample(sum(float(row[8]) for row in rows), sum(int(row[7]) for row in rows),
                      children_cpu_s() - cpu_before)

    return Tool("iperf2", run)


# ------------------------------------------------------------------ driver


def available_tools() -> list[Tool]:
    tools = [lpmbench_tool("c"), lpmbench_tool("python")]
    try:
        import lpmbench._lpmbench  # noqa: F401
    except ImportError as exc:
        print(f"note: lpmbench's C data plane is not built ({exc}); `pip install -e .` builds it", file=sys.stderr)
        tools = tools[1:]
    missing = []
    for binary, make in (("iperf3", iperf3_tool), ("iperf", iperf2_tool)):
        path = shutil.which(binary)
        if path:
            tools.append(make(path))
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


def print_table(rows: list[dict], duration: float, rounds: int) -> None:
    print(f"loopback, {duration:g} s per run, median of {rounds} round(s); CPU = seconds per GB moved")
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
        print(f"{row['streams']:>7}  {row['tool']:<18}{row['goodput_gbps']:>8.1f}{cpu:>10}"
              f"{f'{ratio_c:.2f}' if ratio_c else '-':>10}{f'{ratio_py:.2f}' if ratio_py else '-':>11}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per run (default 5)")
    parser.add_argument("--streams", default="1,4,8", help="comma-separated stream counts (default 1,4,8)")
    parser.add_argument("--rounds", type=int, default=3, help="runs per tool and stream count (default 3)")
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
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    tools = available_tools()
    measured = measure(tools, args.stream_counts, args.duration, args.rounds)
    rows = summarise(tools, args.stream_counts, measured)
    if args.json:
        print(json.dumps({"duration_s": args.duration, "rounds": args.rounds, "rows": rows}, indent=2))
    else:
        print_table(rows, args.duration, args.rounds)
    return 1 if measured["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
