"""Strangers on an armed receiver's data port: silent connections from other addresses must not keep the
sender's streams out, nor turn into a network diagnosis; the receiver names them. The receiver's --allow-peer
refusing the sender is said as such, and logged.

The floods are bounded: at most a few hundred loopback connections, for a few seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from agent_helpers import in_process_agents

from lpmbench.agent import datagate, runs
from lpmbench.agent.runs import ReceiverRun, RunSpec, SenderRun
from lpmbench.analysis.checks import transfer
from lpmbench.analysis.checks.base import FAIL, UNKNOWN
from lpmbench.net.acl import parse_networks
from lpmbench.orchestrator.pair import PairConfig, run_pair

TOKEN = "e" * 32
RECEIVER = "127.0.0.2"
KEY = b"k" * 32


async def _connect_silently(loop: asyncio.AbstractEventLoop, source: str, port: int) -> socket.socket | None:
    sock = socket.socket()
    sock.setblocking(False)
    sock.bind((source, 0))
    try:
        await asyncio.wait_for(loop.sock_connect(sock, (RECEIVER, port)), 2)
    except (OSError, asyncio.TimeoutError):
        sock.close()
        return None
    return sock


@contextlib.asynccontextmanager
async def strangers(port: int, sources: list[str], per_source: int, seconds: float) -> AsyncIterator[list[int]]:
    """Keep ``per_source`` silent connections per source open on the port (reconnecting as the receiver closes
    them) for at most ``seconds``; yields [connections made]."""
    loop = asyncio.get_running_loop()
    made = [0]

    async def hold(source: str) -> None:
        socks: list[socket.socket] = []
        end = time.monotonic() + seconds
        try:
            while time.monotonic() < end and made[0] < 5000:
                socks = [s for s in socks if not _closed(s)]
                while len(socks) < per_source:
                    sock = await _connect_silently(loop, source, port)
                    if sock is None:
                        return  # the port is gone: the run ended
                    socks.append(sock)
                    made[0] += 1
                await asyncio.sleep(0.02)
        finally:
            for sock in socks:
                sock.close()

    holders = [asyncio.ensure_future(hold(s)) for s in sources]
    await asyncio.sleep(0.5)  # the port is full of strangers before the sender comes
    try:
        yield made
    finally:
        for task in holders:
            task.cancel()
        await asyncio.gather(*holders, return_exceptions=True)


def _closed(sock: socket.socket) -> bool:
    try:
        return sock.recv(1, socket.MSG_PEEK) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


async def direct_run(sources: list[str], per_source: int) -> tuple[dict[str, Any], dict[str, Any], int]:
    """A 2-stream run, sender from 127.0.0.1, while ``sources`` hold silent connections on the data port."""
    async def report(kind: str, fields: dict[str, Any]) -> None:
        pass

    receiver = ReceiverRun(RunSpec("flood", TOKEN, 2, 0.5, 0.25), report, {}, RECEIVER, (0, 0))
    sender = None
    try:
        port = receiver.listen()
        receiving = asyncio.ensure_future(receiver.run())
        async with strangers(port, sources, per_source, 8.0) as made:
            sender = SenderRun(RunSpec("flood", TOKEN, 2, 0.5, 0.25), report, {}, RECEIVER, port)
            sent = await asyncio.wait_for(sender.run(), 20)
            received = await asyncio.wait_for(receiving, 20)
            return sent, received, made[0]
    finally:
        receiver.close()
        if sender is not None:
            sender.close()


def test_silent_strangers_from_one_address_do_not_keep_the_streams_out(run_async: Any) -> None:
    # 100 silent connections: more than every admission slot the receiver had (64).
    sent, received, made = run_async(direct_run(["127.0.0.9"], 100))
    assert made >= datagate.MAX_PENDING_PER_SOURCE
    assert sent["error"] is None, sent["error"]
    assert received["error"] is None and all(s["bytes"] > 0 for s in received["streams"]), received["error"]
    assert received["intruders"][0]["address"] == "127.0.0.9" and received["intruders"][0]["connections"] >= 1


def test_silent_strangers_on_the_senders_own_address_do_not_keep_the_streams_out(run_async: Any) -> None:
    """The sender connects from 127.0.0.1 too: its connection must outlive the strangers' until its hello is read."""
    sent, received, _ = run_async(direct_run(["127.0.0.1"], 100))
    assert sent["error"] is None, sent["error"]
    assert received["error"] is None and all(s["bytes"] > 0 for s in received["streams"])


def test_silent_strangers_from_many_addresses_do_not_keep_the_streams_out(run_async: Any) -> None:
    sources = [f"127.0.1.{i}" for i in range(1, 41)]  # 40 x 4 = 160 silent connections, every slot over twice
    sent, received, _ = run_async(direct_run(sources, datagate.MAX_PENDING_PER_SOURCE))
    assert sent["error"] is None, sent["error"]
    assert received["error"] is None and all(s["bytes"] > 0 for s in received["streams"])
    assert len(received["intruders"]) <= datagate.MAX_REPORTED_SOURCES + 1  # the list stays bounded


def test_a_receiver_no_stream_reached_names_the_strangers(run_async: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runs, "ARM_TIMEOUT_S", 2.0)

    async def main() -> dict[str, Any]:
        async def report(kind: str, fields: dict[str, Any]) -> None:
            pass

        receiver = ReceiverRun(RunSpec("nobody", TOKEN, 2, 0.5, 0.25), report, {}, RECEIVER, (0, 0))
        try:
            port = receiver.listen()
            async with strangers(port, ["127.0.0.9"], 10, 4.0):
                return await asyncio.wait_for(receiver.run(), 10)
        finally:
            receiver.close()

    received = run_async(main())
    assert "127.0.0.9" in received["error"] and "run token" in received["error"], received["error"]
    assert "firewall" not in received["error"]
    assert received["intruders"][0]["address"] == "127.0.0.9"


def test_allow_peer_refusing_the_sender_is_said_and_logged(run_async: Any, caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> dict[str, Any]:
        # Both agents may talk to 127.0.0.2 only: the sender (127.0.0.1) may send, the receiver refuses it.
        async with in_process_agents(KEY, allow_peers=parse_networks(["127.0.0.2/32"])) as (ends, _):
            return await asyncio.wait_for(run_pair(PairConfig(sender=ends[0], receiver=ends[1], streams=2,
                                                              duration=0.5, interval=0.25, key=KEY)), 60)

    with caplog.at_level("WARNING", logger="lpmbench.agent"):
        result = run_async(main())
    assert result["partial"] is True
    assert "--allow-peer" in result["error"] and "127.0.0.1" in result["error"], result["error"]
    logged = [r.getMessage() for r in caplog.records if "--allow-peer" in r.getMessage()]
    assert logged and "127.0.0.1" in logged[0], logged
    port_check = next(c for c in result["checks"] if c["name"] == "LPM port range reachable")
    assert "--allow-peer" in port_check["detail"] and "127.0.0.1" in port_check["detail"], port_check
    assert "firewall" not in port_check["remedy"], port_check
    assert result["data_port"]["refused_peers"][0]["address"] == "127.0.0.1"


def port_result(**data_port: Any) -> dict[str, Any]:
    return {"data_port": {"port": 40000, "range": [32768, 65535], **data_port}, "bytes": 0,
            "retransmit_source": "system", "retransmit_rate": 0.5, "retransmits": 50, "segments_out": 100}


def test_the_port_check_names_the_allow_list_and_the_strangers_not_the_firewall() -> None:
    refused = transfer.data_port_check(port_result(reachable=False, error="ECONNREFUSED",
                                                   refused_peers=[{"address": "10.0.0.5", "connections": 4}]))
    assert refused["status"] == FAIL and "--allow-peer" in refused["detail"] and "10.0.0.5" in refused["detail"]
    assert "firewall" not in refused["remedy"]
    spoiled = transfer.data_port_check(port_result(reachable=False, error="ECONNRESET",
                                                   intruders=[{"address": "10.9.9.9", "connections": 412}]))
    assert spoiled["status"] == UNKNOWN and "10.9.9.9 (412 connections)" in spoiled["detail"]
    assert "firewall" not in spoiled["detail"] + spoiled["remedy"]


def test_no_stream_no_retransmit_verdict_from_host_counters() -> None:
    judged = transfer.retransmit_check(port_result(reachable=None))
    assert judged["status"] == UNKNOWN and "host-wide" in judged["detail"]
