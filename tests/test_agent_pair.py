"""Agents and the orchestrator on loopback with real sockets, on uvloop and on the stock asyncio loop."""

from __future__ import annotations

import asyncio
import contextlib
import json

import pytest
from agent_helpers import in_process_agents

from lpmbench import dataplane
from lpmbench.agent.server import Agent, AgentConfig, AgentLimits
from lpmbench.analysis.checks import overall, redundancy
from lpmbench.orchestrator.pair import AgentClient, Endpoint, PairConfig, PairError, run_pair
from lpmbench.protocol import connection as protocol
from lpmbench.protocol.contract import DATA_CONNECT_TIMEOUT_S
from lpmbench.protocol.messages import Heartbeat

KEY = b"k" * 32
# How long the event loop or a stream thread may wait for a CPU on a loaded 2-core host (other test processes;
# both agents and the orchestrator share this process): the scheduler gives every runnable thread a turn within
# tens of milliseconds, allowed here several times over.
LOADED_HOST_DELAY_S = 0.5
POLL_SLICE_S = dataplane.POLL_SLICE_MS / 1000
DURATION_S = 1.0


def agents(key=KEY, **limits):
    return in_process_agents(key, limits=AgentLimits(**limits))


def config(ends, key=KEY, **kw):
    base = dict(streams=4, duration=DURATION_S, interval=0.25)
    base.update(kw)
    return PairConfig(sender=ends[0], receiver=ends[1], key=key, **base)


def test_pair_moves_data_on_four_streams(run_async):
    seen = []

    async def main():
        async with agents() as (ends, _):
            return await run_pair(config(ends), seen.append)

    result = run_async(main())
    assert result["partial"] is False and result["error"] is None
    # One MSP pair is a note (INFO), not a warning: the verdict is the worst of the other checks.
    assert result["verdict"] == overall([c for c in result["checks"] if c["name"] != "redundant MSP pair"])
    assert {c["name"]: c["status"] for c in result["checks"]}["redundant MSP pair"] == "info"
    assert len(result["streams"]) == 4 and all(s["bytes"] > 0 for s in result["streams"])
    assert result["bytes"] == sum(s["bytes"] for s in result["streams"])
    assert result["goodput_bps"] > 0
    # duration_s is the receiver's clock, from its streams' start to the last EOF. Every sender stream runs the
    # full duration from its own start, so the receiver's clock is short only by how much later than the
    # sender's its own streams started; the EOF comes within a poll slice of the sender's deadline.
    low, high = DURATION_S - LOADED_HOST_DELAY_S, DURATION_S + POLL_SLICE_S + 2 * LOADED_HOST_DELAY_S
    assert low <= result["duration_s"] <= high
    assert result["checks"][0]["name"] == "retransmit rate"
    assert result["segments_out"] > 0 and result["streams"][0]["mss"] > 0
    assert len(result["intervals"]) >= 4 and seen, "live interval callbacks and interval list"
    assert {"t", "goodput_bps", "retransmits"} <= set(result["intervals"][0])
    assert result["sender"]["dataplane"] in ("c", "python")
    assert result["sender"]["host"] == "127.0.0.1" and result["receiver"]["host"] == "127.0.0.2"
    assert result["sender"]["cpu_percent"] is not None and result["receiver"]["cpu_percent"] is not None
    json.dumps(result)  # the whole document is JSON


def test_agents_tell_listeners_about_runs_and_the_orchestrators_verdict(run_async):
    events = []

    async def main():
        async with agents() as (ends, started):
            for agent in started:
                agent.listeners.append(lambda name, fields, who=agent.config.bind: events.append((who, name, fields)))
            result = await run_pair(config(ends, streams=2, duration=0.5, interval=0.25))
            await asyncio.sleep(0.2)  # the summary arrives just after the result
            return result

    result = run_async(main())
    by_agent = {(who, name): fields for who, name, fields in events}
    assert by_agent[("127.0.0.1", "run_finished")]["role"] == "sender"
    assert by_agent[("127.0.0.1", "run_finished")]["peer"] == "127.0.0.2"
    assert by_agent[("127.0.0.2", "run_finished")]["peer"] == "127.0.0.1"
    summary = by_agent[("127.0.0.2", "run_summary")]
    assert summary["summary"]["verdict"] == result["verdict"] and summary["role"] == "receiver"
    assert ("127.0.0.1", "run_started") in by_agent


def test_receiver_counts_exactly_what_sender_sent(run_async):
    async def main():
        async with agents() as (ends, _):
            return await run_pair(config(ends, streams=2, duration=0.5, interval=0.25))

    result = run_async(main())
    for stream in result["streams"]:
        assert stream["bytes"] == stream["sent_bytes"] > 0


def test_wrong_key_is_refused_with_host_named(run_async):
    async def main():
        async with agents() as (ends, _):
            with pytest.raises(PairError) as info:
                await run_pair(config(ends, key=b"w" * 32))
            return info.value

    error = run_async(main())
    assert error.code == "auth" and error.host.startswith("127.0.0.")


# "At once": the busy answer takes a TCP connect, the two-message handshake and the arm request, four round
# trips on loopback, each at most a scheduling delay on a loaded host. The first run lasts longer than that
# after the second orchestrator asks, so an agent that queued the request behind the run would fail this.
BUSY_WITHIN_S = 4 * LOADED_HOST_DELAY_S
FIRST_RUN_S = 3.0


def test_second_orchestrator_gets_busy_at_once_and_agent_frees_itself(run_async):
    async def main():
        async with agents() as (ends, _):
            first = asyncio.ensure_future(run_pair(config(ends, duration=FIRST_RUN_S)))
            await asyncio.sleep(0.5)
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            with pytest.raises(PairError) as info:
                await run_pair(config(ends))
            busy_after = loop.time() - t0
            await first
            again = await run_pair(config(ends, duration=0.3, interval=0.1))
            return info.value, busy_after, again

    error, busy_after, again = run_async(main())
    assert error.code == "busy" and "held by" in error.message
    assert busy_after < BUSY_WITHIN_S < FIRST_RUN_S - 0.5  # at once: not after the first run ended
    assert again["partial"] is False


def test_unreachable_agent_is_named(run_async):
    async def main():
        async with agents() as (ends, _):
            dead = Endpoint("127.0.0.1", 1)
            with pytest.raises(PairError) as info:
                await run_pair(PairConfig(sender=ends[0], receiver=dead, key=KEY, duration=0.5, interval=0.25))
            return info.value

    error = run_async(main())
    assert error.code == "unreachable" and error.host == "127.0.0.1:1"


def test_agent_refuses_runs_beyond_its_limits(run_async):
    async def main():
        async with agents(max_streams=2, max_duration_s=5) as (ends, _):
            with pytest.raises(PairError) as many:
                await run_pair(config(ends, streams=3))
            with pytest.raises(PairError) as long:
                await run_pair(config(ends, streams=1, duration=6))
            return many.value, long.value

    many, long = run_async(main())
    assert "streams must be 1..2" in many.message
    assert "duration" in long.message


def test_orchestrator_vanishing_mid_run_returns_agents_to_idle(run_async):
    async def main():
        async with agents() as (ends, started):
            task = asyncio.ensure_future(run_pair(config(ends, duration=5)))
            await asyncio.sleep(0.8)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 5
            while any(a.runs for a in started) and loop.time() < deadline:
                await asyncio.sleep(0.05)
            idle = not any(a.runs for a in started)
            after = await run_pair(config(ends, duration=0.3, interval=0.1))
            return idle, after

    idle, after = run_async(main())
    assert idle, "agents must drop a run whose orchestrator went away"
    assert after["partial"] is False


def test_data_port_ignores_connections_without_the_token(run_async):
    """A stranger connecting to an armed data port gets no accept byte and no data."""

    async def main():
        async with agents() as (ends, _):
            client = AgentClient(ends[1], KEY)
            await client.connect()
            token = protocol.new_token()
            await client.send("arm", run_id="x1", token=token, streams=1, duration=1.0, interval=0.5)
            armed = await client.next_message(5)
            reader, writer = await asyncio.open_connection("127.0.0.2", armed["port"])
            writer.write(protocol.data_hello(protocol.new_token(), 0))
            await writer.drain()
            answer = await asyncio.wait_for(reader.read(1), 5)
            writer.close()
            await client.send("abort", run_id="x1")
            result = await client.next_message(20)
            while isinstance(result, Heartbeat):  # the run may be quiet for longer than HEARTBEAT_S
                result = await client.next_message(20)
            await client.close()
            return answer, result

    answer, result = run_async(main())
    assert answer == b""  # closed without the accept byte
    assert result.type == "result" and result["data"]["error"]


def test_redundant_pairs_run_at_once_and_add_up(run_async):
    from lpmbench.orchestrator.pair import run_pairs

    async def main():
        started = []
        for i in range(4):
            agent = Agent(AgentConfig(bind=f"127.0.0.{i + 1}", port=0, key=KEY, data_ports=(0, 0)))
            await agent.start()
            started.append(agent)
        ends = [Endpoint(a.config.bind, a.port) for a in started]
        try:
            return await run_pairs([config(ends[:2], streams=2, duration=0.6, interval=0.2),
                                    config(ends[2:], streams=2, duration=0.6, interval=0.2)])
        finally:
            for agent in started:
                await agent.close()

    result = run_async(main())
    assert [p["sender"] for p in result["pairs"]] == ["127.0.0.1", "127.0.0.3"]
    assert result["aggregate_goodput_bps"] == sum(p["goodput_bps"] for p in result["pairs"])
    assert all(p["goodput_bps"] > 0 for p in result["pairs"])
    checks = {c["name"]: c for c in result["checks"]}
    # The redundant pair is judged on its own path: on a loaded host its loopback streams can be window-limited
    # (a WARN of its own, reported here and nowhere else); whatever it saw, the check carries exactly that.
    own = redundancy._own_problems(result["pairs"][1])
    expected = "fail" if any(c["status"] == "fail" for c in own) else "warn" if own else "pass"
    assert checks["redundant MSP pair"]["status"] == expected
    assert all(c["name"] in checks["redundant MSP pair"]["detail"] for c in own[:3])


def test_single_pair_notes_the_missing_redundant_pair(run_async):
    async def main():
        async with agents() as (ends, _):
            return await run_pair(config(ends, streams=1, duration=0.3, interval=0.1))

    checks = {c["name"]: c for c in run_async(main())["checks"]}
    assert checks["redundant MSP pair"]["status"] == "info" and "--redundant" in checks["redundant MSP pair"]["remedy"]


def test_unreachable_data_port_is_a_clear_check_not_a_hang(run_async):
    async def main():
        async with agents() as (ends, _):
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            # Nothing listens on 127.0.0.3: the sender's connects are refused as a firewall would refuse them.
            result = await run_pair(config(ends, data_host="127.0.0.3", duration=2))
            return result, loop.time() - t0

    result, took = run_async(main())
    checks = {c["name"]: c for c in result["checks"]}
    port_check = checks["LPM port range reachable"]
    assert port_check["status"] == "fail" and "firewall" in port_check["remedy"]
    assert result["partial"] and result["verdict"] == "fail"
    # Connecting to and arming both agents and auditing the sender's interface (ip and ethtool runs) take a
    # few scheduling delays; a refused connect fails at once (a silently dropped one at DATA_CONNECT_TIMEOUT_S).
    # An armed receiver left to its own timeout would hold the result for ARM_TIMEOUT_S (30 s).
    assert took < DATA_CONNECT_TIMEOUT_S + 6 * LOADED_HOST_DELAY_S, \
        "the receiver is aborted as soon as the sender reports it cannot connect"


def test_byte_count_run_ends_exactly_on_the_count(run_async):
    async def main():
        async with agents() as (ends, _):
            return await run_pair(config(ends, streams=3, duration=20, interval=0.25,
                                         options={"max_bytes": 100_000_001}))

    result = run_async(main())
    assert result["bytes"] == 100_000_001 and result["partial"] is False
    assert [s["bytes"] for s in result["streams"]] == [33_333_334, 33_333_334, 33_333_333]
    # Ended by the count, not the 20 s deadline: loopback moves 100 MB in well under a second, even loaded.
    assert result["duration_s"] < 20 / 2
