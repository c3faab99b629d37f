"""Integrity after the handshake, without sockets: every frame after it is sealed, and a frame that was
rewritten, replayed, reordered, dropped, reflected or spliced in from another session ends the session.

The attacker here holds no key: it can only move, repeat, drop or edit bytes it saw on the wire.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import struct

import pytest

from lpmbench.protocol import integrity
from lpmbench.protocol.connection import (
    CLOSED,
    NEED_DATA,
    PROTOCOL_VERSION,
    Authenticated,
    Connection,
    Failure,
    Role,
    State,
)
from lpmbench.protocol.framing import MAX_FRAME, MAX_REPLY_FRAME
from lpmbench.protocol.messages import (
    Arm,
    Armed,
    Error,
    ErrorCode,
    Heartbeat,
    Interval,
    Message,
    Result,
    Started,
    decode_body,
)

KEY = bytes(range(32))
HEADER = struct.Struct(">I")
AGENT_INFO = {"hostname": "msp-b", "version": "test"}
SPEC = {"run_id": "r1", "token": "0" * 32, "streams": 1, "duration": 1.0, "interval": 1.0}
RESULT = Result("r1", "receiver", {"streams": [{"id": 0, "bytes": 1000}], "elapsed_s": 1.0})


def split_frames(wire: bytes) -> list[bytes]:
    """Whole frames (header included) as they crossed the wire."""
    frames, offset = [], 0
    while offset < len(wire):
        (length,) = HEADER.unpack_from(wire, offset)
        frames.append(wire[offset:offset + HEADER.size + length])
        offset += HEADER.size + length
    assert offset == len(wire)
    return frames


def pump(src: Connection, dst: Connection) -> list[object]:
    dst.receive_data(src.data_to_send())
    return drain(dst)


def drain(conn: Connection) -> list[object]:
    events = []
    while True:
        event = conn.next_event()
        if event is NEED_DATA or event is CLOSED:
            return events
        events.append(event)
        if isinstance(event, Failure):
            return events


def handshake(key: bytes | None = KEY, **client_kw: object) -> tuple[Connection, Connection]:
    client = Connection(Role.CLIENT, key, peer_name="msp-b:7520", **client_kw)  # type: ignore[arg-type]
    agent = Connection(Role.AGENT, key, agent_info=AGENT_INFO)
    pump(client, agent)  # hello
    pump(agent, client)  # hello + mac
    assert pump(client, agent) == [Authenticated()]  # auth
    assert pump(agent, client) == [Authenticated(peer=AGENT_INFO)]  # ready
    return client, agent


def replies(agent: Connection, *messages: Message) -> list[bytes]:
    """The frames the agent sends for ``messages``, one per message."""
    for message in messages:
        agent.send(message)
    return split_frames(agent.data_to_send())


def feed(conn: Connection, *frames: bytes) -> list[object]:
    conn.receive_data(b"".join(frames))
    return drain(conn)


def altered(seq: int, host: str = "msp-b:7520") -> Failure:
    return Failure(ErrorCode.INTEGRITY, f"the control connection to {host} was altered in transit (bad MAC on frame "
                                   f"{seq}): something between the orchestrator and the agent rewrites traffic")


# --- the happy path -----------------------------------------------------------------------------------

def test_every_frame_after_the_handshake_is_sealed_in_both_directions() -> None:
    client = Connection(Role.CLIENT, KEY)
    agent = Connection(Role.AGENT, KEY, agent_info=AGENT_INFO)
    hello = client.data_to_send()
    agent.receive_data(hello)
    drain(agent)
    agent_hello = agent.data_to_send()
    client.receive_data(agent_hello)
    drain(client)
    auth = client.data_to_send()
    for plain in (hello, agent_hello, auth):  # the handshake stays plain JSON: a mixed pair can read it
        assert json.loads(plain[HEADER.size:])["type"] in ("hello", "auth")
    agent.receive_data(auth)
    assert drain(agent) == [Authenticated()]
    ready = agent.data_to_send()
    body, tag = ready[HEADER.size:-integrity.TAG_BYTES], ready[-integrity.TAG_BYTES:]
    assert HEADER.unpack_from(ready)[0] == len(body) + integrity.TAG_BYTES
    assert decode_body(body).type == "ready" and len(tag) == 32
    client.receive_data(ready)
    assert drain(client) == [Authenticated(peer=AGENT_INFO)]
    client.send(Arm(**SPEC))
    command = client.data_to_send()
    assert decode_body(command[HEADER.size:-integrity.TAG_BYTES]) == Arm(**SPEC)
    assert feed(agent, command) == [Arm(**SPEC)]


def test_a_whole_run_round_trips_sealed() -> None:
    client, agent = handshake()
    sent = [Armed("r1", 40000), Interval("r1", 0, 1.0, [{"id": 0, "bytes": 1}]), Heartbeat("r1"), RESULT]
    assert feed(client, *replies(agent, *sent)) == sent
    assert client.state is State.READY and agent.state is State.READY


def test_without_a_key_nothing_is_sealed() -> None:
    client, agent = handshake(key=None)
    (frame,) = replies(agent, Started("r1"))
    assert decode_body(frame[HEADER.size:]) == Started("r1")  # plain JSON, no tag
    assert feed(client, frame) == [Started("r1")]


# --- what a man in the middle without the key can do, and how it ends ------------------------------------

def rewrite_json(frame: bytes, edit) -> bytes:  # type: ignore[no-untyped-def]
    """The frame with its JSON edited and re-framed, the original tag kept (all a keyless relay can do)."""
    body, tag = frame[HEADER.size:-integrity.TAG_BYTES], frame[-integrity.TAG_BYTES:]
    obj = json.loads(body)
    edit(obj)
    new_body = json.dumps(obj, separators=(",", ":")).encode() + tag
    return HEADER.pack(len(new_body)) + new_body


def test_a_rewritten_report_ends_the_session_naming_the_frame() -> None:
    client, agent = handshake()
    armed, result = replies(agent, Armed("r1", 40000), RESULT)
    forged = rewrite_json(result, lambda o: o["data"]["streams"][0].update(bytes=10**12))
    events = feed(client, armed, forged)
    assert events == [Armed("r1", 40000), altered(3)]  # ready is the agent's frame 1, armed 2, the result 3
    assert client.state is State.CLOSED and client.next_event() is CLOSED
    # the client tells the agent why, in a sealed error frame: the agent ends the session with that reason
    assert feed(agent, client.data_to_send()) == [altered(3)]
    assert agent.state is State.CLOSED


def test_frame_numbers_count_from_the_first_frame_after_the_handshake() -> None:
    """ready is the agent's frame 1: the first report after it is frame 2 (what the error quotes)."""
    client, agent = handshake()
    (armed,) = replies(agent, Armed("r1", 40000))
    assert feed(client, rewrite_json(armed, lambda o: o.update(port=1))) == [altered(2)]


@pytest.mark.parametrize("where", ["first body byte", "last body byte", "first tag byte", "last tag byte"])
def test_any_flipped_bit_is_caught(where: str) -> None:
    client, agent = handshake()
    (frame,) = replies(agent, RESULT)
    at = {"first body byte": HEADER.size, "last body byte": len(frame) - integrity.TAG_BYTES - 1,
          "first tag byte": len(frame) - integrity.TAG_BYTES, "last tag byte": len(frame) - 1}[where]
    flipped = bytearray(frame)
    flipped[at] ^= 0x01
    (event,) = feed(client, bytes(flipped))
    assert isinstance(event, Failure) and "altered in transit (bad MAC on frame 2)" in event.message


def test_a_stripped_tag_is_caught() -> None:
    """A relay that sends the plain JSON of a report (as protocol 2 did) gets the session ended."""
    client, agent = handshake()
    (frame,) = replies(agent, RESULT)
    body = frame[HEADER.size:-integrity.TAG_BYTES]
    assert feed(client, HEADER.pack(len(body)) + body) == [altered(2)]


def test_a_replayed_frame_is_caught() -> None:
    """A recorded interval report re-injected later: its tag was made for its old number."""
    client, agent = handshake()
    first, second = replies(agent, Interval("r1", 0, 1.0, []), Interval("r1", 1, 2.0, []))
    assert feed(client, first, second, first) == [Interval("r1", 0, 1.0, []), Interval("r1", 1, 2.0, []),
                                                  altered(4)]


def test_reordered_frames_are_caught() -> None:
    client, agent = handshake()
    first, second = replies(agent, Interval("r1", 0, 1.0, []), RESULT)
    assert feed(client, second, first) == [altered(2)]


def test_a_dropped_frame_is_caught_at_the_next_one() -> None:
    """Dropping the error that says a run failed would leave only the (good-looking) frames after it."""
    client, agent = handshake()
    _error, result = replies(agent, Error(ErrorCode.RUN_FAILED, "sender lost its streams", "r1"), RESULT)
    assert feed(client, result) == [altered(2)]


def test_a_frame_reflected_back_to_its_sender_is_caught() -> None:
    """Separate keys per direction: the client's own sealed command sent back to it is no agent reply."""
    client, agent = handshake()
    client.send(Arm(**SPEC))
    assert feed(client, client.data_to_send())[0] == altered(2)


def test_a_frame_spliced_in_from_another_session_is_caught() -> None:
    """Two sessions under the same key (two agents, or the same one twice): a frame of one, at the very
    same position, is refused by the other, since each session's keys come from its own nonces."""
    client1, agent1 = handshake()
    client2, agent2 = handshake()
    (from_session1,) = replies(agent1, RESULT)
    (from_session2,) = replies(agent2, Result("r1", "receiver", {"streams": [], "elapsed_s": 1.0}))
    assert from_session1 != from_session2
    assert feed(client2, from_session1) == [altered(2)]
    assert feed(client1, from_session1) == [RESULT]  # the frame itself was fine, in its own session


def test_a_forged_command_to_the_agent_is_caught() -> None:
    client, agent = handshake()
    client.send(Arm(**SPEC))
    forged = rewrite_json(client.data_to_send(), lambda o: o.update(streams=256))
    (event,) = feed(agent, forged)
    assert event == Failure(ErrorCode.INTEGRITY, "the control connection from the orchestrator was altered in transit "
                                            "(bad MAC on frame 1): something between the orchestrator and this "
                                            "agent rewrites traffic")
    assert agent.state is State.CLOSED


def test_a_plain_error_from_an_agent_that_refused_the_client_still_reads() -> None:
    """An agent that gives up before sealing (its handshake timeout) answers the client's MAC with a plain
    error; the client shows it as such, not as tampering."""
    client = Connection(Role.CLIENT, KEY, peer_name="msp-b:7520")
    agent = Connection(Role.AGENT, KEY)
    pump(client, agent)
    pump(agent, client)
    client.data_to_send()  # the auth frame, which the agent never reads
    agent.send_error(ErrorCode.TIMEOUT, "handshake timed out")
    assert feed(client, agent.data_to_send()) == [Failure(ErrorCode.TIMEOUT, "handshake timed out")]


def test_a_plain_ready_in_place_of_the_sealed_one_is_caught() -> None:
    """The agent's facts (hostname, OS) come in the first sealed frame: a relay cannot rewrite them."""
    client = Connection(Role.CLIENT, KEY, peer_name="msp-b:7520")
    agent = Connection(Role.AGENT, KEY, agent_info=AGENT_INFO)
    pump(client, agent)
    pump(agent, client)
    pump(client, agent)
    ready = agent.data_to_send()
    forged = rewrite_json(ready, lambda o: o["agent"].update(hostname="elsewhere"))
    assert feed(client, forged) == [altered(1)]
    assert client.state is State.CLOSED


# --- size bounds --------------------------------------------------------------------------------------

@pytest.mark.parametrize("role,limit", [(Role.CLIENT, MAX_REPLY_FRAME), (Role.AGENT, MAX_FRAME)])
def test_a_sealed_frame_may_carry_a_full_body_and_not_one_byte_more(role: Role, limit: int) -> None:
    client, agent = handshake()
    receiver, sender = (client, agent) if role is Role.CLIENT else (agent, client)
    kind = b'{"type":"result","run_id":"r1","role":"receiver","data":{"pad":"' if role is Role.CLIENT else \
        b'{"type":"summary","run_id":"r1","data":{"pad":"'
    full = kind + b"x" * (limit - len(kind) - 3) + b'"}}'
    assert len(full) == limit
    assert [e.type for e in feed(receiver, sender.frame_body(full))] == ["result" if role is Role.CLIENT
                                                                          else "summary"]
    too_big = HEADER.pack(limit + integrity.TAG_BYTES + 1)
    (event,) = feed(receiver, too_big)
    assert isinstance(event, Failure) and event.code is ErrorCode.FRAME_SIZE
    assert len(receiver._buffer) == 0


# --- the session keys ---------------------------------------------------------------------------------

def test_session_keys_are_hkdf_sha256_of_the_key_over_both_nonces() -> None:
    """An independent RFC 5869 computation (extract, then expand one block) gives the same keys."""
    nc, na = "c" * 64, "a" * 64
    keys = integrity.derive_session_keys(KEY, nc, na)
    prk = hmac.new(nc.encode() + b"\0" + na.encode(), KEY, hashlib.sha256).digest()
    for direction, got in ((b"client->agent", keys.client_to_agent), (b"agent->client", keys.agent_to_client)):
        okm = hmac.new(prk, b"lpmbench-session-v3 " + direction + bytes([1]), hashlib.sha256).digest()
        assert got == okm
    assert keys.client_to_agent != keys.agent_to_client
    assert integrity.derive_session_keys(KEY, nc, "b" * 64) != keys
    assert integrity.derive_session_keys(b"other key", nc, na) != keys


def test_protocol_version_is_3() -> None:
    """Sealing changed every frame after the handshake: protocol 3 (see test_integrity_versions)."""
    assert PROTOCOL_VERSION == 3
