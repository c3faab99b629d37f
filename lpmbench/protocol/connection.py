"""Sans-I/O control protocol between the orchestrator (``pair``) and an agent.

Bytes go in with :meth:`Connection.receive_data`, events come out of :meth:`Connection.next_event`, and
:meth:`Connection.send` turns a message into bytes. Bytes the connection must send on its own (the
authentication handshake, error frames) wait in :meth:`Connection.data_to_send`. Nothing here touches a
socket, a clock or an event loop, so every state transition is tested without a network (as h11 does).

Framing: a 4-byte big-endian length, then that many bytes of UTF-8 JSON holding one object with a string
``type``. Frames over :data:`MAX_FRAME` bytes, bad JSON, unknown message types, unknown or ill-typed fields
and messages out of order end the connection with an ``error`` frame.

Authentication is a mutual HMAC-SHA256 challenge-response over a pre-shared key:

1. client -> agent ``hello`` {version, nonce Nc, auth}
2. agent -> client ``hello`` {version, nonce Na, auth, mac = HMAC(K, "lpmbench-agent" | Nc | Na)}
3. client -> agent ``auth`` {mac = HMAC(K, "lpmbench-client" | Na | Nc)}
4. agent -> client ``ready`` {agent: facts about the agent}

Each side proves the key over the other side's fresh nonce, so a recorded exchange cannot be replayed, and
the role labels keep one side's answer from being reflected as the other's. MACs are compared in constant
time (``hmac.compare_digest``).
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import json
import math
import secrets
import struct
from dataclasses import dataclass, field
from typing import Any, Callable, Union

PROTOCOL_VERSION = 1
MAX_FRAME = 64 * 1024  # frames an agent accepts: commands are small, and an agent must bound what strangers send
# Frames an orchestrator accepts from an authenticated agent: interval and result reports grow with the streams
# (a TCP_INFO summary each), so 256 streams must fit.
MAX_REPLY_FRAME = 1024 * 1024
NONCE_BYTES = 32
TOKEN_HEX_CHARS = 32
AUTH_HMAC = "hmac-sha256"
AUTH_NONE = "none"
_HEADER = struct.Struct(">I")

# Field schema: name -> (accepted python types, required). ``float`` fields also take ints; ints never
# take bools (JSON true is not a stream count).
_Str, _Int, _Num, _Dict, _List, _Bool = (str,), (int,), (int, float), (dict,), (list,), (bool,)
SCHEMAS: dict[str, dict[str, tuple[tuple[type, ...], bool]]] = {
    "hello": {"version": (_Int, True), "nonce": (_Str, True), "auth": (_Str, True), "mac": (_Str, False)},
    "auth": {"mac": (_Str, True)},
    "ready": {"agent": (_Dict, True)},
    "arm": {
        "run_id": (_Str, True), "token": (_Str, True), "streams": (_Int, True), "duration": (_Num, True),
        "interval": (_Num, True), "options": (_Dict, False),
    },
    "armed": {"run_id": (_Str, True), "port": (_Int, True), "probe_port": (_Int, False)},
    "start": {
        "run_id": (_Str, True), "token": (_Str, True), "host": (_Str, True), "port": (_Int, True),
        "streams": (_Int, True), "duration": (_Num, True), "interval": (_Num, True),
        "options": (_Dict, False),
    },
    "started": {"run_id": (_Str, True)},
    "interval": {"run_id": (_Str, True), "index": (_Int, True), "t": (_Num, True), "streams": (_List, True),
                 "extra": (_Dict, False)},
    "result": {"run_id": (_Str, True), "role": (_Str, True), "data": (_Dict, True)},
    "abort": {"run_id": (_Str, True), "reason": (_Str, False)},
    # After a run the orchestrator tells both agents what it concluded, so their metrics carry the verdict.
    "summary": {"run_id": (_Str, True), "data": (_Dict, True)},
    "busy": {"run_id": (_Str, True), "message": (_Str, True)},
    "error": {"code": (_Str, True), "message": (_Str, True), "run_id": (_Str, False)},
    "bye": {},
}

# Which messages each side may send once authenticated.
CLIENT_COMMANDS = frozenset({"arm", "start", "abort", "summary", "bye"})
AGENT_REPLIES = frozenset({"armed", "started", "interval", "result", "busy", "error", "bye"})


class Role(enum.Enum):
    CLIENT = "client"
    AGENT = "agent"


class State(enum.Enum):
    HANDSHAKE = "handshake"
    AWAIT_AUTH = "await_auth"  # agent: sent its hello, waits for the client's MAC
    AWAIT_READY = "await_ready"  # client: sent its MAC, waits for ready
    READY = "ready"
    CLOSED = "closed"


class ProtocolError(Exception):
    """Raised by :meth:`Connection.send` when the caller breaks the protocol (a bug, not peer input)."""


@dataclass(frozen=True)
class Message:
    type: str
    fields: dict[str, Any]

    def __getitem__(self, name: str) -> Any:
        return self.fields[name]

    def get(self, name: str, default: Any = None) -> Any:
        return self.fields.get(name, default)


@dataclass(frozen=True)
class Authenticated:
    """The handshake finished; ``peer`` holds the agent's facts (client side) or is empty (agent side)."""

    peer: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Failure:
    """The connection failed; an error frame (if any) waits in data_to_send(). Close after sending it."""

    code: str
    message: str


class NeedData:
    """More bytes are needed before the next event."""

    def __repr__(self) -> str:
        return "NEED_DATA"


class Closed:
    """The peer said bye, or the connection failed earlier."""

    def __repr__(self) -> str:
        return "CLOSED"


NEED_DATA = NeedData()
CLOSED = Closed()
Event = Union[Message, Authenticated, Failure, NeedData, Closed]


def encode_frame(message: dict[str, Any], limit: int = MAX_FRAME) -> bytes:
    body = json.dumps(message, separators=(",", ":"), allow_nan=False).encode()
    if len(body) > limit:
        raise ProtocolError(f"frame of {len(body)} bytes exceeds the {limit}-byte limit")
    return _HEADER.pack(len(body)) + body


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999 parses as inf: no field of ours means infinity
        raise ValueError(f"number {text[:20]} is out of range")
    return value


def _is_hex(text: str, length: int) -> bool:
    return len(text) == length and all(c in "0123456789abcdef" for c in text)


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def decode_body(body: bytes) -> Message:
    """Parse and type-check one frame body. Raises ValueError with a message fit for the peer."""
    try:
        obj = json.loads(body.decode("utf-8"), parse_constant=_reject_constant, parse_float=_finite_float,
                         object_pairs_hook=_no_duplicate_keys)
    except UnicodeDecodeError as exc:
        raise ValueError("frame is not UTF-8") from exc
    except RecursionError as exc:
        raise ValueError("frame JSON is nested too deeply") from exc
    except json.JSONDecodeError as exc:
        raise ValueError(f"frame is not JSON: {exc.msg} at position {exc.pos}") from exc
    if not isinstance(obj, dict):
        raise ValueError("frame must hold a JSON object")
    kind = obj.pop("type", None)
    if not isinstance(kind, str):
        raise ValueError("message has no string 'type'")
    schema = SCHEMAS.get(kind)
    if schema is None:
        raise ValueError(f"unknown message type {kind[:40]!r}")
    for name, value in obj.items():
        if name not in schema:
            raise ValueError(f"unknown field {name[:40]!r} in {kind!r}")
        accepted, _ = schema[name]
        if isinstance(value, bool) and bool not in accepted or not isinstance(value, accepted):
            raise ValueError(f"field {name!r} of {kind!r} must be {'/'.join(t.__name__ for t in accepted)}")
    missing = [name for name, (_, required) in schema.items() if required and name not in obj]
    if missing:
        raise ValueError(f"{kind!r} lacks field(s) {', '.join(missing)}")
    return Message(kind, obj)


def compute_mac(key: bytes, label: bytes, first_nonce: str, second_nonce: str) -> str:
    data = label + b"\0" + first_nonce.encode() + b"\0" + second_nonce.encode()
    return hmac.new(key, data, hashlib.sha256).hexdigest()


class Connection:
    """One control connection, from the point of view of ``role``.

    ``key`` is the pre-shared key, or None for an agent started with ``--insecure`` (and a client that
    accepts such an agent). ``agent_info`` is what an agent tells an authenticated client about itself.
    """

    def __init__(self, role: Role, key: bytes | None, *, agent_info: dict[str, Any] | None = None,
                 allow_insecure: bool = False, nonce_factory: Callable[[], str] | None = None) -> None:
        self.role = role
        self.state = State.HANDSHAKE
        self._key = key
        self._agent_info = agent_info or {}
        self._allow_insecure = allow_insecure
        self._nonce = (nonce_factory or (lambda: secrets.token_hex(NONCE_BYTES)))()
        self._peer_nonce = ""
        self._buffer = bytearray()
        self._outbox = bytearray()
        self._pending: Failure | None = None
        # Agents take small commands and send larger reports; each side refuses what the other may not send.
        self._inbound_limit = MAX_FRAME if role is Role.AGENT else MAX_REPLY_FRAME
        self._outbound_limit = MAX_REPLY_FRAME if role is Role.AGENT else MAX_FRAME
        if role is Role.CLIENT:
            self._outbox += encode_frame({"type": "hello", "version": PROTOCOL_VERSION, "nonce": self._nonce,
                                          "auth": self._auth_scheme})

    @property
    def _auth_scheme(self) -> str:
        return AUTH_HMAC if self._key is not None else AUTH_NONE

    def receive_data(self, data: bytes) -> None:
        """Feed bytes from the peer. An empty ``data`` means the peer closed its side."""
        if self.state is State.CLOSED:
            return
        if not data:
            self._pending = self._fail("eof", "connection closed by peer", send_error=False)
            return
        self._buffer += data

    def data_to_send(self) -> bytes:
        """Bytes the connection produced on its own (handshake replies, error frames)."""
        out = bytes(self._outbox)
        self._outbox.clear()
        return out

    def send(self, kind: str, **fields: Any) -> bytes:
        """Encode one message from this side. Sending out of turn is a programming error."""
        allowed = CLIENT_COMMANDS if self.role is Role.CLIENT else AGENT_REPLIES
        if self.state is not State.READY or kind not in allowed:
            raise ProtocolError(f"{self.role.value} cannot send {kind!r} in state {self.state.value}")
        message = {"type": kind, **fields}
        try:
            frame = encode_frame(message, self._outbound_limit)
            decode_body(frame[_HEADER.size:])  # our own output obeys the schema too
        except (ValueError, TypeError) as exc:
            raise ProtocolError(f"cannot send {kind!r}: {exc}") from exc
        if kind == "bye":
            self.state = State.CLOSED
        return frame

    def send_error(self, code: str, message: str) -> bytes:
        """An error frame that ends the connection (used by the I/O layer, e.g. on timeouts)."""
        self.state = State.CLOSED
        return encode_frame({"type": "error", "code": code, "message": message})

    def next_event(self) -> Event:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            return pending
        if self.state is State.CLOSED:
            return CLOSED
        if len(self._buffer) < _HEADER.size:
            return NEED_DATA
        (length,) = _HEADER.unpack_from(self._buffer)
        if length == 0 or length > self._inbound_limit:
            return self._fail("frame_size", f"frame length {length} is outside 1..{self._inbound_limit} bytes")
        if len(self._buffer) < _HEADER.size + length:
            return NEED_DATA
        body = bytes(self._buffer[_HEADER.size:_HEADER.size + length])
        del self._buffer[:_HEADER.size + length]
        try:
            message = decode_body(body)
        except ValueError as exc:
            return self._fail("bad_message", str(exc))
        return self._handle(message)

    def _fail(self, code: str, message: str, send_error: bool = True) -> Failure:
        if send_error and self.state is not State.CLOSED:
            self._outbox += encode_frame({"type": "error", "code": code, "message": message})
        self.state = State.CLOSED
        self._buffer.clear()
        return Failure(code, message)

    def _handle(self, message: Message) -> Event:
        if message.type == "error" and self.state is not State.READY:
            self.state = State.CLOSED
            return Failure(message["code"], message["message"])
        handler = {
            (Role.AGENT, State.HANDSHAKE): self._agent_got_hello,
            (Role.AGENT, State.AWAIT_AUTH): self._agent_got_auth,
            (Role.CLIENT, State.HANDSHAKE): self._client_got_hello,
            (Role.CLIENT, State.AWAIT_READY): self._client_got_ready,
        }.get((self.role, self.state), self._ready_message)
        return handler(message)

    def _expect(self, message: Message, kind: str) -> Failure | None:
        if message.type != kind:
            return self._fail("out_of_order",
                              f"expected {kind!r} in state {self.state.value}, got {message.type!r}")
        return None

    def _check_hello(self, message: Message) -> Failure | None:
        if message["version"] != PROTOCOL_VERSION:
            return self._fail(
                "version", f"protocol version {message['version']} is not supported (this side speaks "
                           f"{PROTOCOL_VERSION}); run the same lpmbench version on every host")
        nonce = message["nonce"]
        if not _is_hex(nonce, 2 * NONCE_BYTES):
            return self._fail("bad_message", "nonce must be 64 lower-case hex digits")
        self._peer_nonce = nonce
        return None

    def _agent_got_hello(self, message: Message) -> Event:
        failure = self._expect(message, "hello") or self._check_hello(message)
        if failure:
            return failure
        if message["auth"] != self._auth_scheme:
            if self._key is not None:
                reason = "this agent requires a key: pass --key-file with the agent's key"
            else:
                reason = "this agent runs without a key (--insecure); the client must allow that"
            return self._fail("auth", reason)
        reply: dict[str, Any] = {"type": "hello", "version": PROTOCOL_VERSION, "nonce": self._nonce,
                                 "auth": self._auth_scheme}
        if self._key is not None:
            reply["mac"] = compute_mac(self._key, b"lpmbench-agent", self._peer_nonce, self._nonce)
        self._outbox += encode_frame(reply)
        self.state = State.AWAIT_AUTH
        return self.next_event()

    def _agent_got_auth(self, message: Message) -> Event:
        failure = self._expect(message, "auth")
        if failure:
            return failure
        if self._key is not None:
            expected = compute_mac(self._key, b"lpmbench-client", self._nonce, self._peer_nonce)
            mac = message["mac"]  # checked as hex first: compare_digest refuses non-ASCII str with TypeError
            if not _is_hex(mac, len(expected)) or not hmac.compare_digest(expected, mac):
                return self._fail("auth", "authentication failed: wrong key")
        self._outbox += encode_frame({"type": "ready", "agent": self._agent_info})
        self.state = State.READY
        return Authenticated()

    def _client_got_hello(self, message: Message) -> Event:
        failure = self._expect(message, "hello") or self._check_hello(message)
        if failure:
            return failure
        if message["auth"] == AUTH_NONE and not (self._key is None or self._allow_insecure):
            return self._fail(
                "auth", "agent runs without a key (--insecure); refusing to trust it with a key set")
        if message["auth"] == AUTH_HMAC:
            if self._key is None:
                return self._fail("auth", "agent requires a key: pass --key-file")
            expected = compute_mac(self._key, b"lpmbench-agent", self._nonce, self._peer_nonce)
            mac = str(message.get("mac", ""))
            if not _is_hex(mac, len(expected)) or not hmac.compare_digest(expected, mac):
                return self._fail("auth", "agent failed authentication: wrong key")
            mac = compute_mac(self._key, b"lpmbench-client", self._peer_nonce, self._nonce)
        elif message["auth"] == AUTH_NONE:
            mac = ""
        else:
            return self._fail("auth", f"unknown auth scheme {message['auth'][:40]!r}")
        self._outbox += encode_frame({"type": "auth", "mac": mac})
        self.state = State.AWAIT_READY
        return self.next_event()

    def _client_got_ready(self, message: Message) -> Event:
        failure = self._expect(message, "ready")
        if failure:
            return failure
        self.state = State.READY
        return Authenticated(peer=message["agent"])

    def _ready_message(self, message: Message) -> Event:
        allowed = AGENT_REPLIES if self.role is Role.CLIENT else CLIENT_COMMANDS
        if message.type not in allowed:
            return self._fail(
                "out_of_order", f"{message.type!r} is not allowed from the {self._peer_role} now")
        if message.type == "bye":
            self.state = State.CLOSED
        return message

    @property
    def _peer_role(self) -> str:
        return "agent" if self.role is Role.CLIENT else "client"


# --- Data connections -------------------------------------------------------------------------------
# Before any bulk data, the sender writes DATA_MAGIC + the run token (16 raw bytes) + the stream id, and
# waits for ACCEPT_BYTE. An agent that was not armed with this token never answers, so a sender can
# never be made to blast a host that is not an armed lpmbench agent.
DATA_MAGIC = b"LPMB"
_DATA_HELLO = struct.Struct(">4s16sH")
DATA_HELLO_SIZE = _DATA_HELLO.size
ACCEPT_BYTE = b"\x01"


def new_token() -> str:
    return secrets.token_hex(TOKEN_HEX_CHARS // 2)


def valid_token(token: str) -> bool:
    return _is_hex(token, TOKEN_HEX_CHARS)


def data_hello(token: str, stream_id: int) -> bytes:
    return _DATA_HELLO.pack(DATA_MAGIC, bytes.fromhex(token), stream_id)


def parse_data_hello(raw: bytes, token: str) -> int | None:
    """The stream id if ``raw`` is a data hello carrying ``token``, else None."""
    if len(raw) != DATA_HELLO_SIZE:
        return None
    magic, got, stream_id = _DATA_HELLO.unpack(raw)
    if magic != DATA_MAGIC or not hmac.compare_digest(got, bytes.fromhex(token)):
        return None
    return int(stream_id)
