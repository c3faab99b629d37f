"""What the sending and the receiving side of a run share: stream threads, the run's clock, counters,
interval reports, abort and the final report.

Everything that may block (interface audits, system counters, CPU figures) runs in a worker thread, so the
agent's event loop keeps serving its control sessions while a run starts, drains and audits.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from lpmbench import dataplane
from lpmbench.agent.clock import StartGate, Work, start_streams
from lpmbench.agent.streams import describe
from lpmbench.platform import CpuMeter, InterfaceAudit

INTERVAL_TCP_FIELDS = ("rtt_us", "total_retrans", "segs_out", "snd_cwnd", "bytes_acked", "snd_mss", "pmtu")

Report = Callable[[str, dict[str, Any]], Awaitable[None]]
Allowed = Optional[tuple[Any, ...]]  # networks (ipaddress) a data peer must lie in; None: any


@dataclass
class RunSpec:
    run_id: str
    token: str
    streams: int
    duration: float
    interval: float
    options: dict[str, Any] = field(default_factory=dict)


class RunAborted(Exception):
    pass


class Run:
    """What senders and receivers share: stream threads, counters, interval reporting, abort."""

    role = "?"

    def __init__(self, spec: RunSpec, report: Report, agent_facts: dict[str, Any]) -> None:
        self.spec = spec
        self._report = report
        self._facts = agent_facts
        self._counters = [dataplane.new_counters() for _ in range(spec.streams)]
        self._sockets: list[socket.socket | None] = [None] * spec.streams
        self._abort_reason: str | None = None
        self._aborted = asyncio.Event()
        self._cpu = CpuMeter()
        self._audit = InterfaceAudit()
        self._gate: StartGate | None = None
        self._keepalive_ok = True  # keepalive and TCP_USER_TIMEOUT took on every data socket so far
        self.error: str | None = None

    @property
    def peer(self) -> str | None:
        """The other MSP's address, once known."""
        return None

    def live_bytes(self) -> int:
        """Bytes moved so far by all streams; safe to call while the loops run."""
        return sum(int(c[dataplane.SLOT_BYTES]) for c in self._counters)

    def abort(self, reason: str) -> None:
        """Stop every stream loop at once; the run then reports what it had."""
        if self._abort_reason is None:
            self._abort_reason = reason
        for counters in self._counters:
            counters[dataplane.SLOT_STOP] = 1
        self._aborted.set()

    def _record_error(self, message: str) -> None:
        if self.error is None:
            self.error = message

    async def _start_streams(self, name: str, works: list[Work],
                             run_for_s: float) -> tuple[list[asyncio.Future], float]:
        """One thread per stream; the clock starts once all run (see lpmbench.agent.clock). Returns (futures, t0)."""
        await asyncio.get_running_loop().run_in_executor(None, self._cpu.start)
        self._gate = StartGate(len(works), int(run_for_s * 1e9))
        return await start_streams(self._gate, name, works, self._aborted)

    def _started(self, stream_id: int) -> bool:
        """Whether the stream's loop ran under the run's clock (False: never connected, or its thread never ran)."""
        return self._gate is not None and stream_id < len(self._gate.started) and self._gate.started[stream_id]

    async def _sample_until_done(self, futures: list[asyncio.Future], t0: float) -> float:
        """Push an interval report every interval until every stream thread has ended; returns end time."""
        index = 0
        pending = set(futures)
        last_tick = t0
        while pending:
            next_tick = t0 + (index + 1) * self.spec.interval
            done, pending = await asyncio.wait(pending, timeout=max(0.0, next_tick - time.monotonic()))
            if time.monotonic() >= next_tick:
                await self._send_interval(index, next_tick - t0)
                index += 1
                last_tick = next_tick
                self._after_interval()
        end = max((f.result()[1] for f in futures if not f.cancelled() and f.exception() is None),
                  default=time.monotonic())
        if end - last_tick > 0.1 * self.spec.interval:
            await self._send_interval(index, end - t0)
        return end

    async def _send_interval(self, index: int, t: float) -> None:
        await self._report("interval", {"run_id": self.spec.run_id, "index": index, "t": round(t, 6),
                                        "streams": self._stream_samples()})

    def _stream_samples(self) -> list[dict[str, Any]]:
        samples = []
        for stream_id, counters in enumerate(self._counters):
            sample: dict[str, Any] = {"id": stream_id, "bytes": int(counters[dataplane.SLOT_BYTES])}
            tcp = self._tcp_info(stream_id)
            if tcp is not None:  # the interval needs a few fields; the final result carries them all
                sample["tcp"] = {k: tcp[k] for k in INTERVAL_TCP_FIELDS if k in tcp}
            samples.append(sample)
        return samples

    def _tcp_info(self, stream_id: int) -> dict[str, Any] | None:
        return None

    def _after_interval(self) -> None:
        """Hook run after each interval report."""

    async def _audit_finish(self) -> dict[str, Any]:
        return await asyncio.get_running_loop().run_in_executor(None, self._audit.finish)

    def close(self) -> None:
        """Stop every stream loop and close the sockets: safe to call at any point, and more than once.

        The loops work on duplicates of the sockets, so closing ours alone would not stop them.
        """
        for counters in self._counters:
            counters[dataplane.SLOT_STOP] = 1
        self._close_sockets()

    def _live_sockets(self) -> list[socket.socket]:
        return [s for s in self._sockets if s is not None]

    def _close_sockets(self) -> None:
        for i, sock in enumerate(self._sockets):
            if sock is not None:
                sock.close()
                self._sockets[i] = None

    def _collect_stream_errors(self, futures: list[asyncio.Future]) -> None:
        for stream_id, future in enumerate(futures):
            if future.done() and not future.cancelled() and future.exception() is not None:
                self._record_error(f"stream {stream_id}: {describe(future.exception())}")

    async def _result(self, elapsed: float, streams: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        if self._gate is None:  # no stream ever ran: the meter has nothing to read (and no reason to block)
            cpu = self._cpu.stop()
        else:
            cpu = await asyncio.get_running_loop().run_in_executor(None, self._cpu.stop)
        data = {"role": self.role, **self._facts, **cpu, "elapsed_s": round(elapsed, 6),
                "streams": streams, "error": self.error or self._abort_reason, "aborted": bool(self._abort_reason),
                "keepalive": self._keepalive_ok}
        data.update(extra)
        return data
