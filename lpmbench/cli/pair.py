"""``lpmbench pair``: parse options, run the pair (or two local agents), render the result."""

import asyncio
import contextlib
import dataclasses
import os
import signal
import sys
import tempfile
from collections.abc import Awaitable, Iterator
from typing import Annotated, Any, Callable, Optional

import typer
from rich.console import Console
from rich.markup import escape

from lpmbench.analysis import lpm, units
from lpmbench.cli._common import (
    EXIT_ERROR,
    EXIT_FAIL,
    EXIT_OK,
    app,
    check_output_path,
    die,
    err,
    load_key_or_die,
    parse_or_die,
    seconds_or_die,
)
from lpmbench.net import eventloop
from lpmbench.net import tls as tlsconfig
from lpmbench.orchestrator.directions import run_both_directions
from lpmbench.orchestrator.local import LocalAgentError, local_agents
from lpmbench.orchestrator.pair import (
    Endpoint,
    PairConfig,
    PairError,
    RunInterrupted,
    SameAgentError,
    run_pairs,
    run_with_jumbo_compare,
)
from lpmbench.protocol.contract import DEFAULT_STREAMS
from lpmbench.render import html as htmlreport
from lpmbench.render import terminal as report

MIN_DURATION_S, MAX_DURATION_S = 0.2, 86400.0
MIN_INTERVAL_S, MAX_INTERVAL_S = 0.1, 3600.0


@app.command()
def pair(
    sender: Annotated[Optional[str], typer.Argument(help="Agent A that sends (host, IPv4, IPv6, optional :port).")]
    = None,
    receiver: Annotated[Optional[str], typer.Argument(help="Agent B that receives.")] = None,
    streams: Annotated[int, typer.Option(help="Parallel TCP streams. Default 4 is an ASSUMPTION about LPM: "
                                              "vioslpm0 concurrency_lvl defaults to 4 mover threads on VIOS "
                                              "2.2.4+.", min=1, max=256)] = DEFAULT_STREAMS,
    duration: Annotated[str, typer.Option(metavar="DURATION", help="Length of the bulk transfer, from 0.2s to "
                                                                   "24h: 10s, 2m, 1h; a bare number is seconds "
                                                                   "(10 is 10s).")] = "10s",
    interval: Annotated[Optional[str], typer.Option(metavar="DURATION", help="Time between interval reports, from "
                                                                             "0.1s to 1h; a bare number is seconds "
                                                                             "[default: 1, or the duration when "
                                                                             "shorter].")] = None,
    key_file: Annotated[Optional[str], typer.Option(help="Pre-shared key file, the same as the agents'.")] = None,
    insecure: Annotated[bool, typer.Option(help="Talk to agents started with --insecure.")] = False,
    data_host: Annotated[Optional[str], typer.Option(help="Address A uses to reach B's data port when it differs "
                                                          "from how this host reaches B (e.g. a dedicated LPM "
                                                          "network).")] = None,
    send_method: Annotated[str, typer.Option(help="auto, or a method the sender's data plane lists "
                                                  "(zerocopy, sendfile, send).")] = "auto",
    rx_discard: Annotated[bool, typer.Option(help="Receiver drops data in the kernel (MSG_TRUNC) to measure the "
                                                  "network, not the copy.")] = False,
    lpar: Annotated[Optional[list[str]], typer.Option(
        metavar="NAME:MEMORY[:DIRTY_RATE]", help="A partition to judge against the measured bandwidth, e.g. "
                                                 "db01:256GiB:600MiB/s (repeatable).")] = None,
    window: Annotated[Optional[str], typer.Option(help="Migration window the partitions must fit, with its unit, "
                                                       "e.g. 30m or 1h (a bare number is refused: seconds or "
                                                       "minutes?).")] = None,
    compression: Annotated[float, typer.Option(help="LPM compression factor for the model (1 = none).",
                                               min=1.0, max=10.0)] = 1.0,
    size: Annotated[Optional[str], typer.Option("--bytes", help="Stop after sending this much in total, e.g. "
                                                                 "10GiB (the duration still bounds the run).")]
    = None,
    rate: Annotated[Optional[str], typer.Option(help="Cap the total send rate, e.g. 2Gbit (default: as fast as "
                                                     "possible, within the agents' --max-rate).")] = None,
    jumbo_compare: Annotated[bool, typer.Option(help="Run twice: as is, then with the MSS clamped to standard "
                                                     "frames; report the gain in goodput and CPU per GB.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout, nothing else.")]
    = False,
    html: Annotated[Optional[str], typer.Option(help="Also write a self-contained HTML report with charts "
                                                     "(opens offline, no extra needed).")] = None,
    redundant: Annotated[Optional[tuple[str, str]], typer.Option(
        metavar="A2 B2", help="A second (redundant) MSP pair run at the same time: A2 sends to B2. LPM's redundant "
                              "MSP pairs carry memory in parallel; the verdict judges their sum.")] = None,
    tls: Annotated[bool, typer.Option(help="Use TLS to the agents' control ports, trusting the system CAs.")] = False,
    tls_ca: Annotated[Optional[str], typer.Option(help="Use TLS and trust agents signed by this CA (PEM).")] = None,
    tls_cert: Annotated[Optional[str], typer.Option(help="Client certificate (PEM) for agents run with --tls-ca.")]
    = None,
    tls_key: Annotated[Optional[str], typer.Option(help="Key of --tls-cert (PEM).")] = None,
    local: Annotated[bool, typer.Option(help="Start two agents on this host (127.0.0.1 sends to 127.0.0.2) with a "
                                             "throwaway key, run, and stop them.")] = False,
    both_directions: Annotated[bool, typer.Option(
        "--both-directions", help="Run A->B, then B->A; report and judge each; the verdict is the worse (LPM "
                                  "moves partitions both ways, and paths are often asymmetric).")] = False,
) -> None:
    """Make agent A send LPM-like parallel TCP streams to agent B and judge the path for LPM."""
    duration_s, interval_s = _check_shape(sender, receiver, local, redundant, duration, interval)
    if both_directions and redundant:
        raise die("--both-directions runs one MSP pair; drop --redundant (or run each pair on its own)")
    base = dict(streams=streams, duration=duration_s, interval=interval_s,
                options=_run_options(streams, rate, size, send_method, rx_discard),
                **_partitions(lpar, window), compression=compression)
    if html:  # before the run: a missing extra or an unwritable path must not waste a run
        check_output_path(html, "--html")
    runner = run_with_jumbo_compare if jumbo_compare else run_pairs
    if both_directions:
        runner = _each_direction(runner)

    def run(configs: list[PairConfig]) -> dict[str, Any]:
        return _run_interruptible(runner, configs)

    with _failures_exit_2():
        if local:
            result = _run_local(run, data_host, base)
        else:
            hosts = _hosts(sender, receiver, redundant)  # bad hosts first: they need no key to be found wrong
            configs = _agent_configs(hosts, data_host, base, key=_key_or_insecure(key_file, insecure),
                                     insecure=insecure, tls_context=_tls_context(tls, tls_ca, tls_cert, tls_key))
            result = run(configs)
        _deliver(result, json_out, html)
    raise typer.Exit(exit_code(result))


def _progress(interval: dict[str, Any]) -> None:
    """One line per interval on stderr, with --json too: stdout carries only the result."""
    err.print(report.progress_line(interval), highlight=False)


def _run_interruptible(runner: Callable[..., Awaitable[dict[str, Any]]], configs: list[PairConfig]) -> dict[str, Any]:
    """The run on the event loop. The first Ctrl-C (SIGINT) stops both agents and returns what they measured, as a
    partial result; a second one stops waiting for their reports."""

    async def main() -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        task = asyncio.current_task()

        def on_sigint() -> None:
            if stop.is_set() and task is not None:
                task.cancel()
            stop.set()

        loop.add_signal_handler(signal.SIGINT, on_sigint)
        try:
            return await runner(configs, _progress, stop)
        finally:
            loop.remove_signal_handler(signal.SIGINT)

    return eventloop.run(main())


def _each_direction(runner: Callable[..., Awaitable[dict[str, Any]]]) -> Callable[..., Awaitable[dict[str, Any]]]:
    """``runner`` A -> B, then B -> A (the same options, --jumbo-compare included)."""

    async def both(configs: list[PairConfig], on_interval: Any, stop: Optional[asyncio.Event] = None) -> dict[str, Any]:
        return await run_both_directions(configs[0], on_interval,
                                         runner=lambda config, callback: runner([config], callback, stop))

    return both


def _check_shape(sender: Optional[str], receiver: Optional[str], local: bool, redundant: Any, duration: str,
                 interval: Optional[str]) -> tuple[float, float]:
    """Two agents or --local; (duration, interval) in seconds, the interval (default 1 s, or the duration when
    shorter) within the duration."""
    if local == bool(sender or receiver):
        raise die("give two agents (pair A B) or --local, not both and not neither")
    if not local and not (sender and receiver):
        raise die("give both agents: lpmbench pair SENDER RECEIVER")
    if local and redundant:
        raise die("--redundant needs real agents; --local runs one pair")
    duration_s = seconds_or_die(duration, "--duration", MIN_DURATION_S, MAX_DURATION_S)
    interval_s = min(1.0, duration_s) if interval is None else \
        seconds_or_die(interval, "--interval", MIN_INTERVAL_S, MAX_INTERVAL_S)
    if interval_s > duration_s:
        raise die(f"--interval ({interval_s:g} s) must not exceed --duration ({duration_s:g} s)")
    return duration_s, interval_s


def _run_options(streams: int, rate: Optional[str], size: Optional[str], send_method: str,
                 rx_discard: bool) -> dict[str, Any]:
    """The options the agents receive with the run (only those the user set)."""
    options: dict[str, Any] = {}
    if rate is not None:
        options["rate_bps"] = parse_or_die(units.parse_rate_bps, rate, "--rate")
        if options["rate_bps"] <= 0:
            raise die("--rate must be more than 0")
    if size is not None:
        options["max_bytes"] = parse_or_die(units.parse_size_bytes, size, "--bytes")
        if options["max_bytes"] < streams:
            raise die("--bytes must be at least one byte per stream")
    if send_method != "auto":
        options["send_method"] = send_method
    if rx_discard:
        options["rx_discard"] = True
    return options


def _partitions(lpar: Optional[list[str]], window: Optional[str]) -> dict[str, Any]:
    """The partitions to judge (--lpar) and their window (--window), as PairConfig fields."""
    lpars = [dataclasses.asdict(parse_or_die(lpm.parse_lpar_spec, text, "--lpar")) for text in lpar or []]
    window_s = parse_or_die(units.parse_duration_with_unit, window, "--window") if window else None
    if window_s is not None and (window_s <= 0 or not lpars):
        raise die("--window needs a positive duration and at least one --lpar")
    return {"lpars": lpars, "window_s": window_s}


def _key_or_insecure(key_file: Optional[str], insecure: bool) -> Optional[bytes]:
    if key_file and insecure:  # a key means the agents must prove it: an agent without one is never trusted
        raise die("--key-file and --insecure contradict each other: with a key every agent must authenticate; "
                  "drop --insecure (or drop --key-file to test a lab pair run --insecure)")
    key = load_key_or_die(key_file)
    if key is None and not insecure:
        raise die("no key: pass --key-file (the agents' key), or --insecure for agents run --insecure")
    return key


def _tls_context(tls: bool, tls_ca: Optional[str], tls_cert: Optional[str], tls_key: Optional[str]) -> Any:
    if not (tls or tls_ca or tls_cert):
        return None
    try:
        return tlsconfig.client_context(tls_ca, tls_cert, tls_key)
    except tlsconfig.TlsConfigError as exc:
        raise die(str(exc)) from None


def _hosts(sender: Optional[str], receiver: Optional[str],
           redundant: Optional[tuple[str, str]]) -> list[tuple[Endpoint, Endpoint]]:
    """The MSP pair asked for, then the redundant pair if any."""
    hosts = [(_endpoint(sender), _endpoint(receiver))]
    if redundant:
        hosts.append((_endpoint(redundant[0]), _endpoint(redundant[1])))
    return hosts


def _agent_configs(hosts: list[tuple[Endpoint, Endpoint]], data_host: Optional[str], base: dict[str, Any], *,
                   key: Optional[bytes], insecure: bool, tls_context: Any) -> list[PairConfig]:
    """One config per MSP pair (--data-host applies to the first pair)."""
    return [PairConfig(sender=a, receiver=b, key=key, allow_insecure=insecure, ssl=tls_context,
                       data_host=data_host if i == 0 else None, **base)
            for i, (a, b) in enumerate(hosts)]


def _run_local(run: Callable[[list[PairConfig]], dict[str, Any]], data_host: Optional[str],
               base: dict[str, Any]) -> dict[str, Any]:
    """Two agents on this host (127.0.0.1 sends to 127.0.0.2) with a throwaway key, for the run only."""
    with local_agents() as (a, b, key):
        return run([PairConfig(sender=a, receiver=b, key=key, data_host=data_host, **base)])


@contextlib.contextmanager
def _failures_exit_2() -> Iterator[None]:
    """The run and the output of its result: every failure to start, interruption or crash is a message and
    exit 2, never a traceback, and never exit 1 (which would read as a verdict on the network)."""
    try:
        yield
    except SameAgentError as exc:
        raise die(exc.message) from None
    except PairError as exc:
        raise die(f"{exc.host}: {exc.message}") from None
    except (LocalAgentError, RunInterrupted) as exc:
        raise die(str(exc)) from None
    except (KeyboardInterrupt, asyncio.CancelledError):
        raise die("interrupted; the agents' reports were not awaited, so nothing was measured to show") from None
    except typer.Exit:
        raise
    except Exception as exc:  # noqa: BLE001 - exit 2, not 1: a crash must never read as a network verdict
        raise die(f"internal error: {exc!r}; please report it with the agents' logs") from None


def _deliver(result: dict[str, Any], json_out: bool, html: Optional[str]) -> None:
    """Show the result (JSON on stdout, or the terminal report), then write the HTML report. When either fails
    the measurement is kept: the result is saved as JSON to a file the message names (exit 2)."""
    stage = "show the result"
    try:
        if json_out:
            sys.stdout.write(report.render_json(result) + "\n")
            sys.stdout.flush()
        elif result.get("both_directions"):
            _show_directions(result, Console())
        else:
            report.render_terminal(result, Console())
        if html:
            stage = f"write {html}"
            _write_html(result, html)
    except Exception as exc:  # noqa: BLE001 - whatever broke, the measured result must survive it
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else repr(exc)
        raise die(f"could not {stage} ({reason}); {_save_result(result, html)}") from None
    for each in _results_of(result):
        if each.get("agent_lost"):
            err.print(f"[bold red]lpmbench:[/bold red] {escape(str(each['error']))}; the result is partial",
                      highlight=False)


def _show_directions(document: dict[str, Any], console: Console) -> None:
    """Each direction's report under a rule naming it, then the verdict of both."""
    for entry in document["directions"]:
        console.rule(escape(entry["direction"]))
        if entry["result"] is None:
            console.print(f"[bold red]did not run:[/bold red] {escape(str(entry['error']))}", highlight=False)
        else:
            report.render_terminal(entry["result"], console)
    worse = f" ({escape(document['worse_direction'])})" if document.get("worse_direction") else ""
    console.print(f"Verdict, the worse of both directions{worse}: [bold]{document['verdict'].upper()}[/bold]",
                  highlight=False)


def _write_html(result: dict[str, Any], path: str) -> None:
    """One page, or with --both-directions one page per direction: PATH-1.html (A->B) and PATH-2.html (B->A)."""
    if not result.get("both_directions"):
        htmlreport.write_html(result, path)
        return
    stem, suffix = os.path.splitext(path)
    for number, entry in enumerate(result["directions"], start=1):
        if entry["result"] is not None:
            htmlreport.write_html(entry["result"], f"{stem}-{number}{suffix}")


def _save_result(result: dict[str, Any], near: Optional[str]) -> str:
    """Write the result as JSON beside ``near``, else in the current folder, else in the temporary folder; say
    where (or that it could not be saved)."""
    name = f"lpmbench-{result.get('run_id') or 'result'}.json"
    folders = [os.path.dirname(os.path.abspath(near))] if near else []
    with contextlib.suppress(OSError):
        folders.append(os.getcwd())
    folders.append(tempfile.gettempdir())
    for folder in folders:
        path = os.path.join(folder, name)
        try:
            with open(path, "w", encoding="utf-8") as handle:
                handle.write(report.render_json(result) + "\n")
        except OSError:
            continue
        return f"the result is saved in {path} ('lpmbench report {path}' shows it again)"
    return f"the result could not be saved either (tried {', '.join(folders)})"


def exit_code(result: dict[str, Any]) -> int:
    """2 when an agent was lost mid-run (a runtime error, not a judgment of the network), else by verdict."""
    if any(each.get("agent_lost") for each in _results_of(result)):
        return EXIT_ERROR
    if result.get("both_directions") and any(entry["result"] is None for entry in result["directions"]):
        return EXIT_ERROR  # a direction that could not start is no verdict on that direction's path
    return EXIT_FAIL if result["verdict"] == "fail" else EXIT_OK


def _results_of(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The pair results in a document: itself, or each direction's that ran."""
    if result.get("both_directions"):
        return [entry["result"] for entry in result["directions"] if entry["result"] is not None]
    return [result]


def _endpoint(text: Optional[str]) -> Endpoint:
    try:
        return Endpoint.parse(text or "")
    except ValueError as exc:
        raise die(str(exc)) from None
