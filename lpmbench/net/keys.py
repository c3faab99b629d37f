"""Pre-shared key files: made by ``lpmbench keygen``, read by agents and by ``pair``."""

from __future__ import annotations

import os
import secrets
import stat

KEY_BYTES = 32


class KeyFileError(Exception):
    """The key file is missing, unreadable, too open or malformed; the message says which and what to do."""


def generate_key() -> str:
    return secrets.token_hex(KEY_BYTES)


def load_key(path: str) -> bytes:
    """Read a hex key file, refusing one that the group or others may read (like ssh does)."""
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        raise KeyFileError(f"cannot read key file {path}: {exc.strerror}") from exc
    if not stat.S_ISREG(mode):
        raise KeyFileError(f"key file {path} is not a regular file")
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(f"key file {path} is readable by group or others (mode {stat.S_IMODE(mode):o}); "
                           f"run: chmod 600 {path}")
    try:
        with open(path, encoding="ascii") as handle:
            text = handle.read(4096).strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyFileError(f"cannot read key file {path}: {exc}") from exc
    try:
        key = bytes.fromhex(text)
    except ValueError as exc:
        raise KeyFileError(f"key file {path} must hold hex digits as made by 'lpmbench keygen'") from exc
    if len(key) < 16:
        raise KeyFileError(f"key in {path} is {len(key)} bytes; at least 16 are needed (use lpmbench keygen)")
    return key


def write_key(path: str, key_hex: str) -> None:
    """Write a key file readable by its owner only."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(key_hex + "\n")
