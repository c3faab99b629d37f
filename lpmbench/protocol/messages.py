"""The control messages: one frozen dataclass per message type, whose fields and type hints ARE the wire schema.

A field's type hint says what JSON it takes: ``int`` (never a bool: JSON true is not a stream count), ``float``
(any finite number, ints included), ``str``, ``bool``, ``dict[...]`` (an object), ``list[...]`` (an array),
a ``str`` enum (one of its values), and ``Optional[X]`` (default None) for a field that may be left out. The
schema (:data:`SCHEMAS`) is derived from the dataclasses, so the two cannot disagree.

Decoding a frame gives the typed message or raises ValueError with a message fit for the peer; an unknown
type, an unknown, missing or ill-typed field is refused, and so is a value nested deeper than
:data:`MAX_DEPTH`, a message of more than :data:`MAX_VALUES` values, or an integer beyond 64 bits. Sending
validates our own messages the same way.

Every string in a message -- values and object keys, at any depth -- is cleaned of control characters when
the message is made (:func:`lpmbench.protocol.text.clean`), and cut to :data:`TEXT_LIMIT` characters when it
is decoded: whatever a peer sends, even a stranger's ``error`` frame in place of the handshake, reaches the
terminal, the logs and the results without control characters and bounded. (Our own messages keep their
length: the frame limit bounds them, and a too-big one is our bug to see, not to hide.)
"""

from __future__ import annotations

import dataclasses
import enum
import typing
from dataclasses import dataclass
from typing import Any, ClassVar, Optional, TypeVar

from lpmbench.protocol.framing import MAX_FRAME, ProtocolError, encode_frame, parse_object
from lpmbench.protocol.text import DEFAULT_LIMIT, clean

MAX_DEPTH = 16  # our deepest message (a result: data, streams, one stream, its TCP facts) nests 4 levels
# Values in one message, containers included: a result of 256 streams with their TCP facts holds about 10 000.
MAX_VALUES = 50_000
MAX_INTEGER = 2**64  # no counter of ours is wider than 64 bits; a 400-digit integer is not a measurement
TEXT_LIMIT = DEFAULT_LIMIT  # characters of a string from a peer
KEY_LIMIT = 128  # characters of an object key from a peer


class ErrorCode(str, enum.Enum):
    """Why a connection, a request or a run failed. On the wire (``error`` frames) it is the value string."""

    # The protocol itself: framing, handshake, timing.
    EOF = "eof"  # the peer hung up; never sent (nobody is left to read it)
    FRAME_SIZE = "frame_size"
    BAD_MESSAGE = "bad_message"
    OUT_OF_ORDER = "out_of_order"
    VERSION = "version"
    AUTH = "auth"
    INTEGRITY = "integrity"  # a frame after the handshake failed its MAC: something rewrites the traffic
    TIMEOUT = "timeout"
    # An agent refusing an orchestrator, a request, or failing a run.
    NOT_ALLOWED = "not_allowed"
    BAD_REQUEST = "bad_request"
    DATA_PORT = "data_port"
    RUN_FAILED = "run_failed"
    # What an orchestrator concludes on its side (never sent in an error frame by an agent).
    BUSY = "busy"  # the agent answered ``busy``
    UNREACHABLE = "unreachable"
    TLS = "tls"
    CLOSED = "closed"  # the control connection was lost (a reset) or had already ended
    PROTOCOL = "protocol"  # the agent answered something the orchestrator did not ask for

    def __str__(self) -> str:  # the wire string in messages and logs, on every Python version
        return self.value


@dataclass(frozen=True)
class FieldSpec:
    """One field of a message on the wire."""

    name: str
    types: tuple[type, ...]  # the JSON value's Python types; ``float`` fields take ints too
    required: bool
    choices: Optional[frozenset[str]] = None  # an enum field: the values it takes
    enum: Optional[type[enum.Enum]] = None

    def check(self, kind: str, value: Any) -> None:
        if isinstance(value, bool) and bool not in self.types or not isinstance(value, self.types):
            raise ValueError(f"field {self.name!r} of {kind!r} must be {'/'.join(t.__name__ for t in self.types)}")
        if self.choices is not None and value not in self.choices:
            raise ValueError(f"field {self.name!r} of {kind!r} must be one of: {', '.join(sorted(self.choices))}")


_WIRE_TYPES: dict[Any, tuple[type, ...]] = {
    int: (int,), float: (int, float), str: (str,), bool: (bool,), dict: (dict,), list: (list,)}


def _field_spec(name: str, hint: Any, has_default: bool) -> FieldSpec:
    if typing.get_origin(hint) is typing.Union:
        (hint,) = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        if not has_default:
            raise TypeError(f"optional field {name!r} needs a default of None")
    base = typing.get_origin(hint) or hint
    if isinstance(base, type) and issubclass(base, enum.Enum):
        return FieldSpec(name, (str,), not has_default, frozenset(str(m.value) for m in base), base)
    return FieldSpec(name, _WIRE_TYPES[base], not has_default)


M = TypeVar("M", bound="Message")


@dataclass(frozen=True)
class Message:
    """Base of every control message. ``type`` is the message's name on the wire."""

    type: ClassVar[str] = ""
    SCHEMA: ClassVar[dict[str, FieldSpec]] = {}

    def __post_init__(self) -> None:
        # Made from a peer's frame or by us: either way no string in it can drive a terminal or forge a log line.
        for spec in dataclasses.fields(self):
            value = getattr(self, spec.name)
            cleaned = _cleaned(value)
            if cleaned is not value:
                object.__setattr__(self, spec.name, cleaned)

    def to_fields(self) -> dict[str, Any]:
        """The wire fields: optional fields left at None are left out; enums become their value string."""
        out = {}
        for spec in self.SCHEMA.values():
            value = getattr(self, spec.name)
            if value is not None:
                out[spec.name] = value.value if isinstance(value, enum.Enum) else value
        return out

    @classmethod
    def from_fields(cls: type[M], fields: dict[str, Any]) -> M:
        """The message from its wire fields (without ``type``); ValueError names what is wrong."""
        check_fields(cls, fields)
        values = {name: cls.SCHEMA[name].enum(value) if cls.SCHEMA[name].enum else _cleaned(value, TEXT_LIMIT)
                  for name, value in fields.items()}
        return cls(**values)

    def __getitem__(self, name: str) -> Any:
        """A field by its wire name (``armed["port"]``), for callers that read one field by name."""
        if name not in self.SCHEMA:
            raise KeyError(name)
        return getattr(self, name)


def check_fields(cls: type[Message], fields: dict[str, Any]) -> None:
    """Every field known and well typed, none missing: else ValueError (the same text for peer and us)."""
    budget = [MAX_VALUES]
    for name, value in fields.items():
        spec = cls.SCHEMA.get(name)
        if spec is None:
            raise ValueError(f"unknown field {clean(name, 40)!r} in {cls.type!r}")
        spec.check(cls.type, value)
        problem = _tree_problem(value, MAX_DEPTH, budget)
        if problem:
            raise ValueError(f"field {name!r} of {cls.type!r} {problem}")
    missing = [name for name, spec in cls.SCHEMA.items() if spec.required and name not in fields]
    if missing:
        raise ValueError(f"{cls.type!r} lacks field(s) {', '.join(missing)}")


def _tree_problem(value: Any, depth: int, budget: list[int]) -> str | None:
    """What makes a JSON value too big to take (too deep, too many values, too wide a number), or None.

    ``budget`` holds the values the message may still have; it is shared by all of a message's fields.
    """
    budget[0] -= 1
    if budget[0] < 0:
        return f"makes the message hold more than {MAX_VALUES} values"
    if isinstance(value, int) and not isinstance(value, bool) and not -MAX_INTEGER <= value <= MAX_INTEGER:
        return "holds an integer beyond 64 bits"
    if not isinstance(value, (dict, list)):
        return None
    if depth <= 0:
        return f"nests deeper than {MAX_DEPTH} levels"
    for item in value.values() if isinstance(value, dict) else value:
        problem = _tree_problem(item, depth - 1, budget)
        if problem:
            return problem
    return None


def _cleaned(value: Any, limit: int | None = None) -> Any:
    """``value`` with every string in it (object keys too) cleaned and cut to ``limit`` (None: not cut)."""
    if type(value) is str:  # not an enum member: ErrorCode values are str too, and already safe
        return clean(value, limit)
    if isinstance(value, dict):
        key_limit = None if limit is None else KEY_LIMIT
        return {clean(k, key_limit) if isinstance(k, str) else k: _cleaned(v, limit) for k, v in value.items()}
    if isinstance(value, list):
        return [_cleaned(item, limit) for item in value]
    return value


KINDS: dict[str, type[Message]] = {}


def _message(kind: str) -> Any:
    """Register a message dataclass under its wire name and derive its schema from its fields."""

    def register(cls: type[Message]) -> type[Message]:
        hints = typing.get_type_hints(cls)
        cls.type = kind
        cls.SCHEMA = {f.name: _field_spec(f.name, hints[f.name], f.default is not dataclasses.MISSING)
                      for f in dataclasses.fields(cls)}
        KINDS[kind] = cls
        return cls

    return register


# --- Handshake (see connection.py for the exchange) ---------------------------------------------------------

@_message("hello")
@dataclass(frozen=True)
class Hello(Message):
    version: int
    nonce: str
    auth: str
    mac: Optional[str] = None  # the agent's proof of the key over the client's nonce


@_message("auth")
@dataclass(frozen=True)
class Auth(Message):
    mac: str


@_message("ready")
@dataclass(frozen=True)
class Ready(Message):
    agent: dict[str, Any]  # facts about the agent (hostname, os, version, data plane ...)


# --- Orchestrator -> agent -----------------------------------------------------------------------------------

@_message("arm")
@dataclass(frozen=True)
class Arm(Message):
    run_id: str
    token: str
    streams: int
    duration: float
    interval: float
    options: Optional[dict[str, Any]] = None


@_message("start")
@dataclass(frozen=True)
class Start(Message):
    run_id: str
    token: str
    host: str
    port: int
    streams: int
    duration: float
    interval: float
    options: Optional[dict[str, Any]] = None


@_message("abort")
@dataclass(frozen=True)
class Abort(Message):
    run_id: str
    reason: Optional[str] = None


@_message("summary")
@dataclass(frozen=True)
class Summary(Message):
    """After a run the orchestrator tells both agents what it concluded, so their metrics carry the verdict."""

    run_id: str
    data: dict[str, Any]


# --- Agent -> orchestrator -----------------------------------------------------------------------------------

@_message("armed")
@dataclass(frozen=True)
class Armed(Message):
    run_id: str
    port: int
    probe_port: Optional[int] = None


@_message("started")
@dataclass(frozen=True)
class Started(Message):
    run_id: str


@_message("interval")
@dataclass(frozen=True)
class Interval(Message):
    run_id: str
    index: int
    t: float
    streams: list[Any]
    extra: Optional[dict[str, Any]] = None


@_message("heartbeat")
@dataclass(frozen=True)
class Heartbeat(Message):
    """A running agent that sent nothing for contract.HEARTBEAT_S (draining, auditing) is still there."""

    run_id: str


@_message("result")
@dataclass(frozen=True)
class Result(Message):
    run_id: str
    role: str
    data: dict[str, Any]


@_message("busy")
@dataclass(frozen=True)
class Busy(Message):
    run_id: str
    message: str


# --- Either side -------------------------------------------------------------------------------------------

@_message("error")
@dataclass(frozen=True)
class Error(Message):
    code: ErrorCode
    message: str
    run_id: Optional[str] = None


@_message("bye")
@dataclass(frozen=True)
class Bye(Message):
    pass


SCHEMAS: dict[str, dict[str, FieldSpec]] = {kind: cls.SCHEMA for kind, cls in KINDS.items()}


def decode_body(body: bytes) -> Message:
    """Parse and type-check one frame body. Raises ValueError with a message fit for the peer."""
    obj = parse_object(body)
    kind = obj.pop("type", None)
    if not isinstance(kind, str):
        raise ValueError("message has no string 'type'")
    cls = KINDS.get(kind)
    if cls is None:
        raise ValueError(f"unknown message type {clean(kind, 40)!r}")
    return cls.from_fields(obj)


def encode_message(message: Message, limit: int = MAX_FRAME) -> bytes:
    """One frame holding ``message``, checked against its schema first; ProtocolError if it breaks it."""
    fields = message.to_fields()
    try:
        check_fields(type(message), fields)
        return encode_frame({"type": message.type, **fields}, limit)
    except (ValueError, TypeError) as exc:  # TypeError: a value JSON cannot hold; ValueError: NaN, infinity
        raise ProtocolError(f"cannot send {message.type!r}: {exc}") from exc


def build(kind: str, fields: dict[str, Any]) -> Message:
    """Our own message from its wire name and fields (the agent's run reports come so); ProtocolError if bad."""
    cls = KINDS.get(kind)
    if cls is None:
        raise ProtocolError(f"no message type {kind!r}")
    try:
        return cls.from_fields(dict(fields))
    except ValueError as exc:
        raise ProtocolError(f"cannot send {kind!r}: {exc}") from exc
