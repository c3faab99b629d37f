"""Both directions of an MSP pair: A -> B, then B -> A, each judged on its own, the verdict the worse.

LPM moves partitions both ways between two frames, and paths are often asymmetric: a switch port that drops
jumbo frames toward one MSP only, a policer on one uplink. One direction's result says nothing about the other.
The runs go one after the other (each agent takes part in one run at a time); the second direction swaps the
endpoints and leaves everything else as configured. See docs/result-contract.md, "Both directions".
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional

from lpmbench.analysis.checks.base import FAIL, SEVERITY
from lpmbench.orchestrator.client import PairError
from lpmbench.orchestrator.pair import IntervalCallback, PairConfig, run_pair

Runner = Callable[[PairConfig, Optional[IntervalCallback]], Any]


def reversed_config(config: PairConfig) -> PairConfig:
    """B sends to A. ``data_host`` named the receiver's data address; the sender's own host stands in for it
    the other way (its data address is not known here)."""
    return dataclasses.replace(config, sender=config.receiver, receiver=config.sender,
                               data_host=config.sender.host if config.data_host else None)


def _label(config: PairConfig) -> str:
    return f"{config.sender.label} -> {config.receiver.label}"


def _direction(config: PairConfig, result: dict[str, Any] | None, error: str | None) -> dict[str, Any]:
    return {"direction": _label(config), "sender": config.sender.host, "receiver": config.receiver.host,
            "verdict": result["verdict"] if result is not None else FAIL,
            "error": error, "result": result}


def combine(directions: list[dict[str, Any]]) -> dict[str, Any]:
    """The document of a both-directions run: each direction whole, the verdict the worse of the two."""
    worst = max(directions, key=lambda d: SEVERITY[d["verdict"]])
    return {"both_directions": True, "verdict": worst["verdict"], "directions": directions,
            "worse_direction": worst["direction"] if len({d["verdict"] for d in directions}) > 1 else None}


async def run_both_directions(config: PairConfig, on_interval: IntervalCallback | None = None,
                              runner: Runner | None = None) -> dict[str, Any]:
    """A -> B, then B -> A. A direction that cannot start (PairError) is a FAIL naming why, and the other
    direction still runs; ``on_interval`` gets the intervals of both runs, one after the other.

    ``runner`` is run_pair (the default) or another runner of the same shape, e.g. one with --jumbo-compare.
    """
    run = runner or run_pair
    directions = []
    for each in (config, reversed_config(config)):
        try:
            directions.append(_direction(each, await run(each, on_interval), None))
        except PairError as exc:
            directions.append(_direction(each, None, str(exc)))
    return combine(directions)
