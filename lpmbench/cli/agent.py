"""``lpmbench agent``: parse options, start the agent, its /metrics endpoint and its schedule; serve until
SIGTERM / SIGINT."""

import asyncio
import faulthandler
import logging
import signal
import sys
from dataclasses import dataclass, field
from typing import Annotated, Optional

import typer

from lpmbench.agent.server import Agent, AgentConfig, AgentLimits
from lpmbench.analysis import units
from lpmbench.cli._common import app, die, err, load_key_or_die
from lpmbench.metrics.collector import DEFAULT_METRICS_PORT, MetricsServer, MetricsState, NicWatcher, build_registry
from lpmbench.net import acl as netacl
from lpmbench.net import eventloop, keys, sockopts
from lpmbench.net import tls as tlsconfig
from lpmbench.orchestrator.pair import Endpoint
from lpmbench.orchestrator.schedule import (
    MAX_SCHEDULED_DURATION_S,
    MIN_EVERY_S,
    ScheduledPeer,
    Scheduler,
    own_endpoint,
    pair_every,
)
from lpmbench.platform import capabilities, mover
from lpmbench.protocol.contract import DEFAULT_CONTROL_PORT, DEFAULT_DATA_PORTS, DEFAULT_STREAMS

log = logging.getLogger("lpmbench.agent")


def parse_port_range(text: str) -> tuple[int, int]:
    low_text, sep, high_text = text.partition("-")
    if not sep or not low_text.isdigit() or not high_text.isdigit():
        raise ValueError(f"port range {text!r} must look like LOW-HIGH, e.g. 32768-65535")
    low, high = int(low_text), int(high_text)
    if (low, high) != (0, 0) and not 1 <= low <= high <= 65535:
        raise ValueError(f"port range {text!r} must satisfy 1 <= LOW <= HIGH <= 65535 (or 0-0 for any)")
    return low, high


MIN_MAX_DURATION_S = 1.0  # a shorter cap would refuse every run


def _default_data_ports() -> tuple[int, int]:
    """LPM's own range when vioslpm0 pins it, so a run meets the firewall rules a migration meets; else the
    ephemeral range LPM takes ports from by default."""
    pinned = mover.pinned_port_range(mover.mover_facts(capabilities.AIX))
    if pinned is None:
        return DEFAULT_DATA_PORTS
    err.print(f"lpmbench agent: data ports {pinned[0]}-{pinned[1]}, LPM's own range (vioslpm0 tcp_port_low/high); "
              f"--data-ports overrides it", highlight=False)
    return pinned


def _seconds(text: str, option: str, minimum: float) -> float:
    """A duration option of the agent (a bare number is seconds); ValueError names the option."""
    try:
        seconds = units.parse_duration_seconds(text)
    except ValueError as exc:
        raise ValueError(f"{option}: {exc}") from None
    if seconds < minimum:
        raise ValueError(f"{option} must be at least {units.format_duration(minimum)}")
    return seconds


@dataclass
class ServeOptions:
    """What the agent runs besides its control port."""

    metrics_port: int = DEFAULT_METRICS_PORT  # 0: no /metrics
    metrics_bind: Optional[str] = None
    schedule: list[ScheduledPeer] = field(default_factory=list)
    scheduled_duration: float = 10.0
    scheduled_streams: int = DEFAULT_STREAMS
    key_file: Optional[str] = None  # re-read on SIGHUP


class MetricsPortError(Exception):
    pass


def parse_schedule(peers: list[str], every: list[str], duration: float, streams: int,
                   limits: AgentLimits) -> list[ScheduledPeer]:
    """The ``--peer`` / ``--every`` options as scheduled peers; ValueError says what is wrong."""
    schedule = [ScheduledPeer(Endpoint.parse(peer), seconds) for peer, seconds in pair_every(peers, every)]
    if not schedule:
        return []
    if not 0 < duration <= min(MAX_SCHEDULED_DURATION_S, limits.max_duration_s):
        raise ValueError(f"--scheduled-duration must be above 0 and at most "
                         f"{min(MAX_SCHEDULED_DURATION_S, limits.max_duration_s):g} s")
    if not 1 <= streams <= limits.max_streams:
        raise ValueError(f"--scheduled-streams must be 1..{limits.max_streams}")
    for peer in schedule:
        if peer.every_s < MIN_EVERY_S or peer.every_s <= duration:
            raise ValueError(f"--every for {peer.endpoint.label} must be at least {MIN_EVERY_S:g} s and longer "
                             f"than --scheduled-duration ({duration:g} s)")
    return schedule


@app.command()
def agent(
    bind: Annotated[Optional[str], typer.Option(help="Address to listen on (default: all addresses).")] = None,
    port: Annotated[int, typer.Option(help="Control port.", min=0, max=65535)] = DEFAULT_CONTROL_PORT,
    key_file: Annotated[Optional[str], typer.Option(help="Key file (mode 600) from 'lpmbench keygen'.")] = None,
    insecure: Annotated[bool, typer.Option(help="Run WITHOUT authentication. Anyone who reaches the port can "
                                                "make this host send traffic. Lab use only.")] = False,
    data_ports: Annotated[Optional[str], typer.Option(
        "--data-ports", "--port-range",
        help="Data port range LOW-HIGH. Default: LPM's own ports when vioslpm0 pins them (tcp_port_low/high, "
             "on a VIOS), so runs cross the firewall rules LPM meets; else 32768-65535. 0-0 means any.")] = None,
    max_duration: Annotated[str, typer.Option(metavar="DURATION", help="Longest run this agent accepts: 1h, "
                                                                       "30m, 90s; a bare number is seconds.")]
    = "1h",
    max_streams: Annotated[int, typer.Option(help="Most streams this agent accepts per run.", min=1, max=256)] = 64,
    max_runs: Annotated[int, typer.Option(help="Runs at once; more get 'busy' at once.", min=1)] = 1,
    metrics_port: Annotated[int, typer.Option(help="Port of /metrics for Prometheus; 0 turns it off.",
                                              min=0, max=65535)] = DEFAULT_METRICS_PORT,
    metrics_bind: Annotated[Optional[str], typer.Option(help="Address /metrics listens on (default: --bind).")]
    = None,
    peer: Annotated[Optional[list[str]], typer.Option(help="Agent this agent sends scheduled runs to; repeat "
                                                           "for more peers. Needs --every.",
                                                           metavar="HOST[:PORT]")] = None,
    every: Annotated[Optional[list[str]], typer.Option(help="Interval of scheduled runs: 90s, 30m, 6h, 1d. Once "
                                                            "for all peers, or once per --peer.",
                                                            metavar="INTERVAL")] = None,
    scheduled_duration: Annotated[str, typer.Option(metavar="DURATION", help="How long each scheduled run sends: "
                                                                             "10s, 1m; a bare number is "
                                                                             "seconds.")] = "10s",
    scheduled_streams: Annotated[int, typer.Option(help="Streams of each scheduled run.")] = DEFAULT_STREAMS,
    allow: Annotated[Optional[list[str]], typer.Option(help="Address or network (CIDR) whose orchestrators may "
                                                            "connect; repeatable. Default: any.")] = None,
    allow_peer: Annotated[Optional[list[str]], typer.Option(help="Address or network this agent may send to and "
                                                                 "accept streams from; repeatable. Default: any.")]
    = None,
    max_rate: Annotated[Optional[str], typer.Option(help="Highest send rate this agent accepts, e.g. 5Gbit; runs "
                                                         "asking for no rate are capped at it.")] = None,
    tls_cert: Annotated[Optional[str], typer.Option(help="Serve the control port over TLS with this "
                                                         "certificate (PEM).")] = None,
    tls_key: Annotated[Optional[str], typer.Option(help="Key of --tls-cert (PEM).")] = None,
    tls_ca: Annotated[Optional[str], typer.Option(help="With --tls-cert: require orchestrators to present a "
                                                       "certificate signed by this CA.")] = None,
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
        rate = units.parse_rate_bps(max_rate) if max_rate else None
        if rate is not None and rate <= 0:
            raise ValueError("--max-rate must be more than 0")
        if rate is not None and not sockopts.PACING_AVAILABLE:
            raise ValueError("--max-rate needs Linux (SO_MAX_PACING_RATE); this platform cannot cap a send rate")
        limits = AgentLimits(max_duration_s=_seconds(max_duration, "--max-duration", MIN_MAX_DURATION_S),
                             max_streams=max_streams, max_concurrent_runs=max_runs, max_rate_bps=rate)
        ports = parse_port_range(data_ports) if data_ports is not None else _default_data_ports()
        scheduled_s = _seconds(scheduled_duration, "--scheduled-duration", 0.0)
        schedule = parse_schedule(peer or [], every or [], scheduled_s, scheduled_streams, limits)
        allow_clients = netacl.parse_networks(allow) if allow else None
        allow_peers = netacl.parse_networks(allow_peer) if allow_peer else None
    except ValueError as exc:
        raise die(str(exc)) from None
    if schedule and (tls_cert or tls_ca):
        raise die("scheduled runs (--peer/--every) do not speak TLS yet; run them from an orchestrator with "
                  "'lpmbench pair --tls-ca', or drop --tls-cert on these agents")
    tls = None
    if tls_cert or tls_key or tls_ca:
        if not (tls_cert and tls_key):
            raise die("--tls-cert and --tls-key go together (and --tls-ca needs them)")
        try:
            tls = tlsconfig.server_context(tls_cert, tls_key, tls_ca)
        except tlsconfig.TlsConfigError as exc:
            raise die(str(exc)) from None
    config = AgentConfig(bind=bind, port=port, key=key, data_ports=ports, limits=limits,
                         allow_clients=allow_clients, allow_peers=allow_peers, ssl=tls)
    config_key_file = key_file
    options = ServeOptions(metrics_port, metrics_bind, schedule, scheduled_s, scheduled_streams,
                           key_file=config_key_file)
    try:
        eventloop.run(_serve(config, options))
    except MetricsPortError as exc:
        raise die(f"{exc}; choose another --metrics-port, or --metrics-port 0 to turn metrics off") from None
    except OSError as exc:
        raise die(f"cannot listen on {bind or '*'}:{port}: {exc.strerror or exc}") from None


def _start_metrics(server: Agent, state: MetricsState, options: ServeOptions) -> Optional[MetricsServer]:
    if not options.metrics_port:
        return None
    host = options.metrics_bind or server.config.bind
    registry = build_registry(state, server.facts(), server.runs, NicWatcher(server.config.bind))
    metrics = MetricsServer(registry, host, options.metrics_port)
    try:
        metrics.start()
    except OSError as exc:
        raise MetricsPortError(f"cannot serve /metrics on {host or '*'}:{options.metrics_port}: "
                               f"{exc.strerror or exc}") from None
    log.info("metrics on http://%s:%d/metrics", host or "*", metrics.port)
    return metrics


def _reload_key(server: Agent, scheduler: Optional[Scheduler], path: str) -> None:
    """SIGHUP: re-read the key file; a bad file keeps the old key, loudly."""
    try:
        key = keys.load_key(path)
    except keys.KeyFileError as exc:
        log.error("SIGHUP: keeping the old key: %s", exc)
        return
    server.reload_key(key)
    if scheduler is not None:
        scheduler.key = key
    log.info("SIGHUP: key reloaded from %s; new sessions use it", path)


def _start_schedule(server: Agent, state: MetricsState, options: ServeOptions) -> Optional[Scheduler]:
    if not options.schedule:
        return None
    state.expect_scheduled(peer.label for peer in options.schedule)
    scheduler = Scheduler(own_endpoint(server.config.bind, server.port), server.config.key, options.schedule,
                          duration=options.scheduled_duration, streams=options.scheduled_streams,
                          busy=server.busy_with, on_outcome=state.record_scheduled)
    scheduler.start()
    for peer in options.schedule:
        log.info("scheduled runs to %s every %g s, %d streams for %g s", peer.endpoint.label, peer.every_s,
                 options.scheduled_streams, options.scheduled_duration)
    return scheduler


async def _serve(config: AgentConfig, options: Optional[ServeOptions] = None) -> None:
    options = options or ServeOptions()
    state = MetricsState()
    server = Agent(config, listeners=[state])
    await server.start()
    try:
        metrics = _start_metrics(server, state, options)
    except MetricsPortError:
        await server.close()
        raise
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):  # before "ready": a SIGTERM right after it stops cleanly
        loop.add_signal_handler(signum, stop.set)
    # SIGUSR1 writes every thread's stack to the log (stderr): what a hung agent is doing, without stopping it.
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    print(f"lpmbench agent ready on {config.bind or '*'}:{server.port}", flush=True)
    scheduler = _start_schedule(server, state, options)
    if options.key_file:
        loop.add_signal_handler(signal.SIGHUP, _reload_key, server, scheduler, options.key_file)
    serving = asyncio.ensure_future(server.serve_forever())
    await stop.wait()
    if scheduler is not None:
        await scheduler.stop()
    await server.close()
    serving.cancel()
    if metrics is not None:
        metrics.stop()
