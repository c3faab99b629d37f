"""A man in the middle without the key, for real: a relay on loopback between ``pair`` and the receiving agent
passes the handshake through untouched, then rewrites, replays or splices the agent's frames.

Protocol 2 authenticated only the handshake: the relay's forged byte counts turned a run whose partition
cannot migrate (FAIL, exit 1) into one that can (exit 0). Protocol 3 seals every later frame, so the same
relay ends the session: ``pair`` exits 2 naming the altered connection, never 0 or 1.

Everything here is real except the relay, which is the attacker: two agent processes, ``pair`` as a process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import struct
import sys
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import Any, Callable

import pytest
from agent_helpers import REPO, AgentProcess

from lpmbench.net import eventloop
from lpmbench.orchestrator.endpoint import Endpoint

HEADER = struct.Struct(">I")
# On loopback this partition cannot migrate: it dirties 40 GiB/s (344 Gbit/s), far more than two streams move
# even on a fast host (the run FAILs). Forged to 100 GB per stream over the 1 s run, the streams would carry
# it (the run WARNs: one MSP pair).
LPAR = "db01:64GiB:40GiB/s"
FORGED_STREAM_BYTES = 100 * 10**9
PAIR_TIMEOUT_S = 90.0

# What a relay does with one agent -> orchestrator frame (the bytes after its length): the frames to send on.
Tamper = Callable[[bytes], Awaitable[list[bytes]]]


def split_json(payload: bytes) -> tuple[dict[str, Any], bytes]:
    """The JSON object at the start of a frame and the bytes after it (protocol 3's tag, or nothing).

    Our frames are ASCII JSON (json.dumps escapes the rest), so latin-1 maps offsets one to one."""
    obj, end = json.JSONDecoder().raw_decode(payload.decode("latin-1"))
    return obj, payload[end:]


def join_json(obj: dict[str, Any], rest: bytes) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode() + rest


class Relay:
    """Forwards one agent's control port: orchestrator -> agent bytes as they are, agent -> orchestrator
    frames through ``tamper``. Counts what it changed, so a test knows the attack happened."""

    def __init__(self, target: Endpoint, tamper: Tamper) -> None:
        self.target = target
        self.tamper = tamper
        self.frames_seen = 0
        self.frames_changed = 0
        self._tasks: set[asyncio.Task] = set()

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[Endpoint]:
        # on the agent's own address, so the data port the agent announces is reached at the same host
        server = await asyncio.start_server(self._serve, self.target.host, 0)
        try:
            yield Endpoint(self.target.host, server.sockets[0].getsockname()[1])
        finally:
            server.close()
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await server.wait_closed()

    async def _serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        agent_reader, agent_writer = await asyncio.open_connection(self.target.host, self.target.port)
        up = asyncio.ensure_future(self._copy(client_reader, agent_writer))
        down = asyncio.ensure_future(self._frames(agent_reader, client_writer))
        self._tasks |= {up, down}
        await asyncio.wait({up, down}, return_when=asyncio.FIRST_COMPLETED)
        for writer in (client_writer, agent_writer):
            writer.close()

    @staticmethod
    async def _copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()

    async def _frames(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                (length,) = HEADER.unpack(await reader.readexactly(HEADER.size))
                payload = await reader.readexactly(length)
                self.frames_seen += 1
                sent_on = await self.tamper(payload)
                self.frames_changed += sent_on != [payload]
                for out in sent_on:
                    writer.write(HEADER.pack(len(out)) + out)
                await writer.drain()


async def passthrough(payload: bytes) -> list[bytes]:
    return [payload]


async def forge_receiver_result(payload: bytes) -> list[bytes]:
    """The receiver's final report, with more bytes received on every stream."""
    obj, rest = split_json(payload)
    if obj.get("type") != "result" or obj.get("role") != "receiver":
        return [payload]
    for stream in obj["data"]["streams"]:
        stream["bytes"] = FORGED_STREAM_BYTES
    return [join_json(obj, rest)]


def replay_first_interval() -> Tamper:
    """The agent's first interval report, sent on twice: a recorded frame re-injected."""
    done = False

    async def tamper(payload: bytes) -> list[bytes]:
        nonlocal done
        if done or split_json(payload)[0].get("type") != "interval":
            return [payload]
        done = True
        return [payload, payload]

    return tamper


async def run_pair_between(sender: Endpoint, receiver: Endpoint,
                           key_file: str) -> tuple[int, dict[str, Any] | None, str]:
    """``pair`` as a process: (exit code, its JSON result if any, stderr)."""
    argv = [sys.executable, "-m", "lpmbench", "pair", sender.label, receiver.label, "--key-file", key_file,
            "--streams", "2", "--duration", "1", "--interval", "0.5", "--lpar", LPAR, "--json"]
    proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                                                env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        out, err = await asyncio.wait_for(proc.communicate(), PAIR_TIMEOUT_S)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    result = json.loads(out) if out.strip() else None
    return proc.returncode, result, err.decode(errors="replace")


@pytest.fixture
def agents(key_file: str, tmp_path: Path) -> Any:
    procs = [AgentProcess(bind, key_file, tmp_path) for bind in ("127.0.0.1", "127.0.0.2")]
    try:
        yield [p.wait_ready() for p in procs]
    finally:
        for proc in procs:
            proc.stop()


def relayed_run(agents: list[AgentProcess], key_file: str, tamper: Tamper) -> tuple[int, Any, str, Relay]:
    sender, receiver = agents

    async def main() -> tuple[int, Any, str, Relay]:
        relay = Relay(receiver.endpoint, tamper)
        async with relay.serving() as through_relay:
            code, result, err = await run_pair_between(sender.endpoint, through_relay, key_file)
        return code, result, err, relay

    return eventloop.run(main(), "asyncio")


def test_an_honest_relay_changes_nothing(agents: list[AgentProcess], key_file: str) -> None:
    """The relay itself is transparent: the run FAILs on its merits (the partition cannot migrate)."""
    code, result, err, relay = relayed_run(agents, key_file, passthrough)
    assert code == 1 and result is not None and result["verdict"] == "fail", err
    assert not result["partial"] and relay.frames_seen > 5 and relay.frames_changed == 0


def test_a_relay_that_forges_the_receivers_byte_counts_ends_the_run_with_exit_2(
        agents: list[AgentProcess], key_file: str) -> None:
    code, result, err, relay = relayed_run(agents, key_file, forge_receiver_result)
    assert relay.frames_changed == 1, "the relay never saw the receiver's result: the test proves nothing"
    # Protocol 2: exit 0, verdict WARN, 80 GB "received". Protocol 3: the forged frame is refused.
    assert code == 2, f"exit {code}, verdict {result and result['verdict']}: the forged report was believed"
    assert result is not None and result["agent_lost"] and result["verdict"] == "fail"
    assert result["bytes"] < FORGED_STREAM_BYTES
    receiver = agents[1]
    assert "was altered in transit (bad MAC on frame" in result["error"], result["error"]
    assert "something between the orchestrator and the agent rewrites traffic" in result["error"]
    assert f"receiver {receiver.bind}:" in result["error"]
    assert "altered in transit" in err  # and said on stderr, next to "the result is partial"


def test_a_relay_that_replays_a_report_ends_the_run_with_exit_2(agents: list[AgentProcess], key_file: str) -> None:
    code, result, err, relay = relayed_run(agents, key_file, replay_first_interval())
    assert relay.frames_changed == 1
    assert code == 2, f"exit {code}: the replayed frame was taken"
    assert result is not None and "altered in transit (bad MAC on frame" in result["error"], result["error"]


class SpliceIntervals:
    """Two relays, one per agent: the sender's first interval report is replaced by the receiver's first one,
    a well-formed frame of the same run from the other control session (both sessions use the same key)."""

    WAIT_S = 10.0  # for the receiver's first interval, which may come a little after the sender's

    def __init__(self) -> None:
        self.from_receiver: asyncio.Future[bytes] | None = None
        self.spliced: dict[str, Any] | None = None

    def _future(self) -> asyncio.Future[bytes]:
        if self.from_receiver is None:
            self.from_receiver = asyncio.get_running_loop().create_future()
        return self.from_receiver

    async def record_receiver(self, payload: bytes) -> list[bytes]:
        future = self._future()
        if not future.done() and split_json(payload)[0].get("type") == "interval":
            future.set_result(payload)
        return [payload]

    async def splice_into_sender(self, payload: bytes) -> list[bytes]:
        if self.spliced is not None or split_json(payload)[0].get("type") != "interval":
            return [payload]
        foreign = await asyncio.wait_for(asyncio.shield(self._future()), self.WAIT_S)
        self.spliced = split_json(foreign)[0]
        return [foreign]


def test_a_frame_spliced_in_from_the_other_agents_session_ends_the_run_with_exit_2(
        agents: list[AgentProcess], key_file: str) -> None:
    sender, receiver = agents
    splice = SpliceIntervals()

    async def main() -> tuple[int, Any, str]:
        into_sender, from_receiver = Relay(sender.endpoint, splice.splice_into_sender), \
            Relay(receiver.endpoint, splice.record_receiver)
        async with into_sender.serving() as sender_end, from_receiver.serving() as receiver_end:
            return await run_pair_between(sender_end, receiver_end, key_file)

    code, result, err = eventloop.run(main(), "asyncio")
    assert splice.spliced is not None and splice.spliced["type"] == "interval", "nothing was spliced"
    assert code == 2, f"exit {code}: a frame of the receiver's session was taken as the sender's"
    assert result is not None and "altered in transit (bad MAC on frame" in result["error"], result["error"]
    assert f"sender {sender.bind}:" in result["error"]
