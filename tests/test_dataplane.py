"""One suite over both data-plane twins (C and pure Python), on loopback sockets only."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from array import array
from collections.abc import Iterator
from types import ModuleType

import pytest

ALL_METHODS = ("zerocopy", "sendfile", "send")
PAYLOAD = os.urandom(256 * 1024)
# How long a thread of the test may wait for a CPU on a loaded 2-core host (other test processes running):
# the scheduler gives every runnable thread a turn within tens of milliseconds; this allows several times that.
LOADED_HOST_DELAY_S = 0.35

pytest_plugins = ["conftest_lab"]  # lab: two hosts in network namespaces of the test's own


# Every loop a test starts in a thread; none may outlive its test: a loop still running on a closed
# descriptor number would act on whatever socket a later test gets under that number.
_BACKGROUND: list[threading.Thread] = []


@pytest.fixture(autouse=True)
def no_loop_outlives_its_test() -> Iterator[None]:
    yield
    for thread in _BACKGROUND:
        thread.join(10)
    stragglers = [thread for thread in _BACKGROUND if thread.is_alive()]
    _BACKGROUND.clear()
    assert not stragglers, "a data-plane loop kept running after its test"


@pytest.fixture(params=("auto", *ALL_METHODS))
def method(request: pytest.FixtureRequest, twin: ModuleType) -> str:
    if request.param != "auto" and request.param not in twin.SEND_METHODS:
        pytest.skip(f"{twin.IMPLEMENTATION} twin has no {request.param} on this platform")
    return request.param


@pytest.fixture
def tcp_pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    """(sender, receiver): a connected TCP pair on 127.0.0.1."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        sender = socket.create_connection(server.getsockname())
        receiver, _ = server.accept()
    yield sender, receiver
    for sock in (sender, receiver):  # ends loops still running: EOF for receivers, EPIPE for senders
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
    for thread in _BACKGROUND:
        thread.join(10)
    sender.close()
    receiver.close()


def deadline_in(seconds: float) -> int:
    return time.monotonic_ns() + int(seconds * 1e9)


def late_bound_s(twin: ModuleType) -> float:
    """How late a loop may return after its deadline or a stop request.

    The data plane's promise: a loop looks at its stop flag and its deadline at least every POLL_SLICE_MS,
    so it returns within one slice of either, plus the time its thread waits for a CPU. Loops that missed the
    flag or the deadline run on to the tests' far deadlines (seconds) or block for good, well past this.
    """
    return twin.POLL_SLICE_MS / 1000 + LOADED_HOST_DELAY_S


class Receiver(threading.Thread):
    """recv_stream in a thread; keeps the bytes it counted, or the error it raised."""

    def __init__(self, twin: ModuleType, sock: socket.socket, seconds: float = 5.0, discard: bool = False,
                 buffer_size: int = 256 * 1024) -> None:
        super().__init__(daemon=True)
        self.twin, self.sock, self.discard = twin, sock, discard
        self.deadline_ns = deadline_in(seconds)
        self.buffer = bytearray(buffer_size)
        self.counters = twin.new_counters()
        self.received: int | None = None
        self.error: BaseException | None = None
        _BACKGROUND.append(self)
        self.start()

    def run(self) -> None:
        try:
            self.received = self.twin.recv_stream(self.sock.fileno(), self.buffer, self.deadline_ns,
                                                  self.counters, self.discard)
        except BaseException as exc:  # handed to the test
            self.error = exc

    def result(self) -> int:
        self.join(10)
        assert not self.is_alive(), "receiver did not stop"
        if self.error is not None:
            raise self.error
        assert self.received is not None
        return self.received


def send_then_close(twin: ModuleType, sender: socket.socket, seconds: float, max_bytes: int = 0,
                    method: str = "auto", payload: bytes = PAYLOAD) -> tuple[int, str, array]:
    counters = twin.new_counters()
    sent, used = twin.send_stream(sender.fileno(), payload, deadline_in(seconds), max_bytes, counters, method)
    sender.shutdown(socket.SHUT_WR)
    return sent, used, counters


def in_background(function, *args) -> dict:  # type: ignore[no-untyped-def]
    outcome: dict = {}

    def call() -> None:
        try:
            outcome["value"] = function(*args)
        except BaseException as exc:
            outcome["error"] = exc

    outcome["thread"] = threading.Thread(target=call, daemon=True)
    _BACKGROUND.append(outcome["thread"])
    outcome["thread"].start()
    return outcome


# ------------------------------------------------------------------ API


def test_api_surface(twin: ModuleType) -> None:
    assert twin.IMPLEMENTATION in ("c", "python")
    assert (twin.SLOT_BYTES, twin.SLOT_STOP) == (0, 1)
    assert isinstance(twin.SEND_METHODS, tuple) and "send" in twin.SEND_METHODS
    assert isinstance(twin.POLL_SLICE_MS, int) and twin.POLL_SLICE_MS > 0
    assert set(twin.SEND_METHODS) <= set(ALL_METHODS)
    counters = twin.new_counters()
    assert isinstance(counters, array) and counters.typecode == "Q"
    assert len(counters) >= 2 and not any(counters)


def test_twins_offer_the_same_methods() -> None:
    pytest.importorskip("lpmbench.dataplane._lpmbench", reason="the C data plane is not built")
    from lpmbench.dataplane import _lpmbench, _python

    assert _lpmbench.SEND_METHODS == _python.SEND_METHODS
    assert _lpmbench.POLL_SLICE_MS == _python.POLL_SLICE_MS  # one stop latency, whichever twin runs
    assert _lpmbench.IMPLEMENTATION == "c" and _python.IMPLEMENTATION == "python"


@pytest.mark.parametrize("setting, expected", [("1", "python"), ("", None)])
def test_no_extensions_variable_picks_python(setting: str, expected: str | None) -> None:
    if expected is None:
        pytest.importorskip("lpmbench.dataplane._lpmbench", reason="the C data plane is not built")
        expected = "c"
    env = {**os.environ, "LPMBENCH_NO_EXTENSIONS": setting}
    code = "import lpmbench.dataplane as d; print(d.IMPLEMENTATION)"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == expected


# ------------------------------------------------------------------ counting and limits


def test_bytes_counted_exactly(twin: ModuleType, method: str, tcp_pair) -> None:
    sender, receiver = tcp_pair
    peer = Receiver(twin, receiver)
    sent, used, counters = send_then_close(twin, sender, 0.25, method=method)
    assert used in twin.SEND_METHODS and (method == "auto" or used == method)
    assert sent > 0
    assert peer.result() == sent == counters[twin.SLOT_BYTES] == peer.counters[twin.SLOT_BYTES]


def test_payload_arrives_intact(twin: ModuleType, method: str, tcp_pair) -> None:
    sender, receiver = tcp_pair
    payload = os.urandom(8192)  # one send into an empty socket buffer carries all of it
    sent, _, _ = send_then_close(twin, sender, 2.0, max_bytes=len(payload), method=method, payload=payload)
    receiver.settimeout(5)
    assert sent == len(payload)
    assert receiver.recv(2 * len(payload), socket.MSG_WAITALL) == payload


@pytest.mark.parametrize("max_bytes", [1, 3 * len(PAYLOAD) + 12345])
def test_max_bytes_honoured_exactly(twin: ModuleType, method: str, tcp_pair, max_bytes: int) -> None:
    sender, receiver = tcp_pair
    peer = Receiver(twin, receiver)
    sent, _, counters = send_then_close(twin, sender, 5.0, max_bytes=max_bytes, method=method)
    assert sent == max_bytes == counters[twin.SLOT_BYTES] == peer.result()


def test_short_sends_with_small_send_buffer(twin: ModuleType, method: str, tcp_pair) -> None:
    sender, receiver = tcp_pair
    sender.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    peer = Receiver(twin, receiver, buffer_size=1500)
    max_bytes = 2 * len(PAYLOAD) + 7
    sent, _, _ = send_then_close(twin, sender, 5.0, max_bytes=max_bytes, method=method)
    assert sent == max_bytes == peer.result()


def test_counter_published_while_running(twin: ModuleType, tcp_pair) -> None:
    sender, receiver = tcp_pair
    sender.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8192)
    peer = Receiver(twin, receiver, buffer_size=4096)
    counters = twin.new_counters()
    run = in_background(twin.send_stream, sender.fileno(), PAYLOAD, deadline_in(0.4), 0, counters)
    samples = []
    while run["thread"].is_alive():
        samples.append(counters[twin.SLOT_BYTES])
        time.sleep(0.01)
    sender.shutdown(socket.SHUT_WR)
    assert "error" not in run
    assert samples == sorted(samples) and len(set(samples)) > 5
    assert run["value"][0] == counters[twin.SLOT_BYTES] == peer.result()


def test_counters_reset_at_start(twin: ModuleType, tcp_pair) -> None:
    sender, _ = tcp_pair
    counters = twin.new_counters()
    counters[twin.SLOT_BYTES] = 999
    assert twin.send_stream(sender.fileno(), PAYLOAD, deadline_in(-1), 0, counters)[0] == 0
    assert counters[twin.SLOT_BYTES] == 0


# ------------------------------------------------------------------ stopping


def test_deadline_already_passed_is_a_zero_length_run(twin: ModuleType, method: str, tcp_pair) -> None:
    sender, receiver = tcp_pair
    counters = twin.new_counters()
    sent, used = twin.send_stream(sender.fileno(), PAYLOAD, deadline_in(-0.001), 0, counters, method)
    assert sent == 0 and used in twin.SEND_METHODS and counters[twin.SLOT_BYTES] == 0
    assert twin.recv_stream(receiver.fileno(), bytearray(16), deadline_in(-0.001), twin.new_counters()) == 0


@pytest.mark.parametrize("reader", [True, False], ids=["peer-reads", "peer-stalled"])
def test_send_deadline_honoured(twin: ModuleType, method: str, tcp_pair, reader: bool) -> None:
    sender, receiver = tcp_pair
    if reader:
        Receiver(twin, receiver)
    started = time.monotonic()
    twin.send_stream(sender.fileno(), PAYLOAD, deadline_in(0.3), 0, twin.new_counters(), method)
    assert time.monotonic() - started < 0.3 + late_bound_s(twin)  # a stalled peer must not hold the loop


def test_recv_deadline_honoured_when_nothing_arrives(twin: ModuleType, tcp_pair) -> None:
    _, receiver = tcp_pair
    deadline = deadline_in(0.3)
    assert twin.recv_stream(receiver.fileno(), bytearray(1024), deadline, twin.new_counters()) == 0
    returned = time.monotonic_ns()
    assert returned >= deadline, "the loop returned before its deadline"  # exact: it waits until the deadline
    assert (returned - deadline) / 1e9 < late_bound_s(twin)


@pytest.mark.parametrize("side", ["send", "recv"])
def test_stop_flag_from_another_thread(twin: ModuleType, tcp_pair, side: str) -> None:
    sender, receiver = tcp_pair
    counters = twin.new_counters()
    if side == "send":
        Receiver(twin, receiver, seconds=3)
        run = in_background(twin.send_stream, sender.fileno(), PAYLOAD, deadline_in(10), 0, counters)
    else:
        run = in_background(twin.recv_stream, receiver.fileno(), bytearray(4096), deadline_in(10), counters)
    time.sleep(0.2)
    stopped_at = time.monotonic()
    counters[twin.SLOT_STOP] = 1
    run["thread"].join(5)
    assert time.monotonic() - stopped_at < late_bound_s(twin)  # its deadline is 10 s away
    assert "error" not in run, run.get("error")
    moved = run["value"][0] if side == "send" else run["value"]
    assert moved == counters[twin.SLOT_BYTES]


def test_recv_returns_at_eof(twin: ModuleType, tcp_pair) -> None:
    sender, receiver = tcp_pair
    sender.sendall(b"x" * 1000)
    sender.close()
    started = time.monotonic()
    assert twin.recv_stream(receiver.fileno(), bytearray(64), deadline_in(5), twin.new_counters()) == 1000
    assert time.monotonic() - started < late_bound_s(twin)  # the EOF is already queued; the deadline is 5 s away


def test_signal_handler_interrupts_the_loop(twin: ModuleType, tcp_pair) -> None:
    _, receiver = tcp_pair

    class Alarm(Exception):
        pass

    def raise_alarm(signum: int, frame: object) -> None:
        raise Alarm

    previous = signal.signal(signal.SIGALRM, raise_alarm)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.2)
        started = time.monotonic()
        with pytest.raises(Alarm):
            twin.recv_stream(receiver.fileno(), bytearray(64), deadline_in(5), twin.new_counters())
        # The signal interrupts the wait at once (EINTR); even a loop that looked only every slice would make
        # this, but not one that waited for its deadline (5 s).
        assert time.monotonic() - started < 0.2 + late_bound_s(twin)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# ------------------------------------------------------------------ errors


def test_peer_reset_mid_send_raises(twin: ModuleType, method: str, tcp_pair) -> None:
    sender, receiver = tcp_pair
    run = in_background(twin.send_stream, sender.fileno(), PAYLOAD, deadline_in(5), 0, twin.new_counters(),
                        method)
    receiver.recv(65536)  # the stream is flowing
    receiver.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    receiver.close()  # unread data plus linger 0: the peer answers with RST
    run["thread"].join(5)
    assert not run["thread"].is_alive()
    error = run.get("error")
    assert isinstance(error, OSError) and error.errno in (errno.ECONNRESET, errno.EPIPE), error


def test_recv_from_reset_peer_raises(twin: ModuleType, tcp_pair) -> None:
    sender, receiver = tcp_pair
    sender.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sender.close()
    with pytest.raises(ConnectionResetError):
        twin.recv_stream(receiver.fileno(), bytearray(64), deadline_in(2), twin.new_counters())


def test_unknown_method_is_a_value_error(twin: ModuleType, tcp_pair) -> None:
    with pytest.raises(ValueError, match="carrier-pigeon"):
        twin.send_stream(tcp_pair[0].fileno(), PAYLOAD, deadline_in(1), 0, twin.new_counters(), "carrier-pigeon")


def test_zerocopy_refused_by_the_kernel_is_an_os_error(twin: ModuleType) -> None:
    if "zerocopy" not in twin.SEND_METHODS:
        pytest.skip("no zerocopy on this platform")
    left, right = socket.socketpair()  # AF_UNIX: SO_ZEROCOPY is for TCP and UDP only
    with left, right, pytest.raises(OSError):
        twin.send_stream(left.fileno(), PAYLOAD, deadline_in(1), 0, twin.new_counters(), "zerocopy")


@pytest.mark.parametrize("function, index, value, error", [
    ("send_stream", 1, b"", ValueError),
    ("send_stream", 3, -1, ValueError),
    ("send_stream", 4, [0, 0], TypeError),
    ("send_stream", 4, array("d", [0, 0]), ValueError),
    ("recv_stream", 3, array("Q", [0]), ValueError),
    ("recv_stream", 3, bytes(16), ValueError),
    ("recv_stream", 1, b"\0" * 64, TypeError),
    ("recv_stream", 1, bytearray(), ValueError),
    ("recv_stream", 0, "closed descriptor", OSError),
    ("send_stream", 0, "regular file", OSError),
], ids=["empty payload", "negative max_bytes", "counters a list", "counters of doubles", "counters too short",
        "read-only counters", "read-only buffer", "empty buffer", "closed descriptor", "not a socket"])
def test_bad_input_is_rejected_the_same_way(twin: ModuleType, tcp_pair, tmp_path, function: str, index: int,
                                            value: object, error: type) -> None:
    sender, receiver = tcp_pair
    args = ([sender.fileno(), PAYLOAD, deadline_in(1), 0, twin.new_counters()] if function == "send_stream"
            else [receiver.fileno(), bytearray(64), deadline_in(1), twin.new_counters()])
    with open(tmp_path / "not-a-socket", "wb") as regular_file:
        closed = os.dup(regular_file.fileno())
        os.close(closed)
        stand_ins = {"closed descriptor": closed, "regular file": regular_file.fileno()}
        args[index] = stand_ins[value] if isinstance(value, str) else value
        with pytest.raises(error):
            getattr(twin, function)(*args)


# ------------------------------------------------------------------ the descriptor is left as found


@pytest.mark.parametrize("blocking", [True, False])
def test_descriptor_left_open_and_flags_restored(twin: ModuleType, method: str, tcp_pair, blocking: bool) -> None:
    sender, receiver = tcp_pair
    sender.setblocking(blocking)
    receiver.setblocking(blocking)
    before = (fcntl.fcntl(sender.fileno(), fcntl.F_GETFL), fcntl.fcntl(receiver.fileno(), fcntl.F_GETFL))
    peer = Receiver(twin, receiver, seconds=0.3)
    for _ in range(2):  # a second run on the same socket (stale zerocopy notifications) still works
        twin.send_stream(sender.fileno(), PAYLOAD, deadline_in(0.1), 0, twin.new_counters(), method)
    peer.result()
    after = (fcntl.fcntl(sender.fileno(), fcntl.F_GETFL), fcntl.fcntl(receiver.fileno(), fcntl.F_GETFL))
    assert after == before
    sender.sendall(b"still open")


# ------------------------------------------------------------------ receive modes, method choice, threads


def test_discard_receive_counts_without_copying(twin: ModuleType, tcp_pair) -> None:
    sender, receiver = tcp_pair
    peer = Receiver(twin, receiver, discard=True)
    sent, _, _ = send_then_close(twin, sender, 0.2)
    assert peer.result() == sent > 0
    assert not any(peer.buffer), "MSG_TRUNC must leave the buffer untouched"


@pytest.fixture(params=[(socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")], ids=["ipv4", "ipv6"])
def any_family_pair(request: pytest.FixtureRequest) -> Iterator[tuple[socket.socket, socket.socket]]:
    family, address = request.param
    try:
        server = socket.create_server((address, 0), family=family)
    except OSError as exc:
        pytest.skip(f"cannot listen on {address}: {exc}")
    with server, socket.create_connection(server.getsockname()[:2]) as sender:
        receiver, _ = server.accept()
        with receiver:
            yield sender, receiver


def test_auto_picks_plain_send_on_loopback(twin: ModuleType, any_family_pair) -> None:
    sender, receiver = any_family_pair
    peer = Receiver(twin, receiver)
    sent, used, _ = send_then_close(twin, sender, 0.1)
    assert used == "send"  # AUTO_POLICY: the receiver copies anyway
    assert peer.result() == sent


def test_zerocopy_completions_are_reaped(twin: ModuleType, any_family_pair) -> None:
    """Unreaped completions would stop the stream at ZEROCOPY_MAX_INFLIGHT (64) sends."""
    if "zerocopy" not in twin.SEND_METHODS:
        pytest.skip("no zerocopy on this platform")
    sender, receiver = any_family_pair
    peer = Receiver(twin, receiver, discard=True)
    sent, used, _ = send_then_close(twin, sender, 0.3, method="zerocopy")
    assert used == "zerocopy" and peer.result() == sent
    assert sent > 64 * len(PAYLOAD)


@pytest.mark.parametrize("chosen", ALL_METHODS)
def test_unix_socketpair_streams(twin: ModuleType, chosen: str) -> None:
    if chosen == "zerocopy" or chosen not in twin.SEND_METHODS:
        pytest.skip(f"{chosen} does not apply to AF_UNIX here")
    left, right = socket.socketpair()
    with left, right:
        peer = Receiver(twin, right)
        sent, used, _ = send_then_close(twin, left, 0.1, method=chosen)
        assert used == chosen and peer.result() == sent > 0


def test_two_streams_progress_together(twin: ModuleType) -> None:
    pairs = []
    with socket.create_server(("127.0.0.1", 0)) as server:
        for _ in range(2):
            pairs.append((socket.create_connection(server.getsockname()), server.accept()[0]))
    try:
        peers = [Receiver(twin, receiver) for _, receiver in pairs]
        counters = [twin.new_counters() for _ in pairs]
        deadline = deadline_in(0.4 + LOADED_HOST_DELAY_S)
        runs = [in_background(twin.send_stream, sender.fileno(), PAYLOAD, deadline, 0, stream_counters)
                for (sender, _), stream_counters in zip(pairs, counters)]
        # Midway is when both threads had their turn, not a fixed time: on a loaded host one may start late.
        while not all(c[twin.SLOT_BYTES] for c in counters) and time.monotonic_ns() < deadline:
            time.sleep(0.005)
        midway = [stream_counters[twin.SLOT_BYTES] for stream_counters in counters]
        both_running = all(run["thread"].is_alive() for run in runs)
        for run, (sender, _) in zip(runs, pairs):
            run["thread"].join(5)
            sender.shutdown(socket.SHUT_WR)
        totals = [run["value"][0] for run in runs]
        assert all(midway) and both_running, f"both streams must be moving at the same time: {midway}"
        assert min(totals) > 0.1 * sum(totals), totals
        assert [peer.result() for peer in peers] == totals
    finally:
        for sender, receiver in pairs:
            sender.close()
            receiver.close()


def test_python_threads_run_while_a_stream_moves(twin: ModuleType, tcp_pair) -> None:
    """The loop must not hold the GIL: a pure-Python thread keeps running meanwhile."""
    sender, receiver = tcp_pair
    Receiver(twin, receiver)
    spins = 0
    run = in_background(twin.send_stream, sender.fileno(), PAYLOAD, deadline_in(0.3), 0, twin.new_counters())
    while run["thread"].is_alive():
        spins += 1
    assert "error" not in run
    assert spins > 10_000


@pytest.mark.lab
@pytest.mark.parametrize("requested, expected", [("auto", "send"), ("zerocopy", "zerocopy")])
def test_auto_leaves_zerocopy_when_the_kernel_copies_anyway(twin: ModuleType, lab, requested: str,
                                                            expected: str) -> None:
    """Into another namespace on this host the kernel copies MSG_ZEROCOPY data and says so; "auto"
    then switches to plain send (AUTO_POLICY), an explicit "zerocopy" keeps zerocopy."""
    if "zerocopy" not in twin.SEND_METHODS:
        pytest.skip("no zerocopy on this platform")
    with lab.call_in("b", socket.create_server, (lab.address("b"), 0)) as listener:
        port = listener.getsockname()[1]
        connecting = lab.spawn_in("a", socket.create_connection, (lab.address("b"), port))
        receiver, _ = listener.accept()
    with receiver, connecting.result(5) as sender:
        peer = Receiver(twin, receiver)
        sent, used, _ = send_then_close(twin, sender, 0.3, method=requested)
        assert used == expected and peer.result() == sent > 0
