"""Text from a peer made safe to print and to log: no terminal control, no line breaks, bounded length.

A peer (an agent, an orchestrator, or a stranger before the handshake) chooses every string it sends: host
names, OS names, interface names, error messages. Printed raw, ESC and BEL sequences retitle or clear the
admin's terminal, recolour or hide text, and newlines forge lines in the agent's log; bidirectional overrides
make text read differently from what it holds. :func:`clean` removes all of these:

- escape sequences as a whole (CSI ``ESC [ ... m``, OSC ``ESC ] ... BEL``, DCS/APC/PM/SOS strings, and
  two-byte escapes), in their 7-bit and C1 forms, so no ``[31m`` debris remains;
- line and paragraph breaks and tabs become one space each;
- every other control (C0, DEL, C1), format character (bidi overrides and isolates, zero-width characters)
  and lone surrogate (which cannot even be encoded to write a log) becomes ``?``;
- the result is cut to ``limit`` characters, marked with ``...``.
"""

from __future__ import annotations

import re
import unicodedata

DEFAULT_LIMIT = 1024  # an error message with its advice fits; a megabyte of junk does not
ELLIPSIS = "..."

_ESCAPE_SEQUENCE = re.compile(
    "(?:\x1b\\[|\x9b)[0-?]*[ -/]*[@-~]?"  # CSI: parameters, intermediates, final byte (if it came)
    "|(?:\x1b[\\]P^_X]|[\x9d\x90\x9e\x9f\x98])[^\x07\x1b\x9c]*(?:\x07|\x1b\\\\|\x9c)?"  # OSC, DCS, PM, APC, SOS
    "|\x1b[ -/]*[0-~]?"  # any other escape (charset switches, keypad modes, RIS)
)
_SPACES = frozenset("\t\n\v\f\r\x1c\x1d\x1e\x1f\x85\u2028\u2029")
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


def _safe_char(char: str) -> str:
    if char in _SPACES:
        return " "
    if unicodedata.category(char) in _UNSAFE_CATEGORIES:
        return "?"
    return char


def clean(text: str, limit: int | None = DEFAULT_LIMIT) -> str:
    """``text`` without control characters or escape sequences, at most ``limit`` characters long (None: any)."""
    # Work on a bounded prefix: cleaning a megabyte to keep a kilobyte would be work a peer chose for us.
    head = text if limit is None else text[:4 * limit + 64]
    if head.isprintable() and head.isascii():  # the common case: nothing to strip
        out = head
    else:
        out = "".join(_safe_char(c) for c in _ESCAPE_SEQUENCE.sub("", head))
    if limit is not None and (len(out) > limit or len(head) < len(text)):
        out = out[:max(0, limit - len(ELLIPSIS))] + ELLIPSIS
    return out
