"""Agent limits, allow lists, TLS, key reload and shutdown, on loopback with real sockets and both loops."""

from __future__ import annotations

import asyncio
import ssl

import pytest
import trustme
from agent_helpers import AgentProcess, in_process_agents

from lpmbench import dataplane
from lpmbench.agent import server as agent_module
from lpmbench.agent.server import AgentLimits
from lpmbench.net import eventloop, keys
from lpmbench.net.acl import allowed, parse_networks
from lpmbench.orchestrator.pair import AgentClient, PairConfig, PairError, run_pair
from lpmbench.protocol import connection as protocol
from lpmbench.protocol.messages import Arm, Armed, ErrorCode

KEY = b"k" * 32


def agents(key=KEY, tls=None, limits=None, **config):
    return in_process_agents(key, limits=limits, ssl=tls, **config)


def config(ends, **kw):
    base = dict(streams=2, duration=0.6, interval=0.2, key=KEY)
    base.update(kw)
    return PairConfig(sender=ends[0], receiver=ends[1], **base)


def test_allow_list_parsing_and_matching():
    nets = parse_networks(["127.0.0.0/8", "fd00::/64", "10.1.2.3"])
    assert allowed("127.0.0.2", nets) and allowed("fd00::5", nets) and allowed("10.1.2.3", nets)
    assert allowed("::ffff:127.0.0.1", nets)  # IPv4-mapped addresses count as IPv4
    assert not allowed("10.1.2.4", nets) and not allowed("garbage", nets) and not allowed(None, nets)
    assert allowed("192.0.2.1", None)
    with pytest.raises(ValueError, match="not an address"):
        parse_networks(["10.0.0.0/33"])


def test_orchestrator_outside_allow_list_is_refused(run_async):
    async def main():
        async with agents(allow_clients=parse_networks(["192.0.2.0/24"])) as (ends, _):
            with pytest.raises(PairError) as info:
                await run_pair(config(ends))
            return info.value

    error = run_async(main())
    assert error.code is ErrorCode.NOT_ALLOWED and "--allow" in error.message


def test_sender_will_not_send_outside_its_allow_list(run_async):
    async def main():
        async with agents(allow_peers=parse_networks(["127.0.0.3/32"])) as (ends, _):
            return await run_pair(config(ends))

    result = run_async(main())
    assert result["partial"] and "--allow" in result["error"] and result["verdict"] == "fail"
    assert result["bytes"] == 0


def test_rate_above_agent_limit_is_refused_and_default_is_capped(run_async):
    limits = AgentLimits(max_rate_bps=200e6)

    async def main():
        async with agents(limits=limits) as (ends, _):
            with pytest.raises(PairError) as info:
                await run_pair(config(ends, options={"rate_bps": 1e9}))
            capped = await run_pair(config(ends, duration=1.0, interval=0.5))
            return info.value, capped

    error, capped = run_async(main())
    assert "exceeds this agent's limit" in error.message
    assert capped["partial"] is False
    assert capped["goodput_bps"] < 200e6 * 1.3, capped["goodput_bps"]


def test_bad_run_options_are_refused(run_async):
    async def main():
        async with agents() as (ends, _):
            errors = []
            for options in ({"mss": 10}, {"rate_bps": -5}, {"send_method": "carrier-pigeon"}):
                with pytest.raises(PairError) as info:
                    await run_pair(config(ends, options=options))
                errors.append(info.value.message)
            return errors

    errors = run_async(main())
    assert "mss" in errors[0] and "rate_bps" in errors[1] and "carrier-pigeon" in errors[2]


@pytest.fixture(scope="module")
def tls_contexts():
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "127.0.0.2", "localhost")
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server)
    client = ssl.create_default_context()
    ca.configure_trust(client)
    stranger = ssl.create_default_context()
    trustme.CA().configure_trust(stranger)
    return server, client, stranger


def test_tls_control_port(run_async, tls_contexts):
    server, client, stranger = tls_contexts

    async def main():
        async with agents(tls=server) as (ends, _):
            result = await run_pair(config(ends, ssl=client))
            with pytest.raises(PairError) as untrusted:
                await run_pair(config(ends, ssl=stranger))
            with pytest.raises(PairError) as plain:
                await run_pair(config(ends))
            return result, untrusted.value, plain.value

    result, untrusted, plain = run_async(main())
    assert result["partial"] is False and result["bytes"] > 0
    assert untrusted.code is ErrorCode.TLS
    # A TLS agent takes the plain-text hello for a broken ClientHello and hangs up without a word (no TLS alert:
    # asyncio's SSL server closes the transport): the client sees EOF during its handshake, and says TLS may be
    # why. Never a timeout: the agent answers at once.
    assert plain.code is ErrorCode.EOF, plain
    assert "--tls-ca" in plain.message, plain.message


def test_key_reload_takes_effect_for_new_sessions(run_async):
    new_key = b"n" * 32

    async def main():
        async with agents() as (ends, started):
            for agent in started:
                agent.reload_key(new_key)
            with pytest.raises(PairError) as old:
                await run_pair(config(ends))
            fresh = await run_pair(config(ends, key=new_key))
            return old.value, fresh

    old, fresh = run_async(main())
    assert old.code is ErrorCode.AUTH and fresh["partial"] is False


def test_agent_shutdown_mid_run_reports_aborted_partial_result(run_async):
    async def main():
        async with agents() as (ends, started):
            task = asyncio.ensure_future(run_pair(config(ends, duration=5, interval=0.5)))
            await asyncio.sleep(1.0)
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            await started[1].close()  # the receiver stops (SIGTERM path)
            result = await task
            return result, loop.time() - t0

    result, took = run_async(main())
    assert result["partial"] is True and "shutting down" in result["error"]
    assert result["bytes"] > 0 and took < 10


def test_connections_beyond_the_handshake_cap_are_closed_at_once(run_async, monkeypatch):
    from lpmbench.agent import server as agent_module

    monkeypatch.setattr(agent_module, "MAX_HANDSHAKES", 5)

    async def main():
        async with agents() as (ends, _):
            idle = [await asyncio.open_connection(ends[1].host, ends[1].port) for _ in range(5)]
            await asyncio.sleep(0.2)
            reader, writer = await asyncio.open_connection(ends[1].host, ends[1].port)
            closed_at_once = await asyncio.wait_for(reader.read(), 2) == b""
            writer.close()
            for _, w in idle:
                w.close()
            await asyncio.sleep(0.2)
            after = await run_pair(config(ends))
            return closed_at_once, after

    closed_at_once, after = run_async(main())
    assert closed_at_once and after["partial"] is False


def test_many_streams_fit_the_reports(run_async):
    """128 streams: interval and result reports grow with the streams and must still fit a frame."""

    async def main():
        async with agents(limits=AgentLimits(max_streams=256)) as (ends, _):
            return await run_pair(config(ends, streams=128, duration=0.6, interval=0.3))

    result = run_async(main())
    assert result["partial"] is False, result["error"]
    assert len(result["streams"]) == 128 and all(s["bytes"] > 0 for s in result["streams"])


def test_rate_above_what_a_signed_int_holds_is_accepted(run_async):
    async def main():
        async with agents() as (ends, _):
            return await run_pair(config(ends, streams=1, options={"rate_bps": 40e9}))

    result = run_async(main())
    assert result["partial"] is False, result["error"]


def test_a_run_that_raises_stops_its_streams_and_frees_the_agent(run_async, monkeypatch):
    import threading

    from lpmbench.agent import runs

    def explode(self):
        raise RuntimeError("boom in the sampler")

    monkeypatch.setattr(runs.SenderRun, "_after_interval", explode)

    async def main():
        async with agents() as (ends, started):
            result = await run_pair(config(ends, duration=5, interval=0.2))
            await asyncio.sleep(0.5)
            senders = [t for t in threading.enumerate() if t.name.startswith("lpmbench-tx-")]
            return result, senders, [dict(a.runs) for a in started]

    result, senders, held = run_async(main())
    assert result["partial"] and "boom in the sampler" in result["error"]
    assert not senders, "stream threads outlived their failed run"
    assert held == [{}, {}]


CANCEL_ATTEMPTS = 20


def test_cancelling_a_session_task_while_it_waits_ends_it(run_async, monkeypatch):
    """Agent.close() cancels every session task and waits for it. A session holding a run waits for the
    orchestrator in a loop of idle timeouts; a cancellation that lands in that wait must end the session (it
    used to be swallowed right after a timeout, and the session went on until its run ended by itself).

    A 1 ms idle timeout makes the session cycle through its timeout path all the time, so cancellations land
    at every point of it; the armed run would wait ARM_TIMEOUT_S (30 s) for streams that never come.
    """
    monkeypatch.setattr(agent_module, "IDLE_TIMEOUT_S", 0.001)

    async def cancel_one(end, agent, attempt):
        client = AgentClient(end, KEY)
        await client.connect()
        await client.send(Arm(f"cancel-{attempt}", protocol.new_token(), 1, 1.0, 0.5))
        assert isinstance(await client.next_message(5), Armed)
        task = next(t for t, session in agent._sessions.items() if session.run is not None)
        await asyncio.sleep(0.001 * (attempt % 7))  # land at different points of the session's loop
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=5)
        await client.close()
        return task in done and task.cancelled()

    async def main():
        async with agents() as (ends, started):
            ended = [await cancel_one(ends[1], started[1], attempt) for attempt in range(CANCEL_ATTEMPTS)]
            return ended, dict(started[1].runs)

    ended, held = run_async(main())
    assert all(ended), f"{ended.count(False)} of {CANCEL_ATTEMPTS} cancelled sessions went on"
    assert held == {}, "a cancelled session's run must be aborted"


def test_results_say_why_the_c_data_plane_is_not_in_use(run_async, key_file, tmp_path, monkeypatch):
    """Each agent's facts carry dataplane_fallback_reason: None with the C twin in use, else the reason."""

    async def in_process():
        async with agents() as (ends, _):
            return await run_pair(config(ends))

    result = run_async(in_process())
    for side in ("sender", "receiver"):
        assert result[side]["dataplane_fallback_reason"] == dataplane.fallback_reason
        assert (result[side]["dataplane"] == "c") == (dataplane.fallback_reason is None)

    monkeypatch.setenv("LPMBENCH_NO_EXTENSIONS", "1")  # agent processes that must fall back, saying why
    procs = [AgentProcess(bind, key_file, tmp_path) for bind in ("127.0.0.1", "127.0.0.2")]
    try:
        sender, receiver = (p.wait_ready() for p in procs)
        fallback = eventloop.run(run_pair(PairConfig(sender=sender.endpoint, receiver=receiver.endpoint,
                                                     key=keys.load_key(key_file), streams=1, duration=0.3,
                                                     interval=0.1)))
    finally:
        for proc in procs:
            proc.stop()
    assert fallback["partial"] is False, fallback["error"]
    for side in ("sender", "receiver"):
        assert fallback[side]["dataplane"] == "python"
        assert fallback[side]["dataplane_fallback_reason"] == "LPMBENCH_NO_EXTENSIONS is set"


def test_receive_discard_is_refused_where_the_platform_has_none(run_async, monkeypatch):
    """On AIX recv(MSG_TRUNC) does not discard: the agent says so at arm time instead of failing every stream."""
    from lpmbench.platform import capabilities

    missing = capabilities.Capability(False, "receive discard (MSG_TRUNC) is Linux only")
    monkeypatch.setattr(capabilities, "HAS_MSG_TRUNC_DISCARD", missing)

    async def main():
        async with agents() as (ends, _):
            with pytest.raises(PairError) as info:
                await run_pair(config(ends, options={"rx_discard": True}))
            return info.value

    error = run_async(main())
    assert error.code == "bad_request" and "MSG_TRUNC" in error.message


def test_an_agent_cannot_rename_itself_in_the_result(run_async, monkeypatch):
    """Facts are the agent's say; where the orchestrator connected is its own knowledge and wins."""
    facts = agent_module.Agent._static_facts
    monkeypatch.setattr(agent_module.Agent, "_static_facts",
                        lambda self: {**facts(self), "host": "evil.example", "address": "192.0.2.66"})

    async def main():
        async with agents() as (ends, _):
            return await run_pair(config(ends)), ends

    result, ends = run_async(main())
    assert (result["sender"]["host"], result["receiver"]["host"]) == (ends[0].host, ends[1].host)
    assert result["sender"]["address"] == "127.0.0.1" and result["receiver"]["address"] == "127.0.0.2"


def test_control_connections_use_segments_that_cross_a_jumbo_black_hole(run_async):
    """The agent clamps its control port's MSS: a report larger than a standard segment must still reach an
    orchestrator across the black hole the run diagnoses (tests/test_lab_aix.py shows the run end to end)."""
    import socket

    from lpmbench.net import sockopts

    async def main():
        async with agents() as (ends, _):
            _, writer = await asyncio.open_connection(ends[1].host, ends[1].port)
            mss = writer.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG)
            writer.close()
            return mss

    assert 0 < run_async(main()) <= sockopts.CONTROL_MSS
