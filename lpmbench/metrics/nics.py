"""Which interface reaches each peer, and that interface's speed and MTU, for the agent's NIC metrics.

psutil is optional (PyPI has no AIX wheel; the AIX Toolbox has one): without it these metrics are left out and
the agent says why once, as it starts.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Callable

try:
    import psutil
except ImportError:  # a VIOS without the AIX Toolbox's psutil (PyPI has no AIX wheel): no NIC facts
    psutil = None

log = logging.getLogger("lpmbench.metrics")

ROUTE_CACHE_S = 300.0  # how long the interface that reaches a peer is trusted before it is looked up again
MAX_ROUTES = 256  # peers remembered at most (the collector shows 64): a flood of names cannot grow the cache
NO_PSUTIL_NOTE = ("metrics: psutil is not installed, so the NIC metrics (lpmbench_nic_speed_bytes, "
                  "lpmbench_nic_mtu_bytes, lpmbench_peer_interface_info) are left out; the others are served. "
                  "Install psutil to get them (VIOS: see docs/vios.md)")


@dataclass(frozen=True)
class NicFacts:
    speed_bytes: float | None  # bytes per second; None when the link does not say (down, virtual, loopback)
    mtu_bytes: int


class NicWatcher:
    """Which interface reaches each peer, and that interface's speed and MTU (psutil; Linux and AIX).

    The route is found the portable way: the kernel picks a source address for a connected UDP socket
    (connect sends nothing), and the interface that owns that address carries the traffic. Without psutil
    it knows nothing, and says why once, when it is made (as the agent starts).
    """

    def __init__(self, bind: str | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self._bind = bind
        self._clock = clock
        self._routes: dict[str, tuple[float, str | None]] = {}
        if psutil is None:
            log.warning(NO_PSUTIL_NOTE)

    def interface_for(self, peer: str) -> str | None:
        cached = self._routes.get(peer)
        if cached is not None and self._clock() - cached[0] < ROUTE_CACHE_S:
            return cached[1]
        name = _interface_owning(_source_address(peer))
        if len(self._routes) >= MAX_ROUTES:
            self._routes.clear()
        self._routes[peer] = (self._clock(), name)
        return name

    def collect(self, peers: Iterable[str]) -> tuple[dict[str, str], dict[str, NicFacts]]:
        """({peer: interface}, {interface: facts}) for the peers' interfaces and the bind address's."""
        if psutil is None:
            return {}, {}
        routes = {peer: name for peer in peers if (name := self.interface_for(peer)) is not None}
        names = set(routes.values())
        if self._bind and self._bind not in ("0.0.0.0", "::"):
            bound = _interface_owning(self._bind)
            if bound is not None:
                names.add(bound)
        stats = psutil.net_if_stats()
        nics = {name: NicFacts(stats[name].speed * 125_000.0 if stats[name].speed > 0 else None, stats[name].mtu)
                for name in names if name in stats}
        return routes, nics


def _source_address(peer: str) -> str | None:
    try:
        family, _, _, _, sockaddr = socket.getaddrinfo(peer, 9, type=socket.SOCK_DGRAM)[0]
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.connect(sockaddr)  # a UDP connect only picks the route and source address
            return str(probe.getsockname()[0])
    except (OSError, UnicodeError, IndexError):
        return None


def _interface_owning(address: str | None) -> str | None:
    if address is None:
        return None
    bare = address.split("%", 1)[0]
    for name, addresses in psutil.net_if_addrs().items():
        if any(a.address.split("%", 1)[0] == bare for a in addresses):
            return name
    return None
