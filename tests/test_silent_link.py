"""A link that goes silent mid-run (no FIN, no RST): noticed in seconds, not after TCP's 15-minute timeout.

Real agent processes run in the network namespaces of a :class:`lpmbench.lab.Lab` (hosts a = 10.77.0.1 and
b = 10.77.0.2 behind a bridge "switch"); the orchestrator runs in a thread inside namespace a. The fault is
an nftables drop rule in the switch, the way a dead switch port or a pulled cable looks to both hosts:
frames vanish, nobody is told. Two faults:

- host b's whole port goes silent: the orchestrator notices b's silence through the interval deadline
  (``2 * interval + contract.SILENCE_SLACK_S``), and agent b, cut off from everyone, frees itself through
  keepalive and TCP_USER_TIMEOUT on its data sockets;
- only the data streams go silent (control traffic still flows): the sender sees nothing acknowledged and
  ends its 60 s run after a few seconds (stall detection, runs.STALL_MIN_S; TCP_USER_TIMEOUT would fail the
  sockets a little later), with nobody declared silent.

After each, with the link back, a normal run succeeds. Skipped (with the reason) unless root with ip, tc,
nft and ethtool. Every address is inside the namespaces the lab creates, and the lab is always torn down.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pytest
from agent_helpers import AgentProcess

from lpmbench.agent import runs
from lpmbench.lab import Lab, lab_unavailable_reason
from lpmbench.net import eventloop, keys, sockopts
from lpmbench.orchestrator import pair
from lpmbench.orchestrator.pair import AgentClient, Endpoint, PairConfig, run_pair
from lpmbench.protocol import connection as protocol
from lpmbench.protocol import contract

pytestmark = pytest.mark.lab

INTERVAL = 0.5
# Shorter than the default 5 s, but the silence window must stay longer than the agents' own quiet phases:
# a sender ending its run waits up to runs.DRAIN_GRACE_S (3 s) for the receiver's FIN without a word.
SILENCE_SLACK = 3.5
SILENCE_S = 2 * INTERVAL + SILENCE_SLACK  # what the orchestrator waits before declaring an agent silent
LONG_RUN_S = 60.0  # far longer than any bound below: only the silence detection can end these runs
# A receiver cut off from everyone gets no data, so its data sockets are idle: the first keepalive probe
# goes out after KEEPALIVE_IDLE_S, and TCP_USER_TIMEOUT fails the socket at the next probe.
RECEIVER_FREE_WITHIN_S = sockopts.KEEPALIVE_IDLE_S + 2 * sockopts.KEEPALIVE_INTERVAL_S + 5.0
TABLE = "lpmb_silent"


@dataclass
class SilentLab:
    lab: Lab
    sender: AgentProcess
    receiver: AgentProcess
    key: bytes

    def config(self, **kw: Any) -> PairConfig:
        base: dict[str, Any] = dict(streams=2, duration=LONG_RUN_S, interval=INTERVAL)
        base.update(kw)
        return PairConfig(sender=self.sender.endpoint, receiver=self.receiver.endpoint, key=self.key, **base)

    def in_netns(self, host: str, make_coro: Callable[[], Any]) -> Any:
        """Run a coroutine on its own event loop in a thread inside the host's namespace (future)."""
        return self.lab.spawn_in(host, lambda: eventloop.run(make_coro()))

    @contextlib.contextmanager
    def silenced(self, *rules: str) -> Iterator[None]:
        """Drop the matching frames in the switch while inside the block: no FIN, no RST, just nothing."""
        body = "\n".join(f"    {rule} drop" for rule in rules)
        script = (f"table bridge {TABLE} {{\n  chain forward {{\n    type filter hook forward priority -10;\n"
                  f"    policy accept;\n{body}\n  }}\n}}\n")
        self.lab.run_in("switch", ["nft", "-f", "-"], input_text=script)
        try:
            yield
        finally:
            self.lab.run_in("switch", ["nft", "delete", "table", "bridge", TABLE])


@pytest.fixture(scope="module")
def silent_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SilentLab]:
    reason = lab_unavailable_reason()
    if reason:
        pytest.skip(reason)
    tmp: Path = tmp_path_factory.mktemp("silent")
    key_file = str(tmp / "key")
    keys.write_key(key_file, keys.generate_key())
    with Lab(ipv6=False) as lab:
        procs = [AgentProcess(lab.address(host), key_file, tmp, netns=lab.netns(host)) for host in ("a", "b")]
        try:
            sender, receiver = (proc.wait_ready() for proc in procs)
            yield SilentLab(lab, sender, receiver, keys.load_key(key_file))
        finally:
            for proc in procs:
                proc.stop()


@pytest.fixture
def short_silence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(contract, "SILENCE_SLACK_S", SILENCE_SLACK)


def run_with_fault(lab: SilentLab, fault: contextlib.AbstractContextManager[None],
                   ) -> tuple[dict[str, Any], float, contextlib.ExitStack]:
    """Start a long run from host a, apply ``fault`` once intervals flow; (result, seconds, fault still on)."""
    flowing = threading.Event()

    def on_interval(interval: dict[str, Any]) -> None:
        if interval["t"] >= 2 * INTERVAL:
            flowing.set()

    future = lab.in_netns("a", lambda: run_pair(lab.config(), on_interval))
    assert flowing.wait(10), "the run never got going"
    stack = contextlib.ExitStack()
    stack.enter_context(fault)
    t0 = time.monotonic()
    try:
        result = future.result(timeout=LONG_RUN_S / 2)
    except BaseException:
        stack.close()
        raise
    return result, time.monotonic() - t0, stack


async def _probe_idle(end: Endpoint, key: bytes) -> bool:
    """Whether the agent would take a run now: arm it (then abort) and see 'armed' rather than 'busy'."""
    client = AgentClient(end, key)
    await client.connect()
    run_id = "probe-" + secrets.token_hex(4)
    try:
        await client.send("arm", run_id=run_id, token=protocol.new_token(), streams=1, duration=1.0, interval=0.5)
        reply = await client.next_message(5)
        if isinstance(reply, protocol.Message) and reply.type == "armed":
            await client.send("abort", run_id=run_id, reason="idle probe")
            await client.next_message(5)
            return True
        return False
    finally:
        await client.close()


def wait_idle(lab: SilentLab, host: str, agent: AgentProcess, within: float) -> float:
    """Seconds until the agent, probed from inside its own namespace, takes a run again."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < within:
        if lab.in_netns(host, lambda: _probe_idle(agent.endpoint, lab.key)).result(timeout=15):
            return time.monotonic() - t0
        time.sleep(1.0)
    raise AssertionError(f"agent {agent.endpoint.label} still busy after {within:.0f} s")


def run_again(lab: SilentLab, within: float = 10.0) -> dict[str, Any]:
    """A short run once the link is back (retrying while an agent still winds down its cut-short run)."""
    deadline = time.monotonic() + within
    while True:
        try:
            return lab.in_netns("a", lambda: run_pair(lab.config(duration=1.0))).result(timeout=30)
        except pair.PairError as exc:
            if exc.code != "busy" or time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def test_lab_fault_helpers_really_silence(silent_lab: SilentLab) -> None:
    """The drop rule itself: a connection across the switch gets no answer at all while it is in place."""

    async def connect(timeout: float) -> str:
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(silent_lab.receiver.bind,
                                                                       silent_lab.receiver.port), timeout)
        except asyncio.TimeoutError:
            return "silent"
        writer.close()
        return "answered"

    with silent_lab.silenced('iifname "p-b"', 'oifname "p-b"'):
        during = silent_lab.in_netns("a", lambda: connect(1.0)).result(timeout=10)
    after = silent_lab.in_netns("a", lambda: connect(5.0)).result(timeout=10)
    assert (during, after) == ("silent", "answered")


def test_host_b_going_silent_is_noticed_by_deadlines_and_keepalive(silent_lab: SilentLab,
                                                                   short_silence: None) -> None:
    lab, receiver = silent_lab, silent_lab.receiver
    result, took, fault = run_with_fault(lab, lab.silenced('iifname "p-b"', 'oifname "p-b"'))
    with fault:
        print(f"\nhost b silent: run_pair returned after {took:.1f} s")
        # b is declared silent, a is told to stop; a then waits DRAIN_GRACE_S for b's FIN, which never comes.
        assert took < SILENCE_S + runs.DRAIN_GRACE_S + 2.0, f"took {took:.1f} s"
        assert result["partial"] is True and result["bytes"] > 0
        assert f"receiver {receiver.endpoint.label} went silent" in result["error"], result["error"]
        assert wait_idle(lab, "a", lab.sender, within=5.0) < 5.0  # the sender was aborted at once
        freed = took + wait_idle(lab, "b", receiver, within=RECEIVER_FREE_WITHIN_S)
        print(f"host b freed itself {freed:.1f} s after the link went silent (still silent)")
    again = run_again(lab)
    assert again["partial"] is False and again["bytes"] > 0, again["error"]


def test_silent_data_streams_end_the_run_in_seconds(silent_lab: SilentLab, short_silence: None) -> None:
    lab, sender, receiver = silent_lab, silent_lab.sender, silent_lab.receiver
    control = receiver.port  # the orchestrator in a still reaches b's control port; everything else a<->b drops
    rules = (f"ip saddr {sender.bind} ip daddr {receiver.bind} tcp dport != {control}",
             f"ip saddr {receiver.bind} ip daddr {sender.bind} tcp sport != {control}")
    result, took, fault = run_with_fault(lab, lab.silenced(*rules))
    fault.close()
    print(f"\ndata streams silent: run_pair returned after {took:.1f} s: {result['error']}")
    noticed = min(max(runs.STALL_MIN_S, 3 * INTERVAL) + INTERVAL, sockopts.DATA_USER_TIMEOUT_S)
    assert took < noticed + runs.DRAIN_GRACE_S + 2.0, f"took {took:.1f} s"
    assert result["partial"] is True and result["bytes"] > 0
    assert f"sender {sender.bind}" in result["error"], result["error"]
    assert "stalled" in result["error"] or "ETIMEDOUT" in result["error"], result["error"]
    assert "went silent" not in result["error"], "the control connections were fine: nobody is silent"
    again = run_again(lab)
    assert again["partial"] is False and again["bytes"] > 0, again["error"]
