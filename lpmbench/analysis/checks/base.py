"""What every check shares: the statuses, ``check()`` and ``overall()``.

A check is PASS / WARN / FAIL / UNKNOWN / INFO with a detail (the cause) and a remedy. The verdict is the worst
of the checks. An UNKNOWN check (a fact this platform or run could not see) and an INFO check (a fact worth
knowing that this run was not asked to judge, e.g. one MSP pair without ``--redundant``) are shown but do not
change it. Rule modules import only this module; :mod:`lpmbench.analysis.checks` lists the rules in order.
"""

from __future__ import annotations

PASS, WARN, FAIL, UNKNOWN, INFO = "pass", "warn", "fail", "unknown", "info"
SEVERITY = {PASS: 0, UNKNOWN: 0, INFO: 0, WARN: 1, FAIL: 2}
Check = dict[str, str]


def check(name: str, status: str, detail: str, remedy: str = "") -> dict[str, str]:
    return {"name": name, "status": status, "detail": detail, "remedy": remedy if status != PASS else ""}


def overall(checks: list[Check]) -> str:
    worst = max((SEVERITY[c["status"]] for c in checks), default=0)
    return {0: PASS, 1: WARN, 2: FAIL}[worst]
