"""The control protocol with no sockets: framing, every message, auth, every state transition."""

from __future__ import annotations

import json
import struct

import pytest

from lpmbench.protocol import connection as protocol
from lpmbench.protocol import framing, integrity, messages
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
from lpmbench.protocol.messages import (
    Abort,
    Arm,
    Armed,
    Busy,
    Bye,
    Error,
    ErrorCode,
    Heartbeat,
    Interval,
    Message,
    Result,
    Start,
    Started,
    Summary,
)

KEY = bytes(range(32))
AGENT_INFO = {"hostname": "msp-b", "version": "test"}


def frame(obj: object) -> bytes:
    body = json.dumps(obj).encode()
    return struct.pack(">I", len(body)) + body


def pump(a: Connection, b: Connection) -> list:
    """Move bytes both ways until both are quiet; return every event seen."""
    events = []
    for _ in range(10):
        moved = False
        for src, dst in ((a, b), (b, a)):
            data = src.data_to_send()
            if data:
                moved = True
                dst.receive_data(data)
                while True:
                    ev = dst.next_event()
                    if ev is NEED_DATA or ev is CLOSED:
                        break
                    events.append((dst.role, ev))
        if not moved:
            break
    return events


def handshake(client_key=KEY, agent_key=KEY, allow_insecure=False):
    client = Connection(Role.CLIENT, client_key, allow_insecure=allow_insecure)
    agent = Connection(Role.AGENT, agent_key, agent_info=AGENT_INFO)
    events = pump(client, agent)
    return client, agent, events


def test_mutual_auth_succeeds_and_client_learns_agent_facts():
    client, agent, events = handshake()
    assert client.state is State.READY and agent.state is State.READY
    assert (Role.CLIENT, Authenticated(peer=AGENT_INFO)) in events
    assert (Role.AGENT, Authenticated()) in events


@pytest.mark.parametrize("client_key,agent_key", [(b"x" * 32, KEY), (KEY, b"y" * 32)])
def test_wrong_key_is_refused_on_both_sides(client_key, agent_key):
    client, agent, events = handshake(client_key, agent_key)
    assert client.state is State.CLOSED
    failures = [ev for _, ev in events if isinstance(ev, Failure)]
    assert failures and failures[0].code is ErrorCode.AUTH
    assert agent.state is not State.READY


def test_agent_with_key_refuses_client_without_key():
    client, agent, events = handshake(client_key=None)
    assert agent.state is State.CLOSED and client.state is State.CLOSED
    assert any(isinstance(ev, Failure) and "requires a key" in ev.message for _, ev in events)


def test_insecure_agent_needs_client_consent_when_client_has_key():
    client, agent, events = handshake(agent_key=None)
    assert client.state is State.CLOSED
    client, agent, events = handshake(agent_key=None, client_key=None)
    assert client.state is State.READY and agent.state is State.READY


def test_agent_mac_is_bound_to_client_nonce_so_replay_fails():
    # Record an agent hello made for one client nonce; replay it to a client with another nonce.
    first = Connection(Role.CLIENT, KEY, nonce_factory=lambda: "a" * 64)
    agent = Connection(Role.AGENT, KEY, agent_info={})
    agent.receive_data(first.data_to_send())
    agent.next_event()
    recorded = agent.data_to_send()
    second = Connection(Role.CLIENT, KEY, nonce_factory=lambda: "b" * 64)
    second.data_to_send()
    second.receive_data(recorded)
    event = second.next_event()
    assert isinstance(event, Failure) and event.code is ErrorCode.AUTH


def test_client_mac_replay_to_new_agent_nonce_fails():
    client = Connection(Role.CLIENT, KEY)
    agent1 = Connection(Role.AGENT, KEY, nonce_factory=lambda: "c" * 64)
    pump(client, agent1)
    # the client's auth MAC covered agent1's nonce; a fresh agent with another nonce must refuse it
    mac = protocol.compute_mac(KEY, b"lpmbench-client", "c" * 64, client._nonce)
    agent2 = Connection(Role.AGENT, KEY, nonce_factory=lambda: "d" * 64)
    agent2.receive_data(frame({"type": "hello", "version": PROTOCOL_VERSION, "nonce": client._nonce,
                               "auth": "hmac-sha256"}))
    agent2.next_event()
    agent2.receive_data(frame({"type": "auth", "mac": mac}))
    event = agent2.next_event()
    assert isinstance(event, Failure) and event.code is ErrorCode.AUTH


@pytest.mark.parametrize("client_version,advice", [
    (2, "this agent speaks protocol 3, the orchestrator 2: upgrade lpmbench on the orchestrator's host"),
    (4, "this agent speaks protocol 3, the orchestrator 4: upgrade lpmbench on this agent"),
])
def test_agent_refuses_another_version_naming_the_side_to_upgrade(client_version, advice):
    agent = Connection(Role.AGENT, KEY)
    agent.receive_data(frame({"type": "hello", "version": client_version, "nonce": "a" * 64, "auth": "hmac-sha256"}))
    event = agent.next_event()
    assert event == Failure(ErrorCode.VERSION, advice)
    assert messages.decode_body(agent.data_to_send()[4:]) == Error(ErrorCode.VERSION, advice)


# What agents said before protocol 2, and what a protocol-2 agent says: the client reads the agent's version.
V1_AGENT_REFUSAL = ("protocol version 2 is not supported (this side speaks 1); run the same lpmbench version on "
                    "every host")


@pytest.mark.parametrize("agent_says,advice", [
    (V1_AGENT_REFUSAL, "agent msp-b:7520 speaks protocol 1, this orchestrator 3: upgrade the agent on msp-b:7520"),
    ("this agent speaks protocol 2, the orchestrator 3: upgrade lpmbench on this agent",
     "agent msp-b:7520 speaks protocol 2, this orchestrator 3: upgrade the agent on msp-b:7520"),
    ("this agent speaks protocol 4, the orchestrator 3: upgrade lpmbench on the orchestrator's host",
     "agent msp-b:7520 speaks protocol 4, this orchestrator 3: upgrade lpmbench on this orchestrator's host"),
    ("no versions in here", "agent msp-b:7520 refused protocol 3: no versions in here"),
])
def test_client_turns_a_version_refusal_into_advice_naming_the_host(agent_says, advice):
    client = Connection(Role.CLIENT, KEY, peer_name="msp-b:7520")
    client.data_to_send()
    event = deliver(client, frame({"type": "error", "code": "version", "message": agent_says}))
    assert event == Failure(ErrorCode.VERSION, advice)
    assert client.state is State.CLOSED


def test_client_refuses_an_agent_hello_of_another_version():
    client = Connection(Role.CLIENT, KEY, peer_name="msp-b:7520")
    client.data_to_send()
    event = deliver(client, frame({"type": "hello", "version": 1, "nonce": "a" * 64, "auth": "hmac-sha256"}))
    assert event == Failure(ErrorCode.VERSION, "agent msp-b:7520 speaks protocol 1, this orchestrator 3: "
                                               "upgrade the agent on msp-b:7520")


def ready_pair():
    client, agent, _ = handshake()
    return client, agent


def deliver(dst: Connection, data: bytes):
    dst.receive_data(data)
    return dst.next_event()


def sent(conn: Connection, message: Message) -> bytes:
    """What ``conn`` queued for ``message`` (send returns nothing: the bytes wait in the one outbox)."""
    assert conn.send(message) is None
    return conn.data_to_send()


SPEC = {"run_id": "r1", "token": "0" * 32, "streams": 4, "duration": 10.0, "interval": 1.0}


@pytest.mark.parametrize("message", [
    Arm(**SPEC),
    Arm(**SPEC, options={"rx_discard": True}),
    Start(**SPEC, host="msp-b", port=40000),
    Abort("r1"),
    Abort("r1", reason="user"),
    Summary("r1", {"verdict": "pass"}),
], ids=lambda m: m.type)
def test_every_client_command_round_trips(message):
    client, agent = ready_pair()
    event = deliver(agent, sent(client, message))
    assert event == message and type(event) is type(message)


@pytest.mark.parametrize("message", [
    Armed("r1", 40000),
    Armed("r1", 40000, probe_port=40001),
    Started("r1"),
    Interval("r1", 0, 1.0, [{"id": 0, "bytes": 5}]),
    Heartbeat("r1"),
    Result("r1", "receiver", {"streams": []}),
    Busy("r0", "busy"),
    Error(ErrorCode.BAD_REQUEST, "no", "r1"),
], ids=lambda m: m.type)
def test_every_agent_reply_round_trips(message):
    client, agent = ready_pair()
    event = deliver(client, sent(agent, message))
    assert event == message and type(event) is type(message)
    assert client.state is State.READY  # a run-level error does not end the session


def test_error_codes_travel_as_their_strings_and_decode_to_the_enum():
    wire = messages.encode_message(Error(ErrorCode.DATA_PORT, "no port"))
    assert json.loads(wire[4:]) == {"type": "error", "code": "data_port", "message": "no port"}
    decoded = messages.decode_body(wire[4:])
    assert isinstance(decoded, Error) and decoded.code is ErrorCode.DATA_PORT
    with pytest.raises(ValueError, match="field 'code' of 'error' must be one of: "):
        messages.decode_body(b'{"type":"error","code":"teapot","message":"x"}')


def test_bye_closes_both_sides():
    client, agent = ready_pair()
    assert deliver(agent, sent(client, Bye())) == Bye()
    assert agent.state is State.CLOSED and client.state is State.CLOSED
    assert agent.next_event() is CLOSED


def test_sending_out_of_turn_is_a_programming_error():
    client = Connection(Role.CLIENT, KEY)
    with pytest.raises(protocol.ProtocolError):
        client.send(Arm(**SPEC))
    _, agent = ready_pair()
    with pytest.raises(protocol.ProtocolError):
        agent.send(Arm(**SPEC))
    client, _ = ready_pair()
    with pytest.raises(protocol.ProtocolError):
        client.send(Heartbeat("r1"))  # only agents beat


def test_ill_typed_own_message_is_refused_before_it_reaches_the_outbox():
    client, _ = ready_pair()
    with pytest.raises(protocol.ProtocolError, match="field 'streams' of 'arm' must be int"):
        client.send(Arm(**{**SPEC, "streams": True}))
    with pytest.raises(protocol.ProtocolError, match="unknown field"):
        messages.build("abort", {"run_id": "r1", "why": "x"})
    assert client.data_to_send() == b"" and client.state is State.READY


def test_one_outbox_keeps_handshake_commands_and_errors_in_order():
    client = Connection(Role.CLIENT, KEY)
    agent = Connection(Role.AGENT, KEY, agent_info=AGENT_INFO)
    agent.receive_data(client.data_to_send())
    assert agent.next_event() is NEED_DATA  # the agent's hello waits in its outbox
    client.receive_data(agent.data_to_send())
    assert client.next_event() is NEED_DATA  # the client's auth waits in its outbox
    agent.receive_data(client.data_to_send())
    assert agent.next_event() == Authenticated()
    agent.send(Armed("r1", 40000))  # queued behind the agent's ready, never before it
    agent.send_error(ErrorCode.TIMEOUT, "idle session timed out")
    assert agent.state is State.CLOSED
    wire = agent.data_to_send()
    # every frame after the handshake is sealed: its JSON, then a 32-byte tag (test_integrity.py)
    bodies = [body[:-integrity.TAG_BYTES] for body in read_frames(wire)]
    assert [m.type for m in map(messages.decode_body, bodies)] == ["ready", "armed", "error"]
    assert agent.data_to_send() == b""


def read_frames(data: bytes) -> list[bytes]:
    bodies = []
    while data:
        (length,) = struct.unpack_from(">I", data)
        bodies.append(data[4:4 + length])
        data = data[4 + length:]
    return bodies


def test_heartbeat_encodes_decodes_and_is_an_agent_reply_after_auth_only():
    assert json.loads(messages.encode_message(Heartbeat("r1"))[4:]) == {"type": "heartbeat", "run_id": "r1"}
    assert messages.decode_body(b'{"type":"heartbeat","run_id":"r1"}') == Heartbeat("r1")
    with pytest.raises(ValueError, match="lacks field"):
        messages.decode_body(b'{"type":"heartbeat"}')
    # before authentication: out of order on both sides
    fresh_client = Connection(Role.CLIENT, KEY)
    fresh_client.data_to_send()
    assert deliver(fresh_client, frame({"type": "heartbeat", "run_id": "r1"})).code is ErrorCode.OUT_OF_ORDER
    # after: the client takes any number of them and stays ready; an agent never takes one
    client, agent = ready_pair()
    for _ in range(3):
        assert deliver(client, sent(agent, Heartbeat("r1"))) == Heartbeat("r1")
    assert client.state is State.READY
    event = deliver(agent, client.frame_body(b'{"type":"heartbeat","run_id":"r1"}'))  # sealed: only its type is wrong
    assert isinstance(event, Failure) and event.code is ErrorCode.OUT_OF_ORDER


# The wire schema, written out: deriving it from the dataclasses must give exactly this (a change here is a
# protocol change and needs a PROTOCOL_VERSION bump).
S, INT, N, D, L = (str,), (int,), (int, float), (dict,), (list,)
WIRE = {
    "hello": {"version": (INT, True), "nonce": (S, True), "auth": (S, True), "mac": (S, False)},
    "auth": {"mac": (S, True)},
    "ready": {"agent": (D, True)},
    "arm": {"run_id": (S, True), "token": (S, True), "streams": (INT, True), "duration": (N, True),
            "interval": (N, True), "options": (D, False)},
    "armed": {"run_id": (S, True), "port": (INT, True), "probe_port": (INT, False)},
    "start": {"run_id": (S, True), "token": (S, True), "host": (S, True), "port": (INT, True), "streams": (INT, True),
              "duration": (N, True), "interval": (N, True), "options": (D, False)},
    "started": {"run_id": (S, True)},
    "interval": {"run_id": (S, True), "index": (INT, True), "t": (N, True), "streams": (L, True),
                 "extra": (D, False)},
    "heartbeat": {"run_id": (S, True)},
    "result": {"run_id": (S, True), "role": (S, True), "data": (D, True)},
    "abort": {"run_id": (S, True), "reason": (S, False)},
    "summary": {"run_id": (S, True), "data": (D, True)},
    "busy": {"run_id": (S, True), "message": (S, True)},
    "error": {"code": (S, True), "message": (S, True), "run_id": (S, False)},
    "bye": {},
}


def test_schema_derived_from_the_dataclasses_is_the_wire_schema():
    derived = {kind: {name: (spec.types, spec.required) for name, spec in schema.items()}
               for kind, schema in messages.SCHEMAS.items()}
    assert derived == WIRE
    assert messages.SCHEMAS["error"]["code"].choices == {code.value for code in ErrorCode}
    assert all(spec.choices is None for kind, schema in messages.SCHEMAS.items() for name, spec in schema.items()
               if (kind, name) != ("error", "code"))
    assert {cls.type for cls in protocol.CLIENT_COMMANDS} == {"arm", "start", "abort", "summary", "bye"}
    assert {cls.type for cls in protocol.AGENT_REPLIES} == {"armed", "started", "interval", "heartbeat", "result",
                                                             "busy", "error", "bye"}


def test_command_before_auth_is_out_of_order():
    agent = Connection(Role.AGENT, KEY)
    event = deliver(agent, frame({"type": "arm", **SPEC}))
    assert isinstance(event, Failure) and event.code is ErrorCode.OUT_OF_ORDER
    assert agent.state is State.CLOSED
    assert b'"type":"error"' in agent.data_to_send()


def test_agent_reply_from_client_is_refused():
    client, agent = ready_pair()
    event = deliver(agent, client.frame_body(json.dumps({"type": "armed", "run_id": "r", "port": 1}).encode()))
    assert isinstance(event, Failure) and event.code is ErrorCode.OUT_OF_ORDER


@pytest.mark.parametrize("raw,code", [
    (struct.pack(">I", framing.MAX_FRAME + 1), ErrorCode.FRAME_SIZE),
    (struct.pack(">I", 0xFFFFFFFF), ErrorCode.FRAME_SIZE),
    (struct.pack(">I", 0), ErrorCode.FRAME_SIZE),
    (frame("just a string"), ErrorCode.BAD_MESSAGE),
    (struct.pack(">I", 3) + b"\xff\xfe\xfd", ErrorCode.BAD_MESSAGE),
    (struct.pack(">I", 5) + b"{nope", ErrorCode.BAD_MESSAGE),
    (frame({"no": "type"}), ErrorCode.BAD_MESSAGE),
    (frame({"type": "launch_missiles"}), ErrorCode.BAD_MESSAGE),
    (frame({"type": "hello", "version": "1", "nonce": "a" * 64, "auth": "none"}), ErrorCode.BAD_MESSAGE),
    (frame({"type": "hello", "version": True, "nonce": "a" * 64, "auth": "none"}), ErrorCode.BAD_MESSAGE),
    (frame({"type": "hello", "version": PROTOCOL_VERSION, "nonce": "a" * 64}), ErrorCode.BAD_MESSAGE),
    (frame({"type": "hello", "version": PROTOCOL_VERSION, "nonce": "a" * 64, "auth": "none", "extra": 1}),
     ErrorCode.BAD_MESSAGE),
    (frame({"type": "hello", "version": PROTOCOL_VERSION, "nonce": "XYZ", "auth": "hmac-sha256"}),
     ErrorCode.BAD_MESSAGE),
    (frame({"type": "hello", "version": 1.5, "nonce": "a" * 64, "auth": "none"}), ErrorCode.BAD_MESSAGE),
    (struct.pack(">I", 9) + b'{"a":NaN}', ErrorCode.BAD_MESSAGE),
    (struct.pack(">I", 17) + b'{"type":1,"type":2}'[:17], ErrorCode.BAD_MESSAGE),
])
def test_bad_frames_get_an_error_frame_and_close(raw, code):
    agent = Connection(Role.AGENT, KEY)
    event = deliver(agent, raw)
    assert isinstance(event, Failure) and event.code is code, event
    assert agent.state is State.CLOSED
    out = agent.data_to_send()
    assert out and json.loads(out[4:])["type"] == "error"
    assert agent.next_event() is CLOSED


def test_deeply_nested_json_is_refused_not_crashing():
    body = b"[" * 30000 + b"]" * 30000
    agent = Connection(Role.AGENT, KEY)
    event = deliver(agent, struct.pack(">I", len(body)) + body)
    assert isinstance(event, Failure)


def test_frames_split_across_reads_and_coalesced():
    client = Connection(Role.CLIENT, KEY)
    agent = Connection(Role.AGENT, KEY)
    hello = client.data_to_send()
    for byte in hello[:-1]:
        agent.receive_data(bytes([byte]))
        assert agent.next_event() is NEED_DATA
    agent.receive_data(hello[-1:])
    assert agent.next_event() is NEED_DATA  # hello handled internally; waits for auth
    assert agent.state is State.AWAIT_AUTH


def test_eof_is_a_failure_without_error_frame():
    agent = Connection(Role.AGENT, KEY)
    agent.receive_data(b"")
    event = agent.next_event()
    assert isinstance(event, Failure) and event.code is ErrorCode.EOF
    assert agent.data_to_send() == b""


def test_oversized_outgoing_message_is_refused():
    _, agent = ready_pair()
    with pytest.raises(protocol.ProtocolError):
        agent.send(Result("r", "sender", {"blob": "x" * framing.MAX_REPLY_FRAME}))
    client, _ = ready_pair()
    with pytest.raises(protocol.ProtocolError):
        client.send(Summary("r", {"blob": "x" * framing.MAX_FRAME}))
    assert agent.data_to_send() == b"" and client.data_to_send() == b""


def test_data_hello_accepts_only_the_token():
    token = protocol.new_token()
    assert protocol.valid_token(token)
    raw = protocol.data_hello(token, 3)
    assert len(raw) == protocol.DATA_HELLO_SIZE
    assert protocol.parse_data_hello(raw, token) == 3
    assert protocol.parse_data_hello(raw, protocol.new_token()) is None
    assert protocol.parse_data_hello(b"GET / HTTP/1.1\r\n\r\n\r\n", token) is None
    assert not protocol.valid_token("zz" * 16)
