"""Hostile input against a real, running agent: junk, huge frames, slow drips, floods, half-open sockets.

In-process agents on 127.0.0.1 / 127.0.0.2 run on both event loops (``run_async``), with the handshake
timeout shortened by monkeypatching ``lpmbench.agent.HANDSHAKE_TIMEOUT_S``; the memory test uses a real agent
process so that its RSS and open fds can be read with psutil. After every attack a valid ``run_pair`` must
succeed at once: the agent is alive and not left busy.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import socket
import struct
import threading
import time
from pathlib import Path
from typing import Any, Callable

import psutil
import pytest
from agent_helpers import AgentProcess, in_process_agents

from lpmbench.agent import runs
from lpmbench.agent import server as agent_module
from lpmbench.agent.server import AgentLimits
from lpmbench.net import eventloop, keys
from lpmbench.orchestrator.pair import AgentClient, Endpoint, PairConfig, run_pair
from lpmbench.protocol import connection as protocol
from lpmbench.protocol import contract
from lpmbench.protocol.framing import MAX_FRAME
from lpmbench.protocol.messages import Arm, Armed, Error, Heartbeat, Interval, Message, Result, Started

KEY = b"h" * 32
HEADER = struct.Struct(">I")
SHORT_HANDSHAKE_S = 1.0


def agents(**limits: Any) -> Any:
    return in_process_agents(KEY, limits=AgentLimits(**limits))


def config(ends: list[Endpoint], key: bytes = KEY, **kw: Any) -> PairConfig:
    base: dict[str, Any] = dict(streams=2, duration=0.5, interval=0.25)
    base.update(kw)
    return PairConfig(sender=ends[0], receiver=ends[1], key=key, **base)


async def assert_serves(ends: list[Endpoint]) -> None:
    result = await run_pair(config(ends))
    assert result["partial"] is False and result["bytes"] > 0, result["error"]


def frame(obj: Any) -> bytes:
    body = json.dumps(obj).encode()
    return HEADER.pack(len(body)) + body


def error_frames(data: bytes) -> list[dict[str, Any]]:
    """The JSON frames in what the agent answered (it answers junk with exactly one error frame)."""
    out, offset = [], 0
    while offset + 4 <= len(data):
        (length,) = HEADER.unpack_from(data, offset)
        out.append(json.loads(data[offset + 4:offset + 4 + length]))
        offset += 4 + length
    return out


async def exchange(end: Endpoint, payload: bytes, timeout: float = 5.0) -> tuple[bytes, float]:
    """Send ``payload``, read until the agent closes; (what it answered, seconds until it closed)."""
    reader, writer = await asyncio.open_connection(end.host, end.port)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    with contextlib.suppress(ConnectionError):
        writer.write(payload)
        await writer.drain()
    answer = b""
    with contextlib.suppress(ConnectionError, asyncio.TimeoutError):
        answer = await asyncio.wait_for(reader.read(), timeout)
    writer.close()
    return answer, loop.time() - t0


HELLO_OK = {"type": "hello", "version": protocol.PROTOCOL_VERSION, "nonce": "a" * 64, "auth": "hmac-sha256"}
SPEC = {"run_id": "r1", "token": "0" * 32, "streams": 1, "duration": 1.0, "interval": 0.5}
JUNK: list[tuple[str, bytes, str | None]] = [
    ("random bytes", random.Random(7).randbytes(4096), None),
    ("4 GiB length prefix", b"\xff\xff\xff\xff" + b"x" * 100, "frame_size"),
    ("2 GiB length prefix", HEADER.pack(2**31), "frame_size"),
    ("one byte over MAX_FRAME", HEADER.pack(MAX_FRAME + 1), "frame_size"),
    ("empty frame", HEADER.pack(0), "frame_size"),
    ("HTTP request", b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", "frame_size"),
    ("TLS ClientHello", bytes.fromhex("160301020001") + bytes(512), "frame_size"),
    ("bad JSON", HEADER.pack(9) + b'{"type":}', "bad_message"),
    ("not UTF-8", HEADER.pack(4) + b"\xff\xfe\xfd\xfc", "bad_message"),
    ("JSON array", frame([1, 2, 3]), "bad_message"),
    ("unknown type", frame({"type": "shell", "cmd": "reboot"}), "bad_message"),
    ("wrong type for version", frame({**HELLO_OK, "version": "1"}), "bad_message"),
    ("bool as int", frame({**HELLO_OK, "version": True}), "bad_message"),
    ("unknown field", frame({**HELLO_OK, "admin": True}), "bad_message"),
    ("NaN", HEADER.pack(25) + b'{"type":"bye","x":NaN}   ', "bad_message"),
    ("deep nesting", HEADER.pack(60000) + b"[" * 30000 + b"]" * 30000, "bad_message"),
    ("arm before auth", frame({"type": "arm", **SPEC}), "out_of_order"),
    ("start before auth", frame({"type": "start", **SPEC, "host": "127.0.0.1", "port": 9}), "out_of_order"),
    ("auth before hello", frame({"type": "auth", "mac": "0" * 64}), "out_of_order"),
    ("protocol 1 client", frame({**HELLO_OK, "version": 1}), "version"),
    ("newer protocol client", frame({**HELLO_OK, "version": protocol.PROTOCOL_VERSION + 1}), "version"),
    ("no key", frame({**HELLO_OK, "auth": "none"}), "auth"),
    ("wrong MAC", frame(HELLO_OK) + frame({"type": "auth", "mac": "0" * 64}), "auth"),
]


def test_junk_gets_one_error_frame_and_a_closed_connection(run_async: Callable[..., Any],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(agent_module, "HANDSHAKE_TIMEOUT_S", SHORT_HANDSHAKE_S)

    async def main() -> list[tuple[str, list[dict[str, Any]], float, str | None]]:
        async with agents() as (ends, _):
            seen = []
            for name, payload, code in JUNK:
                answer, took = await exchange(ends[1], payload)
                seen.append((name, error_frames(answer), took, code))
            await assert_serves(ends)
            return seen

    for name, frames, took, code in run_async(main()):
        errors = [f for f in frames if f["type"] == "error"]
        assert len(errors) == 1, f"{name}: answered {frames}"
        assert code is None or errors[0]["code"] == code, f"{name}: {errors[0]}"
        assert took < SHORT_HANDSHAKE_S, f"{name}: closed only after {took:.2f} s (the handshake timeout)"


def test_slow_drip_is_cut_at_the_handshake_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(agent_module, "HANDSHAKE_TIMEOUT_S", 0.5)
    drip_for = 2.0

    async def main() -> float:
        async with agents() as (ends, _):
            reader, writer = await asyncio.open_connection(ends[1].host, ends[1].port)
            closed = asyncio.ensure_future(reader.read())  # the agent's error frame, then EOF
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            payload = HEADER.pack(1000) + b" " * 1000  # a frame that would take 100 s at this pace
            for byte in payload:
                if closed.done() or loop.time() - t0 > drip_for:
                    break
                with contextlib.suppress(ConnectionError):
                    writer.write(bytes([byte]))
                await asyncio.sleep(0.1)
            took = loop.time() - t0
            writer.close()
            closed.cancel()
            await assert_serves(ends)
            return took

    took = eventloop.run(main(), "asyncio")
    assert took < 0.5 + 0.5, f"a slow drip held the handshake open for {took:.1f} s"


IDLE_CONNECTIONS = 300


def spread_source(index: int) -> str:
    """A loopback source address for the index-th connection of a flood, so that no source holds more than the
    agent's handshake quota per source (a flood from one address is bounded at accept, test_admission_control)."""
    per = agent_module.MAX_HANDSHAKES_PER_SOURCE
    return f"127.0.{2 + index // per // 250}.{1 + index // per % 250}"


def _open_idle(end: Endpoint, count: int, process: psutil.Process) -> list[socket.socket]:
    """Blocking connects from a worker thread, so the agent's event loop does nothing but accept.

    In batches that wait for the agent to accept them: connecting faster than the agent accepts overflows
    its listen backlog (100), and the kernel then delays a connect by a whole SYN retransmit (1 s).
    """
    socks: list[socket.socket] = []
    baseline = process.num_fds()
    while len(socks) < count:
        batch = min(50, count - len(socks))
        socks += [socket.create_connection((end.host, end.port), timeout=10,
                                           source_address=(spread_source(len(socks) + i), 0)) for i in range(batch)]
        deadline = time.monotonic() + 2.0
        while process.num_fds() < baseline + 2 * len(socks) - 5 and time.monotonic() < deadline:
            time.sleep(0.005)
    return socks


def _read_to_eof(sock: socket.socket) -> bytes:
    data = b""
    with contextlib.suppress(OSError):
        while chunk := sock.recv(4096):
            data += chunk
    return data


def test_hundreds_of_idle_connections_time_out_and_free_their_fds(run_async: Callable[..., Any],
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """300 connections that never say hello: the agent keeps serving, then closes each at the handshake
    timeout with an error frame, and every fd it held is released."""
    monkeypatch.setattr(agent_module, "HANDSHAKE_TIMEOUT_S", 2.0)
    me = psutil.Process()

    async def main() -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        async with agents() as (ends, _):
            await assert_serves(ends)  # warm up: lazily created fds (e.g. /proc readers) count as baseline
            baseline = me.num_fds()
            socks = await loop.run_in_executor(None, _open_idle, ends[1], IDLE_CONNECTIONS, me)
            held = me.num_fds() - baseline
            await assert_serves(ends)  # the agent still serves while 300 strangers wait
            answers = await asyncio.gather(*(loop.run_in_executor(None, _read_to_eof, s) for s in socks))
            after_timeout = me.num_fds() - baseline  # the agent closed its ends; ours are still open
            for sock in socks:
                sock.close()
            return {"held": held, "answers": answers, "after_timeout": after_timeout,
                    "after_close": me.num_fds() - baseline}

    seen = run_async(main())
    assert seen["held"] >= 2 * IDLE_CONNECTIONS - 10, seen["held"]  # both ends of each, in this process
    assert all(error_frames(a)[0]["code"] == "timeout" for a in seen["answers"])
    assert seen["after_timeout"] <= IDLE_CONNECTIONS + 10, f"agent still holds {seen['after_timeout']} fds"
    assert seen["after_close"] <= 10, f"{seen['after_close']} fds leaked"


def test_half_open_and_reset_connections_are_dropped_at_once(run_async: Callable[..., Any],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A peer that half-closes or resets mid-handshake is dropped on the spot, not at the timeout."""
    monkeypatch.setattr(agent_module, "HANDSHAKE_TIMEOUT_S", 5.0)
    hello = frame({**HELLO_OK, "nonce": "b" * 64})

    async def half_close(end: Endpoint, payload: bytes) -> tuple[bytes, float]:
        reader, writer = await asyncio.open_connection(end.host, end.port)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        writer.write(payload)
        writer.write_eof()
        answer = await asyncio.wait_for(reader.read(), 3.0)
        writer.close()
        return answer, loop.time() - t0

    async def reset(end: Endpoint, payload: bytes) -> None:
        sock = socket.create_connection((end.host, end.port))
        sock.sendall(payload)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()  # RST

    async def main() -> list[tuple[bytes, float]]:
        async with agents() as (ends, started):
            answers = [await half_close(ends[1], hello[:10]), await half_close(ends[1], hello)]
            await reset(ends[1], hello[:10])
            await reset(ends[1], hello)
            # An orchestrator that arms a receiver and then resets its control connection.
            client = AgentClient(ends[1], KEY)
            await client.connect()
            await client.send(Arm(**{**SPEC, "token": protocol.new_token()}))
            assert isinstance(await client.next_message(5), Armed)
            sock = client._writer.get_extra_info("socket") if client._writer else None
            assert sock is not None
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            client._writer.close()  # type: ignore[union-attr]
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 3
            while started[1].runs and loop.time() < deadline:
                await asyncio.sleep(0.05)
            assert not started[1].runs, "the armed run outlived its orchestrator"
            await assert_serves(ends)
            return answers

    (partial, partial_took), (full, full_took) = run_async(main())
    assert partial == b"" and partial_took < 1.0  # EOF mid-frame: closed, nothing to say
    assert [f["type"] for f in error_frames(full)] == ["hello"] and full_took < 1.0


def _connect_strangers(port: int, payloads: list[bytes | None]) -> list[socket.socket]:
    """Connect one socket per payload to an armed data port and send the payload from a thread."""
    socks = []
    for payload in payloads:
        sock = socket.create_connection(("127.0.0.2", port), timeout=5)
        socks.append(sock)
        if payload is not None:
            threading.Thread(target=_send_quietly, args=(sock, payload), daemon=True).start()
    return socks


def _send_quietly(sock: socket.socket, payload: bytes) -> None:
    with contextlib.suppress(OSError):  # the receiver drops strangers: a reset is expected
        sock.sendall(payload)


def _strangers_at_arm(payloads: list[bytes | None], found: list[socket.socket]) -> Callable[..., None]:
    """A listener that connects strangers to the data port the moment it is armed, before the sender."""

    def listener(event: str, fields: dict[str, Any]) -> None:
        if event == "run_started" and fields["role"] == "receiver":
            found.extend(_connect_strangers(fields["run"]._listener.getsockname()[1], payloads))

    return listener


def _stranger_answers(socks: list[socket.socket]) -> list[bytes]:
    answers = []
    for sock in socks:
        sock.settimeout(2)
        try:
            answers.append(sock.recv(1))
        except OSError:
            answers.append(b"")
        sock.close()
    return answers


WRONG_TOKEN = protocol.data_hello(protocol.new_token(), 0)


def test_junk_on_the_armed_data_port_does_not_disturb_the_run(run_async: Callable[..., Any]) -> None:
    payloads: list[bytes | None] = [random.Random(3).randbytes(64), b"\xff" * (1 << 20), WRONG_TOKEN,
                                    protocol.DATA_MAGIC + b"\x00" * 18 + b"\xff\xff", b"GET / HTTP/1.0\r\n\r\n" * 3]

    async def main() -> tuple[dict[str, Any], list[bytes]]:
        strangers: list[socket.socket] = []
        async with agents() as (ends, started):
            started[1].listeners.append(_strangers_at_arm(payloads, strangers))
            result = await run_pair(config(ends, duration=0.8))
        return result, _stranger_answers(strangers)

    result, answers = run_async(main())
    assert len(answers) == len(payloads) and not any(answers), "a stranger got the accept byte"
    assert result["partial"] is False, result["error"]
    assert all(s["bytes"] > 0 for s in result["streams"])


def test_silent_strangers_on_the_data_port_do_not_stall_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runs, "DATA_CONNECT_TIMEOUT_S", 1.0)  # both the sender's wait and the receiver's, scaled
    monkeypatch.setattr(contract, "SILENCE_SLACK_S", 1.0)

    async def main() -> dict[str, Any]:
        strangers: list[socket.socket] = []
        async with agents() as (ends, started):
            started[1].listeners.append(_strangers_at_arm([None, None], strangers))
            try:
                return await run_pair(config(ends, duration=0.8))
            finally:
                for sock in strangers:
                    sock.close()

    result = eventloop.run(main(), "asyncio")
    assert result["partial"] is False, result["error"]


def test_sender_hanging_up_after_its_data_hello_still_gives_a_result() -> None:
    async def main() -> Any:
        async with agents() as (ends, _):
            client = AgentClient(ends[1], KEY)
            await client.connect()
            token = protocol.new_token()
            await client.send(Arm(**{**SPEC, "token": token, "duration": 0.5, "interval": 0.25}))
            armed = await client.next_message(5)
            assert isinstance(armed, Armed), armed
            sock = socket.create_connection(("127.0.0.2", armed.port), timeout=5)
            sock.sendall(protocol.data_hello(token, 0))
            sock.close()  # gone before the accept byte: as a sender does when its connect timeout expires
            reply = await client.next_message(2.0)
            while isinstance(reply, (Interval, Heartbeat)):
                reply = await client.next_message(2.0)
            await client.close()
            await assert_serves(ends)
            return reply

    reply = eventloop.run(main(), "asyncio")
    assert isinstance(reply, Result), reply


def _raw_command(client: AgentClient, message: dict[str, Any]) -> None:
    """Write a frame as a hostile orchestrator would: UTF-8 on the wire, past the client's own checks, sealed
    with the session's key (the orchestrator holds it: what is under test is the agent's validation)."""
    body = json.dumps(message, ensure_ascii=False).encode()
    assert client._writer is not None
    client._writer.write(client.conn.frame_body(body))


TOKEN = "1" * 32
AUTHENTICATED_BAD = [
    pytest.param({"type": "arm", **SPEC, "duration": 10**400}, id="duration-too-big-for-float"),
    pytest.param({"type": "arm", **SPEC, "interval": -(10**400)}, id="interval-too-big-for-float"),
    pytest.param({"type": "arm", **SPEC, "token": "bad", "run_id": "\u00e9" * 20000}, id="long-run-id-echoed"),
    pytest.param({"type": "start", **SPEC, "token": TOKEN, "host": "a" * 300, "port": 9}, id="host-name-too-long"),
    pytest.param({"type": "start", **SPEC, "token": TOKEN, "host": "127.0.0.2", "port": 9,
                  "options": {"rate_bps": 10**400}}, id="rate-too-big-for-float"),
]


@pytest.mark.parametrize("message", AUTHENTICATED_BAD)
def test_authenticated_nonsense_gets_a_clear_error_at_once(message: dict[str, Any]) -> None:
    async def main() -> list[Any]:
        async with agents() as (ends, _):
            client = AgentClient(ends[0], KEY)
            await client.connect()
            _raw_command(client, message)
            replies = [await client.next_message(1.5)]
            if isinstance(replies[0], Started):
                replies.append(await client.next_message(1.5))  # the run's error or its (failed) result
            await client.close()
            await assert_serves(ends)
            return replies

    replies = eventloop.run(main(), "asyncio")
    last = replies[-1]
    assert isinstance(last, Message), f"no answer, only {last}"
    assert isinstance(last, Error) or (isinstance(last, Result) and last.data["error"]), last


def test_agent_memory_and_fds_stay_bounded_under_junk(key_file: str, tmp_path: Path) -> None:
    """A real agent process, 3 rounds of: 100 nearly-full frames held open, 100 junk connections, and 20
    connections announcing a 4 GiB frame and pushing 4 MiB after it (none of which may be buffered)."""
    frames_held, junk_conns, floods, rounds = 100, 100, 20, 3
    procs = [AgentProcess(bind, key_file, tmp_path) for bind in ("127.0.0.1", "127.0.0.2")]
    try:
        sender, receiver = (p.wait_ready() for p in procs)
        target = psutil.Process(receiver.pid)
        key = keys.load_key(key_file)
        ends = [sender.endpoint, receiver.endpoint]

        async def attack_round() -> int:
            """Hold ``frames_held`` frames one byte short of MAX_FRAME, junk the rest; peak RSS seen."""
            nearly_full = HEADER.pack(MAX_FRAME) + b"x" * (MAX_FRAME - 1)
            held = [await asyncio.open_connection(receiver.bind, receiver.port, local_addr=(spread_source(i), 0))
                    for i in range(frames_held)]
            for _, writer in held:
                writer.write(nearly_full)
            await asyncio.gather(*(w.drain() for _, w in held))
            rng = random.Random(len(held))
            await asyncio.gather(*(exchange(receiver.endpoint, rng.randbytes(rng.randint(8, 70000)), 3.0)
                                   for _ in range(junk_conns)))
            flood = b"\xff\xff\xff\xff" + bytes(4 << 20)
            await asyncio.gather(*(exchange(receiver.endpoint, flood, 3.0) for _ in range(floods)))
            await asyncio.sleep(0.1)
            peak = target.memory_info().rss
            for _, writer in held:
                writer.close()
            return peak

        async def main() -> dict[str, Any]:
            await run_pair(config(ends, key=key))  # warm up
            baseline_rss, baseline_fds = target.memory_info().rss, target.num_fds()
            peaks, afters = [], []
            for _ in range(rounds):
                peaks.append(await attack_round())
                await asyncio.sleep(0.3)  # the agent sees EOF on every held connection and frees it
                afters.append(target.memory_info().rss)
            fds_after = target.num_fds()
            result = await run_pair(config(ends, key=key))
            return {"rss0": baseline_rss, "fds0": baseline_fds, "peaks": peaks, "afters": afters,
                    "fds": fds_after, "result": result}

        seen = eventloop.run(main())
    finally:
        for proc in procs:
            proc.stop()
    mib = 1 << 20
    print(f"\nagent RSS: baseline {seen['rss0'] / mib:.1f} MiB, peaks "
          f"{[round(p / mib, 1) for p in seen['peaks']]}, after {[round(a / mib, 1) for a in seen['afters']]}")
    # Each held connection may cost its frame buffer plus one read chunk (and the stream reader's copy).
    per_conn = MAX_FRAME + 2 * agent_module.READ_CHUNK
    assert max(seen["peaks"]) - seen["rss0"] < frames_held * per_conn + 32 * mib
    assert seen["afters"][-1] - seen["afters"][0] < 8 * mib, "memory grows round after round"
    assert seen["fds"] - seen["fds0"] <= 5, f"{seen['fds'] - seen['fds0']} fds leaked"
    assert seen["result"]["partial"] is False and seen["result"]["bytes"] > 0
