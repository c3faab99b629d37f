"""The command line: parses options, calls the library, renders. Exit codes: 0 pass/warn, 1 fail, 2 error."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from typing import Annotated, Optional

import typer
from rich.console import Console

from . import __version__, eventloop, keys
from .agent import DEFAULT_CONTROL_PORT, Agent, AgentConfig, AgentLimits

EXIT_OK, EXIT_FAIL, EXIT_ERROR = 0, 1, 2

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Is the network between two PowerVM MSPs fit for Live Partition Mobility, and if not, why?")
err = Console(stderr=True, soft_wrap=True)


def die(message: str) -> typer.Exit:
    err.print(f"[bold red]lpmbench:[/bold red] {message}", highlight=False)
    return typer.Exit(EXIT_ERROR)


def _version(value: bool) -> None:
    if value:
        print(f"lpmbench {__version__}")
        raise typer.Exit(EXIT_OK)


@app.callback()
def _main(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                                help="Print the version and exit.")] = False) -> None:
    pass


@app.command()
def keygen() -> None:
    """Print a new random key (32 bytes, hex). Store it mode 600 on every agent and on the orchestrator."""
    print(keys.generate_key())


def _load_key(path: Optional[str]) -> Optional[bytes]:
    if path is None:
        return None
    try:
        return keys.load_key(path)
    except keys.KeyFileError as exc:
        raise die(str(exc)) from None


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
    key = _load_key(key_file)
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


# `pair` lives in its own module to keep this file about wiring only.
from . import cli_pair  # noqa: E402,F401  (registers the pair command)


def main() -> None:
    app()
