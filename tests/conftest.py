"""Shared fixtures: run coroutines on both event loops (uvloop and the stock asyncio loop)."""

from __future__ import annotations

import os
import stat
from collections.abc import Coroutine
from typing import Any, Callable

import pytest

from lpmbench import eventloop, keys

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
