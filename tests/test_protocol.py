"""The control protocol with no sockets: framing, every message, auth, every state transition."""

from __future__ import annotations

import json
import struct

import pytest

from lpmbench.protocol import connection as protocol
from lpmbench.protocol.connection import CLOSED, NEED_DATA, Authenticated, Connection, Failure, Message, Role, State

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
    assert failures and failures[0].code == "auth"
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
    assert isinstance(event, Failure) and event.code == "auth"


def test_client_mac_replay_to_new_agent_nonce_fails():
    client = Connection(Role.CLIENT, KEY)
    agent1 = Connection(Role.AGENT, KEY, nonce_factory=lambda: "c" * 64)
    pump(client, agent1)
    # the client's auth MAC covered agent1's nonce; a fresh agent with another nonce must refuse it
    mac = protocol.compute_mac(KEY, b"lpmbench-client", "c" * 64, client._nonce)
    agent2 = Connection(Role.AGENT, KEY, nonce_factory=lambda: "d" * 64)
    agent2.receive_data(frame({"type": "hello", "version": 1, "nonce": client._nonce, "auth": "hmac-sha256"}))
    agent2.next_event()
    agent2.receive_data(frame({"type": "auth", "mac": mac}))
    event = agent2.next_event()
    assert isinstance(event, Failure) and event.code == "auth"


def test_version_mismatch_is_explained():
    agent = Connection(Role.AGENT, KEY)
    agent.receive_data(frame({"type": "hello", "version": 99, "nonce": "a" * 64, "auth": "hmac-sha256"}))
    event = agent.next_event()
    assert isinstance(event, Failure) and event.code == "version"
    assert b"version" in agent.data_to_send()


def ready_pair():
    client, agent, _ = handshake()
    return client, agent


def deliver(dst: Connection, data: bytes):
    dst.receive_data(data)
    return dst.next_event()


SPEC = {"run_id": "r1", "token": "0" * 32, "streams": 4, "duration": 10.0, "interval": 1.0}


@pytest.mark.parametrize("kind,fields", [
    ("arm", SPEC),
    ("arm", {**SPEC, "options": {"rx_discard": True}}),
    ("start", {**SPEC, "host": "msp-b", "port": 40000}),
    ("abort", {"run_id": "r1"}),
    ("abort", {"run_id": "r1", "reason": "user"}),
    ("summary", {"run_id": "r1", "data": {"verdict": "pass"}}),
])
def test_every_client_command_round_trips(kind, fields):
    client, agent = ready_pair()
    event = deliver(agent, client.send(kind, **fields))
    assert event == Message(kind, fields)


@pytest.mark.parametrize("kind,fields", [
    ("armed", {"run_id": "r1", "port": 40000}),
    ("started", {"run_id": "r1"}),
    ("interval", {"run_id": "r1", "index": 0, "t": 1.0, "streams": [{"id": 0, "bytes": 5}]}),
    ("result", {"run_id": "r1", "role": "receiver", "data": {"streams": []}}),
    ("busy", {"run_id": "r0", "message": "busy"}),
    ("error", {"code": "bad_request", "message": "no", "run_id": "r1"}),
])
def test_every_agent_reply_round_trips(kind, fields):
    client, agent = ready_pair()
    event = deliver(client, agent.send(kind, **fields))
    assert event == Message(kind, fields)
    assert client.state is State.READY  # a run-level error does not end the session


def test_bye_closes_both_sides():
    client, agent = ready_pair()
    assert deliver(agent, client.send("bye")) == Message("bye", {})
    assert agent.state is State.CLOSED and client.state is State.CLOSED
    assert agent.next_event() is CLOSED


def test_sending_out_of_turn_is_a_programming_error():
    client = Connection(Role.CLIENT, KEY)
    with pytest.raises(protocol.ProtocolError):
        client.send("arm", **SPEC)
    _, agent = ready_pair()
    with pytest.raises(protocol.ProtocolError):
        agent.send("arm", **SPEC)


def test_command_before_auth_is_out_of_order():
    agent = Connection(Role.AGENT, KEY)
    event = deliver(agent, frame({"type": "arm", **SPEC}))
    assert isinstance(event, Failure) and event.code == "out_of_order"
    assert agent.state is State.CLOSED
    assert b'"type":"error"' in agent.data_to_send()


def test_agent_reply_from_client_is_refused():
    _, agent = ready_pair()
    event = deliver(agent, frame({"type": "armed", "run_id": "r", "port": 1}))
    assert isinstance(event, Failure) and event.code == "out_of_order"


@pytest.mark.parametrize("raw,code", [
    (struct.pack(">I", protocol.MAX_FRAME + 1), "frame_size"),
    (struct.pack(">I", 0xFFFFFFFF), "frame_size"),
    (struct.pack(">I", 0), "frame_size"),
    (frame("just a string"), "bad_message"),
    (struct.pack(">I", 3) + b"\xff\xfe\xfd", "bad_message"),
    (struct.pack(">I", 5) + b"{nope", "bad_message"),
    (frame({"no": "type"}), "bad_message"),
    (frame({"type": "launch_missiles"}), "bad_message"),
    (frame({"type": "hello", "version": "1", "nonce": "a" * 64, "auth": "none"}), "bad_message"),
    (frame({"type": "hello", "version": True, "nonce": "a" * 64, "auth": "none"}), "bad_message"),
    (frame({"type": "hello", "version": 1, "nonce": "a" * 64}), "bad_message"),
    (frame({"type": "hello", "version": 1, "nonce": "a" * 64, "auth": "none", "extra": 1}), "bad_message"),
    (frame({"type": "hello", "version": 1, "nonce": "XYZ", "auth": "hmac-sha256"}), "bad_message"),
    (struct.pack(">I", 9) + b'{"a":NaN}', "bad_message"),
    (struct.pack(">I", 17) + b'{"type":1,"type":2}'[:17], "bad_message"),
])
def test_bad_frames_get_an_error_frame_and_close(raw, code):
    agent = Connection(Role.AGENT, KEY)
    event = deliver(agent, raw)
    assert isinstance(event, Failure) and event.code == code, event
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
    assert isinstance(event, Failure) and event.code == "eof"
    assert agent.data_to_send() == b""


def test_oversized_outgoing_message_is_refused():
    _, agent = ready_pair()
    with pytest.raises(protocol.ProtocolError):
        agent.send("result", run_id="r", role="sender", data={"blob": "x" * protocol.MAX_REPLY_FRAME})
    client, _ = ready_pair()
    with pytest.raises(protocol.ProtocolError):
        client.send("summary", run_id="r", data={"blob": "x" * protocol.MAX_FRAME})


def test_data_hello_accepts_only_the_token():
    token = protocol.new_token()
    assert protocol.valid_token(token)
    raw = protocol.data_hello(token, 3)
    assert len(raw) == protocol.DATA_HELLO_SIZE
    assert protocol.parse_data_hello(raw, token) == 3
    assert protocol.parse_data_hello(raw, protocol.new_token()) is None
    assert protocol.parse_data_hello(b"GET / HTTP/1.1\r\n\r\n\r\n", token) is None
    assert not protocol.valid_token("zz" * 16)
