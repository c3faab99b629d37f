"""Path MTU probing: the search logic, the responder, and real paths on loopback and in the lab."""

from __future__ import annotations

import asyncio
import socket
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lpmbench.lab import Lab, PortSpec
from lpmbench.net.pathprobe import _Search, probe_path_mtu, start_responder

pytest_plugins = ["conftest_lab"]  # make_lab, responder_in
TOKEN = "run-7f3a"


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


def _converge(search: _Search, path_mtu: int, lost_once: frozenset[int] = frozenset()) -> int:
    """Drive the search against a path that passes sizes <= path_mtu; returns rounds used."""
    already_lost: set[int] = set()
    rounds = 0
    while not search.done():
        rounds += 1
        assert rounds < 20, "search did not converge"
        for size in search.next_sizes(6):
            lost = size in lost_once and size not in already_lost
            already_lost.add(size)
            search.record(size, size <= path_mtu and not lost)
    return rounds


@settings(max_examples=300, deadline=None)
@given(ceiling=st.integers(1280, 65535), data=st.data())
def test_search_finds_any_path_mtu_in_few_rounds(ceiling: int, data: st.DataObject) -> None:
    path_mtu = data.draw(st.integers(576, ceiling))
    lost = frozenset(data.draw(st.sets(st.integers(576, ceiling), max_size=3)))
    search = _Search(floor=576, ceiling=ceiling, failures_to_confirm=3)
    rounds = _converge(search, path_mtu, lost)
    assert search.good == path_mtu
    # ~log7(65000) rounds to narrow, two more to confirm, a few more for single losses
    assert rounds <= 11


def test_search_reports_none_when_nothing_passes() -> None:
    search = _Search(floor=576, ceiling=9000, failures_to_confirm=3)
    _converge(search, path_mtu=100)
    assert search.good is None


def test_responder_answers_short_and_only_with_the_token() -> None:
    async def scenario() -> bytes:
        loop = asyncio.get_running_loop()
        transport, port = await start_responder(loop, "127.0.0.1", 0, TOKEN)
        client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        client.setblocking(False)
        try:
            client.connect(("127.0.0.1", port))
            client.send(b"not-the-token" + b"P" + struct.pack("!I", 1) + bytes(100))
            client.send(TOKEN.encode() + b"P")  # too short to carry a sequence number
            probe = TOKEN.encode() + b"P" + struct.pack("!I", 42) + bytes(5000)
            client.send(probe)
            reply = await asyncio.wait_for(loop.sock_recv(client, 65535), 2.0)
            await asyncio.sleep(0.1)
            try:
                extra = client.recv(65535)
            except BlockingIOError:
                extra = b""
            return reply + extra
        finally:
            client.close()
            transport.close()

    reply = asyncio.run(scenario())  # one reply: the other two datagrams were ignored
    assert reply == TOKEN.encode() + b"R" + struct.pack("!II", 42, 5000 + len(TOKEN) + 5)
    assert len(reply) < 64  # the reverse path only ever carries small datagrams


def test_responder_port_range_skips_busy_ports() -> None:
    async def scenario() -> tuple[int, int]:
        loop = asyncio.get_running_loop()
        first, port = await start_responder(loop, "127.0.0.1", 0, TOKEN)
        try:
            with pytest.raises(OSError, match="no free UDP port"):
                await start_responder(loop, "127.0.0.1", (port, port), TOKEN)
            second, other = await start_responder(loop, "127.0.0.1", (port, min(port + 50, 65535)),
                                                  TOKEN)
            second.close()
            return port, other
        finally:
            first.close()

    port, other = asyncio.run(scenario())
    assert other != port


@pytest.mark.parametrize("address", ["127.0.0.1", "::1"])
def test_loopback_path_passes_the_cap(address: str) -> None:
    if address == "::1" and not _has_ipv6_loopback():
        pytest.skip("no IPv6 loopback here")

    async def scenario():
        loop = asyncio.get_running_loop()
        transport, port = await start_responder(loop, address, 0, TOKEN)
        try:
            return await loop.run_in_executor(None, probe_path_mtu, address, port, TOKEN, 9000)
        finally:
            transport.close()

    result = asyncio.run(scenario())
    assert result.mtu == 9000 and result.complete and result.error is None
    assert result.max_tried == 9000 and result.probes >= 1 and result.elapsed_s < 1.0


def test_wrong_token_and_closed_port_give_clear_errors() -> None:
    async def scenario():
        loop = asyncio.get_running_loop()
        transport, port = await start_responder(loop, "127.0.0.1", 0, TOKEN)
        try:
            wrong = await loop.run_in_executor(None, probe_path_mtu, "127.0.0.1", port, "other",
                                               9000)
        finally:
            transport.close()
        closed = await loop.run_in_executor(None, probe_path_mtu, "127.0.0.1", port, TOKEN, 9000)
        return wrong, closed

    wrong, closed = asyncio.run(scenario())
    assert wrong.mtu is None and "no probe was answered" in (wrong.error or "")
    assert wrong.elapsed_s < 2.0
    assert closed.mtu is None and "refused" in (closed.error or "")


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="not an IP address"):
        probe_path_mtu("not-an-address", 9, TOKEN, 1500)
    with pytest.raises(ValueError, match="port"):
        probe_path_mtu("127.0.0.1", 0, TOKEN, 1500)
    with pytest.raises(ValueError, match="max_mtu"):
        probe_path_mtu("127.0.0.1", 9, TOKEN, 40)
    with pytest.raises(ValueError, match="token"):
        probe_path_mtu("127.0.0.1", 9, "x" * 65, 1500)

    async def empty_token() -> None:
        await start_responder(asyncio.get_running_loop(), "127.0.0.1", 0, b"")

    with pytest.raises(ValueError, match="token"):
        asyncio.run(empty_token())


@pytest.mark.lab
@pytest.mark.parametrize(("switch_mtu", "family", "expected"), [
    (9000, 4, 9000),   # healthy jumbo path
    (1500, 4, 1500),   # jumbo black hole: hosts at 9000, switch ports at 1500
    (1500, 6, 1500),
    (1400, 4, 1400),   # an odd MTU somewhere in between is found exactly
])
def test_lab_path_mtu(make_lab, responder_in, switch_mtu: int, family: int,
                      expected: int) -> None:
    spec = PortSpec(host_mtu=9000, switch_mtu=switch_mtu)
    lab: Lab = make_lab(a=spec, b=spec)
    responder = responder_in(lab, "b", TOKEN)
    result = lab.call_in("a", probe_path_mtu, lab.address("b", family), responder.port, TOKEN,
                         9000)
    assert result.mtu == expected, result
    assert result.complete and result.elapsed_s < 3.0


@pytest.mark.lab
def test_lab_local_mtu_limit_and_mild_loss(make_lab, responder_in) -> None:
    lab: Lab = make_lab(a=PortSpec(host_mtu=1500), b=PortSpec(host_mtu=1500))
    responder = responder_in(lab, "b", TOKEN)
    result = lab.call_in("a", probe_path_mtu, lab.address("b"), responder.port, TOKEN, 9000)
    # Sizes over the local MTU are refused by the kernel at once (EMSGSIZE), never waited for.
    assert result.mtu == 1500 and result.local_limit is not None and result.local_limit > 1500

    for host in ("a", "b"):
        lab.set_port(host, PortSpec(host_mtu=9000, loss=0.03))
    result = lab.call_in("a", probe_path_mtu, lab.address("b"), responder.port, TOKEN, 9000)
    assert result.mtu == 9000, result
