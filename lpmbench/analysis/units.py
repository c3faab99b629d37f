"""Strict parsers and human formatters for sizes, rates and durations.

Parsers raise ``ValueError`` with a message that says what is accepted. They are strict on purpose:
a planning tool that silently reads "10G" as 10 GB when the admin meant 10 Gbit/s would be off by a
factor of eight.

Decisions, so that nobody has to guess:

* Sizes are bytes. ``KiB MiB GiB TiB`` are binary (powers of 1024), ``KB MB GB TB`` decimal (powers
  of 1000), ``B`` or no unit means bytes; a bare number must then be a whole number. Each unit is
  accepted in its canonical spelling, all lower case or all upper case (``GiB``, ``gib``, ``GIB``);
  other mixes such as ``Gb`` or ``gB`` are rejected, because ``Gb`` reads as gigabits.
* Rates are returned in bits per second, with decimal prefixes (k, M, G, T) as networks use them.
  Bit rates must say ``bit`` (``Mbit``, ``Mbit/s``, ``Mbits/s``) or end in lower-case ``bps``
  (``Mbps``, ``Gbps``). Byte rates must say an upper-case ``B`` followed by ``/s`` (``MB/s``,
  ``MiB/s``). ``Mb``, ``Mb/s``, ``MBps`` and ``mib/s`` are rejected as ambiguous between bits and
  bytes, and a rate without a unit is rejected.
  A bare ``0`` is zero in every unit and is accepted (``--dirty-rate 0``).
* Durations are seconds: ``90s``, ``30m``, ``1.5h``, ``1h 02m``, ``55m 10s``. Components come in the
  order h, m, s, each at most once. :func:`parse_duration_seconds` also reads a bare number as seconds:
  it is for options named and documented in seconds (``pair --duration 10``, the form scripts use).
  :func:`parse_duration_with_unit` refuses a bare number other than 0 (``--window 30``: seconds or
  minutes?) and asks "did you mean 30m?".
* A size or rate whose unit is only a prefix (``256G``) is refused with the spellings it could mean
  (``256GiB or 256GB``; ``10Gbit/s or 10GB/s``), in one line.
"""

from __future__ import annotations

import math
import re
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Callable, Optional

__all__ = [
    "format_byte_rate",
    "format_bytes",
    "format_duration",
    "format_rate_bps",
    "parse_duration_seconds",
    "parse_duration_with_unit",
    "parse_rate_bps",
    "parse_size_bytes",
]

# A number as people type it: digits, optionally a decimal fraction. No sign, exponent, inf or nan.
_NUMBER = r"\d+(?:\.\d+)?"
_SIZE_RE = re.compile(rf"(?P<number>{_NUMBER})\s*(?P<unit>[A-Za-z]*)")
_RATE_RE = re.compile(rf"(?P<number>{_NUMBER})\s*(?P<unit>[A-Za-z/]*)")

_CANONICAL_SIZE_UNITS = {
    "B": 1,
    "KB": 10**3,
    "MB": 10**6,
    "GB": 10**9,
    "TB": 10**12,
    "KiB": 2**10,
    "MiB": 2**20,
    "GiB": 2**30,
    "TiB": 2**40,
}
# Canonical, all-lower and all-upper spellings; nothing else, so "Gb" (gigabit?) is refused.
_SIZE_UNITS = {
    spelling: factor
    for canonical, factor in _CANONICAL_SIZE_UNITS.items()
    for spelling in (canonical, canonical.lower(), canonical.upper())
}
# More than a zebibyte is a typo, and it would overflow the float arithmetic of the model.
_MAX_SIZE_BYTES = 2**70

_SIZE_HELP = (
    "expected a non-negative number with a unit: B, KB, MB, GB, TB (powers of 1000) or "
    "KiB, MiB, GiB, TiB (powers of 1024), e.g. 256GiB or 1.5TB; a bare number is a whole count of bytes"
)
_RATE_HELP = (
    "expected a non-negative number with a unit: bits as kbit, Mbit, Gbit, Tbit (optionally /s) "
    "or kbps, Mbps, Gbps, Tbps; bytes as B/s, KB/s, MB/s, GB/s, TB/s, KiB/s, MiB/s, GiB/s, TiB/s; "
    "e.g. 10Gbit/s or 600MiB/s"
)
_DURATION_HELP = (
    "expected a non-negative duration such as 90s, 30m, 1.5h, 1h 02m or 55m 10s "
    "(h, m, s in that order)"
)

_DECIMAL_PREFIXES = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}
_BINARY_PREFIXES = {"k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}
_BIT_UNIT_RE = re.compile(r"(?P<prefix>[kmgt]?)bits?(?:/s)?", re.IGNORECASE)
# Lower-case "bps" only: "MBps" conventionally means megabytes and is refused as ambiguous below.
_BPS_UNIT_RE = re.compile(r"(?P<prefix>[kKmMgGtT]?)bps")
# An upper-case B is what makes a byte rate unambiguous.
_BYTE_UNIT_RE = re.compile(r"(?P<prefix>[kKmMgGtT]?)(?P<binary>[iI]?)B/s")
_AMBIGUOUS_RATE_RE = re.compile(r"[kmgt]?i?(?:b|b/s|bps)", re.IGNORECASE)

_DURATION_RE = re.compile(
    rf"(?:(?P<h>{_NUMBER})\s*h)?\s*(?:(?P<m>{_NUMBER})\s*m)?\s*(?:(?P<s>{_NUMBER})\s*s)?",
    re.IGNORECASE,
)


def _require_text(text: object, what: str) -> str:
    if not isinstance(text, str):
        raise TypeError(f"{what} must be given as text, not {type(text).__name__}")
    return text.strip()


def _finite(value: float, text: str, help_text: str) -> float:
    """``value`` unless the digits were too many for a float (they become inf)."""
    if math.isinf(value):
        raise ValueError(f"{text!r} is too large; {help_text}")
    return value


# A unit that is only a prefix ("256G", "1.5t"): which byte units it could mean is the whole answer.
_PREFIX_ONLY_RE = re.compile(r"(?P<prefix>[kKmMgGtT])")


def _byte_units_meant(number: str, unit: str) -> str | None:
    match = _PREFIX_ONLY_RE.fullmatch(unit)
    if match is None:
        return None
    prefix = match.group("prefix").upper()
    return f"{number}{prefix}iB or {number}{prefix}B"


def _is_zero(number: str) -> bool:
    return Decimal(number) == 0


def parse_size_bytes(text: str) -> int:
    """Parse a memory or data size such as ``256GiB``, ``1.5 TB`` or ``4096`` into whole bytes.

    Fractions are rounded to the nearest byte (``0.3KiB`` is 307 bytes).
    """
    stripped = _require_text(text, "a size")
    match = _SIZE_RE.fullmatch(stripped)
    if match is None:
        raise ValueError(f"not a size: {text!r}; {_SIZE_HELP}")
    number, unit = match.group("number"), match.group("unit")
    factor = 1 if unit == "" else _SIZE_UNITS.get(unit)
    if factor is None:
        meant = _byte_units_meant(number, unit)
        if meant is not None:
            raise ValueError(f"{text!r} is not a size: did you mean {meant}? (KiB, MiB, GiB, TiB are powers of "
                             f"1024; KB, MB, GB, TB of 1000)")
        raise ValueError(f"unknown size unit {unit!r} in {text!r}; {_SIZE_HELP}")
    if factor == 1 and "." in number:
        raise ValueError(f"a count of bytes must be a whole number, got {text!r}; {_SIZE_HELP}")
    size = int((Decimal(number) * factor).to_integral_value(rounding=ROUND_HALF_UP))
    if size > _MAX_SIZE_BYTES:
        raise ValueError(f"size {text!r} is implausibly large (over 1 ZiB); {_SIZE_HELP}")
    return size


def _rate_unit_bits_factor(unit: str, text: str) -> int:
    """Bits per second that one of ``unit`` stands for."""
    for bit_form in (_BIT_UNIT_RE, _BPS_UNIT_RE):
        match = bit_form.fullmatch(unit)
        if match is not None:
            return _DECIMAL_PREFIXES[match.group("prefix").lower()]
    match = _BYTE_UNIT_RE.fullmatch(unit)
    if match is not None:
        prefix = match.group("prefix").lower()
        if match.group("binary"):
            if not prefix:
                raise ValueError(f"unknown rate unit {unit!r} in {text!r}; {_RATE_HELP}")
            return 8 * _BINARY_PREFIXES[prefix]
        return 8 * _DECIMAL_PREFIXES[prefix]
    if unit == "":
        raise ValueError(f"a rate needs a unit, got {text!r}; {_RATE_HELP}")
    if re.fullmatch(r"[kKmMgGtT]", unit):
        number = text[:-1].strip()  # text is stripped: the unit is its last character
        raise ValueError(f"{text!r} is not a rate: did you mean {number}{unit}bit/s (bits) or "
                         f"{number}{unit.upper()}B/s (bytes)?")
    if _AMBIGUOUS_RATE_RE.fullmatch(unit):
        raise ValueError(
            f"rate unit {unit!r} in {text!r} is ambiguous between bits and bytes: write e.g. "
            "Mbit/s or Mbps for bits, MB/s or MiB/s for bytes"
        )
    raise ValueError(f"unknown rate unit {unit!r} in {text!r}; {_RATE_HELP}")


def parse_rate_bps(text: str) -> float:
    """Parse a rate such as ``10Gbit/s``, ``940 Mbps`` or ``600MiB/s`` into bits per second."""
    stripped = _require_text(text, "a rate")
    match = _RATE_RE.fullmatch(stripped)
    if match is None:
        raise ValueError(f"not a rate: {text!r}; {_RATE_HELP}")
    if match.group("unit") == "" and _is_zero(match.group("number")):
        return 0.0  # nothing per second is nothing in every unit
    bits_factor = _rate_unit_bits_factor(match.group("unit"), stripped)
    return _finite(float(Decimal(match.group("number")) * bits_factor), text, _RATE_HELP)


def parse_duration_seconds(text: str) -> float:
    """Parse a duration such as ``90s``, ``30m``, ``1.5h``, ``1h 02m`` or ``12.3 s`` into seconds; a bare number
    is seconds (for options documented in seconds, such as ``pair --duration``)."""
    stripped = _require_text(text, "a duration")
    if re.fullmatch(_NUMBER, stripped):
        return _finite(float(stripped), text, _DURATION_HELP)
    return _duration_with_unit(stripped, text)


def parse_duration_with_unit(text: str, suggested_unit: str = "m") -> float:
    """Parse a duration that must say its unit (``30m``, ``90s``, ``1h``) into seconds.

    A bare number other than 0 is refused ("did you mean 30m?", with ``suggested_unit``): a migration window
    of 30 is seconds to a program and minutes to an admin.
    """
    stripped = _require_text(text, "a duration")
    if re.fullmatch(_NUMBER, stripped):
        if _is_zero(stripped):
            return 0.0
        raise ValueError(f"{stripped!r} has no unit: did you mean {stripped}{suggested_unit}? "
                         f"(durations take s, m or h: 90s, 30m, 1h)")
    return _duration_with_unit(stripped, text)


def _duration_with_unit(stripped: str, text: str) -> float:
    match = _DURATION_RE.fullmatch(stripped)
    if match is None or not any(match.group(part) for part in ("h", "m", "s")):
        raise ValueError(f"not a duration: {text!r}; {_DURATION_HELP}")
    seconds_per_part = {"h": 3600, "m": 60, "s": 1}
    total = sum(Decimal(match.group(part)) * scale for part, scale in seconds_per_part.items() if match.group(part))
    return _finite(float(total), text, _DURATION_HELP)


MISSING = "-"  # how a fact that was not measured reads in a table


def finite_or_none(value: Any) -> Optional[float]:
    """A finite number, or None for anything else (missing, null, text, bool, NaN, infinity).

    Results and reports come over the wire or from files and are not trusted: every reader goes through this.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:  # a 400-digit integer
        return None
    return number if math.isfinite(number) else None


def shown(formatter: Callable[[float], str], value: Any) -> str:
    """For views of documents that came from elsewhere: ``formatter(value)``, or ``-`` when the value is not a
    finite non-negative number (missing, null, text, negative, NaN). The formatters themselves stay strict:
    in lpmbench's own arithmetic such a value is a bug."""
    number = finite_or_none(value)
    return MISSING if number is None or number < 0 else formatter(number)


def _check_formattable(value: float, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{what} must be a number, not {type(value).__name__}")
    if math.isnan(value) or value < 0:
        raise ValueError(f"{what} must be a non-negative number, got {value!r}")


def _three_significant(value: float, unit: str) -> str:
    """``value`` with about three significant digits; whole numbers without decimals."""
    if value == int(value):
        return f"{int(value)} {unit}"
    if value < 10:
        return f"{value:.2f} {unit}"
    if value < 100:
        return f"{value:.1f} {unit}"
    return f"{value:.0f} {unit}"


def format_bytes(count: float) -> str:
    """Bytes for humans in binary units: ``512 B``, ``1.50 GiB``, ``256 GiB``.

    The result parses back with :func:`parse_size_bytes` to within 0.5%.
    """
    _check_formattable(count, "a byte count")
    if math.isinf(count):
        return "unbounded"
    if count < 1024:
        return f"{round(count)} B"
    for unit, factor in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if count >= factor:
            return _three_significant(count / factor, unit)
    raise AssertionError("unreachable: count >= 1024 always matches KiB")


def format_byte_rate(bytes_per_second: float) -> str:
    """A byte rate (e.g. a dirty rate) for humans: ``600 MiB/s``; parses back with parse_rate_bps."""
    return f"{format_bytes(bytes_per_second)}/s"


def format_rate_bps(bits_per_second: float) -> str:
    """Bits per second for humans in decimal units: ``9.41 Gbit/s``, ``640 Mbit/s``."""
    _check_formattable(bits_per_second, "a rate")
    if math.isinf(bits_per_second):
        return "unbounded"
    for unit, factor in (("Tbit/s", 1e12), ("Gbit/s", 1e9), ("Mbit/s", 1e6), ("kbit/s", 1e3)):
        if bits_per_second >= factor:
            return _three_significant(bits_per_second / factor, unit)
    return _three_significant(bits_per_second, "bit/s")


def format_duration(seconds: float) -> str:
    """Seconds for humans: ``12.3 s`` under a minute, ``55m 10s`` under an hour, else ``1h 02m``.

    Infinity (a migration that never finishes) reads ``never``.
    """
    _check_formattable(seconds, "a duration")
    if math.isinf(seconds):
        return "never"
    if round(seconds, 1) < 60:
        return f"{seconds:.1f} s"
    whole_seconds = round(seconds)
    if whole_seconds < 3600:
        minutes, rest = divmod(whole_seconds, 60)
        return f"{minutes}m {rest:02d}s"
    hours, minutes = divmod(round(seconds / 60), 60)
    return f"{hours}h {minutes:02d}m"
