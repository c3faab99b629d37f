"""Will the frame empty in time? Evacuating many partitions over shared MSP pairs: a pure model, no I/O.

Bits per second for network rates, bytes for memory, seconds for time, as in :mod:`lpmbench.analysis.lpm`.

What IBM documents, and what this model takes from it:

* Concurrency. IBM Docs, "Firmware support matrix for partition mobility", restrictions under Table 2
  ("Concurrent migrations"): no more than 4 concurrent migrations on a 1 Gb network connection; with VIOS
  2.2.2.0 or later and 10 Gb or faster, at most 8; more than 8 needs more than one pair of VIOS partitions.
  The VIOS pseudo-device ``vioslpm0`` says the same (``cfg_msp_lpm_ops``: default 8, range 1-8, "must be 4"
  on a single 1 Gb adapter). Measured goodput cannot name the adapter, so a pair measured at 1 Gbit/s or less
  is taken for a 1 Gb link (4 at once) and anything faster for 10 Gb or better (8 at once).
* Per system: Table 2 lists 4, 8 and 16 concurrent migrations per system by firmware / HMC / VIOS level.
  We use 16, the current levels' row (the copy of the table we could check was cut after the 8 row, so 16
  is also the rule above made explicit: 2 pairs x 8); ``per_system_limit`` overrides it.
* Order. ``migrlpar -p a,b,c`` and ``migrlpar --all`` (HMC manual page) do not document the order in which
  the HMC starts the migrations. We assume the order listed (for ``--all``, the order ``lshwres`` lists the
  partitions in), start each as soon as a slot is free, and say so; the order that finishes soonest is
  reported when it differs.
* Compression. Since FW920 the hypervisor compresses and encrypts LPM data in the POWER9 NX accelerator
  (IBM PowerVM blog, P. Heyrman, "LPM Data Encryption and Compression", 2020); how much depends on the
  memory's contents, so ``compression`` stays 1 (none) unless the user says otherwise.

The model (our assumptions, each chosen so that the plan is never optimistic and stays monotone):

* The MSP pairs used form one pool, counted as that many copies of the slowest pair used (the HMC spreads
  migrations over the pairs it is given, so the slowest pair sets the pace). A pair that would slow the plan
  is left out: every subset of the pairs is tried, so adding a pair never makes the plan slower.
* Migrations share the pool fairly (processor sharing): n in flight move at min(pool / n,
  ``per_migration_max_bps``) each. A migration starts when a slot is free, in order.
* Each migration's pre-copy is charged at its worst share: the rate it gets while every slot is busy. Its
  passes, convergence (a partition that converges alone may not converge while sharing) and re-sent bytes
  come from :func:`lpm.predict` at that share. Once its neighbours finish it moves faster, but the bytes are
  not recounted: a faster share would re-send fewer, so the plan errs long.
* After switch-over, demand paging (``lpm.predict``'s residual and page round trips, at the worst share)
  follows without holding the pool.
* A partition that is not running moves only its configuration: no MSP bandwidth, no slot, no time charged
  (the HMC moves it; IBM publishes no figure). A partition in any other state blocks the evacuation.

Why charge the worst share: with shares that follow the neighbours, a bigger partition can make the frame
empty sooner (it delays a busy partition into a quieter time, where it re-sends less). A plan that improves
when a partition grows cannot be trusted, so bytes are counted at the share that holds while all slots run;
with that, every migration's start and end only grow with memory, dirty rate and the number of partitions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from itertools import combinations
from typing import Any, Callable, Optional

from lpmbench.analysis.lpm import DEFAULT_ASSUMPTIONS, ModelAssumptions, Prediction, predict

__all__ = [
    "ACTIVE",
    "BLOCKED",
    "DEFAULT_DIRTY_RATE_BPS",
    "INACTIVE",
    "PER_MSP_LIMIT_1G",
    "PER_MSP_LIMIT_10G",
    "PER_SYSTEM_LIMIT",
    "EvacuationAssumptions",
    "Migration",
    "MspPair",
    "Plan",
    "assess",
    "lower_bound_seconds",
    "per_msp_limit",
    "plan_evacuation",
]

ACTIVE, INACTIVE, BLOCKED = "active", "inactive", "blocked"
PER_MSP_LIMIT_1G, PER_MSP_LIMIT_10G, PER_SYSTEM_LIMIT = 4, 8, 16
# A 1 Gb link carries at most ~0.94 Gbit/s of TCP payload; a pair measured faster has a faster link.
_ONE_GBIT_LINK_BPS = 1e9
# IBM publishes no dirty rate; ours for a partition nobody measured. An idle partition dirties far less, a
# busy database hundreds of MiB/s: give the real ones per partition.
DEFAULT_DIRTY_RATE_BPS = 32 * 2**20
MAX_PAIRS = 8
# Orders that finish within a second of each other are the same answer for a maintenance window.
_SOONER_BY_S = 1.0
_ALONE_CANDIDATES = 5
_BITS_PER_BYTE = 8


@dataclass(frozen=True)
class MspPair:
    """One source MSP to target MSP pair and its measured goodput."""

    name: str
    bandwidth_bps: float

    def __post_init__(self) -> None:
        if not (isinstance(self.bandwidth_bps, (int, float)) and 0 < self.bandwidth_bps < math.inf):
            raise ValueError(f"MSP pair {self.name!r} needs a bandwidth above 0 bit/s, got {self.bandwidth_bps!r}")


@dataclass(frozen=True)
class Migration:
    """A partition to move: ``kind`` is ACTIVE (memory crosses the MSPs), INACTIVE or BLOCKED (by its state)."""

    name: str
    memory_bytes: int
    dirty_rate_Bps: float = 0.0
    kind: str = ACTIVE
    state: Optional[str] = None

    def __post_init__(self) -> None:
        if self.kind not in (ACTIVE, INACTIVE, BLOCKED):
            raise ValueError(f"unknown migration kind {self.kind!r}")
        if self.memory_bytes < 0 or not 0 <= self.dirty_rate_Bps < math.inf:
            raise ValueError(f"partition {self.name!r}: memory and dirty rate must be finite and not negative")


@dataclass(frozen=True)
class EvacuationAssumptions:
    """The limits and knobs of an evacuation, reported with it (see the module notes for their sources)."""

    per_system_limit: int = PER_SYSTEM_LIMIT
    per_msp_limit: Optional[int] = None  # None: 4 on a pair measured at <= 1 Gbit/s, else 8 (IBM)
    per_migration_max_bps: Optional[float] = None  # None: one migration can fill the pool, as lpm.predict assumes
    rtt_s: float = 0.0
    compression: float = 1.0
    model: ModelAssumptions = DEFAULT_ASSUMPTIONS

    def __post_init__(self) -> None:
        for what, value in (("per_system_limit", self.per_system_limit), ("per_msp_limit", self.per_msp_limit)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"{what} must be a whole number of at least 1, got {value!r}")
        if self.per_migration_max_bps is not None and not self.per_migration_max_bps > 0:
            raise ValueError("per_migration_max_bps must be above 0")


def per_msp_limit(pair: MspPair, assumptions: EvacuationAssumptions) -> int:
    """Migrations one MSP of ``pair`` runs at once: the user's value, else IBM's by link speed."""
    if assumptions.per_msp_limit is not None:
        return assumptions.per_msp_limit
    return PER_MSP_LIMIT_1G if pair.bandwidth_bps <= _ONE_GBIT_LINK_BPS else PER_MSP_LIMIT_10G


@dataclass(frozen=True)
class Scheduled:
    """One partition in a plan. Times are seconds from the start; None when it never starts or ends."""

    name: str
    kind: str
    state: Optional[str]
    memory_bytes: int
    dirty_rate_Bps: float
    start_s: Optional[float]
    end_s: Optional[float]
    passes: int
    converges: bool
    share_bps: float
    prediction: Optional[Prediction] = field(default=None, repr=False)


@dataclass(frozen=True)
class Plan:
    """An evacuation: the pairs used, how many move at once, each partition's schedule and the total."""

    migrations: tuple[Scheduled, ...]
    pairs_used: tuple[MspPair, ...]
    pool_bps: float
    slots: int
    share_bps: float
    total_seconds: float  # math.inf when some migration never ends; blocked partitions are not in it
    blocked: tuple[str, ...]


def lower_bound_seconds(migrations: Sequence[Migration], pairs: Sequence[MspPair], compression: float = 1.0) -> float:
    """No evacuation is faster: the running partitions' memory over every pair's bandwidth at once."""
    memory = math.fsum(m.memory_bytes for m in migrations if m.kind == ACTIVE)
    return memory / (math.fsum(p.bandwidth_bps for p in pairs) * compression / _BITS_PER_BYTE)


def _pools(pairs: Sequence[MspPair], a: EvacuationAssumptions) -> list[tuple[tuple[MspPair, ...], float, int]]:
    """Every distinct way to use a subset of the pairs: (pairs, pool bit/s, slots), all pairs first."""
    seen: set[tuple[int, float, int]] = set()
    pools = []
    for size in range(len(pairs), 0, -1):
        for subset in combinations(pairs, size):
            slowest = min(p.bandwidth_bps for p in subset)
            per_msp = min(per_msp_limit(p, a) for p in subset)
            key = (size, slowest, per_msp)
            if key not in seen:
                seen.add(key)
                pools.append((subset, size * slowest, min(a.per_system_limit, size * per_msp)))
    return pools


def _processor_sharing(
    works: Sequence[float], slots: int, speed: Callable[[int], float]
) -> tuple[list[Optional[float]], list[Optional[float]]]:
    """Start and completion times of ``works`` (seconds at speed 1) run in order, ``slots`` at a time,
    each of n in flight progressing at ``speed(n)``. An infinite work never completes."""
    count = len(works)
    starts: list[Optional[float]] = [None] * count
    completions: list[Optional[float]] = [None] * count
    remaining: dict[int, float] = {}
    now, queued = 0.0, 0
    while True:
        while queued < count and len(remaining) < slots:
            remaining[queued], starts[queued] = works[queued], now
            queued += 1
        least = min(remaining.values(), default=math.inf)
        if math.isinf(least):
            return starts, completions
        now += least / speed(len(remaining))
        for job in list(remaining):
            if remaining[job] == least:
                del remaining[job]
                completions[job] = now
            else:
                remaining[job] -= least


def _scheduled(m: Migration, p: Optional[Prediction], timing: Optional[tuple[Optional[float], Optional[float]]],
               share: float) -> Scheduled:
    """One row of a plan. Demand paging follows the end of pre-copy; a stopped partition takes no time; a
    blocked one never starts."""
    if p is None or timing is None:
        at = 0.0 if m.kind == INACTIVE else None
        return Scheduled(m.name, m.kind, m.state, m.memory_bytes, m.dirty_rate_Bps, at, at, 0, True, 0.0, None)
    start, precopy_end = timing
    end = None if precopy_end is None else precopy_end + p.demand_paging_seconds
    return Scheduled(m.name, m.kind, m.state, m.memory_bytes, m.dirty_rate_Bps, start, end, p.passes, p.converges,
                     share, p)


def _schedule(
    migrations: Sequence[Migration], order: Sequence[int], pool: tuple[tuple[MspPair, ...], float, int],
    a: EvacuationAssumptions,
) -> Plan:
    pairs, pool_bps, slots = pool
    ceiling = a.per_migration_max_bps or math.inf

    def rate(in_flight: int) -> float:
        return min(ceiling, pool_bps / in_flight)

    live = [i for i in order if migrations[i].kind == ACTIVE]
    # The worst share: what each gets while every slot is busy (or every partition, when there are fewer).
    share = rate(max(1, min(slots, len(live))))
    predictions = {
        i: predict(migrations[i].memory_bytes, share, migrations[i].dirty_rate_Bps, a.rtt_s, a.compression, a.model)
        for i in live
    }
    # Pre-copy is measured in seconds at the worst share, so n in flight progress at rate(n) / share >= 1.
    starts, completions = _processor_sharing(
        [predictions[i].precopy_seconds for i in live], slots, lambda in_flight: rate(in_flight) / share
    )
    timing = {i: (starts[k], completions[k]) for k, i in enumerate(live)}
    scheduled = [_scheduled(migrations[i], predictions.get(i), timing.get(i), share) for i in order]
    ends = [s.end_s for s in scheduled if s.kind == ACTIVE]
    total = math.inf if None in ends else max(ends, default=0.0)
    blocked = tuple(m.name for m in migrations if m.kind == BLOCKED)
    return Plan(tuple(scheduled), pairs, pool_bps, slots, share, total, blocked)


def _check_inputs(migrations: Sequence[Migration], pairs: Sequence[MspPair]) -> None:
    if not pairs or len(pairs) > MAX_PAIRS:
        raise ValueError(f"an evacuation needs 1 to {MAX_PAIRS} MSP pairs, got {len(pairs)}")
    names = [m.name for m in migrations]
    if len(set(names)) != len(names):
        raise ValueError("partition names must be unique")


def plan_evacuation(
    migrations: Sequence[Migration], pairs: Sequence[MspPair], assumptions: EvacuationAssumptions,
    order: Optional[Sequence[int]] = None,
) -> Plan:
    """The evacuation in ``order`` (indices into ``migrations``; default: as listed, the HMC's order),
    over the subset of ``pairs`` that finishes soonest (all of them when that ties)."""
    _check_inputs(migrations, pairs)
    order = list(range(len(migrations))) if order is None else list(order)
    if sorted(order) != list(range(len(migrations))):
        raise ValueError("order must list every migration once")
    best: Optional[Plan] = None
    for pool in _pools(pairs, assumptions):
        candidate = _schedule(migrations, order, pool, assumptions)
        if best is None or candidate.total_seconds < best.total_seconds:
            best = candidate
    assert best is not None  # _check_inputs guarantees a pair
    return best


def _orders(plan: Plan) -> dict[str, list[int]]:
    """Orders worth trying: longest pre-copy first (the last to start is then short), shortest first, and
    longest demand paging first (its tail then overlaps the others)."""
    index = {s.name: i for i, s in enumerate(plan.migrations)}

    def key_precopy(s: Scheduled) -> float:
        return s.prediction.precopy_seconds if s.prediction else 0.0

    def key_tail(s: Scheduled) -> float:
        return s.prediction.demand_paging_seconds if s.prediction else 0.0

    by = {
        "longest pre-copy first": sorted(plan.migrations, key=key_precopy, reverse=True),
        "shortest pre-copy first": sorted(plan.migrations, key=key_precopy),
        "longest demand paging first": sorted(plan.migrations, key=key_tail, reverse=True),
    }
    return {name: [index[s.name] for s in ordered] for name, ordered in by.items()}


def _soonest(migrations: Sequence[Migration], pairs: Sequence[MspPair], a: EvacuationAssumptions,
             hmc: Plan) -> Optional[tuple[str, Plan]]:
    """The order that finishes soonest, when it beats the HMC's order by at least a second."""
    best: Optional[tuple[str, Plan]] = None
    for name, order in _orders(hmc).items():
        candidate = plan_evacuation(migrations, pairs, a, order)
        if _sooner(candidate.total_seconds, hmc.total_seconds) and (
            best is None or candidate.total_seconds < best[1].total_seconds
        ):
            best = (name, candidate)
    return best


def _sooner(total: float, than: float) -> bool:
    """A finite total at least a second shorter (a migration that never ends is never sooner)."""
    return math.isfinite(total) and total <= than - _SOONER_BY_S


def _bottleneck(plan: Plan, a: EvacuationAssumptions) -> dict[str, str]:
    live = [s for s in plan.migrations if s.kind == ACTIVE]
    if plan.blocked:
        return {"kind": "state", "detail": "LPM cannot move " + ", ".join(plan.blocked) + " in its current state"}
    ceiling = a.per_migration_max_bps
    alone_bps = min(ceiling or math.inf, plan.pool_bps) * a.compression
    stalled = [s for s in live if not s.converges]
    if stalled:
        return {"kind": "convergence", "detail": "; ".join(
            f"{s.name} dirties {s.dirty_rate_Bps * 8 / 1e9:.2f} Gbit/s of memory, its share is only "
            f"{s.share_bps * a.compression / 1e9:.2f} Gbit/s: it never converges while sharing"
            + (f" (alone it would have {alone_bps / 1e9:.2f} Gbit/s)" if s.dirty_rate_Bps * 8 < alone_bps else
               f", not even alone ({alone_bps / 1e9:.2f} Gbit/s)") for s in stalled)}
    if ceiling and len(live) > plan.slots and plan.slots * ceiling < plan.pool_bps:
        return {"kind": "concurrency", "detail": f"at most {plan.slots} migrate at once, each at most "
                f"{ceiling / 1e9:.2f} Gbit/s: they use {plan.slots * ceiling / 1e9:.2f} of "
                f"{plan.pool_bps / 1e9:.2f} Gbit/s"}
    memory = math.fsum(s.memory_bytes for s in live)
    sent = math.fsum(s.prediction.precopy_seconds * s.prediction.effective_bandwidth_Bps for s in live
                     if s.prediction)
    resent = f" (+{sent / memory - 1:.0%} dirty pages sent again)" if memory else ""
    return {"kind": "bandwidth", "detail": f"the pairs carry {memory / 2**30:.0f} GiB of memory{resent} at "
            f"{plan.pool_bps / 1e9:.2f} Gbit/s, {plan.slots} at a time at {plan.share_bps / 1e9:.2f} Gbit/s each"}


def _alone_first(migrations: Sequence[Migration], pairs: Sequence[MspPair], a: EvacuationAssumptions,
                 index: int) -> float:
    alone = plan_evacuation([migrations[index]], pairs, a).total_seconds
    rest = [m for i, m in enumerate(migrations) if i != index]
    return alone + (plan_evacuation(rest, pairs, a).total_seconds if rest else 0.0)


def _alone_candidates(plan: Plan, migrations: Sequence[Migration]) -> list[int]:
    """Partitions most hurt by sharing: those that never converge first, then by re-sent share of memory."""
    def hurt(i: int) -> tuple[bool, float]:
        p = plan.migrations[i].prediction
        if p is None or p.memory_bytes == 0:
            return (False, 0.0)
        return (not p.converges, p.precopy_seconds * p.effective_bandwidth_Bps / p.memory_bytes)

    names = [s.name for s in plan.migrations]
    ranked = sorted(range(len(names)), key=hurt, reverse=True)[:_ALONE_CANDIDATES]
    position = {m.name: i for i, m in enumerate(migrations)}
    return [position[names[i]] for i in ranked if plan.migrations[i].kind == ACTIVE]


def _scale(pairs: Sequence[MspPair], factor: float) -> list[MspPair]:
    return [replace(p, bandwidth_bps=p.bandwidth_bps * factor) for p in pairs]


def _bandwidth_for_window(migrations: Sequence[Migration], pairs: Sequence[MspPair], a: EvacuationAssumptions,
                          window_s: float) -> Optional[float]:
    """The least factor on every pair's bandwidth that fits the window (1 % steps), or None above 1000x."""
    def fits(factor: float) -> bool:
        return plan_evacuation(migrations, _scale(pairs, factor), a).total_seconds <= window_s

    low, high = 1.0, 2.0
    while not fits(high):
        if high > 1000:
            return None
        low, high = high, high * 2
    while high / low > 1.01:
        middle = math.sqrt(low * high)
        low, high = (low, middle) if fits(middle) else (middle, high)
    return high


def _suggestion(what: str, total: float, window_s: Optional[float], note: Optional[str] = None) -> dict[str, Any]:
    return {"what": what, "total_seconds": total if math.isfinite(total) else None,
            "fits_window": None if window_s is None else total <= window_s, "note": note}


def _suggestions(migrations: Sequence[Migration], pairs: Sequence[MspPair], a: EvacuationAssumptions,
                 plan: Plan, window_s: Optional[float]) -> list[dict[str, Any]]:
    """What would finish sooner, each computed with the same model; only those that do."""
    if plan.blocked:
        return []
    found = []
    fastest = max(plan.pairs_used, key=lambda p: p.bandwidth_bps)
    if len(pairs) < MAX_PAIRS:  # the model plans at most MAX_PAIRS pairs: no "add one" beyond that
        second = plan_evacuation(migrations, [*pairs, MspPair(f"another pair like {fastest.name}",
                                                              fastest.bandwidth_bps)], a).total_seconds
        found.append(_suggestion(f"add an MSP pair like {fastest.name} ({fastest.bandwidth_bps / 1e9:.2f} Gbit/s)",
                                 second, window_s))
    alone = {i: _alone_first(migrations, pairs, a, i) for i in _alone_candidates(plan, migrations)}
    if alone:
        best = min(alone, key=alone.__getitem__)
        found.append(_suggestion(f"move {migrations[best].name} alone first, then the rest", alone[best], window_s))
    fewer = {c: plan_evacuation(migrations, pairs, replace(a, per_system_limit=c)).total_seconds
             for c in range(1, plan.slots)}
    if fewer:
        best_c = min(fewer, key=fewer.__getitem__)
        note = "fewer dirty pages are sent again when each migration has more of the pool" + (
            "; this assumes one migration can fill a pair: if it cannot, say --per-migration-max"
            if a.per_migration_max_bps is None else "")
        found.append(_suggestion(f"run at most {best_c} at once (each MSP's vioslpm0 cfg_msp_lpm_ops sets it)",
                                 fewer[best_c], window_s, note))
    if window_s is not None and plan.total_seconds > window_s:
        factor = _bandwidth_for_window(migrations, pairs, a, window_s)
        if factor is not None:
            total = plan_evacuation(migrations, _scale(pairs, factor), a).total_seconds
            found.append(_suggestion(f"faster links: every pair at {factor:.2f}x its bandwidth (" + ", ".join(
                f"{p.name} {p.bandwidth_bps * factor / 1e9:.1f} Gbit/s" for p in pairs) + ")", total, window_s))
    sooner = [s for s in found if s["total_seconds"] is not None and _sooner(s["total_seconds"], plan.total_seconds)]
    return sorted(sooner, key=lambda s: s["total_seconds"])


def _json_time(value: Optional[float]) -> Optional[float]:
    return None if value is None or not math.isfinite(value) else value


def plan_to_dict(plan: Plan) -> dict[str, Any]:
    """A JSON-ready plan: per partition start, end, passes, convergence; null for never."""
    rows = []
    for s in plan.migrations:
        p = s.prediction
        rows.append({"name": s.name, "kind": s.kind, "state": s.state, "memory_bytes": s.memory_bytes,
                     "dirty_rate_Bps": s.dirty_rate_Bps, "start_s": _json_time(s.start_s),
                     "end_s": _json_time(s.end_s), "passes": s.passes, "converges": s.converges,
                     "share_bps": s.share_bps,
                     "precopy_seconds": _json_time(p.precopy_seconds) if p else None,
                     "demand_paging_seconds": _json_time(p.demand_paging_seconds) if p else None,
                     "residual_bytes": p.residual_bytes if p else None})
    return {"total_seconds": _json_time(plan.total_seconds), "order": [s.name for s in plan.migrations],
            "pairs_used": [p.name for p in plan.pairs_used], "pool_bps": plan.pool_bps, "slots": plan.slots,
            "share_bps": plan.share_bps, "blocked": list(plan.blocked), "partitions": rows}


def assess(migrations: Sequence[Migration], pairs: Sequence[MspPair], assumptions: EvacuationAssumptions,
           window_s: Optional[float] = None) -> dict[str, Any]:
    """The whole answer as one JSON-ready dict: the HMC-order plan, whether it fits ``window_s``, the
    bottleneck, the soonest order when it differs, and what would finish sooner."""
    if window_s is not None and not window_s > 0:
        raise ValueError("window_s must be above 0")
    hmc = plan_evacuation(migrations, pairs, assumptions)
    soonest = _soonest(migrations, pairs, assumptions, hmc)
    finishes = not hmc.blocked and math.isfinite(hmc.total_seconds)
    return {
        "plan": plan_to_dict(hmc),
        "order_used": "as listed (the HMC's order is not documented; see the notes)",
        "window_s": window_s,
        "fits_window": None if window_s is None else finishes and hmc.total_seconds <= window_s,
        "finishes": finishes,
        "lower_bound_seconds": lower_bound_seconds(migrations, pairs, assumptions.compression),
        "bottleneck": _bottleneck(hmc, assumptions),
        "soonest": None if soonest is None else {"order_name": soonest[0], **plan_to_dict(soonest[1])},
        "suggestions": _suggestions(migrations, pairs, assumptions, hmc, window_s),
        "pairs": [{"name": p.name, "bandwidth_bps": p.bandwidth_bps, "per_msp_limit": per_msp_limit(p, assumptions),
                   "used": p in hmc.pairs_used} for p in pairs],
        "assumptions": {**asdict(assumptions), "per_system_limit_source":
                        "IBM Docs, Firmware support matrix for partition mobility, Table 2 (Concurrent migrations)"},
    }
