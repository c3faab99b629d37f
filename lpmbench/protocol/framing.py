"""Frames of the control protocol: a 4-byte big-endian length, then that many bytes of one UTF-8 JSON object.

Only bytes and JSON here; what the objects mean is :mod:`lpmbench.protocol.messages`, and when they may be
sent is :mod:`lpmbench.protocol.connection`.
"""

from __future__ import annotations

import json
import math
import struct
from typing import Any

MAX_FRAME = 64 * 1024  # frames an agent accepts: commands are small, and an agent must bound what strangers send
# Frames an orchestrator accepts from an authenticated agent: interval and result reports grow with the streams
# (a TCP_INFO summary each), so 256 streams must fit.
MAX_REPLY_FRAME = 1024 * 1024
HEADER = struct.Struct(">I")


class ProtocolError(Exception):
    """Raised when the caller breaks the protocol (a bug, not peer input): e.g. sending out of turn."""


def encode_frame(obj: dict[str, Any], limit: int = MAX_FRAME) -> bytes:
    """One frame holding ``obj``; ProtocolError when its body exceeds ``limit`` bytes."""
    body = json.dumps(obj, separators=(",", ":"), allow_nan=False).encode()
    if len(body) > limit:
        raise ProtocolError(f"frame of {len(body)} bytes exceeds the {limit}-byte limit")
    return HEADER.pack(len(body)) + body


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999 parses as inf: no field of ours means infinity
        raise ValueError(f"number {text[:20]} is out of range")
    return value


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def parse_object(body: bytes) -> dict[str, Any]:
    """The JSON object in one frame body. Raises ValueError with a message fit for the peer."""
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
    return obj
