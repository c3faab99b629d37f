"""Admission of connections that have not proven anything yet: control connections before the handshake,
and data connections before they show the run token.

Such a connection costs the agent a socket (and, on the control port, a TLS state) until it proves itself or its
deadline passes. A cap on all of them alone lets one address take every slot and lock everybody else out, so
each source also has a small quota of its own. A source is an IPv4 address, or an IPv6 /64: one host usually
holds a whole /64, and counting its addresses one by one would give it 2^64 quotas.

Refusals are logged per source and aggregated (one line per source every ``LOG_EVERY_S``), so a flood cannot
flood the agent's log as well.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections import Counter
from typing import Callable

__all__ = ["LOG_EVERY_S", "RefusalLog", "SourceCounts", "SourceSlots", "source_of"]

LOG_EVERY_S = 10.0
MAX_LOGGED_SOURCES = 64  # sources whose refusals are being aggregated at once; beyond, counted as "others"


def source_of(address: str | None) -> str:
    """The admission source of a peer address: IPv4 as is (also when IPv4-mapped), IPv6 by its /64."""
    if not address:
        return "?"
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return address[:64]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class SourceSlots:
    """Slots for unproven connections: at most ``per_source`` per source and ``total`` in all."""

    def __init__(self, per_source: int, total: int) -> None:
        self.per_source = per_source
        self.total = total
        self._held: Counter[str] = Counter()

    def take(self, source: str) -> str | None:
        """Take a slot for ``source``; None when taken, else why not (the caller closes the connection)."""
        if self._held[source] >= self.per_source:
            return f"{self.per_source} connections from this source already pending"
        if sum(self._held.values()) >= self.total:
            return f"{self.total} connections already pending"
        self._held[source] += 1
        return None

    def release(self, source: str) -> None:
        self._held[source] -= 1
        if self._held[source] <= 0:
            del self._held[source]

    def held(self, source: str | None = None) -> int:
        return sum(self._held.values()) if source is None else self._held[source]


class SourceCounts:
    """Connections counted per source, for a report: at most ``limit`` sources by name, the rest together."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._counts: Counter[str] = Counter()
        self.others = 0

    def add(self, source: str) -> None:
        if source in self._counts or len(self._counts) < self.limit:
            self._counts[source] += 1
        else:
            self.others += 1

    def __bool__(self) -> bool:
        return bool(self._counts) or self.others > 0

    def report(self) -> list[dict[str, object]]:
        """[{address, connections}], most connections first; "others" sums the sources beyond the limit."""
        rows: list[dict[str, object]] = [{"address": source, "connections": count}
                                         for source, count in self._counts.most_common()]
        if self.others:
            rows.append({"address": "others", "connections": self.others})
        return rows

    def describe(self, most: int = 3) -> str:
        """'127.0.0.9 (412 connections), 10.0.0.5 (3 connections) and 2 more sources'."""
        rows = self.report()
        named = ", ".join(f"{r['address']} ({r['connections']} connection{'s' if r['connections'] != 1 else ''})"
                          for r in rows[:most])
        return named + (f" and {len(rows) - most} more source(s)" if len(rows) > most else "")


class RefusalLog:
    """Warnings about refused connections: the first refusal of a source at once, later ones summed up."""

    def __init__(self, logger: logging.Logger, what: str, clock: Callable[[], float] = time.monotonic,
                 level: int = logging.WARNING) -> None:
        self._log = logger
        self._what = what
        self._level = level
        self._clock = clock
        self._since: dict[tuple[str, str], tuple[float, int]] = {}  # (source, reason) -> (last logged, unlogged)

    def note(self, source: str, reason: str) -> None:
        key = (source, reason)
        now = self._clock()
        logged, unlogged = self._since.get(key, (None, 0))
        if logged is not None and now - logged < LOG_EVERY_S:
            self._since[key] = (logged, unlogged + 1)
            return
        more = f" (and {unlogged} more in the last {now - logged:.0f} s)" if logged is not None and unlogged else ""
        self._log.log(self._level, "%s from %s %s%s", self._what, source, reason, more)
        if key not in self._since and len(self._since) >= MAX_LOGGED_SOURCES:
            self._forget_oldest()
        self._since[key] = (now, 0)

    def _forget_oldest(self) -> None:
        oldest = min(self._since, key=lambda k: self._since[k][0])
        del self._since[oldest]
