"""Pre-shared key files: made by ``lpmbench keygen``, read by agents and by ``pair``.

A key file is trusted only if no other user can read it or put another key in its place, the rule ssh's
StrictModes applies to ``authorized_keys``: the file is owned by this process's user or root and is mode 600
(or stricter), and every directory on its path, up to ``/``, is owned by this user or root and writable by
nobody else -- unless the directory is sticky (``/tmp``): there, other users cannot rename or remove what
they do not own.
"""

from __future__ import annotations

import os
import secrets
import stat

KEY_BYTES = 32
_MAX_KEY_FILE_CHARS = 4096


class KeyFileError(Exception):
    """The key file is missing, unreadable, too open or malformed; the message says which and what to do."""


def generate_key() -> str:
    return secrets.token_hex(KEY_BYTES)


def _user_name(uid: int) -> str:
    try:
        import pwd  # POSIX only (AIX and Linux have it)

        return pwd.getpwuid(uid).pw_name
    except (ImportError, KeyError):
        return str(uid)


def _trusted_owner(uid: int) -> bool:
    return uid in (0, os.geteuid())


def _check_file(path: str, info: os.stat_result) -> None:
    if not stat.S_ISREG(info.st_mode):
        raise KeyFileError(f"key file {path} is not a regular file")
    if not _trusted_owner(info.st_uid):
        me = _user_name(os.geteuid())
        raise KeyFileError(f"key file {path} is owned by {_user_name(info.st_uid)}, not by {me} or root: that "
                           f"user could change the key; run: chown {me} {path}")
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(f"key file {path} is readable by group or others (mode {stat.S_IMODE(info.st_mode):o}); "
                           f"run: chmod 600 {path}")


def _ancestors(path: str) -> list[str]:
    """Every directory that holds the key, up to ``/``: along the path as given and along the resolved path
    (a symbolic link can be swapped by whoever may write the directory that holds the link)."""
    found: list[str] = []
    for start in (os.path.abspath(path), os.path.realpath(path)):
        directory = os.path.dirname(start)
        while directory not in found:
            found.append(directory)
            parent = os.path.dirname(directory)
            if parent == directory:
                break
            directory = parent
    return found


def _check_directory(path: str, directory: str) -> None:
    try:
        info = os.stat(directory)
    except OSError as exc:
        raise KeyFileError(f"cannot check directory {directory} of key file {path}: {exc.strerror}") from exc
    if not _trusted_owner(info.st_uid):
        raise KeyFileError(f"key file {path} is in {directory}, owned by {_user_name(info.st_uid)}: that user could "
                           f"replace the key; run: chown root {directory}, or keep the key in a directory owned by "
                           f"{_user_name(os.geteuid())} or root")
    writable_by_others = info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    if writable_by_others and not info.st_mode & stat.S_ISVTX:
        raise KeyFileError(f"key file {path} is in {directory}, which group or others may write (mode "
                           f"{stat.S_IMODE(info.st_mode):o}): they could replace the key; run: chmod go-w {directory}")


def check_key_file(path: str, info: os.stat_result) -> None:
    """KeyFileError unless the file described by ``info`` (and every directory above it) is safe to trust."""
    _check_file(path, info)
    for directory in _ancestors(path):
        _check_directory(path, directory)


def _read_key_text(path: str) -> str:
    """The file's text, checked on the open file itself so that it cannot be swapped between check and read."""
    # O_NONBLOCK: a FIFO put in the key's place must not hang the agent (it is refused as not a regular file).
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise KeyFileError(f"cannot read key file {path}: {exc.strerror}") from exc
    try:
        check_key_file(path, os.fstat(fd))
        with os.fdopen(os.dup(fd), "r", encoding="ascii") as handle:
            return handle.read(_MAX_KEY_FILE_CHARS).strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyFileError(f"cannot read key file {path}: {exc}") from exc
    finally:
        os.close(fd)


def load_key(path: str) -> bytes:
    """Read a hex key file, refusing one that another user may read or replace (like ssh does)."""
    text = _read_key_text(path)
    try:
        key = bytes.fromhex(text)
    except ValueError as exc:
        raise KeyFileError(f"key file {path} must hold hex digits as made by 'lpmbench keygen'") from exc
    if len(key) < 16:
        raise KeyFileError(f"key in {path} is {len(key)} bytes; at least 16 are needed (use lpmbench keygen)")
    return key


def _create_private(path: str, text: str) -> None:
    """Create ``path`` mode 600 from its first instant (O_EXCL: never an existing file, never a symlink's target)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(text)


def write_key(path: str, key_hex: str, replace: bool = True) -> None:
    """Write a key file readable by its owner only. FileExistsError if it exists and ``replace`` is False.

    A replaced key is written to a new mode-600 file beside it and renamed over it, so a reader (an agent's
    SIGHUP reload) sees the old key or the new one, never a half-written file or a moment at mode 644.
    """
    if not replace:
        _create_private(path, key_hex + "\n")
        return
    temporary = f"{path}.{secrets.token_hex(4)}.tmp"
    _create_private(temporary, key_hex + "\n")
    try:
        os.replace(temporary, path)
    except OSError:
        os.unlink(temporary)
        raise
