"""A peer that speaks something else on the control port: another protocol's banner, or TLS at one end only.

What the first bytes say about the peer, for an error that tells the admin what is on the other end. The
peer's bytes are quoted as printable ASCII only, cut short: they never reach a terminal or a log raw.
"""

from __future__ import annotations

from lpmbench.protocol.framing import HEADER
from lpmbench.protocol.messages import ErrorCode

QUOTE_BYTES = 64  # what a refusal quotes of a stranger's first bytes: enough for a banner's first line
_QUOTE_CHARS = 60
_TLS_CONTENT_TYPES = range(0x14, 0x18)  # TLS record types: change_cipher_spec, alert, handshake, application


def looks_like_tls(head: bytes) -> bool:
    """A TLS record header (content type, then major version 3): a ClientHello, or a server's alert."""
    return len(head) >= 2 and head[0] in _TLS_CONTENT_TYPES and head[1] == 0x03


def quote_text(head: bytes) -> str | None:
    """The first line of ``head`` as printable ASCII (others shown as '?'), or None when it starts binary.

    Another protocol's banner or answer ("SSH-2.0-...", "HTTP/1.1 400 ...") is worth quoting; the peer's
    bytes never reach a terminal or a log unsanitised."""
    line = head.split(b"\n", 1)[0].rstrip(b"\r")
    if len(line) < HEADER.size or not all(32 <= b < 127 for b in line[:HEADER.size]):
        return None
    text = "".join(chr(b) if 32 <= b < 127 else "?" for b in line[:_QUOTE_CHARS])
    return text + ("..." if len(line) > _QUOTE_CHARS else "")


def advice(head: bytes, from_agent: bool, peer_name: str | None) -> tuple[ErrorCode, str] | None:
    """What the first bytes from a peer say about it when they are no lpmbench frame; None if nothing.
    ``from_agent``: this side is the orchestrator, so the peer should have been an agent."""
    quoted = quote_text(head)
    if from_agent:
        who = peer_name or "the agent"
        if looks_like_tls(head):
            return ErrorCode.TLS, (f"{who} answered in TLS: TLS is on at one end only (the agent serves TLS, "
                                   f"this orchestrator does not); pass --tls-ca with the agent's CA, or --tls")
        seen = f"it answered '{quoted}'" if quoted else f"its first bytes are {head[:8].hex(' ')}"
        return ErrorCode.PROTOCOL, (f"{who} is not an lpmbench agent: {seen}; check the host and port, and that "
                                    f"TLS is on at both ends or neither")
    if looks_like_tls(head):
        return ErrorCode.FRAME_SIZE, ("a TLS client on this agent's plain control port: TLS is on at one end only; "
                                      "start the agent with --tls-cert/--tls-key, or drop TLS on the orchestrator")
    if quoted:
        return ErrorCode.FRAME_SIZE, f"not an lpmbench orchestrator: it sent '{quoted}'"
    return None
