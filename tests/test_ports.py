"""One helper binds the agent's data port (TCP) and its path MTU responder (UDP) in the configured range."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator

import pytest

from lpmbench.net.ports import ANY_PORT, MAX_ATTEMPTS, bind_in_range, candidate_ports, check_range, ipv6_works

KINDS = pytest.mark.parametrize("kind", [socket.SOCK_STREAM, socket.SOCK_DGRAM], ids=["tcp", "udp"])


@contextlib.contextmanager
def taken_port(kind: int) -> Iterator[int]:
    """A port on 127.0.0.1 held by a socket of the test's own (listening, for TCP)."""
    with socket.socket(socket.AF_INET, kind) as holder:
        holder.bind(("127.0.0.1", 0))
        if kind == socket.SOCK_STREAM:
            holder.listen(1)
        yield holder.getsockname()[1]


@KINDS
def test_zero_range_is_any_ephemeral_port(kind: int) -> None:
    assert candidate_ports(ANY_PORT) == [0] and check_range(0) == ANY_PORT
    with bind_in_range("127.0.0.1", ANY_PORT, kind) as sock:
        assert sock.type == kind and sock.getsockname()[1] > 0


@pytest.mark.parametrize(("ports", "message"), [
    ((5, 3), "low <= high"),
    ((0, 5), "0-0"),
    ((1024, 70000), "65535"),
    ((-1, 10), "1 <= low"),
    ((True, 5), "two integers"),
    ((1, 2, 3), "two integers"),
    ("1-2", "two integers"),
    (70000, "65535"),
])
def test_invalid_ranges_are_refused_with_the_rule(ports: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        bind_in_range("127.0.0.1", ports)  # type: ignore[arg-type]


@KINDS
def test_a_range_of_busy_ports_is_an_error_that_names_the_range(kind: int) -> None:
    proto = "UDP" if kind == socket.SOCK_DGRAM else "TCP"
    with taken_port(kind) as port, pytest.raises(OSError, match=f"no free {proto} port in {port}-{port}"):
        bind_in_range("127.0.0.1", (port, port), kind)


@KINDS
def test_busy_ports_are_skipped_and_the_port_comes_from_the_range(kind: int) -> None:
    with taken_port(kind) as port:
        span = (port, min(port + 20, 65535))
        with bind_in_range("127.0.0.1", span, kind) as sock:
            got = sock.getsockname()[1]
    assert got != port and span[0] <= got <= span[1]


def test_a_wide_range_is_sampled_not_walked() -> None:
    ports = candidate_ports((1024, 65535))
    assert len(ports) == MAX_ATTEMPTS == len(set(ports)) and all(1024 <= p <= 65535 for p in ports)
    assert sorted(candidate_ports((4000, 4004))) == [4000, 4001, 4002, 4003, 4004]


@KINDS
def test_no_host_means_every_address_over_both_families(kind: int) -> None:
    """The agent's default bind: one port for IPv4 and IPv6 where the host has IPv6."""
    with bind_in_range(None, ANY_PORT, kind) as sock:
        port = sock.getsockname()[1]
        if ipv6_works():
            assert sock.family == socket.AF_INET6
            assert sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == 0
        if kind == socket.SOCK_STREAM:
            sock.listen(1)
            with socket.create_connection(("127.0.0.1", port), timeout=5):
                pass  # an IPv4 client reaches the dual-stack listener


def test_udp_ports_are_not_shared() -> None:
    """SO_REUSEADDR is for TCP listeners only: on UDP it would let a second responder bind a busy port."""
    with bind_in_range("127.0.0.1", ANY_PORT, socket.SOCK_DGRAM) as first:
        port = first.getsockname()[1]
        with pytest.raises(OSError, match="no free UDP port"):
            bind_in_range("127.0.0.1", (port, port), socket.SOCK_DGRAM)


def test_an_ipv4_peer_of_a_dual_stack_listener_reads_as_ipv4():
    """The receiver's interface audit routes the peer's address: ::ffff:a.b.c.d would take the IPv6 route."""
    import socket

    from lpmbench.agent.streams import peer_address

    with socket.socket(socket.AF_INET6) as listener:
        listener.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        listener.bind(("::", 0))
        listener.listen(1)
        with socket.create_connection(("127.0.0.1", listener.getsockname()[1]), timeout=5) as client:
            conn, _ = listener.accept()
            with conn:
                assert conn.getpeername()[0] == "::ffff:127.0.0.1"
                assert peer_address(conn) == "127.0.0.1"
                assert peer_address(client) == "127.0.0.1"
