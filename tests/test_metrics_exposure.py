"""Hostile clients of /metrics (no auth, listens where the agent does): idle and slow connections, huge headers,
other paths. Every flood is bounded (a few hundred loopback sockets) and every wait has a deadline.
"""

from __future__ import annotations

import contextlib
import gzip
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, Gauge

from lpmbench.metrics import http
from lpmbench.metrics.http import MetricsServer

SCRAPE_BOUND_S = 1.0  # a scrape of a small registry on loopback takes milliseconds; a flood must not change that


@pytest.fixture
def server() -> Iterator[MetricsServer]:
    registry = CollectorRegistry()
    Gauge("lpmbench_test_up", "a gauge to scrape", registry=registry).set(1)
    metrics = MetricsServer(registry, "127.0.0.2", 0)
    metrics.start()
    try:
        yield metrics
    finally:
        metrics.stop()


def request(port: int, raw: bytes, source: str = "127.0.0.1", timeout: float = 5.0) -> bytes:
    with socket.create_connection(("127.0.0.2", port), timeout=timeout, source_address=(source, 0)) as sock:
        sock.sendall(raw)
        data = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return data
            data += chunk


def scrape(port: int, path: str = "/metrics", extra: bytes = b"") -> tuple[bytes, float]:
    t0 = time.monotonic()
    answer = request(port, f"GET {path} HTTP/1.1\r\nHost: x\r\n".encode() + extra + b"\r\n")
    return answer, time.monotonic() - t0


@contextlib.contextmanager
def held(port: int, sources: list[str], per_source: int, first: bytes = b"") -> Iterator[list[socket.socket]]:
    socks = []
    try:
        for source in sources:
            for _ in range(per_source):
                sock = socket.create_connection(("127.0.0.2", port), timeout=2, source_address=(source, 0))
                if first:
                    sock.sendall(first)
                socks.append(sock)
        yield socks
    finally:
        for sock in socks:
            sock.close()


def closed_by_server(sock: socket.socket) -> bool:
    sock.settimeout(0.05)
    try:
        return sock.recv(1, socket.MSG_PEEK) == b""
    except socket.timeout:
        return False
    except OSError:
        return True


def test_idle_and_slow_clients_cost_no_threads_and_scrapes_stay_fast(server: MetricsServer) -> None:
    threads = threading.active_count()
    one_address = ["127.0.0.9"]
    many_addresses = [f"127.0.1.{i}" for i in range(1, 41)]  # 40 addresses x 8: more than every slot
    with held(server.port, one_address, 200), held(server.port, many_addresses, 8, b"GET /metrics HTTP/1.1\r\n"):
        time.sleep(0.3)
        answer, took = scrape(server.port)
        assert threading.active_count() <= threads, "a connection costs a thread"
    assert answer.startswith(b"HTTP/1.1 200 ") and b"lpmbench_test_up 1.0" in answer
    assert took < SCRAPE_BOUND_S, f"scrape took {took:.2f} s under the flood"


def test_one_address_holds_a_few_connections_only(server: MetricsServer) -> None:
    with held(server.port, ["127.0.0.9"], 50) as socks:
        time.sleep(0.3)
        open_ones = sum(not closed_by_server(s) for s in socks)
    assert open_ones <= http.MAX_PER_SOURCE, open_ones


def test_slow_clients_are_closed_at_the_deadline(server: MetricsServer) -> None:
    with held(server.port, ["127.0.0.9"], 1, b"GET /metrics HTTP/1.1\r\nX-Slow: ") as socks:
        t0 = time.monotonic()
        while not closed_by_server(socks[0]) and time.monotonic() - t0 < http.CLIENT_TIMEOUT_S + 3:
            socks[0].send(b"a")  # a byte now and then must not keep it alive
            time.sleep(0.2)
        took = time.monotonic() - t0
    assert took <= http.CLIENT_TIMEOUT_S + 1, f"a slow client was still served after {took:.1f} s"


def test_huge_headers_are_refused_without_being_kept(server: MetricsServer) -> None:
    head = b"GET /metrics HTTP/1.1\r\n" + b"X-Pad: " + b"a" * 60000 + b"\r\n\r\n"
    with socket.create_connection(("127.0.0.2", server.port), timeout=5) as sock:
        with contextlib.suppress(OSError):  # the server may close while we still send
            sock.sendall(head)
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:60]


def test_only_the_metrics_paths_are_served(server: MetricsServer) -> None:
    assert scrape(server.port, "/")[0].startswith(b"HTTP/1.1 200 ")
    assert scrape(server.port, "/metrics?x=1")[0].startswith(b"HTTP/1.1 200 ")
    assert scrape(server.port, "/admin")[0].startswith(b"HTTP/1.1 404 ")
    assert scrape(server.port, "/metricsX")[0].startswith(b"HTTP/1.1 404 ")
    posted = request(server.port, b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
    assert posted.startswith(b"HTTP/1.1 405 ")
    assert request(server.port, b"garbage\r\n\r\n").startswith(b"HTTP/1.1 400 ")


def test_prometheus_negotiation_is_kept(server: MetricsServer) -> None:
    zipped, _ = scrape(server.port, extra=b"Accept-Encoding: gzip\r\n")
    head, body = zipped.split(b"\r\n\r\n", 1)
    assert b"Content-Encoding: gzip" in head and b"lpmbench_test_up 1.0" in gzip.decompress(body)
    open_metrics, _ = scrape(server.port, extra=b"Accept: application/openmetrics-text; version=1.0.0\r\n")
    assert b"application/openmetrics-text" in open_metrics.split(b"\r\n\r\n")[0]
    assert open_metrics.rstrip().endswith(b"# EOF")
