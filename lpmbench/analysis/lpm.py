"""What Live Partition Mobility needs from an MSP pair: a pre-copy migration model.

Pure functions, no I/O. Bytes, seconds and bits per second throughout; memory and dirty rates are in
bytes (``_bytes``, ``_Bps``), network rates in bits (``_bps``), as lpmbench measures goodput in bits.

How LPM moves memory (IBM Docs, "Partition mobility process"; IBM Redbook SG24-7460, "IBM PowerVM
Live Partition Mobility"; the README's section on `lpmbench plan` summarises it): the source MSP
copies the partition's memory to the destination MSP while the partition keeps running; the hypervisor tracks
pages written meanwhile and they are sent again; once little enough is left the partition is
suspended and resumed on the destination, and pages that have not arrived yet are demand-paged from
the source. This is the pre-copy scheme of Clark et al., "Live
Migration of Virtual Machines" (NSDI 2005). The model, with r = D / B:

* Pass 0 sends the touched memory M at the effective bandwidth B (goodput x compression). Pass k
  re-sends what was dirtied during pass k-1, i.e. M * r**k. After n + 1 passes the time is
  T = (M / B) * (1 - r**(n+1)) / (1 - r).
* It converges only if D < B. At D >= B every pass dirties at least as much as it sends and LPM
  stalls: ``predict`` returns ``seconds = math.inf`` and ``converges = False``.
* Switch-over: pre-copy stops once the pages dirtied during the last pass fit under
  ``switchover_threshold_bytes``, or after ``max_passes`` passes. IBM publishes neither number; the
  defaults below are assumptions and say so.
* After resume the residual is fetched on demand: it costs its transfer time at B plus one round trip
  per page, ``demand_paging_concurrency`` faults in flight (conservatively 4 KiB pages, one at a time).

Where between two passes the hypervisor switches over is not known, so the residual charged is the
largest the switch-over rule allows: the threshold, or less when pass 0 dirtied less; or, when the pass
limit ends pre-copy first, what is actually left. Charging that bound rather than the exact residual
also keeps the prediction monotone: a bigger or busier partition, or a slower link, never predicts a
faster migration (the exact residual shrinks by a factor r when one more pass happens, and with
per-page round trips far dearer than bulk transfer the total would fall as M grows).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Optional

from lpmbench.analysis.units import parse_rate_bps, parse_size_bytes

__all__ = [
    "DEFAULT_ASSUMPTIONS",
    "RULE_OF_THUMB_10GBE_BYTES_PER_S",
    "RULE_OF_THUMB_1GBE_BYTES_PER_S",
    "LparSpec",
    "ModelAssumptions",
    "Prediction",
    "aggregate_bandwidth",
    "assess_lpars",
    "parse_lpar_spec",
    "predict",
    "required_bandwidth_bps",
]

# --- Figures from IBM -------------------------------------------------------------------------------
# IBM developerWorks wiki, "Live Partition Mobility requirements": "Assuming a Gigabit Ethernet can
# transmit 80 MB/sec and that 256 GB of working memory is in use ... at least 256*1024/80 = 3276.8
# seconds" (about 55 minutes), longer still as pages get re-dirtied. Their arithmetic is binary.
RULE_OF_THUMB_1GBE_BYTES_PER_S = 80 * 2**20
# 10 GbE moves about 0.86-1.15 GB/s for LPM (IBM's LPM performance figures for dedicated 10 GbE MSP links).
RULE_OF_THUMB_10GBE_BYTES_PER_S = (0.86e9, 1.15e9)

_BITS_PER_BYTE = 8
# Bisection gives up above 1 Zbit/s: no bandwidth can beat a window shorter than the RTT floor.
_ABSURD_BANDWIDTH_BPS = 1e21
_BISECTION_RELATIVE_TOLERANCE = 1e-12
_MAX_LPAR_NAME_CHARS = 64


def _check_number(name: str, value: object, *, minimum: float = 0.0, inclusive: bool = True) -> float:
    """``value`` as a float, or a ValueError/TypeError naming ``name`` and what it must be."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, not {type(value).__name__}")
    number = float(value)
    in_range = number >= minimum if inclusive else number > minimum
    if math.isnan(number) or math.isinf(number) or not in_range:
        relation = "at least" if inclusive else "more than"
        raise ValueError(f"{name} must be a finite number {relation} {minimum:g}, got {value!r}")
    return number


def _check_count(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be a whole number of at least {minimum}, got {value!r}")
    return value


@dataclass(frozen=True)
class ModelAssumptions:
    """The knobs IBM does not publish, with conservative defaults; reported with every prediction.

    * ``switchover_threshold_bytes``: pre-copy ends once a pass dirtied at most this much. 64 MiB is
      our assumption (about 55 ms at 10 GbE, a brief suspend).
    * ``max_passes``: pre-copy passes at most, the first full copy included. 30 is borrowed from Xen,
      whose live migration gives up pre-copy after 30 rounds (xc_domain_save.c, DEF_MAX_ITERS 29,
      "limit us to 30 times round loop"); LPM's own limit is not published.
    * ``page_bytes``: 4 KiB, the smallest POWER page, so the most round trips for a given residual.
    * ``demand_paging_concurrency``: page faults in flight after resume. 1 is the worst case; a
      partition faulting on many virtual processors at once pays less.
    """

    switchover_threshold_bytes: int = 64 * 2**20
    max_passes: int = 30
    page_bytes: int = 4096
    demand_paging_concurrency: int = 1

    def __post_init__(self) -> None:
        _check_count("switchover_threshold_bytes", self.switchover_threshold_bytes, 0)
        _check_count("max_passes", self.max_passes, 1)
        _check_count("page_bytes", self.page_bytes, 1)
        _check_count("demand_paging_concurrency", self.demand_paging_concurrency, 1)


DEFAULT_ASSUMPTIONS = ModelAssumptions()


def _json_number(value: float) -> Optional[float]:
    """JSON has no infinity: a migration that never ends is ``null``."""
    return None if math.isinf(value) else value


@dataclass(frozen=True)
class Prediction:
    """How long one migration of a partition takes over a given bandwidth, and why.

    ``seconds`` = ``precopy_seconds`` + ``demand_paging_seconds``; ``math.inf`` when it does not
    converge. ``passes`` counts pre-copy passes including the first full copy. ``residual_bytes`` is
    what is left for demand paging after switch-over (see the module notes on why it is a bound).
    """

    seconds: float
    converges: bool
    passes: int
    precopy_seconds: float
    residual_bytes: int
    demand_paging_seconds: float
    pass_limit_reached: bool
    memory_bytes: float
    dirty_rate_Bps: float
    bandwidth_bps: float
    effective_bandwidth_Bps: float
    rtt_s: float
    compression: float
    assumptions: ModelAssumptions = DEFAULT_ASSUMPTIONS

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict: infinite times become ``null``."""
        result = asdict(self)
        for key in ("seconds", "precopy_seconds", "demand_paging_seconds"):
            result[key] = _json_number(result[key])
        return result


def aggregate_bandwidth(pairs_bps: Sequence[float]) -> float:
    """Bandwidth of redundant MSP pairs that carry memory in parallel: the sum of each pair's.

    The sum holds when the pairs share no bottleneck link; measure them together to be sure.
    """
    if isinstance(pairs_bps, (str, bytes)) or len(pairs_bps) == 0:
        raise ValueError("aggregate_bandwidth needs a non-empty list of per-pair bandwidths in bit/s")
    return math.fsum(_check_number("a pair's bandwidth_bps", pair) for pair in pairs_bps)


def _precopy(
    memory: float, rate_Bps: float, dirty_Bps: float, assumptions: ModelAssumptions
) -> tuple[float, int, int, bool]:
    """Run the pre-copy passes; returns (seconds, passes, residual bytes charged, pass limit hit).

    Written as a loop of passes rather than the closed form so that every step is a monotone float
    operation: rounding then never makes a larger input predict a shorter migration.
    """
    to_send = memory
    elapsed = 0.0
    passes = 0
    first_pass_dirtied = 0.0
    while True:
        pass_seconds = to_send / rate_Bps
        elapsed += pass_seconds
        passes += 1
        dirtied = dirty_Bps * pass_seconds
        if passes == 1:
            first_pass_dirtied = dirtied
        if dirtied <= assumptions.switchover_threshold_bytes or passes >= assumptions.max_passes:
            break
        to_send = dirtied
    pass_limit_reached = dirtied > assumptions.switchover_threshold_bytes
    # The largest residual the switch-over rule allows (see the module notes).
    threshold = float(assumptions.switchover_threshold_bytes)
    residual = dirtied if pass_limit_reached else min(threshold, first_pass_dirtied)
    return elapsed, passes, math.ceil(residual), pass_limit_reached


def _demand_paging_seconds(residual: int, rate_Bps: float, rtt_s: float, assumptions: ModelAssumptions) -> float:
    """Fetching ``residual`` bytes after resume: their transfer time plus one round trip per page."""
    pages = -(-residual // assumptions.page_bytes)
    return residual / rate_Bps + pages * rtt_s / assumptions.demand_paging_concurrency


def predict(
    memory_bytes: float,
    bandwidth_bps: float,
    dirty_rate_Bps: float = 0.0,
    rtt_s: float = 0.0,
    compression: float = 1.0,
    assumptions: ModelAssumptions = DEFAULT_ASSUMPTIONS,
) -> Prediction:
    """Predict one live migration of a partition with ``memory_bytes`` touched memory.

    ``bandwidth_bps`` is the MSP pair's goodput (sum redundant pairs with ``aggregate_bandwidth``),
    ``dirty_rate_Bps`` how fast the partition writes memory, ``rtt_s`` the MSP-to-MSP round-trip time.
    ``compression`` is how many memory bytes one wire byte carries (2.0 = the wire carries half);
    1.0, no gain, is the conservative default.
    """
    memory = _check_number("memory_bytes", memory_bytes)
    bandwidth = _check_number("bandwidth_bps", bandwidth_bps)
    dirty = _check_number("dirty_rate_Bps", dirty_rate_Bps)
    rtt = _check_number("rtt_s", rtt_s)
    ratio = _check_number("compression", compression, minimum=1.0)
    rate_Bps = bandwidth / _BITS_PER_BYTE * ratio
    common = dict(
        memory_bytes=memory_bytes,
        dirty_rate_Bps=dirty,
        bandwidth_bps=bandwidth,
        effective_bandwidth_Bps=rate_Bps,
        rtt_s=rtt,
        compression=ratio,
        assumptions=assumptions,
    )
    if memory == 0:
        return Prediction(
            seconds=0.0,
            converges=True,
            passes=0,
            precopy_seconds=0.0,
            residual_bytes=0,
            demand_paging_seconds=0.0,
            pass_limit_reached=False,
            **common,
        )
    if dirty >= rate_Bps:
        # LPM stalls when the partition dirties memory as fast as the MSPs move it: every pass would
        # leave as much to send as it sent, until the pass limit, with all of memory still to go.
        return Prediction(
            seconds=math.inf,
            converges=False,
            passes=assumptions.max_passes,
            precopy_seconds=math.inf,
            residual_bytes=math.ceil(memory),
            demand_paging_seconds=math.inf,
            pass_limit_reached=True,
            **common,
        )
    precopy_seconds, passes, residual, limit_hit = _precopy(memory, rate_Bps, dirty, assumptions)
    demand_seconds = _demand_paging_seconds(residual, rate_Bps, rtt, assumptions)
    return Prediction(
        seconds=precopy_seconds + demand_seconds,
        converges=True,
        passes=passes,
        precopy_seconds=precopy_seconds,
        residual_bytes=residual,
        demand_paging_seconds=demand_seconds,
        pass_limit_reached=limit_hit,
        **common,
    )


def required_bandwidth_bps(
    memory_bytes: float,
    dirty_rate_Bps: float,
    window_s: float,
    rtt_s: float = 0.0,
    compression: float = 1.0,
    assumptions: ModelAssumptions = DEFAULT_ASSUMPTIONS,
) -> float:
    """The least goodput (bit/s) at which ``predict`` finishes within ``window_s``.

    Found by bisection on ``predict`` itself, so the two always agree. ``math.inf`` when no bandwidth
    is enough: the per-page round trips of demand paging set a floor that bandwidth cannot lower.
    """
    memory = _check_number("memory_bytes", memory_bytes)
    dirty = _check_number("dirty_rate_Bps", dirty_rate_Bps)
    window = _check_number("window_s", window_s, inclusive=False)
    ratio = _check_number("compression", compression, minimum=1.0)
    if memory == 0:
        return 0.0

    def fits(bandwidth: float) -> bool:
        return predict(memory, bandwidth, dirty, rtt_s, ratio, assumptions).seconds <= window

    # Neither the first full copy within the window nor keeping ahead of the dirty rate is possible
    # below this bandwidth, so it is where the search starts.
    low = max(memory / window, dirty) * _BITS_PER_BYTE / ratio
    if fits(low):
        return low
    high = max(low * 2, 1.0)  # max(): low underflows to 0 for a byte over an astronomical window
    while not fits(high):
        if high > _ABSURD_BANDWIDTH_BPS:
            return math.inf
        low, high = high, high * 2
    while high - low > high * _BISECTION_RELATIVE_TOLERANCE:
        middle = (low + high) / 2
        if fits(middle):
            high = middle
        else:
            low = middle
    return high


@dataclass(frozen=True)
class LparSpec:
    """A partition to plan for: its name, touched memory and dirty rate (bytes per second)."""

    name: str
    memory_bytes: int
    dirty_rate_Bps: float = 0.0

    def __post_init__(self) -> None:
        name_ok = (
            isinstance(self.name, str)
            and self.name.strip() == self.name
            and 0 < len(self.name) <= _MAX_LPAR_NAME_CHARS
            and self.name.isprintable()
            and ":" not in self.name
        )
        if not name_ok:
            raise ValueError(
                f"partition name {self.name!r} must be 1-{_MAX_LPAR_NAME_CHARS} printable characters "
                "without ':' or surrounding spaces"
            )
        _check_count("memory_bytes", self.memory_bytes, 1)
        _check_number("dirty_rate_Bps", self.dirty_rate_Bps)


def parse_lpar_spec(text: str) -> LparSpec:
    """Parse ``NAME:MEMORY[:DIRTY_RATE]``, e.g. ``db01:256GiB:600MiB/s`` or ``web1:32GiB``."""
    if not isinstance(text, str):
        raise TypeError(f"a partition spec must be text, not {type(text).__name__}")
    usage = f"bad partition spec {text!r} (expected NAME:MEMORY[:DIRTY_RATE], e.g. db01:256GiB:600MiB/s)"
    parts = text.split(":")
    if len(parts) not in (2, 3):
        raise ValueError(f"{usage}: found {len(parts)} field(s) separated by ':'")
    name = parts[0].strip()
    try:
        memory = parse_size_bytes(parts[1])
        dirty_Bps = parse_rate_bps(parts[2]) / _BITS_PER_BYTE if len(parts) == 3 else 0.0
        if memory == 0:
            raise ValueError("MEMORY must be more than 0 bytes")
        return LparSpec(name, memory, dirty_Bps)
    except ValueError as error:
        raise ValueError(f"{usage}: {error}") from error


def assess_lpars(
    lpars: Sequence[LparSpec],
    goodput_bps: float,
    rtt_s: float,
    window_s: Optional[float] = None,
    compression: float = 1.0,
    assumptions: ModelAssumptions = DEFAULT_ASSUMPTIONS,
) -> list[dict[str, Any]]:
    """One JSON-ready dict per partition, each as if it migrated alone over ``goodput_bps``.

    Keys: ``name``, ``memory_bytes``, ``dirty_rate_Bps``, ``predicted_seconds`` (null when it does
    not converge), ``converges``, ``passes``, ``residual_bytes``, ``demand_paging_seconds``,
    ``pass_limit_reached``, ``window_s``, ``fits_window`` (null without a window) and
    ``required_bps`` (null without a window, or when no bandwidth can meet it). Partitions moved at
    the same time share the bandwidth; this does not model that.
    """
    if window_s is not None:
        _check_number("window_s", window_s, inclusive=False)
    assessments = []
    for lpar in lpars:
        prediction = predict(lpar.memory_bytes, goodput_bps, lpar.dirty_rate_Bps, rtt_s, compression, assumptions)
        fits_window = None
        required = None
        if window_s is not None:
            fits_window = prediction.seconds <= window_s
            required = _json_number(
                required_bandwidth_bps(
                    lpar.memory_bytes, lpar.dirty_rate_Bps, window_s, rtt_s, compression, assumptions
                )
            )
        assessments.append(
            {
                "name": lpar.name,
                "memory_bytes": lpar.memory_bytes,
                "dirty_rate_Bps": lpar.dirty_rate_Bps,
                "predicted_seconds": _json_number(prediction.seconds),
                "converges": prediction.converges,
                "passes": prediction.passes,
                "residual_bytes": prediction.residual_bytes,
                "demand_paging_seconds": _json_number(prediction.demand_paging_seconds),
                "pass_limit_reached": prediction.pass_limit_reached,
                "window_s": window_s,
                "fits_window": fits_window,
                "required_bps": required,
            }
        )
    return assessments
