"""``/metrics`` over HTTP: prometheus-client's WSGI app on threads of its own, so scrapes answer while runs
saturate the host's cores."""

from __future__ import annotations

import contextlib
import socket
import threading
from socketserver import ThreadingMixIn
from typing import Any, Callable
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app

DEFAULT_METRICS_PORT = 9520


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - a scrape every few seconds is no news
        pass


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True
    dual_stack = False

    def server_bind(self) -> None:
        if self.dual_stack:  # "::" with IPV6_V6ONLY off also answers IPv4 scrapers
            with contextlib.suppress(OSError, AttributeError):
                self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()


class MetricsServer:
    """``/metrics`` over HTTP, served by threads of its own so that it answers while runs saturate the host."""

    def __init__(self, registry: CollectorRegistry, host: str | None, port: int = DEFAULT_METRICS_PORT) -> None:
        if not 0 <= port <= 65535:
            raise ValueError(f"metrics port must be 0..65535, not {port}")
        self.registry = registry
        self.host = host
        self._requested_port = port
        self._httpd: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        assert self._httpd is not None, "start() first"
        return int(self._httpd.server_port)

    def start(self) -> None:
        """Bind and serve; ``host`` None means every address (IPv6 and IPv4 where the host has both)."""
        app = make_wsgi_app(self.registry)
        try:
            self._httpd = _bind(self.host or "::", self._requested_port, app)
        except OSError:
            if self.host:
                raise
            self._httpd = _bind("0.0.0.0", self._requested_port, app)  # a host without IPv6
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="lpmbench-metrics", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._httpd is None:
            return
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(5)
        self._httpd = None


def _bind(host: str, port: int, app: Callable[..., Any]) -> WSGIServer:
    family, _, _, _, sockaddr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    server_class = type("MetricsHTTPServer", (_ThreadingServer,),
                        {"address_family": family, "dual_stack": sockaddr[0] == "::"})
    return make_server(sockaddr[0], port, app, server_class=server_class, handler_class=_QuietHandler)
