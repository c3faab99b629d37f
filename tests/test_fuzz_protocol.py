"""Property-based fuzzing of the sans-I/O control protocol (no sockets): framing, decoder, state machine.

Every test drives :class:`lpmbench.protocol.Connection` on both roles with hypothesis-generated input and
checks the invariants the agent relies on to never crash and never stay busy:

- ``receive_data`` / ``next_event`` never raise, and ``next_event`` only returns documented event types;
- after a ``Failure`` the connection is CLOSED and yields only ``CLOSED``;
- bad input produces an ``error`` frame (unless the peer itself sent the error, or simply hung up);
- the receive buffer never holds more than one frame (``MAX_FRAME`` + 4) plus the chunk just fed;
- ``send`` raises nothing but ``ProtocolError``.

Each test counts the cases it ran in ``CASES``; the last test checks that hypothesis really ran them (a
health-check or filter problem would otherwise quietly shrink the fuzzing). docs/robustness.md quotes the
numbers; run ``python -m pytest tests/test_fuzz_protocol.py -s`` to print them.
"""

from __future__ import annotations

import json
import random
import struct
from collections import Counter
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lpmbench.protocol import connection as protocol
from lpmbench.protocol import integrity
from lpmbench.protocol.connection import (
    AGENT_REPLIES,
    CLIENT_COMMANDS,
    CLOSED,
    NEED_DATA,
    Authenticated,
    Closed,
    Connection,
    Failure,
    NeedData,
    Role,
    State,
)
from lpmbench.protocol.framing import MAX_FRAME, ProtocolError
from lpmbench.protocol.messages import KINDS, SCHEMAS, ErrorCode, FieldSpec, Message, decode_body

KEY = bytes(range(32))
AGENT_INFO = {"hostname": "msp-b", "version": "fuzz"}
HEADER = struct.Struct(">I")
EVENT_TYPES = (Message, Authenticated, Failure, NeedData, Closed)
MAX_EVENTS_PER_FEED = 10_000  # far above any real input: a loop that never settles is a bug

# Cases per test; the totals are quoted in docs/robustness.md.
EXAMPLES = {"random_bytes": 2000, "frames_handshake": 400, "frames_ready": 400, "split_handshake": 200,
            "sequences": 200, "mutations": 20000}
SEND_EXAMPLES = 300  # send() with unchecked values: a property test, not counted in EXAMPLES
CASES: Counter[str] = Counter()
FUZZ = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# --- strategies ---------------------------------------------------------------------------------------

json_scalars = (st.none() | st.booleans() | st.integers(min_value=-(2**64), max_value=2**64)
                | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=16))
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=10)
hex64 = st.text("0123456789abcdef", min_size=64, max_size=64)
hex32 = st.text("0123456789abcdef", min_size=32, max_size=32)


AGENT_REPLY_KINDS = frozenset(cls.type for cls in AGENT_REPLIES)
CLIENT_COMMAND_KINDS = frozenset(cls.type for cls in CLIENT_COMMANDS)


def typed_value(spec: FieldSpec) -> st.SearchStrategy[Any]:
    """A value of the schema's type (what a correct peer would send)."""
    name, types = spec.name, spec.types
    if name == "nonce":
        return hex64 | st.text(max_size=70)
    if name == "token":
        return hex32
    if spec.choices is not None:
        return st.sampled_from(sorted(spec.choices))
    if types == (str,):
        return st.text(max_size=40)
    if types == (int,):
        return st.integers(min_value=-5, max_value=70000)
    if types == (int, float):
        return st.integers(0, 3600) | st.floats(0, 3600, allow_nan=False)
    if types == (dict,):
        return st.dictionaries(st.text(max_size=12), json_values, max_size=4)
    if types == (list,):
        return st.lists(json_values, max_size=4)
    return json_values


@st.composite
def message_dicts(draw: st.DrawFn, kinds: list[str] | None = None, valid: bool = False) -> dict[str, Any]:
    """Valid-looking messages: a schema's type and fields, mostly well typed, sometimes not.

    With ``valid`` every required field is present and well typed and no unknown field is added.
    """
    kind = draw(st.sampled_from(kinds) if kinds else st.sampled_from(sorted(SCHEMAS)) | st.text(max_size=12))
    message: dict[str, Any] = {"type": kind}
    for name, spec in SCHEMAS.get(kind, {}).items():
        choice = draw(st.integers(0, 9)) if not valid else 0 if spec.required else draw(st.sampled_from([0, 9]))
        if choice <= 6:
            message[name] = draw(typed_value(spec))
        elif choice <= 8:
            message[name] = draw(json_values)
        # 9: the field is left out
    if not valid and draw(st.integers(0, 9)) == 0:
        message[draw(st.text(min_size=1, max_size=12))] = draw(json_values)
    if kind == "hello" and draw(st.booleans()):
        message.update(version=protocol.PROTOCOL_VERSION, auth=draw(st.sampled_from(["hmac-sha256", "none"])))
    return message


def frame_of(message: Any) -> bytes:
    body = json.dumps(message).encode()
    return HEADER.pack(len(body)) + body


def chunks_of(data: bytes, cuts: list[int]) -> list[bytes]:
    """``data`` split at the given offsets (taken modulo its length), in order."""
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in zip(points, points[1:])]


# --- oracles --------------------------------------------------------------------------------------------

def well_typed(message: dict[str, Any]) -> bool:
    """The spec, independent of the decoder: known type, known fields of the right JSON type, none missing."""
    schema = SCHEMAS.get(message.get("type"))  # type: ignore[arg-type]
    if schema is None:
        return False
    fields = {k: v for k, v in message.items() if k != "type"}
    for name, value in fields.items():
        if name not in schema:
            return False
        spec = schema[name]
        if isinstance(value, bool) and bool not in spec.types:
            return False
        if not isinstance(value, spec.types):
            return False
        if spec.choices is not None and value not in spec.choices:
            return False
    return all(name in fields for name, spec in schema.items() if spec.required)


def typed(message: dict[str, Any]) -> Message:
    """The typed message a well-typed dict decodes to."""
    return KINDS[message["type"]].from_fields({k: v for k, v in message.items() if k != "type"})


def frames_in(data: bytes) -> list[bytes]:
    """Complete, size-valid frame bodies at the start of a byte stream (how the peer would cut it); a sealed
    frame's body keeps its tag."""
    bodies, offset = [], 0
    while offset + HEADER.size <= len(data):
        (length,) = HEADER.unpack_from(data, offset)
        if not 0 < length <= MAX_FRAME + integrity.TAG_BYTES or offset + HEADER.size + length > len(data):
            break
        bodies.append(data[offset + HEADER.size:offset + HEADER.size + length])
        offset += HEADER.size + length
    return bodies


def peer_sent_error(data: bytes) -> bool:
    for body in frames_in(data):
        for json_part in (body, body[:-integrity.TAG_BYTES]):  # plain, or sealed (its tag is not checked here)
            try:
                if decode_body(json_part).type == "error":
                    return True
            except ValueError:
                continue
    return False


class Driver:
    """Feeds a Connection and checks every invariant after every call."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.fed = bytearray()
        self.out = bytearray()
        self.events: list[Any] = []
        self.failure: Failure | None = None

    def feed(self, chunk: bytes) -> list[Any]:
        self.fed += chunk
        self.conn.receive_data(chunk)
        assert len(self.conn._buffer) <= MAX_FRAME + HEADER.size + len(chunk)
        new = self.drain()
        assert len(self.conn._buffer) < MAX_FRAME + HEADER.size, "a complete frame was left unprocessed"
        return new

    def drain(self) -> list[Any]:
        new = []
        for _ in range(MAX_EVENTS_PER_FEED):
            event = self.conn.next_event()
            self.out += self.conn.data_to_send()
            assert isinstance(event, EVENT_TYPES), event
            if isinstance(event, Failure):
                self._check_failure(event)
            if event is NEED_DATA or event is CLOSED:
                if event is CLOSED:
                    assert self.conn.state is State.CLOSED
                return new
            new.append(event)
            self.events.append(event)
        raise AssertionError("next_event never settled on NEED_DATA or CLOSED")

    def _check_failure(self, failure: Failure) -> None:
        assert self.failure is None, "a second Failure after the connection failed"
        self.failure = failure
        assert self.conn.state is State.CLOSED
        assert self.conn.next_event() is CLOSED and self.conn.next_event() is CLOSED
        self.conn.receive_data(b"more bytes after the failure")
        assert self.conn.next_event() is CLOSED and self.conn.data_to_send() == b""
        assert isinstance(failure.code, ErrorCode), failure
        if failure.code is ErrorCode.EOF or peer_sent_error(bytes(self.fed)):
            return  # the peer hung up or told us its own error: nothing to answer
        bodies = frames_in(bytes(self.out))
        assert bodies, f"no error frame for {failure}"
        sealed = self.conn._sealer is not None  # the error went out sealed when the handshake was done
        last = json.loads(bodies[-1][:-integrity.TAG_BYTES] if sealed else bodies[-1])
        assert last["type"] == "error" and last["code"] == failure.code, last

    def hang_up(self) -> None:
        self.feed(b"")
        assert self.conn.state is State.CLOSED


def ready_pair() -> tuple[Connection, Connection]:
    client = Connection(Role.CLIENT, KEY)
    agent = Connection(Role.AGENT, KEY, agent_info=AGENT_INFO)
    for _ in range(2):
        for src, dst in ((client, agent), (agent, client)):
            dst.receive_data(src.data_to_send())
            while not isinstance(dst.next_event(), (NeedData, Closed)):
                pass
    assert client.state is State.READY and agent.state is State.READY
    return client, agent


def fresh(role: Role) -> Connection:
    conn = Connection(role, KEY, agent_info=AGENT_INFO)
    conn.data_to_send()  # the client's own hello: not under test here
    return conn


# --- the fuzz tests ---------------------------------------------------------------------------------------

@settings(FUZZ, max_examples=EXAMPLES["random_bytes"])
@given(role=st.sampled_from(list(Role)), ready=st.booleans(),
       data=st.binary(max_size=2048) | st.binary(min_size=4, max_size=8).map(lambda b: b + bytes(64)),
       cuts=st.lists(st.integers(0, 4096), max_size=8), hang_up=st.booleans())
def test_random_bytes_never_crash_either_role(role: Role, ready: bool, data: bytes, cuts: list[int],
                                              hang_up: bool) -> None:
    CASES["random_bytes"] += 1
    if ready:
        client, agent = ready_pair()
        conn = client if role is Role.CLIENT else agent
    else:
        conn = fresh(role)
    driver = Driver(conn)
    for chunk in chunks_of(data, cuts):
        driver.feed(chunk)
    if hang_up:
        driver.hang_up()
    if not ready:
        assert not any(isinstance(e, (Authenticated, Message)) for e in driver.events), \
            "random bytes must never authenticate"


@settings(FUZZ, max_examples=EXAMPLES["frames_handshake"])
@given(role=st.sampled_from(list(Role)), messages=st.lists(message_dicts(), min_size=1, max_size=4),
       cuts=st.lists(st.integers(0, 4096), max_size=6))
def test_random_frames_before_auth_never_authenticate(role: Role, messages: list[dict[str, Any]],
                                                      cuts: list[int]) -> None:
    """Without the key, no sequence of well-formed or ill-formed frames gets a connection to READY."""
    CASES["frames_handshake"] += 1
    driver = Driver(fresh(role))
    for chunk in chunks_of(b"".join(frame_of(m) for m in messages), cuts):
        driver.feed(chunk)
    assert driver.conn.state is not State.READY
    assert not any(isinstance(e, (Authenticated, Message)) for e in driver.events)
    if driver.failure is None:
        # Only a valid agent-bound hello keeps the handshake going, waiting for the client's MAC.
        assert role is Role.AGENT and driver.conn.state is State.AWAIT_AUTH
        assert well_typed(messages[0]) and messages[0]["type"] == "hello"


@settings(FUZZ, max_examples=EXAMPLES["frames_ready"])
@given(role=st.sampled_from(list(Role)), messages=st.lists(message_dicts(), min_size=1, max_size=5),
       cuts=st.lists(st.integers(0, 8192), max_size=6))
def test_random_frames_after_auth_pass_only_allowed_well_typed_messages(
        role: Role, messages: list[dict[str, Any]], cuts: list[int]) -> None:
    CASES["frames_ready"] += 1
    client, agent = ready_pair()
    driver, peer = (Driver(client), agent) if role is Role.CLIENT else (Driver(agent), client)
    allowed = AGENT_REPLY_KINDS if role is Role.CLIENT else CLIENT_COMMAND_KINDS
    # sealed by the peer, which holds the key: what is under test is what an authenticated peer may send
    for chunk in chunks_of(b"".join(peer.frame_body(json.dumps(m).encode()) for m in messages), cuts):
        driver.feed(chunk)
    # The connection accepts a prefix of the messages, then either ends (bye / failure) or waits for more.
    expected: list[Message] = []
    for message in messages:
        if not (well_typed(message) and message["type"] in allowed):
            assert driver.failure is not None and driver.conn.state is State.CLOSED
            break
        expected.append(typed(message))
        if message["type"] == "bye":
            assert driver.conn.state is State.CLOSED
            break
    else:
        assert driver.failure is None and driver.conn.state is State.READY
    assert [e for e in driver.events if isinstance(e, Message)] == expected


@settings(FUZZ, max_examples=EXAMPLES["split_handshake"])
@given(cuts=st.lists(st.lists(st.integers(0, 1024), max_size=10), min_size=4, max_size=4),
       commands=st.lists(message_dicts(kinds=["arm", "start", "abort", "summary"], valid=True),
                         max_size=4))
def test_handshake_and_commands_survive_any_split(cuts: list[list[int]], commands: list[dict[str, Any]]) -> None:
    """Any fragmentation of a valid exchange (and coalesced commands) gives the same events."""
    CASES["split_handshake"] += 1
    client, agent = Driver(Connection(Role.CLIENT, KEY)), Driver(Connection(Role.AGENT, KEY, agent_info=AGENT_INFO))
    hello = client.conn.data_to_send()
    for step, (src, dst) in enumerate([(None, agent), (agent, client), (client, agent), (agent, client)]):
        data = hello if src is None else bytes(src.out)
        if src is not None:
            src.out.clear()
        for chunk in chunks_of(data, cuts[step]):
            dst.feed(chunk)
    assert client.conn.state is State.READY and agent.conn.state is State.READY
    assert client.events == [Authenticated(peer=AGENT_INFO)] and agent.events == [Authenticated()]
    for command in commands:
        client.conn.send(typed(command))
    for chunk in chunks_of(client.conn.data_to_send(), cuts[0]):
        agent.feed(chunk)
    assert [(e.type, e.to_fields()) for e in agent.events[1:]] == \
           [(m["type"], typed(m).to_fields()) for m in commands]  # strings arrive cleaned of control characters


ALL_KINDS = sorted(SCHEMAS)


@settings(FUZZ, max_examples=EXAMPLES["sequences"])
@given(steps=st.lists(st.tuples(st.sampled_from(list(Role)),
                                message_dicts(kinds=ALL_KINDS, valid=True)), max_size=12))
def test_random_message_sequences_keep_both_sides_in_step(steps: list[tuple[Role, dict[str, Any]]]) -> None:
    """Each side sends what it may and gets ProtocolError for what it may not; the peer sees exactly that."""
    CASES["sequences"] += 1
    client, agent = ready_pair()
    ends = {Role.CLIENT: (client, Driver(agent)), Role.AGENT: (agent, Driver(client))}
    for who, message in steps:
        sender, receiver = ends[who]
        kind = message["type"]
        allowed = CLIENT_COMMAND_KINDS if who is Role.CLIENT else AGENT_REPLY_KINDS
        before = sender.state
        if sender.state is not State.READY or kind not in allowed:
            with pytest.raises(ProtocolError):
                sender.send(typed(message))
            assert sender.state is before and sender.data_to_send() == b""
            continue
        sender.send(typed(message))
        wire = sender.data_to_send()
        if receiver.conn.state is State.CLOSED:
            continue  # the peer already said bye; a real socket would be closed
        assert receiver.feed(wire) == [typed(message)]
        if kind == "bye":
            assert sender.state is State.CLOSED and receiver.conn.state is State.CLOSED


@st.composite
def unchecked_replies(draw: st.DrawFn) -> Message:
    """An agent reply built straight from its dataclass, so nothing checked its values: any JSON, non-finite
    floats, values JSON cannot hold; optional fields sometimes left out."""
    cls = draw(st.sampled_from(sorted(AGENT_REPLIES, key=lambda c: c.type)))
    values = {}
    for name, spec in cls.SCHEMA.items():
        if spec.required or draw(st.booleans()):
            values[name] = draw(typed_value(spec) | json_values | st.floats() | st.sets(st.integers(), max_size=2))
    return cls(**values)


@settings(FUZZ, max_examples=SEND_EXAMPLES)
@given(message=unchecked_replies())
def test_send_raises_only_protocol_error(message: Message) -> None:
    client, agent = ready_pair()
    try:
        agent.send(message)
    except ProtocolError:
        assert agent.data_to_send() == b"" and agent.state is State.READY
        return
    assert Driver(client).feed(agent.data_to_send()) == [message]


@pytest.mark.parametrize("number", [b"1e999", b"-1e999"])
def test_decoded_numbers_are_finite(number: bytes) -> None:
    client, agent = ready_pair()
    body = b'{"type":"arm","run_id":"r","token":"' + b"0" * 32 + b'","streams":1,"duration":' + number + \
        b',"interval":1}'
    events = Driver(agent).feed(client.frame_body(body))
    assert isinstance(events[0], Failure), f"accepted a non-finite number: {events[0]}"


# --- seeded mutation fuzz of a recorded, valid session --------------------------------------------------
# Cheaper per case than hypothesis, so it reaches far more cases; the nonces are fixed so that an unmutated
# replay authenticates and mutations land in every state, not just the first frame.
CLIENT_NONCE, AGENT_NONCE = "c" * 64, "a" * 64
LITERALS = [b"true", b"false", b"null", b"-1", b"0", b"1e999", b"-1e999", b"4.5", b"[]", b"{}", b'"x"', b'""',
            b"99999999999999999999999", b"[" * 50, rb'"\ud800"', b"NaN", b"\xff", b'{"type":"bye"}']


def recorded_session() -> tuple[list[bytes], list[bytes]]:
    """Frame bodies of one complete valid session: (client -> agent, agent -> client)."""
    client = Connection(Role.CLIENT, KEY, nonce_factory=lambda: CLIENT_NONCE)
    agent = Connection(Role.AGENT, KEY, agent_info=AGENT_INFO, nonce_factory=lambda: AGENT_NONCE)
    to_agent, to_client = bytearray(), bytearray()
    for _ in range(2):
        for src, dst, record in ((client, agent, to_agent), (agent, client, to_client)):
            data = src.data_to_send()
            record += data
            dst.receive_data(data)
            while not isinstance(dst.next_event(), (NeedData, Closed)):
                pass
    spec = {"run_id": "r1", "token": "0" * 32, "streams": 4, "duration": 10.0, "interval": 1.0}
    for kind, fields in (("arm", {**spec, "options": {"rx_discard": True}}),
                         ("start", {**spec, "host": "msp-b", "port": 40000}),
                         ("abort", {"run_id": "r1", "reason": "x"}), ("summary", {"run_id": "r1", "data": {}}),
                         ("bye", {})):
        client.send(typed({"type": kind, **fields}))
    for kind, fields in (("armed", {"run_id": "r1", "port": 40000}), ("started", {"run_id": "r1"}),
                         ("interval", {"run_id": "r1", "index": 0, "t": 1.0, "streams": [{"id": 0, "bytes": 5}]}),
                         ("heartbeat", {"run_id": "r1"}), ("busy", {"run_id": "r0", "message": "busy"}),
                         ("result", {"run_id": "r1", "role": "sender", "data": {"streams": []}})):
        agent.send(typed({"type": kind, **fields}))
    to_agent += client.data_to_send()
    to_client += agent.data_to_send()
    return frames_in(bytes(to_agent)), frames_in(bytes(to_client))


def mutate(bodies: list[bytes], rng: random.Random) -> bytes:
    """One to three random edits of a session, at the frame-body level (re-framed) or on the raw bytes."""
    bodies = list(bodies)
    for _ in range(rng.randint(1, 3)):
        i = rng.randrange(len(bodies))
        body = bytearray(bodies[i])
        op = rng.randrange(6)
        if op == 0:  # flip bits
            for _ in range(rng.randint(1, 4)):
                body[rng.randrange(len(body))] ^= 1 << rng.randrange(8)
        elif op == 1:  # a value replaced by another JSON (or non-JSON) literal
            colons = [k for k, c in enumerate(body) if c == ord(":")]
            if colons:
                at = rng.choice(colons) + 1
                end = min((k for k in (body.find(b",", at), body.find(b"}", at)) if k >= 0), default=len(body))
                body[at:end] = rng.choice(LITERALS)
        elif op == 2:  # frames dropped, duplicated or reordered
            bodies.insert(rng.randrange(len(bodies) + 1), bodies.pop(i) if rng.random() < 0.5 else bytes(body))
            continue
        elif op == 3:  # a slice deleted
            a = rng.randrange(len(body))
            del body[a:a + rng.randint(1, 8)]
        elif op == 4:  # random bytes spliced in
            at = rng.randrange(len(body) + 1)
            body[at:at] = rng.randbytes(rng.randint(1, 16))
        else:  # the frame dropped
            bodies.pop(i)
            if not bodies:
                return b""
            continue
        bodies[i] = bytes(body)
    wire = bytearray(b"".join(HEADER.pack(len(b)) + b for b in bodies))
    if wire and rng.random() < 0.15:  # a raw edit that breaks the framing itself
        at = rng.randrange(len(wire))
        wire[at:at + rng.randint(1, 4)] = rng.randbytes(rng.randint(0, 4))
    return bytes(wire)


def test_mutated_sessions_never_break_the_invariants() -> None:
    rng = random.Random(20261127)  # fixed: a failure here is reproducible
    to_agent, to_client = recorded_session()
    for _ in range(EXAMPLES["mutations"]):
        CASES["mutations"] += 1
        if rng.random() < 0.5:
            conn = Connection(Role.AGENT, KEY, agent_info=AGENT_INFO, nonce_factory=lambda: AGENT_NONCE)
            wire = mutate(to_agent, rng)
        else:
            conn = Connection(Role.CLIENT, KEY, nonce_factory=lambda: CLIENT_NONCE)
            conn.data_to_send()
            wire = mutate(to_client, rng)
        driver = Driver(conn)
        for chunk in chunks_of(wire, [rng.randrange(len(wire) + 1) for _ in range(rng.randint(0, 4))]):
            driver.feed(chunk)
        if rng.random() < 0.3:
            driver.hang_up()


@pytest.mark.parametrize("role", list(Role))
def test_non_ascii_mac_is_refused_not_raised(role: Role) -> None:
    """Found by the mutation fuzz: an unauthenticated peer sends a MAC with a non-ASCII character."""
    if role is Role.AGENT:
        conn = Connection(Role.AGENT, KEY, nonce_factory=lambda: AGENT_NONCE)
        wire = frame_of({"type": "hello", "version": protocol.PROTOCOL_VERSION, "nonce": CLIENT_NONCE,
                         "auth": "hmac-sha256"})
        wire += frame_of({"type": "auth", "mac": "\u00e9" * 64})
    else:
        conn = fresh(Role.CLIENT)
        wire = frame_of({"type": "hello", "version": protocol.PROTOCOL_VERSION, "nonce": AGENT_NONCE,
                         "auth": "hmac-sha256", "mac": "\u00e9" * 64})
    driver = Driver(conn)
    driver.feed(wire)
    assert driver.failure is not None and driver.failure.code is ErrorCode.AUTH


@pytest.mark.parametrize("length", [MAX_FRAME + 1, 2**31, 2**32 - 1])
def test_oversized_length_prefix_fails_before_any_body(length: int) -> None:
    """A 4 GiB length prefix is refused from the 4 header bytes alone; nothing is buffered for it."""
    driver = Driver(fresh(Role.AGENT))
    driver.feed(HEADER.pack(length))
    assert driver.failure is not None and driver.failure.code is ErrorCode.FRAME_SIZE
    assert len(driver.conn._buffer) == 0


def test_fuzz_ran_the_cases_it_claims() -> None:
    """Runs last in this file: every fuzz test that ran did all its examples (see docs/robustness.md)."""
    ran = {name: CASES[name] for name in EXAMPLES if CASES[name]}
    if not ran:
        pytest.skip("no fuzz test ran in this session (selected with -k?)")
    print("\nfuzz cases run:", dict(ran), "total", sum(ran.values()))
    for name, count in ran.items():
        assert count >= EXAMPLES[name], f"{name}: only {count} of {EXAMPLES[name]} cases ran"
