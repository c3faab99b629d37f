"""Sans-I/O control protocol between the orchestrator (``pair``) and an agent.

Bytes go in with :meth:`Connection.receive_data`, events come out of :meth:`Connection.next_event`. Every
byte the connection wants to send -- the caller's messages (:meth:`Connection.send`), the authentication
handshake, error frames -- waits in one outbox, read with :meth:`Connection.data_to_send` (as h2 does), so
the I/O layer has exactly one thing to write and frames can never be interleaved. Nothing here touches a
socket, a clock or an event loop, so every state transition is tested without a network (as h11 does).

Framing is :mod:`lpmbench.protocol.framing`, the typed messages :mod:`lpmbench.protocol.messages`. Frames
over the size limit, bad JSON, unknown message types, unknown or ill-typed fields and messages out of order
end the connection with an ``error`` frame.

Authentication is a mutual HMAC-SHA256 challenge-response over a pre-shared key:

1. client -> agent ``hello`` {version, nonce Nc, auth}
2. agent -> client ``hello`` {version, nonce Na, auth, mac = HMAC(K, "lpmbench-agent" | Nc | Na)}
3. client -> agent ``auth`` {mac = HMAC(K, "lpmbench-client" | Na | Nc)}
4. agent -> client ``ready`` {agent: facts about the agent}

Each side proves the key over the other side's fresh nonce, so a recorded exchange cannot be replayed, and
the role labels keep one side's answer from being reflected as the other's. MACs are compared in constant
time (``hmac.compare_digest``).

With a key, every frame after the handshake is sealed (:mod:`lpmbench.protocol.integrity`): the agent's
from ``ready`` on, the client's from its first command on. A frame whose tag does not match -- rewritten,
replayed, reordered, dropped, or spliced in from another session -- ends the session with a Failure saying
the connection was altered in transit. Without a key (``--insecure`` on both sides) nothing is sealed.

Protocol versions: 2 added ``heartbeat``; 3 seals every frame after the handshake. An agent refuses a client
of another version with a ``version`` error saying which side to upgrade; the client turns it into advice
naming the agent's host. Hello frames and version errors are never sealed, so a mixed pair gets that advice.

A peer that is no lpmbench at all (an SSH or HTTP server on the port, TLS at one end only) shows in its first
bytes; the Failure says what they look like instead of quoting an absurd frame length.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import re
import secrets
import struct
from dataclasses import dataclass, field
from typing import Any, Callable, Union

from lpmbench.protocol import foreign, integrity
from lpmbench.protocol.framing import HEADER, MAX_FRAME, MAX_REPLY_FRAME, ProtocolError
from lpmbench.protocol.messages import (
    Abort,
    Arm,
    Armed,
    Auth,
    Busy,
    Bye,
    Error,
    ErrorCode,
    Heartbeat,
    Hello,
    Interval,
    Message,
    Ready,
    Result,
    Start,
    Started,
    Summary,
    decode_body,
    encode_message,
)

PROTOCOL_VERSION = 3
NONCE_BYTES = 32
TOKEN_HEX_CHARS = 32
AUTH_HMAC = "hmac-sha256"
AUTH_NONE = "none"

# Which messages each side may send once authenticated.
CLIENT_COMMANDS: frozenset[type[Message]] = frozenset({Arm, Start, Abort, Summary, Bye})
AGENT_REPLIES: frozenset[type[Message]] = frozenset(
    {Armed, Started, Interval, Heartbeat, Result, Busy, Error, Bye})

# How an agent's version error names the agent's own protocol; agents before version 2 said "this side speaks N".
_AGENT_VERSION_RE = re.compile(r"this (?:side|agent) speaks (?:protocol )?(\d{1,6})")


class Role(enum.Enum):
    CLIENT = "client"
    AGENT = "agent"


class State(enum.Enum):
    HANDSHAKE = "handshake"
    AWAIT_AUTH = "await_auth"  # agent: sent its hello, waits for the client's MAC
    AWAIT_READY = "await_ready"  # client: sent its MAC, waits for ready
    READY = "ready"
    CLOSED = "closed"


@dataclass(frozen=True)
class Authenticated:
    """The handshake finished; ``peer`` holds the agent's facts (client side) or is empty (agent side)."""

    peer: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Failure:
    """The connection failed; an error frame (if any) waits in data_to_send(). Close after sending it."""

    code: ErrorCode
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


def _is_hex(text: str, length: int) -> bool:
    return len(text) == length and all(c in "0123456789abcdef" for c in text)


def compute_mac(key: bytes, label: bytes, first_nonce: str, second_nonce: str) -> str:
    data = label + b"\0" + first_nonce.encode() + b"\0" + second_nonce.encode()
    return hmac.new(key, data, hashlib.sha256).hexdigest()


class Connection:
    """One control connection, from the point of view of ``role``.

    ``key`` is the pre-shared key, or None for an agent started with ``--insecure`` (and a client that
    accepts such an agent). A client with a key requires an authenticated agent: ``allow_insecure`` no longer
    changes that (it is accepted so that callers need no change; a keyless client talks to keyless agents
    either way). ``agent_info`` is what an agent tells an authenticated client about itself. ``peer_name``
    (client side) names the agent in advice, e.g. its ``host:port``.
    """

    def __init__(self, role: Role, key: bytes | None, *, agent_info: dict[str, Any] | None = None,
                 allow_insecure: bool = False, nonce_factory: Callable[[], str] | None = None,
                 peer_name: str | None = None) -> None:
        self.role = role
        self.state = State.HANDSHAKE
        self._key = key
        self._agent_info = agent_info or {}
        self._peer_name = peer_name
        self._nonce = (nonce_factory or (lambda: secrets.token_hex(NONCE_BYTES)))()
        self._peer_nonce = ""
        self._buffer = bytearray()
        self._outbox = bytearray()
        self._pending: Failure | None = None
        # With a key: set when the handshake knows both nonces (see _start_sealing and _start_opening).
        self._sealer: integrity.Sealer | None = None
        self._opener: integrity.Opener | None = None
        # Agents take small commands and send larger reports; each side refuses what the other may not send.
        self._inbound_limit = MAX_FRAME if role is Role.AGENT else MAX_REPLY_FRAME
        self._outbound_limit = MAX_REPLY_FRAME if role is Role.AGENT else MAX_FRAME
        if role is Role.CLIENT:
            self._queue(Hello(PROTOCOL_VERSION, self._nonce, self._auth_scheme))

    @property
    def _auth_scheme(self) -> str:
        return AUTH_HMAC if self._key is not None else AUTH_NONE

    def _queue(self, message: Message) -> None:
        # sealed only once encoding succeeded: a message refused by the schema or the size limit takes no number
        self._outbox += self.frame_body(encode_message(message, self._outbound_limit)[HEADER.size:])

    def frame_body(self, body: bytes) -> bytes:
        """The frame that carries ``body`` as this side's next frame: sealed once the handshake sealed this
        side's output. No schema, turn or size check: besides _queue, this is how tests play a peer that holds
        the key and misbehaves (the bytes do not go to the outbox)."""
        if self._sealer is not None:
            body = self._sealer.seal(body)
        return HEADER.pack(len(body)) + body

    def _session_keys(self) -> integrity.SessionKeys:
        assert self._key is not None
        client_nonce, agent_nonce = (self._nonce, self._peer_nonce) if self.role is Role.CLIENT else \
            (self._peer_nonce, self._nonce)
        return integrity.derive_session_keys(self._key, client_nonce, agent_nonce)

    def _start_sealing(self) -> None:
        """Every frame this side queues from now on carries a tag (the handshake frames are done)."""
        keys = self._session_keys()
        self._sealer = integrity.Sealer(keys.client_to_agent if self.role is Role.CLIENT else keys.agent_to_client)

    def _start_opening(self) -> None:
        """Every frame from the peer from now on must carry the tag for its number."""
        keys = self._session_keys()
        self._opener = integrity.Opener(keys.agent_to_client if self.role is Role.CLIENT else keys.client_to_agent)

    def receive_data(self, data: bytes) -> None:
        """Feed bytes from the peer. An empty ``data`` means the peer closed its side."""
        if self.state is State.CLOSED:
            return
        if not data:
            self._pending = self._fail(ErrorCode.EOF, "connection closed by peer", send_error=False)
            return
        self._buffer += data

    def data_to_send(self) -> bytes:
        """Every byte this side has to send, in order; the outbox is empty afterwards."""
        out = bytes(self._outbox)
        self._outbox.clear()
        return out

    def send(self, message: Message) -> None:
        """Queue one message from this side (see data_to_send). Sending out of turn is a programming error."""
        allowed = CLIENT_COMMANDS if self.role is Role.CLIENT else AGENT_REPLIES
        if self.state is not State.READY or type(message) not in allowed:
            raise ProtocolError(f"{self.role.value} cannot send {message.type!r} in state {self.state.value}")
        self._queue(message)  # our own output obeys the schema and the frame limit too (else ProtocolError)
        if isinstance(message, Bye):
            self.state = State.CLOSED

    def send_error(self, code: ErrorCode, message: str) -> None:
        """Queue an error frame that ends the connection (used by the I/O layer, e.g. on timeouts)."""
        if self.state is not State.CLOSED:
            self._queue(Error(code, message))
        self.state = State.CLOSED
        self._buffer.clear()

    def next_event(self) -> Event:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            return pending
        if self.state is State.CLOSED:
            return CLOSED
        if len(self._buffer) < HEADER.size:
            return NEED_DATA
        (length,) = HEADER.unpack_from(self._buffer)
        limit = self._inbound_limit + (integrity.TAG_BYTES if self._opener is not None else 0)
        if length == 0 or length > limit or self._foreign_first_frame():
            return self._not_a_frame(length, limit)
        if len(self._buffer) < HEADER.size + length:
            return NEED_DATA
        payload = bytes(self._buffer[HEADER.size:HEADER.size + length])
        del self._buffer[:HEADER.size + length]
        if self._opener is not None:
            return self._open(payload)
        return self._decode(payload)

    def _decode(self, body: bytes) -> Event:
        try:
            message = decode_body(body)
        except ValueError as exc:
            return self._fail(ErrorCode.BAD_MESSAGE, str(exc))
        return self._handle(message)

    def _open(self, payload: bytes) -> Event:
        assert self._opener is not None
        try:
            body = self._opener.open(payload)
        except integrity.IntegrityError as exc:
            refusal = self._unsealed_refusal(payload)
            if refusal is not None:
                return refusal
            return self._fail(ErrorCode.INTEGRITY, self._altered_text(exc.seq))
        return self._decode(body)

    def _unsealed_refusal(self, payload: bytes) -> Failure | None:
        """A client that sent its MAC may get the agent's plain ``error`` instead of a sealed ``ready``: the
        agent refused it before sealing anything (a handshake timeout, say). Believing it costs nothing: it can
        only end a session that a man in the middle could end anyway by cutting it."""
        if self.role is not Role.CLIENT or self.state is not State.AWAIT_READY:
            return None
        try:
            message = decode_body(payload)
        except ValueError:
            return None
        if not isinstance(message, Error):
            return None
        self.state = State.CLOSED
        self._buffer.clear()
        return Failure(message.code, self._peer_error_text(message))

    def _altered_text(self, seq: int) -> str:
        if self.role is Role.CLIENT:
            return (f"the control connection to {self._peer_name or 'the agent'} was altered in transit (bad MAC on "
                    f"frame {seq}): something between the orchestrator and the agent rewrites traffic")
        return (f"the control connection from the orchestrator was altered in transit (bad MAC on frame {seq}): "
                f"something between the orchestrator and this agent rewrites traffic")

    # --- Bytes that are no lpmbench frame -------------------------------------------------------------------

    def _foreign_first_frame(self) -> bool:
        """The peer's first frame has a plausible length but its body does not open a JSON object."""
        return self.state is State.HANDSHAKE and len(self._buffer) > HEADER.size and \
            self._buffer[HEADER.size] != ord("{")

    def _not_a_frame(self, length: int, limit: int) -> Failure:
        """A frame length out of range, or a first frame that is no JSON. In the peer's first bytes that is
        most likely another protocol or TLS at one end only: say so, quoting what the bytes look like."""
        if self.state is State.HANDSHAKE:
            advice = foreign.advice(bytes(self._buffer[:foreign.QUOTE_BYTES]), self.role is Role.CLIENT,
                                    self._peer_name)
            if advice is not None:
                return self._fail(*advice)
        if 0 < length <= limit:
            return self._fail(ErrorCode.BAD_MESSAGE, "frame does not hold a JSON object")
        return self._fail(ErrorCode.FRAME_SIZE, f"frame length {length} is outside 1..{limit} bytes")

    def _fail(self, code: ErrorCode, message: str, send_error: bool = True) -> Failure:
        if send_error:
            self.send_error(code, message)
        self.state = State.CLOSED
        self._buffer.clear()
        return Failure(code, message)

    def _handle(self, message: Message) -> Event:
        # An error ends the session, except an agent's error about a run once ready (the run failed, not the
        # connection); a client's error (its timeout, a frame that failed its MAC) says why it hangs up.
        if isinstance(message, Error) and (self.state is not State.READY or self.role is Role.AGENT):
            self.state = State.CLOSED
            return Failure(message.code, self._peer_error_text(message))
        handler = {
            (Role.AGENT, State.HANDSHAKE): self._agent_got_hello,
            (Role.AGENT, State.AWAIT_AUTH): self._agent_got_auth,
            (Role.CLIENT, State.HANDSHAKE): self._client_got_hello,
            (Role.CLIENT, State.AWAIT_READY): self._client_got_ready,
        }.get((self.role, self.state), self._ready_message)
        return handler(message)

    def _expect(self, message: Message, kind: type[Message]) -> Failure | None:
        if not isinstance(message, kind):
            return self._fail(ErrorCode.OUT_OF_ORDER,
                              f"expected {kind.type!r} in state {self.state.value}, got {message.type!r}")
        return None

    # --- Versions ------------------------------------------------------------------------------------------

    def _check_hello(self, message: Hello) -> Failure | None:
        if message.version != PROTOCOL_VERSION:
            advice = self._version_advice(message.version) if self.role is Role.CLIENT else \
                self._agent_version_advice(message.version)
            return self._fail(ErrorCode.VERSION, advice)
        if not _is_hex(message.nonce, 2 * NONCE_BYTES):
            return self._fail(ErrorCode.BAD_MESSAGE, "nonce must be 64 lower-case hex digits")
        self._peer_nonce = message.nonce
        return None

    @staticmethod
    def _agent_version_advice(client_version: int) -> str:
        """What an agent tells a client of another version (clients before version 2 show it as is)."""
        older = "the orchestrator's host" if client_version < PROTOCOL_VERSION else "this agent"
        return (f"this agent speaks protocol {PROTOCOL_VERSION}, the orchestrator {client_version}: "
                f"upgrade lpmbench on {older}")

    @property
    def _agent_label(self) -> str:
        return f"agent {self._peer_name}" if self._peer_name else "the agent"

    def _version_advice(self, agent_version: int) -> str:
        if agent_version < PROTOCOL_VERSION:
            upgrade = f"upgrade the agent on {self._peer_name}" if self._peer_name else "upgrade the agent"
        else:
            upgrade = "upgrade lpmbench on this orchestrator's host"
        return f"{self._agent_label} speaks protocol {agent_version}, this orchestrator {PROTOCOL_VERSION}: {upgrade}"

    def _peer_error_text(self, error: Error) -> str:
        """A version refusal from an agent becomes advice naming the side to upgrade; other errors stay."""
        if self.role is not Role.CLIENT or error.code is not ErrorCode.VERSION:
            return error.message
        found = _AGENT_VERSION_RE.search(error.message)
        if found is None:
            return f"{self._agent_label} refused protocol {PROTOCOL_VERSION}: {error.message}"
        return self._version_advice(int(found.group(1)))

    # --- Handshake -----------------------------------------------------------------------------------------

    def _agent_got_hello(self, message: Message) -> Event:
        failure = self._expect(message, Hello)
        if failure:
            return failure
        assert isinstance(message, Hello)
        failure = self._check_hello(message)
        if failure:
            return failure
        if message.auth != self._auth_scheme:
            if self._key is not None:
                reason = "this agent requires a key: pass --key-file with the agent's key"
            else:
                reason = ("this agent runs without a key (--insecure): a key on the orchestrator means authentication "
                          "is required; restart the agent with --key-file, or drop --key-file to test a lab pair "
                          "without auth")
            return self._fail(ErrorCode.AUTH, reason)
        mac = None if self._key is None else compute_mac(self._key, b"lpmbench-agent", self._peer_nonce, self._nonce)
        self._queue(Hello(PROTOCOL_VERSION, self._nonce, self._auth_scheme, mac))
        self.state = State.AWAIT_AUTH
        return self.next_event()

    def _agent_got_auth(self, message: Message) -> Event:
        failure = self._expect(message, Auth)
        if failure:
            return failure
        assert isinstance(message, Auth)
        if self._key is not None:
            expected = compute_mac(self._key, b"lpmbench-client", self._nonce, self._peer_nonce)
            # checked as hex first: compare_digest refuses non-ASCII str with TypeError
            if not _is_hex(message.mac, len(expected)) or not hmac.compare_digest(expected, message.mac):
                return self._fail(ErrorCode.AUTH, "authentication failed: wrong key")
            self._start_opening()
            self._start_sealing()  # ready is the first sealed frame: it carries the agent's facts
        self._queue(Ready(self._agent_info))
        self.state = State.READY
        return Authenticated()

    def _client_got_hello(self, message: Message) -> Event:
        failure = self._expect(message, Hello)
        if failure:
            return failure
        assert isinstance(message, Hello)
        failure = self._check_hello(message) or self._client_check_agent_auth(message)
        if failure:
            return failure
        mac = compute_mac(self._key, b"lpmbench-client", self._peer_nonce, self._nonce) \
            if message.auth == AUTH_HMAC and self._key is not None else ""
        self._queue(Auth(mac))
        if mac:  # authenticated both ways: the agent's ready and everything after it is sealed, both ways
            self._start_opening()
            self._start_sealing()
        self.state = State.AWAIT_READY
        return self.next_event()

    def _client_check_agent_auth(self, message: Hello) -> Failure | None:
        """The agent's auth scheme is one we accept and, with a key, its MAC proves it."""
        if message.auth == AUTH_NONE:
            if self._key is None:
                return None
            # A key means authentication is required, --insecure or not: an unauthenticated agent's report
            # (or a relay's, posing as one) must never be judged as if it were proven.
            return self._fail(ErrorCode.AUTH, f"{self._peer_name or 'the agent'} runs without a key (agent "
                                              f"--insecure) but this orchestrator has one: restart the agent with "
                                              f"--key-file, or drop --key-file to test a lab pair without auth")
        if message.auth != AUTH_HMAC:
            return self._fail(ErrorCode.AUTH, f"unknown auth scheme {message.auth[:40]!r}")
        if self._key is None:
            return self._fail(ErrorCode.AUTH, "agent requires a key: pass --key-file")
        expected = compute_mac(self._key, b"lpmbench-agent", self._nonce, self._peer_nonce)
        mac = message.mac or ""
        if not _is_hex(mac, len(expected)) or not hmac.compare_digest(expected, mac):
            return self._fail(ErrorCode.AUTH, "agent failed authentication: wrong key")
        return None

    def _client_got_ready(self, message: Message) -> Event:
        failure = self._expect(message, Ready)
        if failure:
            return failure
        assert isinstance(message, Ready)
        self.state = State.READY
        return Authenticated(peer=message.agent)

    def _ready_message(self, message: Message) -> Event:
        allowed = AGENT_REPLIES if self.role is Role.CLIENT else CLIENT_COMMANDS
        if type(message) not in allowed:
            return self._fail(
                ErrorCode.OUT_OF_ORDER, f"{message.type!r} is not allowed from the {self._peer_role} now")
        if isinstance(message, Bye):
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
