"""The checks, in the order a result lists them (README's "What lpmbench checks" table): the retransmit rate
always comes first.

Each rule takes the result document and returns a check (or None when it does not apply to this run).
Statuses, ``check()`` and ``overall()`` live in :mod:`.base`; each family of rules in its own module.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

from lpmbench.analysis.checks import aggregate, cpu, explain, lpm, mover, nic, path, reach, redundancy, transfer
from lpmbench.analysis.checks.base import FAIL, INFO, PASS, UNKNOWN, WARN, Check, check, overall

__all__ = ["FAIL", "INFO", "PASS", "UNKNOWN", "WARN", "Check", "RULES", "check", "evaluate", "overall"]

Rule = Callable[[dict[str, Any]], Optional[Check]]

RULES: tuple[Rule, ...] = (
    transfer.retransmit_check, transfer.completion_check, transfer.streams_check, transfer.data_port_check,
    path.stall_check, path.jumbo_check, nic.link_speed_check, nic.speed_match_check, nic.offload_check,
    nic.physical_adapter_check, nic.nic_errors_check, path.stream_limits_check, path.efficiency_check,
    path.jumbo_gain_check, redundancy.redundant_pairs_check,
    reach.reach_check, mover.streams_match_check, mover.lpm_ops_check, mover.port_range_check, cpu.msp_cpu_check,
    aggregate.aggregate_check,
)


def evaluate(result: dict[str, Any]) -> list[Check]:
    """Every rule that applies, in order, then one check per partition given with --lpar; each symptom that
    another check's finding explains names it (:mod:`.explain`)."""
    checks = [c for c in (rule(result) for rule in RULES) if c is not None]
    return explain.explain(checks + lpm.lpm_checks(result))
