"""Pure-Python twin of the data plane: one blocking loop per stream, meant to run in its own thread.

The C twin in ``ext/_lpmbench.c`` implements exactly this API. Both loops:

* take the socket as a plain file descriptor, which they never close (they work on a duplicate); the
  socket is non-blocking for the run (``sendfile`` has no per-call "don't wait" flag) and its original
  flags are restored;
* stop at the monotonic deadline (``time.monotonic_ns()`` clock), at ``max_bytes``, at EOF, or as soon as
  ``counters[SLOT_STOP]`` becomes non-zero (checked at least every ``POLL_SLICE_MS``);
* publish progress in ``counters[SLOT_BYTES]`` (bytes moved by this call) after every system call, so
  the agent samples throughput without stopping the loop;
* raise ``OSError`` (with errno) for socket errors such as a reset peer.

Python's ``socket.send``/``recv_into`` and ``os.sendfile`` release the GIL around the system call, so
with large buffers most time is spent outside the interpreter and several streams overlap on several
cores.
"""

from __future__ import annotations

import errno
import fcntl
import ipaddress
import mmap
import os
import select
import socket
import struct
import time
from array import array
from collections.abc import Iterator
from contextlib import contextmanager

from lpmbench.platform import capabilities

SLOT_BYTES = 0
SLOT_STOP = 1
COUNTER_SLOTS = 2
POLL_SLICE_MS = 100
IMPLEMENTATION = "python"

# Linux ABI values that the socket module does not export. SO_ZEROCOPY is 60 except on SPARC and
# PA-RISC, where the twin simply does not offer zerocopy.
_SO_ZEROCOPY = 60
_MSG_ZEROCOPY = 0x4000000
_SO_EE_ORIGIN_ZEROCOPY = 5
_SO_EE_CODE_ZEROCOPY_COPIED = 1
_RECVERR = {(getattr(socket, "SOL_IP", 0), 11), (socket.IPPROTO_IPV6, 25)}  # IP_RECVERR, IPV6_RECVERR
# struct sock_extended_err: ee_errno, ee_origin, ee_type, ee_code, ee_pad, ee_info, ee_data
_EXTENDED_ERR = struct.Struct("=IBBBBII")
# CPython ignores SIGPIPE, but an embedding program may not: ask for EPIPE explicitly.
_MSG_NOSIGNAL = getattr(socket, "MSG_NOSIGNAL", 0)
#: MSG_ZEROCOPY sends allowed to wait for their completion (pinned pages, optmem); same as the C twin.
ZEROCOPY_MAX_INFLIGHT = 64
#: "auto" judges after this many zerocopy completions whether the kernel copies anyway.
ZEROCOPY_PROBE_SENDS = 16

_HAVE_ZEROCOPY = bool(capabilities.HAS_ZEROCOPY)
_HAVE_SENDFILE = bool(capabilities.HAS_SENDFILE)
SEND_METHODS = (("zerocopy",) if _HAVE_ZEROCOPY else ()) + (("sendfile",) if _HAVE_SENDFILE else ()) + ("send",)


def new_counters() -> array:
    """Shared counters for one stream: written by the loop, read by the sampler."""
    return array("Q", [0] * COUNTER_SLOTS)


def _counter_view(counters: object) -> memoryview:
    """The loop writes through this view, as the C twin does, so the array cannot be resized meanwhile."""
    slots = memoryview(counters)  # type: ignore[arg-type]
    if (slots.readonly or slots.format not in ("Q", "@Q") or slots.ndim != 1 or not slots.c_contiguous
            or len(slots) < COUNTER_SLOTS):
        slots.release()
        raise ValueError(f"counters must be a writable array('Q') of at least {COUNTER_SLOTS} slots "
                         "(use new_counters())")
    return slots


def _byte_view(obj: object, writable: bool, what: str) -> memoryview:
    view = memoryview(obj).cast("B")  # type: ignore[arg-type]
    if writable and view.readonly:
        raise TypeError(f"{what} must be writable (for example a bytearray)")
    if not len(view):
        raise ValueError(f"{what} must not be empty")
    return view


class _Poller:
    """Waits one slice at most, so the stop flag and the deadline are looked at every POLL_SLICE_MS."""

    def __init__(self, fd: int, events: int, deadline_ns: int) -> None:
        self._poll = select.poll()
        self._poll.register(fd, events)
        self._deadline_ns = deadline_ns

    def wait(self) -> int:
        """The revents seen within one slice, 0 when none (or the deadline has passed)."""
        remaining_ms = -(-(self._deadline_ns - time.monotonic_ns()) // 1_000_000)
        if remaining_ms <= 0:
            return 0
        ready = self._poll.poll(min(remaining_ms, POLL_SLICE_MS))
        return ready[0][1] if ready else 0


class _PlainSender:
    """send() from the caller's payload buffer: one copy into the kernel per byte."""

    name = "send"

    def __init__(self, sock: socket.socket, payload: memoryview, deadline_ns: int) -> None:
        self.size = len(payload)
        self._sock = sock
        self._payload = payload

    def send(self, want: int) -> int:
        """Bytes sent (0: nothing this time, go round again); BlockingIOError when the socket is full."""
        return self._sock.send(self._payload[:want], _MSG_NOSIGNAL)

    def after_wait(self, revents: int) -> None:
        """Called after waiting for POLLOUT with what poll() reported."""

    def close(self) -> None:
        """Free what the method set up (never the caller's socket)."""


class _SendfileSender(_PlainSender):
    """sendfile() from a memfd holding the payload: the kernel passes page references, no copy."""

    name = "sendfile"

    def __init__(self, sock: socket.socket, payload: memoryview, deadline_ns: int) -> None:
        super().__init__(sock, payload, deadline_ns)
        self._memfd = os.memfd_create("lpmbench-payload", os.MFD_CLOEXEC)
        try:
            with open(self._memfd, "wb", buffering=0, closefd=False) as memfile:
                memfile.write(payload)
        except OSError:
            os.close(self._memfd)
            raise

    def send(self, want: int) -> int:
        return os.sendfile(self._sock.fileno(), self._memfd, 0, want)

    def close(self) -> None:
        os.close(self._memfd)


class _ZeroCopySender(_PlainSender):
    """send(MSG_ZEROCOPY), reaping completions from the error queue so pinned sends stay bounded.

    The kernel pins the pages until the peer acknowledges them, possibly after this call returns, so
    the sends come from a private anonymous copy of the payload: unmapping it drops only our mapping.
    With ``probing`` ("auto") it switches to plain send once most early completions say the kernel
    copied anyway, as the C twin does (AUTO_POLICY in ext/loops.c).
    """

    name = "zerocopy"

    def __init__(self, sock: socket.socket, payload: memoryview, deadline_ns: int, probing: bool = False) -> None:
        super().__init__(sock, payload, deadline_ns)
        sock.setsockopt(socket.SOL_SOCKET, _SO_ZEROCOPY, 1)
        self._region = mmap.mmap(-1, self.size, flags=mmap.MAP_PRIVATE)
        self._region.write(payload)
        self._view = memoryview(self._region)
        self._errors = _Poller(sock.fileno(), 0, deadline_ns)  # poll() always reports POLLERR
        self._probing = probing
        self._issued = self._completed = self._copied = 0
        self._reap()  # notifications left by an earlier call on this socket are not ours
        self._completed = self._copied = 0

    def send(self, want: int) -> int:
        self._judge()
        if self.name != "zerocopy":
            return super().send(want)
        if self._issued - self._completed >= ZEROCOPY_MAX_INFLIGHT:
            self._make_room()
            return 0
        try:
            sent = self._sock.send(self._view[:want], _MSG_NOSIGNAL | _MSG_ZEROCOPY)
        except BlockingIOError:
            raise
        except OSError as exc:
            if exc.errno != errno.ENOBUFS:  # ENOBUFS: out of option memory for notifications
                raise
            self._make_room()
            return 0
        if sent > 0:
            self._issued += 1
        return sent

    def after_wait(self, revents: int) -> None:
        if revents & select.POLLERR:
            self._reap()

    def close(self) -> None:
        self._reap()
        self._view.release()
        self._region.close()

    def _judge(self) -> None:
        if not self._probing or self._completed < ZEROCOPY_PROBE_SENDS:
            return
        self._probing = False
        if self._copied * 2 > self._completed:
            self.name = "send"

    def _make_room(self) -> None:
        if not self._reap():
            self._errors.wait()
            self._reap()

    def _reap(self) -> bool:
        """Drain the error queue; True when some send completed."""
        before = self._completed
        while True:
            try:
                _, ancillary, _, _ = self._sock.recvmsg(0, 256, socket.MSG_ERRQUEUE)
            except BlockingIOError:
                return self._completed != before
            for level, kind, data in ancillary:
                if (level, kind) in _RECVERR and len(data) >= _EXTENDED_ERR.size:
                    self._note(*_EXTENDED_ERR.unpack_from(data))

    def _note(self, ee_errno: int, origin: int, _type: int, code: int, _pad: int, first: int, last: int) -> None:
        if origin != _SO_EE_ORIGIN_ZEROCOPY or ee_errno != 0:
            return
        sends = ((last - first) & 0xFFFFFFFF) + 1  # the inclusive range [first, last] of 32-bit send ids
        self._completed += sends
        if code & _SO_EE_CODE_ZEROCOPY_COPIED:
            self._copied += sends


_SENDERS = {"zerocopy": _ZeroCopySender, "sendfile": _SendfileSender, "send": _PlainSender}


def _peer_is_loopback(sock: socket.socket) -> bool:
    """Is the peer on this host?  Then every byte is copied into the receiver anyway."""
    if sock.family not in (socket.AF_INET, socket.AF_INET6):
        return True  # AF_UNIX and friends never leave the host
    try:
        host = sock.getpeername()[0].split("%", 1)[0]
    except OSError:
        return False
    address = ipaddress.ip_address(host)
    mapped = getattr(address, "ipv4_mapped", None)
    return address.is_loopback or bool(mapped and mapped.is_loopback)


def _auto_methods(sock: socket.socket) -> list[str]:
    """What "auto" tries, best first: the C twin's AUTO_POLICY (measurements in ext/loops.c)."""
    if _peer_is_loopback(sock):
        return ["send"]  # the receiver copies anyway: one copy by send() is the cheapest
    return list(SEND_METHODS)


def _open_sender(method: str, sock: socket.socket, payload: memoryview, deadline_ns: int) -> _PlainSender:
    if method != "auto":
        return _SENDERS[method](sock, payload, deadline_ns)
    *preferred, last = _auto_methods(sock)
    for name in preferred:
        try:
            if name == "zerocopy":
                return _ZeroCopySender(sock, payload, deadline_ns, probing=True)
            return _SENDERS[name](sock, payload, deadline_ns)
        except OSError:
            continue  # refused by the kernel: "auto" degrades to the next method
    return _SENDERS[last](sock, payload, deadline_ns)


@contextmanager
def _nonblocking_socket(fd: int) -> Iterator[socket.socket]:
    """A socket object over a duplicate of ``fd``, non-blocking for the run, original flags restored."""
    duplicate = os.dup(fd)
    try:
        sock = socket.socket(fileno=duplicate)
    except OSError:  # not a socket
        os.close(duplicate)
        raise
    try:
        flags = fcntl.fcntl(sock.fileno(), fcntl.F_GETFL)
        sock.setblocking(False)
        try:
            yield sock
        finally:
            if not flags & os.O_NONBLOCK:
                # Through our duplicate: should the caller close or reuse its number meanwhile,
                # this still reaches this socket and no other.
                fcntl.fcntl(sock.fileno(), fcntl.F_SETFL, flags)
    finally:
        sock.close()


def _check_method(method: str) -> None:
    if method != "auto" and method not in SEND_METHODS:
        raise ValueError(f"send method {method!r} is not supported by the Python data plane "
                         f"(choose from {', '.join(SEND_METHODS)} or auto)")


def send_stream(fd: int, payload: bytes, deadline_ns: int, max_bytes: int, counters: array,
                method: str = "auto") -> tuple[int, str]:
    """Send ``payload`` repeatedly on ``fd`` until the deadline or ``max_bytes`` (0: no limit).

    ``method`` is "auto" or one of ``SEND_METHODS``; an unknown one is a ValueError, one the kernel
    refuses an OSError. Returns ``(bytes_sent, method_used)``.
    """
    _check_method(method)
    if max_bytes < 0:
        raise ValueError("max_bytes must be >= 0 (0: no limit)")
    view = _byte_view(payload, False, "payload")
    slots = _counter_view(counters)
    try:
        with _nonblocking_socket(fd) as sock:
            sender = _open_sender(method, sock, view, deadline_ns)
            try:
                slots[SLOT_BYTES] = 0
                sent = _send_loop(sender, _Poller(sock.fileno(), select.POLLOUT, deadline_ns),
                                  deadline_ns, max_bytes, slots)
            finally:
                sender.close()
    finally:
        slots.release()
        view.release()
    return sent, sender.name


def _send_loop(sender: _PlainSender, poller: _Poller, deadline_ns: int, max_bytes: int,
               slots: memoryview) -> int:
    sent = 0
    while not slots[SLOT_STOP] and time.monotonic_ns() < deadline_ns and (not max_bytes or sent < max_bytes):
        want = sender.size if not max_bytes else min(sender.size, max_bytes - sent)
        try:
            moved = sender.send(want)
        except BlockingIOError:
            sender.after_wait(poller.wait())
            continue
        if moved:
            sent += moved
            slots[SLOT_BYTES] = sent
    return sent


def recv_stream(fd: int, buffer: bytearray, deadline_ns: int, counters: array, discard: bool = False) -> int:
    """Receive on ``fd`` into ``buffer`` until EOF, the deadline or a stop request; returns bytes received.

    With ``discard`` the kernel drops the data (``MSG_TRUNC``, Linux) instead of copying it, so the run
    measures the network rather than the copy.
    """
    if discard and not capabilities.HAS_MSG_TRUNC_DISCARD:
        raise OSError(errno.EOPNOTSUPP, capabilities.HAS_MSG_TRUNC_DISCARD.reason)
    flags = socket.MSG_TRUNC if discard else 0
    view = _byte_view(buffer, True, "buffer")
    slots = _counter_view(counters)
    try:
        with _nonblocking_socket(fd) as sock:
            slots[SLOT_BYTES] = 0
            poller = _Poller(sock.fileno(), select.POLLIN, deadline_ns)
            received = 0
            while not slots[SLOT_STOP] and time.monotonic_ns() < deadline_ns:
                try:
                    moved = sock.recv_into(view, len(view), flags)
                except BlockingIOError:
                    poller.wait()
                    continue
                if not moved:
                    break  # EOF
                received += moved
                slots[SLOT_BYTES] = received
    finally:
        slots.release()
        view.release()
    return received
