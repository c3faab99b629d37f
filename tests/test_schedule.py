"""Scheduled runs: strict interval parsing, real runs from one in-process agent to another, busy skips."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import pytest
from cli_runner import cli_runner

from lpmbench.agent.server import Agent, AgentConfig
from lpmbench.cli import app
from lpmbench.metrics.collector import MetricsState, build_registry
from lpmbench.orchestrator.pair import AgentClient, Endpoint, PairConfig, run_pair
from lpmbench.orchestrator.schedule import ScheduledPeer, Scheduler, own_endpoint, pair_every, parse_every
from lpmbench.protocol import connection as protocol

KEY = b"s" * 32
runner = cli_runner()


@pytest.mark.parametrize("text,seconds", [("90s", 90), ("30m", 1800), ("6h", 21600), ("1d", 86400),
                                          (" 2h ", 7200)])
def test_parse_every_accepts_a_whole_number_and_a_unit(text, seconds):
    assert parse_every(text) == seconds


@pytest.mark.parametrize("text", ["", "6", "h", "0h", "1.5h", "6x", "-1h", "1h30m", "6 h", "6H", "01h", "1e3s"])
def test_parse_every_refuses_anything_else_and_says_what_it_wants(text):
    with pytest.raises(ValueError, match="whole number and a unit s, m, h or d"):
        parse_every(text)


def test_peers_and_intervals_pair_up_one_for_all_or_one_each():
    assert pair_every(["a", "b"], ["6h"]) == [("a", 21600), ("b", 21600)]
    assert pair_every(["a", "b"], ["6h", "90s"]) == [("a", 21600), ("b", 90)]
    assert pair_every([], []) == []
    for peers, every, needle in ((["a"], [], "--peer needs --every"), ([], ["6h"], "--every needs"),
                                 (["a", "b", "c"], ["1h", "2h"], "one per --peer (3), not 2")):
        with pytest.raises(ValueError, match=needle.replace("(", r"\(").replace(")", r"\)")):
            pair_every(peers, every)


@pytest.mark.parametrize("args,needle", [
    (["--peer", "127.0.0.2", "--every", "6x"], "bad interval '6x'"),
    (["--peer", "127.0.0.2", "--every", "1.5h"], "whole number"),
    (["--peer", "127.0.0.2"], "--peer needs --every"),
    (["--every", "6h"], "--every needs at least one --peer"),
    (["--peer", "127.0.0.2", "--every", "30s"], "at least 60 s"),
    (["--peer", "127.0.0.2", "--every", "90s", "--scheduled-duration", "600"], "--scheduled-duration"),
    (["--peer", "127.0.0.2", "--every", "6h", "--scheduled-streams", "0"], "--scheduled-streams"),
    (["--peer", "[::1", "--every", "6h"], "bad host"),
])
def test_agent_command_refuses_a_bad_schedule_with_exit_2(args, needle):
    result = runner.invoke(app, ["agent", "--insecure", "--port", "0", "--metrics-port", "0", *args])
    assert result.exit_code == 2
    assert needle in result.output


def test_own_endpoint_reaches_a_wildcard_agent_over_loopback():
    assert own_endpoint(None, 7520) == Endpoint("127.0.0.1", 7520)
    assert own_endpoint("::", 7) == Endpoint("::1", 7)
    assert own_endpoint("10.1.1.1", 7) == Endpoint("10.1.1.1", 7)


@contextlib.asynccontextmanager
async def agents():
    started = []
    try:
        for address in ("127.0.0.1", "127.0.0.2"):
            state = MetricsState()
            agent = Agent(AgentConfig(bind=address, port=0, key=KEY, data_ports=(0, 0)), listeners=[state])
            await agent.start()
            started.append((agent, state))
        yield started
    finally:
        for agent, _ in started:
            await agent.close()


def scheduler_for(agents, every=3600.0, **kw):
    (sender, state), (receiver, _) = agents
    peer = ScheduledPeer(Endpoint("127.0.0.2", receiver.port), every)
    state.expect_scheduled([peer.label])
    options = dict(duration=0.3, streams=2, busy=sender.busy_with, on_outcome=state.record_scheduled,
                   first_delay_s=0.0)
    options.update(kw)
    return Scheduler(own_endpoint("127.0.0.1", sender.port), KEY, [peer], **options), peer


def value(state, name, labels):
    return build_registry(state, {}, process=False).get_sample_value(name, labels)


def test_a_scheduled_run_sends_to_the_peer_and_lands_in_both_agents_metrics(run_async):
    async def main():
        async with agents() as started:
            scheduler, peer = scheduler_for(started)
            outcome = await scheduler.run_once(peer)
            await asyncio.sleep(0.2)  # the summary follows the result
            return outcome, [state for _, state in started]

    outcome, (tx, rx) = run_async(main())
    assert outcome == "ok"
    assert value(tx, "lpmbench_scheduled_runs_total", {"peer": "127.0.0.2", "outcome": "ok"}) == 1
    assert value(tx, "lpmbench_scheduled_runs_total", {"peer": "127.0.0.2", "outcome": "skipped_busy"}) == 0
    sent = value(tx, "lpmbench_sent_bytes_total", {"peer": "127.0.0.2"})
    assert sent > 0 and value(rx, "lpmbench_received_bytes_total", {"peer": "127.0.0.1"}) == sent
    assert value(tx, "lpmbench_runs_total", {"role": "sender", "outcome": "ok"}) == 1
    verdicts = [value(rx, "lpmbench_last_run_verdict", {"peer": "127.0.0.1", "role": "receiver", "verdict": v})
                for v in ("pass", "warn", "fail")]
    assert sorted(verdicts) == [0, 0, 1], "the orchestrator's verdict reached the receiver too"


def test_scheduled_run_is_skipped_at_once_when_this_agent_is_busy(run_async, caplog):
    async def main():
        loop = asyncio.get_running_loop()
        async with agents() as started:
            scheduler, peer = scheduler_for(started)
            (sender, _), (receiver, _) = started
            manual = asyncio.ensure_future(run_pair(PairConfig(
                sender=Endpoint("127.0.0.1", sender.port), receiver=Endpoint("127.0.0.2", receiver.port),
                key=KEY, streams=1, duration=1.0, interval=0.5)))
            while not sender.runs:
                await asyncio.sleep(0.02)
            t0 = loop.time()
            outcome = await scheduler.run_once(peer)
            took = loop.time() - t0
            result = await manual
            return outcome, took, result, started[0][1]

    with caplog.at_level(logging.INFO, logger="lpmbench.schedule"):
        outcome, took, result, state = run_async(main())
    assert outcome == "skipped_busy" and took < 0.5
    assert result["partial"] is False, "the skipped schedule left the manual run alone"
    assert "skipped: this agent is busy with run" in caplog.text
    assert value(state, "lpmbench_scheduled_runs_total", {"peer": "127.0.0.2", "outcome": "skipped_busy"}) == 1


def test_scheduled_run_is_skipped_when_the_peer_is_busy(run_async, caplog):
    async def main():
        async with agents() as started:
            scheduler, peer = scheduler_for(started)
            holder = AgentClient(peer.endpoint, KEY)  # someone else armed the peer first
            await holder.connect()
            await holder.send("arm", run_id="held", token=protocol.new_token(), streams=1, duration=1.0,
                              interval=0.5)
            armed = await holder.next_message(5)
            outcome = await scheduler.run_once(peer)
            await holder.send("abort", run_id="held")
            await holder.next_message(20)
            await holder.close()
            return armed.type, outcome

    with caplog.at_level(logging.INFO, logger="lpmbench.schedule"):
        armed, outcome = run_async(main())
    assert armed == "armed" and outcome == "skipped_busy"
    assert "agent busy with run held" in caplog.text


def test_an_unreachable_peer_is_an_error_outcome_and_the_schedule_goes_on(run_async, caplog):
    async def main():
        async with agents() as started:
            sender, state = started[0]
            dead = ScheduledPeer(Endpoint("127.0.0.3", 1), 3600.0)
            scheduler = Scheduler(own_endpoint("127.0.0.1", sender.port), KEY, [dead], duration=0.3,
                                  busy=sender.busy_with, on_outcome=state.record_scheduled, first_delay_s=0.0)
            return await scheduler.run_once(dead), state

    with caplog.at_level(logging.WARNING, logger="lpmbench.schedule"):
        outcome, state = run_async(main())
    assert outcome == "error" and "127.0.0.3:1" in caplog.text
    assert value(state, "lpmbench_scheduled_runs_total", {"peer": "127.0.0.3", "outcome": "error"}) == 1


def test_the_schedule_repeats_on_its_interval_until_stopped(run_async):
    async def main():
        loop = asyncio.get_running_loop()
        async with agents() as started:
            outcomes = []
            scheduler, _ = scheduler_for(started, every=1.0, duration=0.2, streams=1,
                                         on_outcome=lambda peer, outcome: outcomes.append((loop.time(), outcome)))
            t0 = loop.time()
            scheduler.start()
            while len(outcomes) < 2 and loop.time() - t0 < 5:
                await asyncio.sleep(0.05)
            await scheduler.stop()
            count = len(outcomes)
            await asyncio.sleep(1.2)
            return t0, outcomes, count

    t0, outcomes, count = run_async(main())
    assert [o for _, o in outcomes] == ["ok", "ok"] and count == 2, "stopped: no third run"
    assert outcomes[0][0] - t0 < 1.0, "the first run starts after first_delay_s (0)"
    assert outcomes[1][0] - t0 >= 1.0, "the second waits for the interval"


def test_scheduler_refuses_an_unbounded_duration():
    with pytest.raises(ValueError, match="at most 300"):
        Scheduler(Endpoint("127.0.0.1"), KEY, [], duration=301)
    with pytest.raises(ValueError, match="above 0 s"):
        Scheduler(Endpoint("127.0.0.1"), KEY, [ScheduledPeer(Endpoint("127.0.0.2"), 0)])


def test_the_agent_command_wires_its_schedule_to_its_own_port_key_and_metrics(run_async):
    from lpmbench.cli.agent import ServeOptions, _start_schedule

    async def main():
        async with agents() as started:
            (sender, state), (receiver, _) = started
            options = ServeOptions(metrics_port=0, schedule=[ScheduledPeer(Endpoint("127.0.0.2", receiver.port),
                                                                           3600.0)],
                                   scheduled_duration=0.3, scheduled_streams=1)
            scheduler = _start_schedule(sender, state, options)
            try:
                outcome = await scheduler.run_once(scheduler.peers[0])  # the timed runs start up to 60 s later
            finally:
                await scheduler.stop()
            return scheduler, outcome, state

    scheduler, outcome, state = run_async(main())
    assert scheduler.own.host == "127.0.0.1" and scheduler.key == KEY and outcome == "ok"
    assert (scheduler.duration, scheduler.streams) == (0.3, 1)
    assert value(state, "lpmbench_scheduled_runs_total", {"peer": "127.0.0.2", "outcome": "ok"}) == 1
    assert value(state, "lpmbench_scheduled_runs_total", {"peer": "127.0.0.2", "outcome": "error"}) == 0
