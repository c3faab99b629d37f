"""The run's clock starts when the streams run, not when the first one was asked to start.

Two things made late streams of a many-stream run move nothing on a loaded 2-core host (and the verdict then
blamed a firewall):

* starting 128 threads one at a time takes long once the first ones are busy sending, so a deadline fixed
  before the first start left the last streams little or no time. So every stream thread first checks in
  at a gate and waits there, idle; once all have checked in (or STREAM_START_TIMEOUT_S has passed) the
  gate opens, and that instant is the run's start (t0).
* released together, the threads still need the GIL and a CPU to get from the gate into the data plane's
  loop; with every core busy that took some of them longer than a short run. So each stream's deadline is
  taken by the stream itself, just before its loop starts: every stream gets the full duration.

A stream whose thread never checked in before the gate opened is reported as not started, and runs nothing
if its thread turns up later.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from typing import Any, Callable

from lpmbench.agent.streams import start_thread
from lpmbench.protocol.contract import ARM_TIMEOUT_S

# Threads that only check in and wait start in milliseconds even on a loaded host; past this the host is in
# trouble and the run goes on with the streams it has (the rest are reported as never started).
STREAM_START_TIMEOUT_S = 5.0
# A stream thread never waits at the gate longer than any run waits for its streams (the gate is opened well
# before, in every path; this only bounds a thread whose run vanished).
GATE_WAIT_LIMIT_S = ARM_TIMEOUT_S
PAST_DEADLINE_NS = 0  # the data plane's loops return at once with a deadline already passed

Work = Callable[[int], Any]  # one stream's loop, given its deadline (time.monotonic_ns clock)


class StartGate:
    """Where stream threads wait until all have started; then each stream runs for ``run_for_ns`` from its
    own start. Thread-safe: the event loop opens it, the stream threads check in and take their deadline.
    """

    def __init__(self, streams: int, run_for_ns: int, clock: Callable[[], int] = time.monotonic_ns) -> None:
        self.started = [False] * streams
        self.opened_ns: int | None = None  # the run's t0
        self.on_all_in: Callable[[], None] | None = None  # called (from a stream thread) when none is missing
        self._run_for_ns = run_for_ns
        self._clock = clock
        self._missing = set(range(streams))
        self._lock = threading.Lock()
        self._opened = threading.Event()

    @property
    def all_in(self) -> bool:
        with self._lock:
            return not self._missing

    def check_in(self, stream_id: int) -> bool:
        """Stream ``stream_id``'s thread runs; False when it came too late (the gate is open already)."""
        return self._account(stream_id, started=True)

    def forfeit(self, stream_id: int) -> None:
        """Stream ``stream_id`` will never check in (its thread could not be created): wait no longer for it."""
        self._account(stream_id, started=False)

    def _account(self, stream_id: int, started: bool) -> bool:
        with self._lock:
            if self._opened.is_set():
                return False
            self.started[stream_id] = started
            self._missing.discard(stream_id)
            everyone = not self._missing
        if everyone and self.on_all_in is not None:
            self.on_all_in()
        return True

    def open(self) -> int:
        """Start the run's clock: streams that checked in may go. Returns t0 (time.monotonic_ns clock)."""
        with self._lock:
            if self.opened_ns is None:
                self.opened_ns = self._clock()
            self._opened.set()
            return self.opened_ns

    def deadline_for(self, stream_id: int) -> int:
        """Block until the gate opens; then the stream's deadline, taken now, right before its loop starts
        (one already passed for a stream that did not check in in time)."""
        opened = self._opened.wait(GATE_WAIT_LIMIT_S)  # False: its run vanished without opening the gate
        with self._lock:
            if opened and self.started[stream_id]:
                return self._clock() + self._run_for_ns
            self.started[stream_id] = False
            return PAST_DEADLINE_NS


def _gated(gate: StartGate, stream_id: int, work: Work) -> Any:
    """A stream thread's body: check in, wait for the clock, run the stream's loop until its deadline."""
    gate.check_in(stream_id)
    return work(gate.deadline_for(stream_id))


def _start_threads(loop: asyncio.AbstractEventLoop, gate: StartGate, name: str, works: list[Work],
                   futures: list[asyncio.Future]) -> None:
    """Start every stream's thread (in a worker thread: each start waits for the new thread's first turn)."""
    for stream_id, (work, future) in enumerate(zip(works, futures)):
        try:
            start_thread(loop, future, f"{name}-{stream_id}", _gated, gate, stream_id, work)
        except RuntimeError as exc:  # "can't start new thread": out of threads or memory
            gate.forfeit(stream_id)
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nobody waits any more
                loop.call_soon_threadsafe(_fail, future, RuntimeError(f"stream thread could not start: {exc}"))


def _fail(future: asyncio.Future, error: BaseException) -> None:
    if not future.done():  # a cancelled run no longer waits for it
        future.set_exception(error)


async def start_streams(gate: StartGate, name: str, works: list[Work],
                        aborted: asyncio.Event) -> tuple[list[asyncio.Future], float]:
    """Start one thread per stream and open the gate once all run (or on abort, or at the start timeout).

    Returns the streams' futures (each settles with (loop result, end time)) and t0, the run's start in
    time.monotonic() seconds (the gate's clock must be time.monotonic_ns).
    """
    loop = asyncio.get_running_loop()
    everyone_in = asyncio.Event()

    def all_in() -> None:
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nobody waits any more
            loop.call_soon_threadsafe(everyone_in.set)

    gate.on_all_in = all_in
    try:
        futures = [loop.create_future() for _ in works]
        await loop.run_in_executor(None, _start_threads, loop, gate, name, works, futures)
        waits = [asyncio.ensure_future(everyone_in.wait()), asyncio.ensure_future(aborted.wait())]
        try:
            await asyncio.wait(waits, timeout=STREAM_START_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waits:
                waiter.cancel()
    finally:
        # In every path: a thread at a closed gate would wait for nothing; at an open one it sees the
        # run's stop flag or its deadline.
        t0_ns = gate.open()
    return futures, t0_ns / 1e9
