"""Integrity of a control connection after its handshake: session keys and sealed frames.

The handshake (:mod:`lpmbench.protocol.connection`) proves the pre-shared key K on both sides over fresh
nonces, but proves nothing about the frames that follow: a relay without the key could pass the handshake
through and then rewrite a report. So once both nonces are known, each side derives two session keys with
HKDF-SHA256 (RFC 5869, one 32-byte block each):

    PRK        = HMAC-SHA256(salt = Nc | 0 | Na, K)
    key(dir)   = HMAC-SHA256(PRK, "lpmbench-session-v3 " dir | 0x01),  dir = "client->agent" / "agent->client"

and every later frame in direction ``dir`` carries a tag after its JSON body (inside the frame's length):

    tag = HMAC-SHA256(key(dir), seq as 8 bytes big-endian | body)

``seq`` counts that direction's sealed frames from 1 and is never sent: each side keeps its own count, so a
frame dropped, replayed or moved fails the check of the frame that now sits in its place. Fresh nonces make
fresh keys, so a frame from another session (even between the same hosts) fails too, and separate keys per
direction keep a frame from being reflected back to its sender. Tags are compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from dataclasses import dataclass

TAG_BYTES = 32  # a full HMAC-SHA256: nothing here is short of space
_LABEL = b"lpmbench-session-v3 "
_SEQ = struct.Struct(">Q")


class IntegrityError(Exception):
    """A sealed frame failed its check; ``seq`` is its number in its direction (1 = the first after the
    handshake)."""

    def __init__(self, seq: int) -> None:
        super().__init__(f"bad MAC on frame {seq}")
        self.seq = seq


@dataclass(frozen=True)
class SessionKeys:
    client_to_agent: bytes
    agent_to_client: bytes


def _hkdf_block(prk: bytes, info: bytes) -> bytes:
    """HKDF-Expand (RFC 5869) for one block: T(1) = HMAC(PRK, info | 0x01)."""
    return hmac.new(prk, info + b"\x01", hashlib.sha256).digest()


def derive_session_keys(key: bytes, client_nonce: str, agent_nonce: str) -> SessionKeys:
    """The two keys of one session, from the pre-shared key and both handshake nonces (fixed-length hex)."""
    salt = client_nonce.encode() + b"\0" + agent_nonce.encode()
    prk = hmac.new(salt, key, hashlib.sha256).digest()  # HKDF-Extract
    return SessionKeys(client_to_agent=_hkdf_block(prk, _LABEL + b"client->agent"),
                       agent_to_client=_hkdf_block(prk, _LABEL + b"agent->client"))


def _tag(key: bytes, seq: int, body: bytes) -> bytes:
    return hmac.new(key, _SEQ.pack(seq) + body, hashlib.sha256).digest()


class Sealer:
    """Tags the frames of one direction, in the order they are sent."""

    def __init__(self, key: bytes) -> None:
        self._key = key
        self.sent = 0

    def seal(self, body: bytes) -> bytes:
        """``body`` followed by its tag; the frame's sequence number advances."""
        self.sent += 1
        return body + _tag(self._key, self.sent, body)


class Opener:
    """Checks the frames of one direction, in the order they arrive."""

    def __init__(self, key: bytes) -> None:
        self._key = key
        self.received = 0

    def open(self, payload: bytes) -> bytes:
        """The body of a sealed frame; IntegrityError when its tag is not the one for the next number."""
        seq = self.received + 1
        body, tag = payload[:-TAG_BYTES], payload[-TAG_BYTES:]
        if len(payload) <= TAG_BYTES or not hmac.compare_digest(tag, _tag(self._key, seq, body)):
            raise IntegrityError(seq)
        self.received = seq
        return body
