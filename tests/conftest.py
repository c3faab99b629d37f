"""Shared fixtures: both event loops (uvloop and the stock asyncio loop), both data-plane twins (C, Python)."""

from __future__ import annotations

import os
import stat
from collections.abc import Coroutine
from types import ModuleType
from typing import Any, Callable

import pytest

from lpmbench.net import eventloop, keys

LOOP_PARAMS = [pytest.param("asyncio", id="asyncio"),
               pytest.param("uvloop", id="uvloop",
                            marks=pytest.mark.skipif(eventloop.uvloop is None, reason="uvloop not installed"))]


@pytest.fixture(params=LOOP_PARAMS)
def loop_kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def run_async(loop_kind: str) -> Callable[[Coroutine[Any, Any, Any]], Any]:
    """Run a coroutine to completion on the loop under test."""

    def runner(coro: Coroutine[Any, Any, Any]) -> Any:
        return eventloop.run(coro, loop_kind)

    return runner


@pytest.fixture
def key_file(tmp_path: Any) -> str:
    path = str(tmp_path / "key")
    keys.write_key(path, keys.generate_key())
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    return path


@pytest.fixture(params=["c", "python"])
def twin(request: pytest.FixtureRequest) -> ModuleType:
    """The data-plane twin under test: one suite runs over both, as multidict's does."""
    if request.param == "c":
        try:
            from lpmbench.dataplane import _lpmbench
        except ImportError as exc:
            pytest.skip(f"the C data plane is not built ({exc}); `pip install -e .` builds it")
        return _lpmbench
    from lpmbench.dataplane import _python

    return _python
