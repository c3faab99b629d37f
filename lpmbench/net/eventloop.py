"""Event loop choice: uvloop where it is installed (Linux, macOS), the stock asyncio loop elsewhere (AIX)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine
from typing import Any, Callable, TypeVar

T = TypeVar("T")

try:  # uvloop does not build on AIX; the stock loop is the fallback, not an error.
    import uvloop
except ImportError:  # pragma: no cover - depends on the platform
    uvloop = None  # type: ignore[assignment]

LOOP_KINDS = ("uvloop", "asyncio")


def default_kind() -> str:
    """The loop to use: LPMBENCH_EVENT_LOOP overrides; uvloop when present."""
    wanted = os.environ.get("LPMBENCH_EVENT_LOOP", "")
    if wanted:
        if wanted not in LOOP_KINDS:
            raise ValueError(f"LPMBENCH_EVENT_LOOP must be one of {', '.join(LOOP_KINDS)}, not {wanted!r}")
        if wanted == "uvloop" and uvloop is None:
            raise ValueError("LPMBENCH_EVENT_LOOP=uvloop but uvloop is not installed")
        return wanted
    return "uvloop" if uvloop is not None else "asyncio"


def loop_factory(kind: str | None = None) -> Callable[[], asyncio.AbstractEventLoop]:
    kind = kind or default_kind()
    if kind == "uvloop":
        if uvloop is None:
            raise ValueError("uvloop is not installed")
        return uvloop.new_event_loop
    return asyncio.new_event_loop


def current_kind() -> str:
    """Name of the loop running now."""
    loop = asyncio.get_running_loop()
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"


def run(main: Coroutine[Any, Any, T], kind: str | None = None) -> T:
    """asyncio.run on the chosen loop (Python 3.9 has no loop_factory argument)."""
    loop = loop_factory(kind)()
    try:
        asyncio.set_event_loop(loop)
        return loop.run_until_complete(main)
    finally:
        try:
            _cancel_leftovers(loop)
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            asyncio.set_event_loop(None)
            loop.close()


def _cancel_leftovers(loop: asyncio.AbstractEventLoop) -> None:
    tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for task in tasks:
        task.cancel()
    if tasks:
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
