"""Prometheus metrics of an agent: what its runs moved and concluded, its build, and the NICs it uses.

:class:`MetricsState` is an agent listener (``Agent(config, listeners=[state])``): it folds run events into
counters and last-run records. :class:`AgentCollector` turns that state, the runs in progress and host facts
(psutil) into metric families at scrape time; it takes all its sources as arguments, so a test can register
it in a fresh ``CollectorRegistry``. :class:`MetricsServer` serves ``/metrics`` from its own threads, so a
scrape answers even while the event loop and the data-plane threads are saturating a link.

psutil is optional (PyPI has no AIX build of it, docs/vios.md): without it the NIC families are left out,
which the agent logs once, and every other family is served.

Naming follows https://prometheus.io/docs/practices/naming/: base units (bytes, seconds, ratios 0..1),
``_total`` on counters. Rates are in bytes per second because that page says to use bytes even where bits
are more common; dashboards multiply by 8. Link speed follows node_exporter's ``node_network_speed_bytes``.

Label cardinality is bounded: ``peer`` is the other MSP's address, and at most ``MAX_PEERS`` (64) peers
are tracked; when a 65th appears, the peer seen longest ago is dropped with all its series (its counters
then restart from zero if it comes back, which ``rate()`` reads as a counter reset) and
``lpmbench_dropped_peers_total`` counts it. ``lpar`` is capped at ``MAX_LPARS`` per peer and role.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Callable

from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from lpmbench.analysis.checks import aggregate, cpu
from lpmbench.analysis.checks.msp import msp_fact
from lpmbench.analysis.units import finite_or_none
from lpmbench.metrics.http import DEFAULT_METRICS_PORT, MetricsServer  # noqa: F401 - part of this module's API
from lpmbench.metrics.nics import NO_PSUTIL_NOTE, NicFacts, NicWatcher  # noqa: F401 - part of this module's API

log = logging.getLogger("lpmbench.metrics")

MAX_PEERS = 64
MAX_LPARS = 32
MAX_LABEL_CHARS = 128
ROLES = ("sender", "receiver")
RUN_OUTCOMES = ("ok", "error", "aborted")
VERDICTS = ("pass", "warn", "fail")
SCHEDULED_OUTCOMES = ("ok", "partial", "error", "skipped_busy")


def _label(text: Any) -> str:
    return str(text)[:MAX_LABEL_CHARS]


@dataclass(frozen=True)
class LparOutlook:
    """One partition's LPM prediction from the orchestrator's summary (``summary["lpm"]``)."""

    name: str
    converges: bool | None
    fits_window: bool | None
    predicted_seconds: float | None


@dataclass
class LastRun:
    """The last run with one peer in one role; None where the run or its summary did not say."""

    run_id: str
    timestamp: float
    goodput_bytes_per_second: float | None = None
    rtt_seconds: float | None = None
    path_mtu_bytes: float | None = None
    efficiency_ratio: float | None = None
    retransmit_ratio: float | None = None
    verdict: str | None = None
    partial: bool | None = None
    lpm: tuple[LparOutlook, ...] = ()
    cpu_headroom_ratio: float | None = None
    icmp_reachable: bool | None = None
    aggregate_members: int | None = None
    aggregate_members_used: int | None = None


@dataclass
class PeerStats:
    sent_bytes: int = 0
    received_bytes: int = 0
    retransmits: int = 0
    sent_segments: int = 0
    last: dict[str, LastRun] = field(default_factory=dict)  # by role

    def copy(self) -> PeerStats:
        return replace(self, last={role: replace(run) for role, run in self.last.items()})


@dataclass
class Snapshot:
    """A consistent copy of the state for one scrape, live bytes of runs in progress included."""

    peers: dict[str, PeerStats]
    runs: Counter  # (role, outcome) -> count
    in_progress: Counter  # role -> runs
    scheduled: Counter  # (peer, outcome) -> count
    dropped_peers: int


class MetricsState:
    """Counters and last-run records fed by agent events; safe to read from scrape threads.

    Call it as an agent listener. ``runs_alive`` in :meth:`snapshot` is the agent's ``runs`` mapping: a run
    that left it without a "run_finished" event (it crashed) is counted as an error and its bytes kept.
    """

    def __init__(self, max_peers: int = MAX_PEERS, clock: Callable[[], float] = time.time) -> None:
        if max_peers < 1:
            raise ValueError("max_peers must be at least 1")
        self.max_peers = max_peers
        self._clock = clock
        self._lock = threading.Lock()
        self._peers: OrderedDict[str, PeerStats] = OrderedDict()  # least recently seen first
        self._runs: Counter = Counter()
        self._scheduled: Counter = Counter()
        self._active: dict[str, Any] = {}  # run_id -> run object, between run_started and run_finished
        self._dropped = 0

    def __call__(self, event: str, fields: dict[str, Any]) -> None:
        handler = {"run_started": self._started, "run_finished": self._finished,
                   "run_summary": self._summary}.get(event)
        if handler is not None:
            with self._lock:
                handler(fields)

    def record_scheduled(self, peer: str, outcome: str) -> None:
        if outcome not in SCHEDULED_OUTCOMES:
            raise ValueError(f"scheduled outcome must be one of {SCHEDULED_OUTCOMES}, not {outcome!r}")
        with self._lock:
            self._scheduled[(_label(peer), outcome)] += 1

    def expect_scheduled(self, peers: Iterable[str]) -> None:
        """Show zero counts for scheduled peers before their first attempt (so increase() sees the first)."""
        with self._lock:
            for peer in peers:
                for outcome in SCHEDULED_OUTCOMES:
                    self._scheduled[(_label(peer), outcome)] += 0

    def snapshot(self, runs_alive: Iterable[str] | None = None) -> Snapshot:
        with self._lock:
            # Read under the lock: the agent adds a run to its mapping before "run_started" and drops it after
            # "run_finished", so a run in _active but not in the mapping really vanished without a report.
            alive = None if runs_alive is None else _stable_keys(runs_alive)
            if alive is not None:
                for run_id in [r for r in self._active if r not in alive]:
                    run = self._active[run_id]
                    self._finished({"run_id": run_id, "role": run.role, "peer": run.peer,
                                    "data": {"error": "the run ended without a report", "streams": []}})
            peers = {name: stats.copy() for name, stats in self._peers.items()}
            in_progress: Counter = Counter()
            for run in self._active.values():
                in_progress[run.role] += 1
                self._add_live_bytes(peers, run)
            return Snapshot(peers, Counter(self._runs), in_progress, Counter(self._scheduled), self._dropped)

    # -- event handlers, called with the lock held -------------------------------------------------------
    def _started(self, fields: dict[str, Any]) -> None:
        self._active[str(fields["run_id"])] = fields["run"]

    def _finished(self, fields: dict[str, Any]) -> None:
        run = self._active.pop(str(fields["run_id"]), None)
        role, data = str(fields["role"]), fields.get("data") or {}
        self._runs[(role, _outcome(data))] += 1
        streams = [s for s in data.get("streams") or [] if isinstance(s, dict)]
        moved = int(sum(finite_or_none(s.get("bytes")) or 0 for s in streams))
        if run is not None:  # a scrape may already have shown the live count: never step back below it
            moved = max(moved, int(run.live_bytes()))
        peer = fields.get("peer")
        if peer is None:
            return  # no stream ever connected, so nothing moved and there is no one to label it with
        stats = self._peer(_label(peer))
        last = LastRun(str(fields["run_id"]), self._clock())
        if role == "sender":
            stats.sent_bytes += moved
            self._add_tcp_facts(stats, last, [s.get("tcp") for s in streams])
        else:
            stats.received_bytes += moved
            elapsed = finite_or_none(data.get("elapsed_s"))
            last.goodput_bytes_per_second = moved / elapsed if elapsed else None
        _add_msp_facts(last, role, data)
        stats.last[role] = last

    @staticmethod
    def _add_tcp_facts(stats: PeerStats, last: LastRun, tcps: list[Any]) -> None:
        """Retransmits, segments, RTT and path MTU from the sender's final TCP_INFO (absent on AIX)."""
        tcps = [t for t in tcps if isinstance(t, dict)]
        counts = [(finite_or_none(t.get("total_retrans")), finite_or_none(t.get("segs_out"))) for t in tcps]
        known = [(r, s) for r, s in counts if r is not None and s is not None]
        if known and len(known) == len(tcps):
            retransmits, segments = sum(r for r, _ in known), sum(s for _, s in known)
            stats.retransmits += int(retransmits)
            stats.sent_segments += int(segments)
            last.retransmit_ratio = retransmits / segments if segments else None
        rtts = [r for r in (finite_or_none(t.get("rtt_us")) for t in tcps) if r is not None]
        last.rtt_seconds = sum(rtts) / len(rtts) / 1e6 if rtts else None
        pmtus = [p for p in (finite_or_none(t.get("pmtu")) for t in tcps) if p]
        last.path_mtu_bytes = min(pmtus) if pmtus else None

    def _summary(self, fields: dict[str, Any]) -> None:
        peer, role, summary = fields.get("peer"), str(fields.get("role")), fields.get("summary")
        if peer is None or not isinstance(summary, dict) or _label(peer) not in self._peers:
            return
        last = self._peers[_label(peer)].last.get(role)
        if last is None or last.run_id != str(fields.get("run_id")):
            return  # the summary of a run this state no longer holds: stale, not the last run
        _apply_summary(last, summary)

    def _peer(self, name: str) -> PeerStats:
        stats = self._peers.get(name)
        if stats is None:
            stats = self._peers[name] = PeerStats()
            while len(self._peers) > self.max_peers:
                dropped, _ = self._peers.popitem(last=False)
                self._dropped += 1
                log.info("metrics: tracking at most %d peers; dropped %s, seen longest ago", self.max_peers, dropped)
        self._peers.move_to_end(name)
        return stats

    @staticmethod
    def _add_live_bytes(peers: dict[str, PeerStats], run: Any) -> None:
        peer, moved = run.peer, int(run.live_bytes())
        if peer is None or not moved:
            return
        stats = peers.setdefault(_label(peer), PeerStats())
        if run.role == "sender":
            stats.sent_bytes += moved
        else:
            stats.received_bytes += moved


def _add_msp_facts(last: LastRun, role: str, data: dict[str, Any]) -> None:
    """This MSP's CPU headroom, ICMP reach and aggregate members over the run, read as the checks read them."""
    if role not in ROLES or not isinstance(data.get("msp"), dict):
        return
    as_result = {"duration_s": data.get("elapsed_s"), role: data}  # the shape the checks take, for this side
    use = cpu.cpu_use(as_result, role)
    last.cpu_headroom_ratio = use["headroom"] if use else None
    last.icmp_reachable = _bool((msp_fact(as_result, role, "reach") or {}).get("reachable"))
    found = aggregate.spread(as_result, role)
    if found is not None:
        last.aggregate_members, last.aggregate_members_used = found["present"], found["used"]


def _stable_keys(keys: Iterable[str]) -> set[str]:
    """The keys of a dict the event loop may change meanwhile (a scrape runs on another thread)."""
    for _ in range(5):
        with contextlib.suppress(RuntimeError):  # "dictionary changed size during iteration": read again
            return set(keys)
    return set(keys)


def _outcome(data: dict[str, Any]) -> str:
    if data.get("stalled"):
        return "error"  # a stall is the network failing, not someone stopping the run
    if data.get("aborted"):
        return "aborted"
    return "error" if data.get("error") else "ok"


_SUMMARY_VALUES = (  # summary key, LastRun attribute, factor to base units
    ("goodput_bps", "goodput_bytes_per_second", 1 / 8), ("rtt_ms", "rtt_seconds", 1e-3),
    ("retransmit_rate", "retransmit_ratio", 1.0), ("path_mtu", "path_mtu_bytes", 1.0),
    ("efficiency", "efficiency_ratio", 1.0),
)


def _apply_summary(last: LastRun, summary: dict[str, Any]) -> None:
    """What the orchestrator concluded; keys it does not send leave the agent's own figures in place."""
    for key, attribute, scale in _SUMMARY_VALUES:
        value = finite_or_none(summary.get(key))
        if value is not None:
            setattr(last, attribute, value * scale)
    if summary.get("verdict") in VERDICTS:
        last.verdict = summary["verdict"]
    if isinstance(summary.get("partial"), bool):
        last.partial = summary["partial"]
    if isinstance(summary.get("lpm"), list):
        last.lpm = tuple(_lpar_outlooks(summary["lpm"]))


def _lpar_outlooks(entries: list[Any]) -> Iterator[LparOutlook]:
    """Well-formed entries, first of each name, at most MAX_LPARS."""
    seen: set[str] = set()
    for entry in entries:
        name = entry.get("name") if isinstance(entry, dict) else None
        if not isinstance(name, str) or not name or _label(name) in seen or len(seen) >= MAX_LPARS:
            continue
        seen.add(_label(name))
        yield LparOutlook(_label(name), _bool(entry.get("converges")), _bool(entry.get("fits_window")),
                          finite_or_none(entry.get("predicted_seconds")))


def _bool(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


# -- the collector ----------------------------------------------------------------------------------------
def _gauge(name: str, documentation: str, labels: list[str]) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, labels=labels)


class AgentCollector(Collector):
    """Metric families over a :class:`MetricsState`, the agent's runs in progress and its host's NICs.

    ``build_info``: {version, dataplane, event_loop}. ``runs``: the agent's ``runs`` mapping (run_id -> ...),
    or None. ``nics``: a :class:`NicWatcher`, or None for no NIC metrics.
    """

    def __init__(self, state: MetricsState, build_info: Mapping[str, str], runs: Mapping[str, Any] | None = None,
                 nics: NicWatcher | None = None) -> None:
        self.state = state
        self.build_info = {k: str(build_info.get(k, "unknown")) for k in ("version", "dataplane", "event_loop")}
        self.runs = runs
        self.nics = nics

    def collect(self) -> Iterator[Metric]:
        snap = self.state.snapshot(self.runs.keys() if self.runs is not None else None)
        info = _gauge("lpmbench_build_info", "Version, data plane (c or python) and event loop of this agent.",
                      list(self.build_info))
        info.add_metric(list(self.build_info.values()), 1)
        yield info
        yield from _traffic_families(snap)
        yield from _run_families(snap)
        yield from _last_run_families(snap)
        if self.nics is not None:
            peers = set(snap.peers) | {peer for peer, _ in snap.scheduled}
            yield from _nic_families(*self.nics.collect(sorted(peers)))


_PEER_COUNTERS = (
    ("sent_bytes", "Payload bytes this agent sent to the peer, runs in progress included."),
    ("received_bytes", "Payload bytes this agent received from the peer, runs in progress included."),
    ("retransmits", "TCP segments retransmitted to the peer (sender TCP_INFO total_retrans, added as a run ends)."),
    ("sent_segments", "TCP segments sent to the peer (sender TCP_INFO segs_out, added as a run ends)."),
)


def _traffic_families(snap: Snapshot) -> Iterator[Metric]:
    for attribute, documentation in _PEER_COUNTERS:
        family = CounterMetricFamily(f"lpmbench_{attribute}_total", documentation, labels=["peer"])
        for peer, stats in snap.peers.items():
            family.add_metric([peer], getattr(stats, attribute))
        yield family
    dropped = CounterMetricFamily("lpmbench_dropped_peers_total",
                                  "Peers dropped from these metrics, seen longest ago, to keep the peer count capped.")
    dropped.add_metric([], snap.dropped_peers)
    yield dropped


def _run_families(snap: Snapshot) -> Iterator[Metric]:
    runs = CounterMetricFamily("lpmbench_runs_total", "Runs this agent took part in, by role and outcome.",
                               labels=["role", "outcome"])
    for role in ROLES:
        for outcome in RUN_OUTCOMES:
            runs.add_metric([role, outcome], snap.runs[(role, outcome)])
    yield runs
    progress = _gauge("lpmbench_runs_in_progress", "Runs in progress on this agent, by role.", ["role"])
    for role in ROLES:
        progress.add_metric([role], snap.in_progress[role])
    yield progress
    scheduled = CounterMetricFamily("lpmbench_scheduled_runs_total",
                                    "Scheduled runs from this agent to the peer, by outcome.",
                                    labels=["peer", "outcome"])
    for (peer, outcome), count in sorted(snap.scheduled.items()):
        scheduled.add_metric([peer, outcome], count)
    yield scheduled


_LAST_RUN_GAUGES = (
    ("timestamp_seconds", "timestamp", "Unix time the last run with the peer ended."),
    ("goodput_bytes_per_second", "goodput_bytes_per_second",
     "Goodput of the last run with the peer: payload bytes per second as received."),
    ("rtt_seconds", "rtt_seconds", "Mean smoothed TCP round-trip time of the last run's streams."),
    ("path_mtu_bytes", "path_mtu_bytes",
     "Path MTU of the last run: probed when the run probed it, else the sender's TCP_INFO pmtu."),
    ("efficiency_ratio", "efficiency_ratio",
     "Goodput of the last run over the wire limit (slowest link x payload fraction), 0..1."),
    ("retransmit_ratio", "retransmit_ratio", "Retransmitted segments over segments sent in the last run."),
    ("partial", "partial", "1 when the last run did not complete."),
    ("cpu_headroom_ratio", "cpu_headroom_ratio",
     "Share of this MSP's CPU entitlement (lparstat -i; CPU count or cgroup quota on Linux) left over in the last "
     "run, 0..1: near 0, the mover is CPU-bound."),
    ("icmp_reachable", "icmp_reachable",
     "1 when the peer answered ping before the last run (HMC's LPM validation pings between MSPs), 0 when not."),
    ("aggregate_members", "aggregate_members",
     "Active members of the aggregate (bond, EtherChannel) or paths of the multipath route toward the peer."),
    ("aggregate_members_used", "aggregate_members_used",
     "Members or paths that carried at least 10 % of this MSP's bytes in the last run."),
)


_LPM_GAUGES = (
    ("converges", "converges", "1 when LPM of the partition would converge at the last run's goodput, else 0."),
    ("fits_window", "fits_window", "1 when the partition's predicted migration fits its window, else 0."),
    ("predicted_migration_seconds", "predicted_seconds",
     "Predicted migration time of the partition at the last run's goodput."),
)


def _last_run_families(snap: Snapshot) -> Iterator[Metric]:
    labels = ["peer", "role"]
    gauges = {attr: _gauge(f"lpmbench_last_run_{suffix}", doc, labels) for suffix, attr, doc in _LAST_RUN_GAUGES}
    verdict = _gauge("lpmbench_last_run_verdict",
                     "Verdict of the last run with the peer: 1 for the verdict it had, 0 for the others.",
                     [*labels, "verdict"])
    lpm = {attr: _gauge(f"lpmbench_last_run_lpm_{suffix}", doc, [*labels, "lpar"])
           for suffix, attr, doc in _LPM_GAUGES}
    for peer, stats in snap.peers.items():
        for role, last in stats.last.items():
            for attr, gauge in gauges.items():
                value = getattr(last, attr)
                if value is not None:
                    gauge.add_metric([peer, role], float(value))
            if last.verdict is not None:
                for name in VERDICTS:
                    verdict.add_metric([peer, role, name], 1.0 if name == last.verdict else 0.0)
            for lpar in last.lpm:
                for attr, gauge in lpm.items():
                    value = getattr(lpar, attr)
                    if value is not None:
                        gauge.add_metric([peer, role, lpar.name], float(value))
    yield from gauges.values()
    yield verdict
    yield from lpm.values()


def _nic_families(routes: dict[str, str], nics: dict[str, NicFacts]) -> Iterator[Metric]:
    speed = _gauge("lpmbench_nic_speed_bytes",
                   "Link speed of an interface this agent uses, in bytes per second (as node_network_speed_bytes).",
                   ["interface"])
    mtu = _gauge("lpmbench_nic_mtu_bytes", "MTU of an interface this agent uses.", ["interface"])
    for name, facts in sorted(nics.items()):
        mtu.add_metric([name], facts.mtu_bytes)
        if facts.speed_bytes is not None:
            speed.add_metric([name], facts.speed_bytes)
    route = _gauge("lpmbench_peer_interface_info", "The interface that carries this agent's traffic to the peer.",
                   ["peer", "interface"])
    for peer, name in sorted(routes.items()):
        route.add_metric([peer, name], 1)
    yield from (speed, mtu, route)


def build_registry(state: MetricsState, build_info: Mapping[str, str], runs: Mapping[str, Any] | None = None,
                   nics: NicWatcher | None = None, process: bool = True) -> CollectorRegistry:
    """A fresh registry with the agent collector and, unless ``process`` is False, the process collector."""
    registry = CollectorRegistry()
    registry.register(AgentCollector(state, build_info, runs, nics))
    if process:
        ProcessCollector(registry=registry)
    return registry
