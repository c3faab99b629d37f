"""``lpmbench agent``: parse options, start the agent, serve until SIGTERM / SIGINT."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from typing import Annotated, Optional

import typer

from . import eventloop
from .agent import DEFAULT_CONTROL_PORT, Agent, AgentConfig, AgentLimits
from .cli import app, die, err, load_key_or_die


def parse_port_range(text: str) -> tuple[int, int]:
    low_text, sep, high_text = text.partition("-")
    if not sep or not low_text.isdigit() or not high_text.isdigit():
        raise ValueError(f"port range {text!r} must look like LOW-HIGH, e.g. 32768-65535")
    low, high = int(low_text), int(high_text)
    if (low, high) != (0, 0) and not 1 <= low <= high <= 65535:
        raise ValueError(f"port range {text!r} must satisfy 1 <= LOW <= HIGH <= 65535 (or 0-0 for any)")
    return low, high


@app.command()
def agent(
    bind: Annotated[Optional[str], typer.Option(help="Address to listen on (default: all addresses).")] = None,
    port: Annotated[int, typer.Option(help="Control port.", min=0, max=65535)] = DEFAULT_CONTROL_PORT,
    key_file: Annotated[Optional[str], typer.Option(help="Key file (mode 600) from 'lpmbench keygen'.")] = None,
    insecure: Annotated[bool, typer.Option(help="Run WITHOUT authentication. Anyone who reaches the port can "
                                                "make this host send traffic. Lab use only.")] = False,
    data_ports: Annotated[str, typer.Option(help="Data port range LOW-HIGH; default mirrors LPM's ephemeral "
                                                 "ports (vioslpm0 tcp_port_low/high). 0-0 means any.")]
    = "32768-65535",
    max_duration: Annotated[float, typer.Option(help="Longest run this agent accepts, seconds.", min=1)] = 3600.0,
    max_streams: Annotated[int, typer.Option(help="Most streams this agent accepts per run.", min=1)] = 64,
    max_runs: Annotated[int, typer.Option(help="Runs at once; more get 'busy' at once.", min=1)] = 1,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
) -> None:
    """Run the agent on an MSP: it receives or sends test streams when an authenticated 'pair' asks."""
    logging.basicConfig(level=getattr(logging, log_level.upper(), logging.INFO), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if key_file is None and not insecure:
        raise die("no key: pass --key-file FILE (make one with 'lpmbench keygen'), or --insecure for a lab")
    key = load_key_or_die(key_file)
    if insecure and key is None:
        err.print("[bold red]WARNING: running WITHOUT authentication (--insecure): anyone who reaches this port "
                  "can make this host send traffic.[/bold red]")
    try:
        ports = parse_port_range(data_ports)
    except ValueError as exc:
        raise die(str(exc)) from None
    config = AgentConfig(bind=bind, port=port, key=key, data_ports=ports,
                         limits=AgentLimits(max_duration_s=max_duration, max_streams=max_streams,
                                            max_concurrent_runs=max_runs))
    try:
        eventloop.run(_serve(config))
    except OSError as exc:
        raise die(f"cannot listen on {bind or '*'}:{port}: {exc.strerror or exc}") from None


async def _serve(config: AgentConfig) -> None:
    server = Agent(config)
    await server.start()
    print(f"lpmbench agent ready on {config.bind or '*'}:{server.port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    serving = asyncio.ensure_future(server.serve_forever())
    await stop.wait()
    await server.close()
    serving.cancel()
