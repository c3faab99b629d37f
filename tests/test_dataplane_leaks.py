"""Both data-plane twins, driven thousands of times, must not leak memory, references or descriptors."""

from __future__ import annotations

import os
import socket
import sys
import time
from array import array
from collections.abc import Iterator
from types import ModuleType

import psutil
import pytest

RUNS = 2000
WARM_UP_RUNS = 200
CHUNK = 16 * 1024
# Each run hands fresh objects to the loops, so a leaked buffer export or reference keeps a whole
# CHUNK alive: 2000 leaked payloads would be 32 MiB, far above allocator noise.
RSS_TOLERANCE = 4 * 1024 * 1024


@pytest.fixture
def tcp_pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    with socket.create_server(("127.0.0.1", 0)) as server:
        sender = socket.create_connection(server.getsockname())
        receiver, _ = server.accept()
    yield sender, receiver
    sender.close()
    receiver.close()


def one_round_trip(twin: ModuleType, sender: socket.socket, receiver: socket.socket, method: str) -> None:
    """A short send of fresh bytes with max_bytes, then a short receive that drains them."""
    payload = os.urandom(CHUNK)
    sent, _ = twin.send_stream(sender.fileno(), payload, time.monotonic_ns() + 1_000_000_000, CHUNK,
                               twin.new_counters(), method)
    assert sent == CHUNK
    received = 0
    while received < CHUNK:  # the bytes may still be on their way through loopback
        received += twin.recv_stream(receiver.fileno(), bytearray(CHUNK), time.monotonic_ns() + 1_000_000,
                                     twin.new_counters())


def rejected_calls(twin: ModuleType, sender: socket.socket) -> None:
    """Error paths release what they took too: buffers exported before a check failed, descriptors."""
    with pytest.raises(ValueError):
        twin.send_stream(sender.fileno(), os.urandom(CHUNK), time.monotonic_ns(), 0, array("d", [0, 0]))
    read_end, write_end = os.pipe()
    try:
        with pytest.raises(OSError):
            twin.recv_stream(read_end, bytearray(CHUNK), time.monotonic_ns(), twin.new_counters())
    finally:
        os.close(read_end)
        os.close(write_end)


def methods(twin: ModuleType) -> list[str]:
    return ["auto", *twin.SEND_METHODS]


def test_memory_and_descriptors_stay_flat(twin: ModuleType, tcp_pair) -> None:
    sender, receiver = tcp_pair
    process = psutil.Process()
    cycle = methods(twin)
    for run in range(WARM_UP_RUNS):
        one_round_trip(twin, sender, receiver, cycle[run % len(cycle)])
    rss_before, fds_before = process.memory_info().rss, process.num_fds()
    for run in range(RUNS):
        one_round_trip(twin, sender, receiver, cycle[run % len(cycle)])
        if run % 10 == 0:
            rejected_calls(twin, sender)
    growth = process.memory_info().rss - rss_before
    assert process.num_fds() == fds_before, "a memfd or a duplicated socket was left open"
    assert growth < RSS_TOLERANCE, f"RSS grew by {growth / 2**20:.1f} MiB over {RUNS} runs"


@pytest.mark.parametrize("side", ["send", "recv"])
def test_no_reference_is_kept(twin: ModuleType, tcp_pair, side: str) -> None:
    sender, receiver = tcp_pair
    data, counters = (os.urandom(CHUNK), twin.new_counters()) if side == "send" else (bytearray(CHUNK),
                                                                                      twin.new_counters())
    before = (sys.getrefcount(data), sys.getrefcount(counters))
    for method in methods(twin) if side == "send" else ["-"]:
        if side == "send":
            twin.send_stream(sender.fileno(), data, time.monotonic_ns() + 1_000_000_000, CHUNK, counters, method)
        else:
            sender.sendall(b"x" * 100)
            twin.recv_stream(receiver.fileno(), data, time.monotonic_ns() + 5_000_000, counters)
    assert (sys.getrefcount(data), sys.getrefcount(counters)) == before
    counters.append(0)  # the buffer export was released: the array can be resized again
    if side == "recv":
        data.extend(b"x")
