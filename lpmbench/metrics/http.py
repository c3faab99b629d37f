"""``/metrics`` over HTTP, served by one thread of its own, so scrapes answer while runs saturate the host's cores.

The endpoint has no authentication and listens where the agent does (``--metrics-bind``, else ``--bind``), so
anyone who reaches it can connect. What a client can cost the agent is bounded: one thread serves every
connection (a selector; an idle client is a socket, not a thread), a request head is at most
``MAX_HEAD_BYTES``, a connection lives at most ``CLIENT_TIMEOUT_S`` from accept to its last response byte, and at
most ``MAX_CONNECTIONS`` are open (``MAX_PER_SOURCE`` per address). When all are taken, the oldest connection
still sending its request makes room: a scrape (a few hundred bytes, answered in milliseconds) is never the
oldest for long, so slow clients cannot keep Prometheus out. Only ``/metrics`` and ``/`` are served.
"""

from __future__ import annotations

import contextlib
import errno
import gzip
import ipaddress
import logging
import selectors
import socket
import threading
import time
from collections import Counter
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

DEFAULT_METRICS_PORT = 9520
MAX_CONNECTIONS = 64
MAX_PER_SOURCE = 8
MAX_HEAD_BYTES = 8192  # request line and headers; Prometheus sends about 300 bytes
CLIENT_TIMEOUT_S = 5.0
METRICS_PATHS = ("/metrics", "/")
ACCEPTS_PER_WAKEUP = 64  # then the selector serves the connections already open before accepting more
POLL_S = 0.5

log = logging.getLogger("lpmbench.metrics")


class _Client:
    """One connection: the request head read so far, or the response left to write."""

    def __init__(self, sock: socket.socket, source: str, deadline: float) -> None:
        self.sock = sock
        self.source = source
        self.deadline = deadline
        self.head = bytearray()
        self.out: memoryview | None = None  # set once the request is read: the response left to send


class MetricsServer:
    """``/metrics`` over HTTP from a thread of its own (see the module docstring for the limits)."""

    def __init__(self, registry: CollectorRegistry, host: str | None, port: int = DEFAULT_METRICS_PORT) -> None:
        if not 0 <= port <= 65535:
            raise ValueError(f"metrics port must be 0..65535, not {port}")
        self.registry = registry
        self.host = host
        self._requested_port = port
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._selector = selectors.DefaultSelector()
        self._clients: dict[socket.socket, _Client] = {}  # in accept order: the first is the oldest
        self._per_source: Counter[str] = Counter()

    @property
    def port(self) -> int:
        assert self._listener is not None, "start() first"
        return int(self._listener.getsockname()[1])

    def start(self) -> None:
        """Bind and serve; ``host`` None means every address (IPv6 and IPv4 where the host has both)."""
        try:
            self._listener = _bind(self.host or "::", self._requested_port)
        except OSError:
            if self.host:
                raise
            self._listener = _bind("0.0.0.0", self._requested_port)  # a host without IPv6
        self._selector.register(self._listener, selectors.EVENT_READ)
        self._thread = threading.Thread(target=self._serve, name="lpmbench-metrics", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._listener is None:
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        for client in list(self._clients.values()):
            self._drop(client)
        self._selector.close()
        self._listener.close()
        self._listener = None

    def _serve(self) -> None:
        while not self._stop.is_set():
            for key, _ in self._selector.select(POLL_S):
                if key.fileobj is self._listener:
                    self._accept()
                elif key.fileobj in self._clients:
                    self._service(self._clients[key.fileobj])  # type: ignore[index]
            self._expire(time.monotonic())

    def _accept(self) -> None:
        assert self._listener is not None
        for _ in range(ACCEPTS_PER_WAKEUP):
            try:
                sock, address = self._listener.accept()
            except OSError as exc:  # BlockingIOError: none left; EMFILE and the like: try at the next wakeup
                if exc.errno not in (errno.EAGAIN, errno.EWOULDBLOCK):
                    log.warning("metrics: cannot accept: %s", exc)
                return
            self._admit(sock, _source(address))

    def _admit(self, sock: socket.socket, source: str) -> None:
        if self._per_source[source] >= MAX_PER_SOURCE:
            sock.close()
            return
        if len(self._clients) >= MAX_CONNECTIONS:
            oldest = next((c for c in self._clients.values() if c.out is None), None)
            if oldest is None:  # every slot is answering a request: the newcomer waits for the next scrape
                sock.close()
                return
            self._drop(oldest)
        sock.setblocking(False)
        client = _Client(sock, source, time.monotonic() + CLIENT_TIMEOUT_S)
        self._clients[sock] = client
        self._per_source[source] += 1
        self._selector.register(sock, selectors.EVENT_READ)

    def _service(self, client: _Client) -> None:
        try:
            if client.out is None:
                self._read(client)
            else:
                self._write(client)
        except OSError:  # reset, broken pipe: the client is gone
            self._drop(client)

    def _read(self, client: _Client) -> None:
        chunk = client.sock.recv(MAX_HEAD_BYTES + 1 - len(client.head))
        if not chunk:
            self._drop(client)
            return
        client.head += chunk
        end = client.head.find(b"\r\n\r\n")
        if end < 0 and len(client.head) > MAX_HEAD_BYTES:
            self._respond(client, *_plain(431, "Request Header Fields Too Large"))
        elif end >= 0:
            self._respond(client, *self._answer(bytes(client.head[:end])))

    def _answer(self, head: bytes) -> tuple[int, str, dict[str, str], bytes]:
        """(status, reason, headers, body) for a request head."""
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split()
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            return _plain(400, "Bad Request")
        method, target = parts[0], parts[1]
        if method not in ("GET", "HEAD"):
            return _plain(405, "Method Not Allowed")
        if target.split("?", 1)[0] not in METRICS_PATHS:
            return _plain(404, "Not Found")
        headers = _headers(lines[1:])
        encoder, content_type = choose_encoder(headers.get("accept", ""))
        try:
            body = encoder(self.registry)
        except Exception:  # noqa: BLE001 - a failing collector must not end the server
            log.exception("metrics: collecting failed")
            return _plain(500, "Internal Server Error")
        extra = {"Content-Type": content_type}
        if "gzip" in headers.get("accept-encoding", ""):
            body, extra["Content-Encoding"] = gzip.compress(body), "gzip"
        return 200, "OK", extra, b"" if method == "HEAD" else body

    def _respond(self, client: _Client, status: int, reason: str, headers: dict[str, str], body: bytes) -> None:
        lines = [f"HTTP/1.1 {status} {reason}", *(f"{k}: {v}" for k, v in headers.items()),
                 f"Content-Length: {len(body)}", "Connection: close", "", ""]
        client.out = memoryview("\r\n".join(lines).encode("latin-1") + body)
        self._selector.modify(client.sock, selectors.EVENT_WRITE)
        self._write(client)

    def _write(self, client: _Client) -> None:
        assert client.out is not None
        with contextlib.suppress(BlockingIOError):
            sent = client.sock.send(client.out)
            client.out = client.out[sent:]
        if not client.out:
            self._drop(client)

    def _expire(self, now: float) -> None:
        for client in [c for c in self._clients.values() if c.deadline <= now]:
            self._drop(client)

    def _drop(self, client: _Client) -> None:
        if self._clients.pop(client.sock, None) is None:
            return
        self._per_source[client.source] -= 1
        if self._per_source[client.source] <= 0:
            del self._per_source[client.source]
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(client.sock)
        client.sock.close()


def _plain(status: int, reason: str) -> tuple[int, str, dict[str, str], bytes]:
    return status, reason, {"Content-Type": "text/plain; charset=utf-8"}, f"{status} {reason}\n".encode()


def _headers(lines: list[str]) -> dict[str, str]:
    """Header names in lower case; the values a scrape needs (accept, accept-encoding) are short."""
    out: dict[str, str] = {}
    for line in lines:
        name, sep, value = line.partition(":")
        if sep:
            out[name.strip().lower()] = value.strip()
    return out


def _source(address: Any) -> str:
    """The client's quota key: an IPv4 address (also IPv4-mapped), or an IPv6 /64, which one host usually holds
    whole (the agent's admission counts sources the same way; metrics may not import the agent)."""
    try:
        ip = ipaddress.ip_address(str(address[0]).split("%", 1)[0])
    except (ValueError, TypeError, IndexError):
        return "?"
    if isinstance(ip, ipaddress.IPv6Address):
        return str(ip.ipv4_mapped) if ip.ipv4_mapped else str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def _bind(host: str, port: int) -> socket.socket:
    family, _, _, _, sockaddr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6 and sockaddr[0] == "::":  # "::" with IPV6_V6ONLY off also answers IPv4
            with contextlib.suppress(OSError, AttributeError):
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(sockaddr)
        sock.listen(128)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock
