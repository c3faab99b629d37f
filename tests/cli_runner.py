"""One CliRunner for every CLI test: the same result attributes on every click version.

click 8.2 (Python 3.10+) keeps stderr apart and gives ``output`` as both streams interleaved. click 8.1 (what
Python 3.9, the AIX Toolbox's python3, gets) either mixes stderr into stdout, or, with ``mix_stderr=False``,
keeps it apart but leaves it out of ``output``. Without this, a test of "stdout holds only the JSON" or "the
error names --memory" would pass or fail by interpreter.
"""

from __future__ import annotations

import inspect
from typing import Any

from typer.testing import CliRunner

_CLICK_8_1 = "mix_stderr" in inspect.signature(CliRunner.__init__).parameters


class _Result:
    """click 8.1's result with click 8.2's ``output``: stdout then stderr (8.1 cannot interleave them)."""

    def __init__(self, result: Any) -> None:
        self._result = result

    @property
    def output(self) -> str:
        return self._result.stdout + self._result.stderr

    def __getattr__(self, name: str) -> Any:
        return getattr(self._result, name)


class _Runner(CliRunner):
    def invoke(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        return _Result(super().invoke(*args, **kwargs))


def cli_runner() -> CliRunner:
    return _Runner(mix_stderr=False) if _CLICK_8_1 else CliRunner()
