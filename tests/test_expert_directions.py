"""Both directions (issue 13) with real agents on loopback: A -> B then B -> A, each a whole result, the verdict
the worse; a direction that cannot start is a FAIL naming why, and the other direction still stands."""

from __future__ import annotations

from agent_helpers import KEY, in_process_agents

from lpmbench.orchestrator.directions import combine, run_both_directions
from lpmbench.orchestrator.pair import PairConfig, run_pair


def config(ends) -> PairConfig:
    return PairConfig(sender=ends[0], receiver=ends[1], key=KEY, streams=2, duration=0.5, interval=0.25)


def test_both_directions_run_one_after_the_other_with_the_ends_swapped(run_async):
    seen = []

    async def main():
        async with in_process_agents() as (ends, _):
            return ends, await run_both_directions(config(ends), seen.append)

    ends, both = run_async(main())
    forward, backward = both["directions"]
    assert both["both_directions"] is True
    assert (forward["sender"], forward["receiver"]) == (ends[0].host, ends[1].host)
    assert (backward["sender"], backward["receiver"]) == (ends[1].host, ends[0].host)
    assert forward["result"]["receiver"]["host"] == backward["result"]["sender"]["host"] == ends[1].host
    for each in (forward, backward):
        assert each["error"] is None and each["result"]["bytes"] > 0 and not each["result"]["partial"]
        assert each["verdict"] == each["result"]["verdict"]
        for side in ("sender", "receiver"):  # the MSP facts survive the orchestrator's report checks
            assert {"reach", "cpu", "mover"} <= set(each["result"][side]["msp"]), side
    assert both["verdict"] == max((forward["verdict"], backward["verdict"]), key=["pass", "warn", "fail"].index)
    assert len(seen) >= 2, "intervals of both runs reach the callback"


def test_a_direction_that_cannot_start_fails_and_the_other_stands(run_async):
    """Agent A is closed after A -> B (a real agent going away): B -> A cannot connect to it."""

    async def main():
        async with in_process_agents() as (ends, agents):
            async def close_after_first(cfg, on_interval):
                result = await run_pair(cfg, on_interval)
                await agents[0].close()
                return result

            return await run_both_directions(config(ends), runner=close_after_first)

    both = run_async(main())
    forward, backward = both["directions"]
    assert forward["result"] is not None and forward["error"] is None and forward["verdict"] != "fail"
    assert backward["result"] is None and backward["verdict"] == "fail" and "127.0.0.1" in backward["error"]
    assert both["verdict"] == "fail" and both["worse_direction"] == backward["direction"]


def test_the_worse_verdict_wins_and_a_tie_names_no_direction():
    entries = [{"direction": "a -> b", "verdict": "warn"}, {"direction": "b -> a", "verdict": "pass"}]
    assert combine(entries)["verdict"] == "warn" and combine(entries)["worse_direction"] == "a -> b"
    tie = [{"direction": "a -> b", "verdict": "warn"}, {"direction": "b -> a", "verdict": "warn"}]
    assert combine(tie)["worse_direction"] is None


def test_pair_both_directions_from_the_command_line():
    """`lpmbench pair --local --both-directions --json`: one document with both directions, the exit code by the
    worse verdict; --redundant with it is refused before anything runs."""
    import json
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "lpmbench", "pair", "--local", "--both-directions", "--duration",
                           "0.5", "--json"], capture_output=True, text=True, timeout=90)
    document = json.loads(done.stdout)
    assert document["both_directions"] is True and len(document["directions"]) == 2
    forward, backward = document["directions"]
    assert forward["sender"] == backward["receiver"] and forward["receiver"] == backward["sender"]
    assert all(entry["result"]["bytes"] > 0 for entry in document["directions"])
    assert done.returncode == (1 if document["verdict"] == "fail" else 0), done.stderr
    refused = subprocess.run([sys.executable, "-m", "lpmbench", "pair", "a", "b", "--both-directions",
                              "--redundant", "c", "d", "--insecure"], capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "--both-directions runs one MSP pair" in refused.stderr


def test_an_agent_on_a_vios_that_pins_lpm_ports_takes_them_by_default(key_file, tmp_path, monkeypatch, run_async):
    """Issue 13: when vioslpm0 pins LPM's ports (tcp_port_low/high), a receiving agent started without
    --data-ports takes its data ports from that range, and the port-range check says the run tested it. Both
    agents run in the AIX personality (lsattr -El vioslpm0 answered as a VIOS would), on loopback."""
    from agent_helpers import AgentProcess

    from lpmbench.net import keys

    monkeypatch.setenv("LPMBENCH_AIX_VIOSLPM0", "tcp_port_low=41001,tcp_port_high=41010")
    sender = AgentProcess("127.0.0.1", key_file, tmp_path, personality="aix")
    receiver = AgentProcess("127.0.0.2", key_file, tmp_path, personality="aix", data_ports=None)
    try:
        ends = (sender.wait_ready().endpoint, receiver.wait_ready().endpoint)
        config = PairConfig(sender=ends[0], receiver=ends[1], key=keys.load_key(key_file), streams=2,
                            duration=0.5, interval=0.25)
        result = run_async(run_pair(config))
        log = receiver.log_text()
    finally:
        sender.stop()
        receiver.stop()
    assert 41001 <= result["data_port"]["port"] <= 41010, result["data_port"]
    assert "data ports 41001-41010, LPM's own range (vioslpm0" in log, log[-600:]
    ports = {c["name"]: c for c in result["checks"]}["LPM port range tested (vioslpm0)"]
    assert ports["status"] == "pass" and "inside LPM's pinned range 41001-41010" in ports["detail"], ports
