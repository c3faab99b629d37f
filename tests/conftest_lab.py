"""Lab fixtures other test modules can import.

Usage in a test module (tests/ is on sys.path under pytest's default import mode)::

    pytest_plugins = ["conftest_lab"]

``lab_required`` skips (with the reason) when the lab cannot be built here: not root, not
Linux, or one of ip / tc / nft / ethtool missing. ``make_lab(**ports)`` builds labs with given
PortSpecs and tears every one of them down at the end of the test, even when it fails.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Callable

import pytest

from lpmbench.lab import Lab, PortSpec, lab_unavailable_reason
from lpmbench.net.pathprobe import start_responder

__all__ = ["lab", "lab_required", "make_lab", "responder_in"]


@pytest.fixture
def lab_required() -> None:
    reason = lab_unavailable_reason()
    if reason:
        pytest.skip(reason)


@pytest.fixture
def make_lab(lab_required: None) -> Iterator[Callable[..., Lab]]:
    built: list[Lab] = []

    def build(ipv6: bool = True, **ports: PortSpec) -> Lab:
        new_lab = Lab(ports, ipv6=ipv6)
        built.append(new_lab)
        return new_lab.up()

    try:
        yield build
    finally:
        for each in built:
            each.down()


@pytest.fixture
def lab(make_lab: Callable[..., Lab]) -> Lab:
    """A default lab: both hosts and switch ports at MTU 1500, no shaping, no loss."""
    return make_lab()


class Responder:
    """A path MTU responder running on its own event loop in a thread inside a lab host."""

    def __init__(self, lab: Lab, host: str, token: str) -> None:
        self._stop = threading.Event()
        self._ready = threading.Event()
        self.port = 0
        self._future = lab.spawn_in(host, self._serve, token)
        deadline = time.monotonic() + 5.0
        while not self._ready.wait(0.05):
            if self._future.done():
                self._future.result()  # raises what stopped the responder
            if time.monotonic() > deadline:
                self._stop.set()
                raise RuntimeError(f"path MTU responder in lab host {host} did not start")

    def _serve(self, token: str) -> None:
        async def run() -> None:
            transport, self.port = await start_responder(asyncio.get_running_loop(), "::", 0,
                                                         token)
            self._ready.set()
            try:
                while not self._stop.is_set():
                    await asyncio.sleep(0.02)
            finally:
                transport.close()

        asyncio.run(run())

    def close(self) -> None:
        self._stop.set()
        self._future.result(timeout=5.0)


@pytest.fixture
def responder_in() -> Iterator[Callable[[Lab, str, str], Responder]]:
    """responder_in(lab, host, token) -> Responder with .port; stopped after the test."""
    started: list[Responder] = []

    def start(lab: Lab, host: str, token: str) -> Responder:
        responder = Responder(lab, host, token)
        started.append(responder)
        return responder

    try:
        yield start
    finally:
        for responder in started:
            responder.close()
