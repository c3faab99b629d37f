"""Before/after figures of the admission limits (issue 18): an agent's fds and RSS under floods, and how many
pair runs succeed under a data-port flood.

Run from a checkout: PYTHONPATH=. python benchmarks/floods.py handshake|tls|metrics|dataport N

Every flood comes from 127.0.0.9 and targets an agent on 127.0.0.2; bounded in count and time.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import os
import select
import socket
import subprocess
import sys
import tempfile
import time

TREE = os.environ["PYTHONPATH"]
sys.path.insert(0, TREE)
from lpmbench.net import keys  # noqa: E402
from lpmbench.orchestrator.client import AgentClient  # noqa: E402
from lpmbench.orchestrator.pair import Endpoint  # noqa: E402

TMP = tempfile.mkdtemp()
KEYF = os.path.join(TMP, "key")
keys.write_key(KEYF, keys.generate_key())
KEY = keys.load_key(KEYF)


def start_agent(bind, extra=()):
    argv = [sys.executable, "-m", "lpmbench", "agent", "--bind", bind, "--port", "0", "--key-file", KEYF,
            *extra]
    log = open(os.path.join(TMP, f"agent-{bind}.log"), "w")  # noqa: SIM115 - the agent's stderr for its life
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=log, text=True,
                            env={**os.environ, "PYTHONPATH": TREE}, cwd=TREE)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if select.select([proc.stdout], [], [], 0.1)[0]:
            line = proc.stdout.readline()
            if line.startswith("lpmbench agent ready on "):
                return proc, int(line.rsplit(":", 1)[1])
    raise SystemExit("agent did not start")


def usage(pid):
    rss = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                rss = int(line.split()[1]) // 1024
            if line.startswith("Threads"):
                threads = int(line.split()[1])
    return {"rss_mb": rss, "fds": len(os.listdir(f"/proc/{pid}/fd")), "threads": threads}


def readable(s):
    p = select.poll()
    p.register(s, select.POLLIN | select.POLLHUP)
    return bool(p.poll(0))


def idle_conns(port, n, host="127.0.0.2", src="127.0.0.9", first=b""):
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind((src, 0))
        try:
            s.connect((host, port))
            if first:
                s.sendall(first)
        except OSError:
            s.close()
            continue
        socks.append(s)
    return socks


async def handshake(port, tls=None):
    client = AgentClient(Endpoint("127.0.0.2", port), KEY, tls=tls)
    t0 = time.monotonic()
    try:
        await client.connect()
        return f"ok in {time.monotonic() - t0:.2f}s"
    except Exception as exc:  # noqa: BLE001
        return f"FAILED after {time.monotonic() - t0:.2f}s: {exc}"
    finally:
        await client.close()


def attack_handshake(tls: bool):
    extra = []
    ctx = None
    if tls:
        import trustme
        ca = trustme.CA()
        cert = ca.issue_cert("127.0.0.2")
        certf, keyf = os.path.join(TMP, "c.pem"), os.path.join(TMP, "k.pem")
        cert.cert_chain_pems[0].write_to_path(certf)
        cert.private_key_pem.write_to_path(keyf)
        extra = ["--tls-cert", certf, "--tls-key", keyf]
        import ssl
        ctx = ssl.create_default_context()
        ca.configure_trust(ctx)
    proc, port = start_agent("127.0.0.2", ["--metrics-port", "0", *extra])
    try:
        base = usage(proc.pid)
        n = 3000 if tls else 600
        socks = idle_conns(port, n)
        time.sleep(1.0)
        under = usage(proc.pid)
        other = asyncio.run(handshake(port, ctx))
        alive = sum(1 for s in socks if not readable(s))
        print(json.dumps({"attack": "tls" if tls else "handshake", "flood": n, "baseline": base,
                          "under_flood": under, "held_open_by_agent": alive,
                          "orchestrator_from_127.0.0.1": other}))
        for s in socks:
            s.close()
    finally:
        proc.terminate()
        proc.wait(10)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.2", 0))
        return s.getsockname()[1]


def scrape(port, timeout=10):
    t0 = time.monotonic()
    try:
        with socket.create_connection(("127.0.0.2", port), timeout=timeout, source_address=("127.0.0.1", 0)) as s:
            s.sendall(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        return f"{data[:15]!r} {len(data)} B in {time.monotonic() - t0:.2f}s"
    except OSError as exc:
        return f"FAILED after {time.monotonic() - t0:.2f}s: {exc}"


def attack_metrics():
    mport = free_port()
    proc, _ = start_agent("127.0.0.2", ["--metrics-port", str(mport)])
    try:
        time.sleep(0.5)
        base = usage(proc.pid)
        idle = idle_conns(mport, 300)
        time.sleep(1.0)
        under_idle = usage(proc.pid)
        scrape_idle = scrape(mport)
        big = []
        header = b"X-Pad: " + b"a" * 65000 + b"\r\n"
        for _ in range(30):
            s = socket.socket()
            s.bind(("127.0.0.9", 0))
            try:
                s.connect(("127.0.0.2", mport))
                s.setblocking(False)
                s.send(b"GET /metrics HTTP/1.1\r\n")
            except OSError:
                s.close()
                continue
            big.append(s)
        t_end = time.monotonic() + 8
        sent = 0
        peak = usage(proc.pid)
        while time.monotonic() < t_end:
            now = usage(proc.pid)
            if now["rss_mb"] > peak["rss_mb"]:
                peak = now
            for s in big:
                with contextlib.suppress(BlockingIOError, OSError):
                    sent += s.send(header)
            time.sleep(0.01)
        under_big = usage(proc.pid)
        scrape_big = scrape(mport)
        print(json.dumps({"attack": "metrics", "baseline": base, "300_idle": under_idle, "scrape_idle": scrape_idle,
                          "30_huge_headers": under_big, "peak_during": peak, "header_bytes_sent": sent,
                          "scrape_big": scrape_big}))
        for s in idle + big:
            s.close()
    finally:
        proc.terminate()
        proc.wait(10)


def attack_dataport(runs: int):
    low = 41000 + (os.getpid() % 50) * 40
    rng = f"{low}-{low + 9}"
    sender, sport = start_agent("127.0.0.1", ["--metrics-port", "0", "--data-ports", rng])
    receiver, rport = start_agent("127.0.0.2", ["--metrics-port", "0", "--data-ports", rng])
    ok = 0
    outcomes = []
    try:
        for _ in range(runs):
            flood = subprocess.Popen([sys.executable, __file__, "_flood", str(low), "20"],
                                     env={**os.environ})
            time.sleep(1.0)
            out = subprocess.run([sys.executable, "-m", "lpmbench", "pair", f"127.0.0.1:{sport}",
                                  f"127.0.0.2:{rport}", "--key-file", KEYF, "--duration", "2", "--json"],
                                 capture_output=True, text=True, env={**os.environ, "PYTHONPATH": TREE},
                                 timeout=120, cwd=TREE)
            flood.terminate()
            flood.wait(10)
            try:
                result = json.loads(out.stdout)
            except ValueError:
                outcomes.append(f"rc={out.returncode} {out.stderr[-300:]!r}")
                continue
            good = not result["partial"] and result["bytes"] > 0
            ok += good
            fails = [f"{c['name']}: {c['detail'][:160]}" for c in result["checks"] if c["status"] == "fail"]
            outcomes.append({"rc": out.returncode, "partial": result["partial"], "error": (result["error"] or "")[:300],
                             "fails": fails})
        print(json.dumps({"attack": "dataport", "runs": runs, "succeeded": ok, "outcomes": outcomes}, indent=1))
    finally:
        for p in (sender, receiver):
            p.terminate()
            p.wait(10)


SOURCES = os.environ.get("FLOOD_SOURCES", "127.0.0.9").split(",")


def flood(low: int, seconds: float):
    """Hold up to 400 silent connections on the 10 data ports, reconnecting as the agent closes them (epoll)."""
    import selectors
    sel = selectors.DefaultSelector()
    end = time.monotonic() + seconds
    held = 0
    while time.monotonic() < end:
        for port in range(low, low + 10):
            if held >= 400:
                break
            s = socket.socket()
            s.setblocking(False)
            s.bind((SOURCES[held % len(SOURCES)], 0))
            try:
                s.connect(("127.0.0.2", port))
            except BlockingIOError:
                pass
            except OSError:
                s.close()
                continue
            sel.register(s, selectors.EVENT_READ)
            held += 1
        for key, _ in sel.select(0.0002):
            try:
                gone = key.fileobj.recv(1) == b""
            except BlockingIOError:
                gone = False
            except OSError:
                gone = True
            if gone:
                sel.unregister(key.fileobj)
                key.fileobj.close()
                held -= 1


if __name__ == "__main__":
    what = sys.argv[1]
    if what == "handshake":
        attack_handshake(False)
    elif what == "tls":
        attack_handshake(True)
    elif what == "metrics":
        attack_metrics()
    elif what == "dataport":
        attack_dataport(int(sys.argv[2]) if len(sys.argv) > 2 else 10)
    elif what == "_flood":
        flood(int(sys.argv[2]), float(sys.argv[3]))
