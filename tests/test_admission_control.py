"""A hostile client floods the control port with idle connections from one address (127.0.0.9): an orchestrator at
another address must still get in, and the agent must not hold the flood's sockets (TLS included).

Bounded: a few hundred loopback connections, every wait with a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import ssl
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import trustme
from agent_helpers import in_process_agents

from lpmbench.agent import admission
from lpmbench.agent import server as agent_module
from lpmbench.agent.admission import RefusalLog, SourceCounts, SourceSlots, source_of
from lpmbench.net.acl import parse_networks
from lpmbench.orchestrator.pair import PairConfig, PairError, run_pair
from lpmbench.protocol.messages import ErrorCode

KEY = b"k" * 32
FLOODER = "127.0.0.9"
FLOOD = 600  # more than MAX_HANDSHAKES (512): before admission per source, this locked everybody out

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts file descriptors in /proc")


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def flood(host: str, port: int, count: int) -> list[socket.socket]:
    """``count`` TCP connections from FLOODER that never send a byte."""
    loop = asyncio.get_running_loop()

    async def one() -> socket.socket | None:
        sock = socket.socket()
        sock.setblocking(False)
        sock.bind((FLOODER, 0))
        try:
            await asyncio.wait_for(loop.sock_connect(sock, (host, port)), 5)
        except (OSError, asyncio.TimeoutError):
            sock.close()
            return None
        return sock

    socks: list[socket.socket] = []
    for start in range(0, count, 100):
        socks += [s for s in await asyncio.gather(*(one() for _ in range(start, min(count, start + 100)))) if s]
    return socks


async def still_open(socks: list[socket.socket], settle_s: float = 0.5) -> int:
    """How many of ``socks`` the agent still holds open (no EOF or reset) after ``settle_s``."""
    await asyncio.sleep(settle_s)
    return sum(not _closed_by_agent(sock) for sock in socks)


def _closed_by_agent(sock: socket.socket) -> bool:
    """EOF or a reset, after whatever the agent said first (an error frame, a TLS alert)."""
    try:
        while sock.recv(4096):
            pass
    except BlockingIOError:
        return False
    except OSError:
        return True
    return True


@contextlib.asynccontextmanager
async def flooded(host: str, port: int, count: int) -> AsyncIterator[list[socket.socket]]:
    socks = await flood(host, port, count)
    try:
        yield socks
    finally:
        for sock in socks:
            sock.close()


def config(ends: Any, **kw: Any) -> PairConfig:
    return PairConfig(sender=ends[0], receiver=ends[1], streams=1, duration=0.3, interval=0.1, key=KEY, **kw)


def test_a_flood_from_one_address_does_not_lock_out_an_orchestrator(run_async: Any) -> None:
    async def main() -> tuple[int, int, dict[str, Any], float]:
        async with in_process_agents(KEY) as (ends, _), flooded(ends[1].host, ends[1].port, FLOOD) as socks:
            held = await still_open(socks)
            t0 = time.monotonic()
            result = await asyncio.wait_for(run_pair(config(ends)), 30)
            return len(socks), held, result, time.monotonic() - t0

    connected, held, result, took = run_async(main())
    assert connected == FLOOD
    assert held <= agent_module.MAX_HANDSHAKES_PER_SOURCE, f"the agent holds {held} of one address's connections"
    assert result["partial"] is False and result["bytes"] > 0 and took < 15


@pytest.fixture(scope="module")
def tls() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "127.0.0.2").configure_cert(server)
    client = ssl.create_default_context()
    ca.configure_trust(client)
    return server, client


def test_idle_tls_connections_are_bounded_before_the_tls_handshake(run_async: Any, tls: Any) -> None:
    """The agent used to run a TLS handshake (a TLS state and a descriptor each, for 10 s) for every connection
    before checking anything: 3000 idle ones took it to 1936 descriptors."""
    server, client = tls

    async def main() -> tuple[int, int, dict[str, Any], float]:
        async with in_process_agents(KEY, ssl=server) as (ends, _):
            before = open_fds()
            async with flooded(ends[1].host, ends[1].port, 300) as socks:
                held = await still_open(socks)
                agent_fds = open_fds() - before - len(socks)
                result = await asyncio.wait_for(run_pair(config(ends, ssl=client)), 30)
                t0 = time.monotonic()
                while await still_open(socks, 0.2) and time.monotonic() - t0 < agent_module.HANDSHAKE_TIMEOUT_S + 3:
                    pass
                return held, agent_fds, result, time.monotonic() - t0

    held, agent_fds, result, cleared_after = run_async(main())
    assert held <= agent_module.MAX_HANDSHAKES_PER_SOURCE, held
    assert agent_fds <= agent_module.MAX_HANDSHAKES_PER_SOURCE + 10, f"agent holds {agent_fds} descriptors"
    assert result["partial"] is False and result["bytes"] > 0
    # The slots held by the flood are given back at the handshake deadline (TLS and protocol together).
    assert cleared_after <= agent_module.HANDSHAKE_TIMEOUT_S + 1, cleared_after


def test_allow_list_refuses_before_the_tls_handshake(run_async: Any, tls: Any) -> None:
    server, client = tls

    async def main() -> tuple[int, PairError]:
        async with in_process_agents(KEY, ssl=server, allow_clients=parse_networks(["192.0.2.0/24"])) as (ends, _):
            async with flooded(ends[1].host, ends[1].port, 50) as socks:
                held = await still_open(socks)
            with pytest.raises(PairError) as refused:
                await asyncio.wait_for(run_pair(config(ends, ssl=client)), 15)
            return held, refused.value

    held, refused = run_async(main())
    assert held == 0, f"{held} connections from outside --allow wait for a TLS handshake"
    # Told why in TLS's own words (an access_denied alert), not left to guess from a closed connection.
    assert refused.code is ErrorCode.TLS and "not in its --allow list" in refused.message, refused


def test_plain_text_allow_refusal_still_says_why(run_async: Any) -> None:
    async def main() -> PairError:
        async with in_process_agents(KEY, allow_clients=parse_networks(["192.0.2.0/24"])) as (ends, _):
            with pytest.raises(PairError) as refused:
                await asyncio.wait_for(run_pair(config(ends)), 15)
            return refused.value

    refused = run_async(main())
    assert refused.code is ErrorCode.NOT_ALLOWED and "--allow" in refused.message


def test_sources_group_ipv6_by_64_and_read_mapped_ipv4_as_ipv4() -> None:
    assert source_of("2001:db8:1:2::5") == source_of("2001:db8:1:2:ffff::9") == "2001:db8:1:2::/64"
    assert source_of("2001:db8:1:3::5") != source_of("2001:db8:1:2::5")
    assert source_of("::ffff:10.0.0.7") == "10.0.0.7" and source_of("10.0.0.7") == "10.0.0.7"
    assert source_of(None) == "?"


def test_slots_keep_room_for_other_sources() -> None:
    slots = SourceSlots(per_source=2, total=3)
    assert slots.take("a") is None and slots.take("a") is None
    assert "from this source" in (slots.take("a") or "")
    assert slots.take("b") is None
    assert "already pending" in (slots.take("c") or "")
    slots.release("a")
    assert slots.take("c") is None and slots.held() == 3 and slots.held("a") == 1


def test_source_counts_are_bounded_and_described() -> None:
    counts = SourceCounts(limit=2)
    for source in ["x"] * 5 + ["y"] + ["z"] * 3:
        counts.add(source)
    assert counts.report() == [{"address": "x", "connections": 5}, {"address": "y", "connections": 1},
                               {"address": "others", "connections": 3}]
    assert counts.describe(most=2) == "x (5 connections), y (1 connection) and 1 more source(s)"


def test_refusals_are_logged_once_per_source_and_summed_up(caplog: Any) -> None:
    now = [0.0]
    refusals = RefusalLog(agent_module.log, "control connection", clock=lambda: now[0])
    with caplog.at_level("WARNING", logger="lpmbench.agent"):
        for _ in range(500):
            refusals.note("127.0.0.9", "over quota")
        now[0] = admission.LOG_EVERY_S + 1
        refusals.note("127.0.0.9", "over quota")
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2 and "499 more" in lines[1] and "127.0.0.9" in lines[0]
