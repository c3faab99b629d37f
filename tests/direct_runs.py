"""A receiver and a sender run driven directly, on loopback, without agents or an orchestrator around them.

For tests about what a run itself does (its reports, its use of the event loop), independent of the control
protocol.
"""

from __future__ import annotations

import asyncio
from typing import Any

from lpmbench.agent.runs import ReceiverRun, RunSpec, SenderRun

TOKEN = "d" * 32
RECEIVER_HOST = "127.0.0.2"


async def run_directly(streams: int = 2, duration: float = 0.5, interval: float = 0.25,
                       options: dict[str, Any] | None = None
                       ) -> tuple[dict[str, Any], dict[str, Any], list[tuple[str, dict[str, Any]]]]:
    """(sender's final report, receiver's final report, every interval report) of one run with a path probe."""
    reports: list[tuple[str, dict[str, Any]]] = []

    async def report(kind: str, fields: dict[str, Any]) -> None:
        reports.append((kind, fields))

    receiver = ReceiverRun(RunSpec("direct", TOKEN, streams, duration, interval), report, {}, RECEIVER_HOST, (0, 0))
    sender: SenderRun | None = None
    try:
        port = receiver.listen()
        probe_port = await receiver.start_probe_responder()
        sender = SenderRun(RunSpec("direct", TOKEN, streams, duration, interval,
                                   {"probe_port": probe_port, **(options or {})}), report, {}, RECEIVER_HOST, port)
        sent, received = await asyncio.gather(sender.run(), receiver.run())
    finally:
        receiver.close()
        if sender is not None:
            sender.close()
    return sent, received, reports
