"""Path MTU probing with "don't fragment" UDP datagrams.

The interface MTU says what a host may send, not what the path delivers: a switch left at 1500
between two hosts at 9000 silently drops every jumbo frame (a black hole; no ICMP comes back from
a layer-2 device). So we measure it: the prober sends datagrams of chosen IP sizes with DF set
and without local fragmentation, the responder on the peer answers each with a SHORT reply
(token, sequence number, size received), so only the forward path is measured and the reverse
path's MTU never matters.

The search is k-ary rather than binary: every round sends several sizes at once, so one timeout
per round (not per size) bounds the time. Random loss is told apart from "too big" by
monotonicity (a size that failed while a larger one passed was lost) and by re-probing the
smallest failing size until it has failed ``retries + 1`` times.
"""

from __future__ import annotations

import asyncio
import errno
import hmac
import ipaddress
import select
import socket
import struct
import time
from dataclasses import dataclass, field
from typing import cast

from lpmbench.net.ports import Ports, bind_in_range
from lpmbench.platform import capabilities

__all__ = ["IPV4_OVERHEAD", "IPV6_OVERHEAD", "ProbeResult", "probe_path_mtu", "start_responder"]

IPV4_OVERHEAD = 28  # IPv4 header 20 + UDP header 8
IPV6_OVERHEAD = 48  # IPv6 header 40 + UDP header 8

# Option numbers come from lpmbench.platform.capabilities: the socket module's, Linux's own on Linux, else
# None (on AIX IP-level 10 is IP_MULTICAST_TTL, not IP_MTU_DISCOVER: a call with it would succeed, DF would
# never be set, and a jumbo black hole would pass).
IP_MTU_DISCOVER = capabilities.option("IP_MTU_DISCOVER")
IP_PMTUDISC_PROBE = capabilities.option("IP_PMTUDISC_PROBE")  # set DF, ignore the cached path MTU
IP_DONTFRAG = getattr(socket, "IP_DONTFRAG", None)  # BSD-style DF, for platforms without IP_MTU_DISCOVER
IPV6_MTU_DISCOVER = capabilities.option("IPV6_MTU_DISCOVER")
IPV6_PMTUDISC_PROBE = capabilities.option("IPV6_PMTUDISC_PROBE")
IPV6_DONTFRAG = capabilities.option("IPV6_DONTFRAG")  # else IPv6 fragments locally to the dev MTU

_REQUEST, _REPLY = b"P", b"R"
_SEQ = struct.Struct("!I")
_REPLY_BODY = struct.Struct("!II")  # sequence number, datagram size received
_MAX_TOKEN = 64
_SIZES_PER_ROUND = 6
_WELL_KNOWN_MTUS = (1500, 1280)  # tried first: most paths are one of these or the maximum


def _token_bytes(token: str | bytes) -> bytes:
    raw = token.encode() if isinstance(token, str) else bytes(token)
    if not 1 <= len(raw) <= _MAX_TOKEN:
        raise ValueError(f"token must be 1..{_MAX_TOKEN} bytes, got {len(raw)}")
    return raw


# -- responder ---------------------------------------------------------------------------------
class _EchoSizeProtocol(asyncio.DatagramProtocol):
    """Answers token-bearing probes with (token, 'R', seq, size received); ignores the rest."""

    def __init__(self, token: bytes) -> None:
        self.token = token
        self.transport: asyncio.DatagramTransport | None = None
        self.answered = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Not always a DatagramTransport subclass (selector loop on 3.11, uvloop): duck-type it.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        head = len(self.token)
        if len(data) < head + 1 + _SEQ.size or data[head:head + 1] != _REQUEST:
            return
        if not hmac.compare_digest(data[:head], self.token):
            return
        (seq,) = _SEQ.unpack_from(data, head + 1)
        if self.transport is not None:
            self.transport.sendto(self.token + _REPLY + _REPLY_BODY.pack(seq, len(data)), addr)
            self.answered += 1

    def error_received(self, exc: Exception) -> None:
        """An ICMP error for one reply must not stop the responder."""


async def start_responder(loop: asyncio.AbstractEventLoop, bind_host: str | None, ports: Ports,
                          token: str | bytes) -> tuple[asyncio.DatagramTransport, int]:
    """Listen for probes on bind_host (None: every address) at a port: 0 any, N, or a free one in (low, high).

    Returns (transport, port). Close the transport to stop. Only datagrams that start with the
    run token get an answer, and answers are short, so the responder cannot be used to amplify.
    """
    raw_token = _token_bytes(token)
    sock = bind_in_range(bind_host, ports, socket.SOCK_DGRAM)
    try:
        transport, _ = await loop.create_datagram_endpoint(lambda: _EchoSizeProtocol(raw_token), sock=sock)
    except BaseException:
        sock.close()
        raise
    return transport, transport.get_extra_info("sockname")[1]


# -- prober ------------------------------------------------------------------------------------
@dataclass
class ProbeResult:
    """mtu: largest IP packet size (payload + IP/UDP headers) that got an answer, None if none.

    complete: the search converged (False: stopped by the time budget; mtu is then a lower
    bound). local_limit: the smallest size the local interface refused (EMSGSIZE), if any.
    error: why no (or no complete) answer. passed: every size that got an answer.
    unsupported: why this platform cannot probe at all (no don't-fragment option); nothing was sent.
    """

    mtu: int | None
    probes: int
    elapsed_s: float
    max_tried: int
    complete: bool = True
    local_limit: int | None = None
    error: str | None = None
    passed: list[int] = field(default_factory=list)
    unsupported: str | None = None


@dataclass
class _Search:
    floor: int
    ceiling: int
    failures_to_confirm: int
    good: int | None = None
    fail_counts: dict[int, int] = field(default_factory=dict)
    passed: set[int] = field(default_factory=set)

    def record(self, size: int, passed: bool) -> None:
        if passed:
            self.passed.add(size)
            self.good = size if self.good is None else max(self.good, size)
        else:
            self.fail_counts[size] = self.fail_counts.get(size, 0) + 1

    @property
    def bad(self) -> int | None:
        """Smallest size that failed and is above every size that passed."""
        lowest_ok = self.good or 0
        failed = [s for s in self.fail_counts if s > lowest_ok]
        return min(failed) if failed else None

    def done(self) -> bool:
        if self.good == self.ceiling:
            return True
        bad = self.bad
        if bad is None or self.fail_counts[bad] < self.failures_to_confirm:
            return False
        return bad == (self.floor if self.good is None else self.good + 1)

    def next_sizes(self, width: int) -> list[int]:
        """The sizes to send next round: open splits of the unknown interval, plus a re-probe."""
        bad = self.bad
        if self.good is None and bad is None:
            first = [self.ceiling, *(m for m in _WELL_KNOWN_MTUS if self.floor <= m < self.ceiling)]
            return sorted(set(first + _splits(self.floor, self.ceiling, width)), reverse=True)
        low = self.floor - 1 if self.good is None else self.good
        high = self.ceiling + 1 if bad is None else bad
        sizes = set(_splits(low + 1, high - 1, width))
        if bad is not None and self.fail_counts[bad] < self.failures_to_confirm:
            sizes.add(bad)
        if self.good is None:
            sizes.add(self.floor)
        return sorted(sizes, reverse=True)


def _splits(low: int, high: int, count: int) -> list[int]:
    """Up to count sizes spread evenly over [low, high] (both ends included when they fit)."""
    if high < low:
        return []
    if high - low + 1 <= count:
        return list(range(low, high + 1))
    step = (high - low) / (count - 1)
    return sorted({round(low + i * step) for i in range(count)})


def _target(address: str, port: int) -> tuple[int, int]:
    """(family, IP + UDP overhead) of a probe target; ValueError for what is not an address and port."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        raise ValueError(f"not an IP address: {address!r}") from None
    if not 1 <= port <= 65535:
        raise ValueError(f"port must be 1..65535, got {port}")
    if ip.version == 6:
        return socket.AF_INET6, IPV6_OVERHEAD
    return socket.AF_INET, IPV4_OVERHEAD


def _dont_fragment_options(family: int) -> list[tuple[int, int, int]]:
    """(level, option, value) that make this platform send with DF set and never fragment locally."""
    if family == socket.AF_INET6:
        options = [(socket.IPPROTO_IPV6, name, value) for name, value in
                   ((IPV6_MTU_DISCOVER, IPV6_PMTUDISC_PROBE), (IPV6_DONTFRAG, 1))
                   if name is not None and value is not None]
    elif IP_MTU_DISCOVER is not None and IP_PMTUDISC_PROBE is not None:
        options = [(socket.IPPROTO_IP, IP_MTU_DISCOVER, IP_PMTUDISC_PROBE)]
    else:
        options = [(socket.IPPROTO_IP, IP_DONTFRAG, 1)] if IP_DONTFRAG is not None else []
    if not options:
        # Without DF the probes would be fragmented and reassembled, and every size would "pass".
        raise OSError(errno.ENOPROTOOPT, "this platform's socket module has no don't-fragment option for "
                                         f"{'IPv6' if family == socket.AF_INET6 else 'IPv4'} UDP")
    return options


def _probe_socket(address: str, port: int, family: int) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        for level, name, value in _dont_fragment_options(family):
            sock.setsockopt(level, name, value)
        target = socket.getaddrinfo(address, port, family, socket.SOCK_DGRAM)[0][4]
        sock.connect(target)  # replies from anyone else are never seen
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


class _Prober:
    def __init__(self, sock: socket.socket, token: bytes, overhead: int) -> None:
        self.sock, self.token, self.overhead = sock, token, overhead
        self.seq_to_size: dict[int, int] = {}
        self.next_seq = 0
        self.sent = 0
        self.local_limit: int | None = None

    def send(self, size: int) -> bool:
        """Send one probe of IP size `size`; False if the local stack refused it as too big."""
        self.next_seq += 1
        head = self.token + _REQUEST + _SEQ.pack(self.next_seq)
        payload = head + b"\0" * (size - self.overhead - len(head))
        try:
            self.sock.send(payload)
        except OSError as exc:
            if exc.errno == errno.EMSGSIZE:  # bigger than the local interface MTU
                self.local_limit = min(self.local_limit or size, size)
                return False
            if exc.errno in (errno.EAGAIN, errno.ENOBUFS):  # count it as lost, retry later
                self.sent += 1
                return True
            raise
        self.seq_to_size[self.next_seq] = size
        self.sent += 1
        return True

    def collect(self, waiting: set[int], deadline: float) -> set[int]:
        """Sizes answered before the deadline (stops early once all of `waiting` answered)."""
        answered: set[int] = set()
        head = len(self.token)
        while waiting - answered:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([self.sock], [], [], remaining)[0]:
                break
            try:
                data = self.sock.recv(256)
            except BlockingIOError:
                continue
            if len(data) != head + 1 + _REPLY_BODY.size or data[head:head + 1] != _REPLY:
                continue
            if not hmac.compare_digest(data[:head], self.token):
                continue
            seq, received = _REPLY_BODY.unpack_from(data, head + 1)
            size = self.seq_to_size.get(seq)
            if size is not None and received == size - self.overhead:
                answered.add(size)
        return answered


def _validate(max_mtu: int, overhead: int, token: bytes, timeout: float, retries: int) -> int:
    floor = 1280 if overhead == IPV6_OVERHEAD else 576  # IPv6 minimum MTU; IPv4 "must accept"
    smallest = overhead + len(token) + 1 + _SEQ.size
    if not max(smallest, 68) <= max_mtu <= 65535:
        raise ValueError(f"max_mtu must be between {max(smallest, 68)} and 65535, got {max_mtu}")
    if timeout <= 0 or retries < 0:
        raise ValueError("timeout_per_probe must be > 0 and retries >= 0")
    return max(min(floor, max_mtu), smallest)


def probe_path_mtu(address: str, port: int, token: str | bytes, max_mtu: int,
                   timeout_per_probe: float = 0.3, retries: int = 2,
                   max_time_s: float = 4.0) -> ProbeResult:
    """Find the largest IP packet (<= max_mtu) that reaches the responder at (address, port).

    Blocking; run it in a thread from asyncio. Worst case is about max_time_s (the result is
    then marked incomplete); a healthy path at max_mtu answers in one round trip. Bad arguments
    raise ValueError; anything the network or the platform refuses (no route, no DF option, a
    firewall's EPERM) is a finding: the result carries it in ``error`` and the run goes on.
    """
    raw_token = _token_bytes(token)
    family, overhead = _target(address, port)
    floor = _validate(max_mtu, overhead, raw_token, timeout_per_probe, retries)
    capable = capabilities.HAS_DF_PROBE_V6 if family == socket.AF_INET6 else capabilities.HAS_DF_PROBE_V4
    if not capable:
        return ProbeResult(mtu=None, probes=0, elapsed_s=0.0, max_tried=0, complete=False,
                           error=capable.reason, unsupported=capable.reason)
    started = time.monotonic()
    search = _Search(floor=floor, ceiling=max_mtu, failures_to_confirm=retries + 1)
    prober: _Prober | None = None
    try:
        sock = _probe_socket(address, port, family)
        try:
            prober = _Prober(sock, raw_token, overhead)
            error = _run_search(search, prober, timeout_per_probe, started + max_time_s)
        finally:
            sock.close()
    except OSError as exc:
        error = f"path MTU probe failed: {_describe(exc)}"
    return ProbeResult(
        mtu=search.good, probes=prober.sent if prober else 0, elapsed_s=time.monotonic() - started,
        max_tried=max([*search.fail_counts, *search.passed], default=0),
        complete=search.done(), local_limit=prober.local_limit if prober else None,
        error=error, passed=sorted(search.passed))


def _describe(exc: OSError) -> str:
    name = errno.errorcode.get(exc.errno, str(exc.errno)) if exc.errno is not None else type(exc).__name__
    return f"{name}: {exc.strerror or exc}"


def _run_search(search: _Search, prober: _Prober, timeout: float, deadline: float) -> str | None:
    """Probe round after round until the search converges or time runs out; an error or None."""
    while not search.done():
        now = time.monotonic()
        if now >= deadline:
            return "time budget exhausted before the search converged"
        try:
            waiting = _send_round(search, prober)
            answered = prober.collect(waiting, min(now + timeout, deadline))
        except ConnectionRefusedError:
            return "the peer refused the probes (ICMP port unreachable): no responder there"
        for size in waiting:
            search.record(size, size in answered)
    if search.good is None:
        return "no probe was answered: no responder with this token, or a firewall in between"
    return None


def _send_round(search: _Search, prober: _Prober) -> set[int]:
    sizes = search.next_sizes(_SIZES_PER_ROUND)
    if not sizes:  # cannot happen while not done(); never spin until the deadline if it does
        raise RuntimeError(f"path MTU search has nothing left to try: {search}")
    waiting: set[int] = set()
    for size in sizes:
        if prober.send(size):
            waiting.add(size)
        else:
            # The local stack refuses it: it can never pass, no need to wait or retry.
            search.fail_counts[size] = search.failures_to_confirm
    return waiting
