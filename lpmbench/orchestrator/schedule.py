"""Scheduled runs: ``lpmbench agent --peer HOST --every 6h`` makes this agent send to the peer's agent now and then.

The scheduling agent is the orchestrator of its own runs (through :func:`lpmbench.pair.run_pair`, with its own
key) and their sender; the peer is the receiver. Both agents' listeners see the run like any other, so its
results land in the same metrics. A run is skipped, with the reason logged, when this agent or the peer is
busy: a scheduled test never queues behind, or pushes aside, a run someone started by hand.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import re
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Callable

from lpmbench.orchestrator.pair import Endpoint, PairConfig, PairError, run_pair
from lpmbench.protocol.contract import DEFAULT_STREAMS
from lpmbench.protocol.messages import ErrorCode

log = logging.getLogger("lpmbench.schedule")

_EVERY_RE = re.compile(r"([1-9][0-9]{0,6})([smhd])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# A scheduled test loads the production LPM network: more often than once a minute is load, not monitoring.
MIN_EVERY_S = 60.0
MAX_SCHEDULED_DURATION_S = 300.0  # a scheduled test loads a production LPM network: keep it short
FIRST_RUN_SPREAD_S = 60.0  # agents restarted together do not all fire at the same second
RUN_SLACK_S = 60.0  # beyond the run's duration: connect, arm, drain, final reports (pair has its own timeouts)

Outcome = Callable[[str, str], None]  # (peer label, outcome) -> None


def parse_every(text: str) -> float:
    """Seconds in ``90s``, ``30m``, ``6h`` or ``1d``: a whole positive number and one unit, nothing else."""
    match = _EVERY_RE.fullmatch(text.strip()) if isinstance(text, str) else None
    if match is None:
        bare = isinstance(text, str) and text.strip().isdigit()
        guess = f"it has no unit, did you mean {text.strip()}m? " if bare else ""
        raise ValueError(f"bad interval {text!r}: {guess}use a whole number and a unit s, m, h or d, e.g. 90s, 30m, "
                         f"6h, 1d")
    return float(int(match.group(1)) * _UNIT_SECONDS[match.group(2)])


def own_endpoint(bind: str | None, port: int) -> Endpoint:
    """Where this agent's scheduler reaches its own control port: the bound address, or loopback for a wildcard."""
    if bind in (None, "", "0.0.0.0"):
        return Endpoint("127.0.0.1", port)
    if bind == "::":
        return Endpoint("::1", port)
    return Endpoint(bind, port)


@dataclass(frozen=True)
class ScheduledPeer:
    endpoint: Endpoint
    every_s: float

    @property
    def label(self) -> str:
        """The peer label of the metrics: the host, as in the agent's own per-peer metrics."""
        return self.endpoint.host


class Scheduler:
    """Runs from ``own`` (this agent, the sender) to each peer (the receiver) every ``every_s`` seconds.

    ``busy`` is the agent's ``busy_with`` (None when a run slot is free); ``on_outcome`` receives
    (peer label, "ok" | "partial" | "error" | "skipped_busy") after every attempt. ``first_delay_s`` None
    spreads the first runs over up to a minute; a number starts them after exactly that. ``tls``: the client
    context for agents whose control ports speak TLS.
    """

    def __init__(self, own: Endpoint, key: bytes | None, peers: Sequence[ScheduledPeer], *, duration: float = 10.0,
                 streams: int = DEFAULT_STREAMS, busy: Callable[[], Any] | None = None,
                 on_outcome: Outcome | None = None, first_delay_s: float | None = None,
                 tls: ssl.SSLContext | None = None) -> None:
        if not 0 < duration <= MAX_SCHEDULED_DURATION_S:
            raise ValueError(f"scheduled duration must be above 0 and at most {MAX_SCHEDULED_DURATION_S:g} s")
        if streams < 1:
            raise ValueError("scheduled streams must be at least 1")
        for peer in peers:
            if not peer.every_s > 0:
                raise ValueError(f"the interval for {peer.endpoint.label} must be above 0 s")
        self.own = own
        self.key = key
        self.peers = list(peers)
        self.duration = duration
        self.streams = streams
        self._busy = busy or (lambda: None)
        self._on_outcome = on_outcome
        self._first_delay_s = first_delay_s
        self._tls = tls
        self._one_at_a_time: asyncio.Lock | None = None  # made on the loop (Python 3.9 binds locks at creation)
        self._tasks: list[asyncio.Task] = []

    def start(self) -> None:
        self._tasks = [asyncio.ensure_future(self._every(peer)) for peer in self.peers]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    async def _every(self, peer: ScheduledPeer) -> None:
        loop = asyncio.get_running_loop()
        first = self._first_delay_s
        if first is None:
            first = random.uniform(0, min(peer.every_s, FIRST_RUN_SPREAD_S))
        next_at = loop.time() + first
        while True:
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            await self.run_once(peer)
            next_at += peer.every_s
            late = loop.time() - next_at
            if late > 0:  # a run took longer than the interval: skip the missed slots, keep the rhythm
                skipped = math.ceil(late / peer.every_s)
                log.info("scheduled runs to %s: %d slot(s) missed while a run went on", peer.endpoint.label, skipped)
                next_at += skipped * peer.every_s

    async def run_once(self, peer: ScheduledPeer) -> str:
        """One attempt; returns its outcome (also given to ``on_outcome``). Never raises for a failed run."""
        if self._one_at_a_time is None:
            self._one_at_a_time = asyncio.Lock()  # this agent's own schedules queue; they never collide
        async with self._one_at_a_time:
            outcome = await self._attempt(peer)
        if self._on_outcome is not None:
            self._on_outcome(peer.label, outcome)
        return outcome

    async def _attempt(self, peer: ScheduledPeer) -> str:
        target = peer.endpoint.label
        busy = self._busy()
        if busy is not None:
            run_id, holder = busy
            log.info("scheduled run to %s skipped: this agent is busy with run %s held by %s", target, run_id, holder)
            return "skipped_busy"
        config = PairConfig(sender=self.own, receiver=peer.endpoint, key=self.key, streams=self.streams,
                            duration=self.duration, interval=min(1.0, self.duration),
                            allow_insecure=self.key is None, ssl=self._tls)
        try:
            result = await asyncio.wait_for(run_pair(config), self.duration + RUN_SLACK_S)
        except PairError as exc:
            if exc.code is ErrorCode.BUSY:
                log.info("scheduled run to %s skipped: %s", target, exc)
                return "skipped_busy"
            log.warning("scheduled run to %s could not start: %s", target, exc)
            return "error"
        except asyncio.TimeoutError:
            log.warning("scheduled run to %s gave no result within %.0f s", target, self.duration + RUN_SLACK_S)
            return "error"
        except Exception:  # noqa: BLE001 - one bad run must not end the schedule
            log.exception("scheduled run to %s failed", target)
            return "error"
        if result.get("partial"):
            log.warning("scheduled run %s to %s was cut short: %s", result.get("run_id"), target, result.get("error"))
            return "partial"
        log.info("scheduled run %s to %s: verdict %s, goodput %.3g bit/s", result.get("run_id"), target,
                 result.get("verdict"), result.get("goodput_bps") or 0.0)
        return "ok"


def pair_every(peers: Sequence[str], every: Sequence[str]) -> list[tuple[str, float]]:
    """Match ``--peer`` and ``--every`` options: one interval for all peers, or one per peer in order."""
    if not peers:
        if every:
            raise ValueError("--every needs at least one --peer to send to")
        return []
    if not every:
        raise ValueError("--peer needs --every (e.g. --every 6h)")
    if len(every) not in (1, len(peers)):
        raise ValueError(f"give one --every for all peers, or one per --peer ({len(peers)}), not {len(every)}")
    intervals = [parse_every(text) for text in every]
    if len(intervals) == 1:
        intervals *= len(peers)
    return list(zip(peers, intervals))
