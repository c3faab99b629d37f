"""``lpmbench plan``: how long would a partition take to move, and does it fit the window?

``plan --evacuate`` asks the same for a whole frame: every partition the HMC lists, moved a few at a time
over the MSP pairs (the model is :mod:`lpmbench.analysis.evacuation`).
"""

import json
import sys
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from lpmbench.analysis import evacuation, lpm, partitions, units
from lpmbench.cli._common import EXIT_FAIL, EXIT_OK, app, check_output_path, die, err, parse_or_die
from lpmbench.render import timeline

_ORDER_SHOWN = 12  # names of a sooner order printed in the terminal


def _read_json(path: str, option: str) -> Any:
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except OSError as exc:
        raise die(f"{option}: cannot read {path}: {exc.strerror}") from None
    except ValueError:
        raise die(f"{option}: {path} is not JSON") from None


def _mean_rtt_s(result: Any) -> float:
    """Mean round-trip time of a result's streams in seconds (min_rtt_ms preferred), 0 when not measured."""
    streams = result.get("streams", []) if isinstance(result, dict) else []
    rtts = [s.get("min_rtt_ms") or s.get("rtt_ms") for s in streams if isinstance(s, dict)]
    rtts = [float(r) for r in rtts if isinstance(r, (int, float)) and not isinstance(r, bool)]
    return sum(rtts) / len(rtts) / 1000 if rtts else 0.0


def _host(side: Any) -> str:
    return str(side.get("host") if isinstance(side, dict) else side or "?")


def load_run_pairs(path: str) -> tuple[list[evacuation.MspPair], float]:
    """The MSP pairs a saved ``pair --json`` result measured (each pair of a ``--redundant`` run apart), and
    the RTT in seconds."""
    result = _read_json(path, "--from-run")
    entries = (result.get("pairs") or [result]) if isinstance(result, dict) else None
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise die(f"--from-run: {path} is not an lpmbench pair --json result")
    goodputs = [units.finite_or_none(e.get("goodput_bps")) for e in entries]
    if None in goodputs:
        raise die(f"--from-run: {path} is not an lpmbench pair --json result")
    if min(goodputs) <= 0:
        raise die(f"--from-run: {path} measured no goodput; run pair again")
    pairs = [evacuation.MspPair(f"{_host(e.get('sender'))}->{_host(e.get('receiver'))}", goodput)
             for e, goodput in zip(entries, goodputs)]
    return pairs, _mean_rtt_s(result)


def load_run(path: str) -> tuple[float, float]:
    """(bandwidth bit/s, rtt s) measured by a saved ``pair --json`` result: redundant pairs add up."""
    pairs, rtt_s = load_run_pairs(path)
    return lpm.aggregate_bandwidth([p.bandwidth_bps for p in pairs]), rtt_s


def load_mesh_pairs(path: str, sources: list[str], targets: list[str]) -> tuple[list[evacuation.MspPair], float]:
    """The cells of a mesh document from ``sources[i]`` to ``targets[i]``: the frames' MSP pairs."""
    mesh = _read_json(path, "--from-mesh")
    runs = mesh.get("runs") if isinstance(mesh, dict) else None
    if not isinstance(runs, list):
        raise die(f"--from-mesh: {path} has no list of runs; is it an lpmbench mesh --json document?")
    cells = {(_host(r.get("sender")), _host(r.get("receiver"))): r for r in runs if isinstance(r, dict)}
    pairs, rtts = [], []
    for source, target in zip(sources, targets):
        cell = cells.get((source, target))
        if cell is None:
            raise die(f"--from-mesh: {path} has no run from {source} to {target}")
        goodput = units.finite_or_none(cell.get("goodput_bps"))
        if goodput is None or goodput <= 0:
            raise die(f"--from-mesh: the run from {source} to {target} measured no goodput"
                      + (f" ({cell['error']})" if cell.get("error") else ""))
        pairs.append(evacuation.MspPair(f"{source}->{target}", goodput))
        rtts.append(_mean_rtt_s(cell.get("result")))
    return pairs, sum(rtts) / len(rtts)


def _hosts(text: Optional[str], option: str) -> list[str]:
    hosts = [h.strip() for h in (text or "").split(",") if h.strip()]
    if not hosts:
        raise die(f"--from-mesh needs {option} HOST[,HOST...] to pick the frames' MSPs")
    return hosts


def _window_seconds(window: Optional[str]) -> Optional[float]:
    """--window with a unit: a bare number could be seconds or minutes, so it is refused."""
    if window is None:
        return None
    seconds = parse_or_die(units.parse_duration_with_unit, window, "--window")
    if seconds <= 0:
        raise die("--window must be longer than 0 s")
    return seconds


@app.command()
def plan(
    memory: Annotated[Optional[str], typer.Option(help="Partition memory touched, e.g. 256GiB, 64GB.")] = None,
    dirty_rate: Annotated[Optional[str], typer.Option(
        help="Rate the partition dirties memory, e.g. 600MiB/s, 2Gbit (default 0). With --evacuate: the rate of "
             "every partition the file gives none for (default 32MiB/s, an assumption).")] = None,
    bandwidth: Annotated[Optional[str], typer.Option(help="MSP-to-MSP bandwidth, e.g. 10Gbit, 940Mbit/s, 1.1GB/s "
                                                          "(or --from-run). With --evacuate, one rate per MSP pair, "
                                                          "comma-separated.")] = None,
    from_run: Annotated[Optional[str], typer.Option(help="Take bandwidth and RTT from a saved 'pair --json' "
                                                         "result.")] = None,
    window: Annotated[Optional[str], typer.Option(help="Migration window with its unit, e.g. 30m, 1h, 90s (a bare "
                                                       "number is refused: seconds or minutes?).")] = None,
    rtt_ms: Annotated[Optional[float], typer.Option(help="Round-trip time for post-resume demand paging.",
                                                    min=0)] = None,
    compression: Annotated[float, typer.Option(help="LPM compression factor (1 = none, the conservative case).",
                                               min=1.0, max=10.0)] = 1.0,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
    evacuate: Annotated[bool, typer.Option("--evacuate", help="Plan moving every partition of --partitions "
                                                              "FILE off the frame.")] = False,
    partition_file: Annotated[Optional[str], typer.Option("--partitions", help="lshwres -r mem --level lpar -F "
                                                          "lpar_name,curr_mem output, or a CSV with a header "
                                                          "line: name,memory[,dirty_rate][,state].")] = None,
    states: Annotated[Optional[str], typer.Option(help="lssyscfg -r lpar -F name,state[,lpar_env] output: "
                                                       "Not Activated partitions move only their configuration, "
                                                       "VIOS stay.")] = None,
    dirty: Annotated[Optional[list[str]], typer.Option(help="NAME=RATE: one partition's dirty rate (repeat).")]
    = None,
    from_mesh: Annotated[Optional[str], typer.Option(help="Take each MSP pair's bandwidth from a saved mesh "
                                                          "--json document (with --source-msps, --target-msps)."
                                                     )] = None,
    source_msps: Annotated[Optional[str], typer.Option(help="The source frame's MSPs, e.g. a1,a2.")] = None,
    target_msps: Annotated[Optional[str], typer.Option(help="The target frame's MSPs, paired in order: b1,b2.")]
    = None,
    max_concurrent: Annotated[int, typer.Option(help="Migrations per system at once (IBM: 16).", min=1,
                                                max=64)] = evacuation.PER_SYSTEM_LIMIT,
    per_msp: Annotated[Optional[int], typer.Option(help="Migrations per MSP at once (IBM: 4 on 1 Gb, 8 on 10 Gb "
                                                        "and faster, chosen from the measured bandwidth).",
                                                   min=1, max=8)] = None,
    per_migration_max: Annotated[Optional[str], typer.Option(help="Most one migration can move, e.g. 8Gbit "
                                                                  "(default: a whole pair).")] = None,
    html: Annotated[Optional[str], typer.Option("--html", help="With --evacuate: also write a timeline page "
                                                               "here.")] = None,
) -> None:
    """Predict a migration: pre-copy passes, convergence, time, and the bandwidth a window needs."""
    window_s = _window_seconds(window)
    if html and evacuate:
        check_output_path(html, "--html")
    if not evacuate:
        _refuse_evacuation_options(partition_file, states, dirty, from_mesh, source_msps, target_msps, per_msp,
                                   per_migration_max, html)
        _plan_one(memory, dirty_rate, bandwidth, from_run, window_s, rtt_ms, compression, json_out)
    if memory is not None:
        raise die("--memory is for one partition; with --evacuate the memory comes from --partitions")
    pairs, measured_rtt = _pairs(bandwidth, from_run, from_mesh, source_msps, target_msps)
    ceiling = parse_or_die(units.parse_rate_bps, per_migration_max, "--per-migration-max") \
        if per_migration_max else None
    if ceiling is not None and ceiling <= 0:
        raise die("--per-migration-max must be more than 0")
    assumptions = evacuation.EvacuationAssumptions(
        per_system_limit=max_concurrent, per_msp_limit=per_msp, per_migration_max_bps=ceiling,
        rtt_s=rtt_ms / 1000 if rtt_ms is not None else measured_rtt, compression=compression)
    migrations, inputs = _migrations(partition_file, states, dirty_rate, dirty)
    try:
        doc = {"mode": "evacuate", **evacuation.assess(migrations, pairs, assumptions, window_s), "inputs": inputs}
    except ValueError as exc:  # inputs the model refuses (e.g. more MSP pairs than it plans): exit 2, not 1
        raise die(str(exc)) from None
    if json_out:
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    else:
        _render_evacuation(doc, Console())
    if html:
        _write_timeline(doc, html)
    raise typer.Exit(EXIT_OK if doc["finishes"] and doc["fits_window"] is not False else EXIT_FAIL)


def _refuse_evacuation_options(*given: Any) -> None:
    if any(given):
        raise die("--partitions, --states, --dirty, --from-mesh, --source-msps, --target-msps, --per-msp, "
                  "--per-migration-max and --html belong to --evacuate")


def _plan_one(memory: Optional[str], dirty_rate: Optional[str], bandwidth: Optional[str], from_run: Optional[str],
              window_s: Optional[float], rtt_ms: Optional[float], compression: float, json_out: bool) -> None:
    if memory is None:
        raise die("give --memory (e.g. 256GiB), or --evacuate --partitions FILE for a whole frame")
    memory_bytes = parse_or_die(units.parse_size_bytes, memory, "--memory")
    if memory_bytes <= 0:
        raise die("--memory must be more than 0 bytes")
    dirty_Bps = parse_or_die(units.parse_rate_bps, dirty_rate or "0MiB/s", "--dirty-rate") / 8
    if bandwidth is None and from_run is None:
        raise die("give --bandwidth (e.g. 10Gbit) or --from-run result.json")
    measured_rtt = 0.0
    if bandwidth is not None:
        bandwidth_bps = parse_or_die(units.parse_rate_bps, bandwidth, "--bandwidth")
    else:
        bandwidth_bps, measured_rtt = load_run(str(from_run))
    if bandwidth_bps <= 0:
        raise die("--bandwidth must be more than 0")
    rtt_s = rtt_ms / 1000 if rtt_ms is not None else measured_rtt
    prediction = lpm.predict(memory_bytes, bandwidth_bps, dirty_Bps, rtt_s, compression)
    required = lpm.required_bandwidth_bps(memory_bytes, dirty_Bps, window_s, rtt_s, compression) if window_s else None
    fits = None if window_s is None else prediction.seconds <= window_s
    doc = {**prediction.to_dict(), "window_s": window_s, "fits_window": fits,
           "required_bps": required if required is None or required != float("inf") else None}
    if json_out:
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    else:
        _render(doc, Console())
    raise typer.Exit(EXIT_OK if prediction.converges and fits is not False else EXIT_FAIL)


def _pairs(bandwidth: Optional[str], from_run: Optional[str], from_mesh: Optional[str], source_msps: Optional[str],
           target_msps: Optional[str]) -> tuple[list[evacuation.MspPair], float]:
    """The MSP pairs from exactly one of --bandwidth, --from-run, --from-mesh, and the measured RTT."""
    if sum(x is not None for x in (bandwidth, from_run, from_mesh)) != 1:
        raise die("give one of --bandwidth RATE[,RATE...], --from-run result.json or --from-mesh mesh.json")
    if from_run is not None:
        return load_run_pairs(from_run)
    if from_mesh is not None:
        sources, targets = _hosts(source_msps, "--source-msps"), _hosts(target_msps, "--target-msps")
        if len(sources) != len(targets):
            raise die("--source-msps and --target-msps pair up in order: give as many of each")
        return load_mesh_pairs(from_mesh, sources, targets)
    rates = [parse_or_die(units.parse_rate_bps, text, "--bandwidth") for text in str(bandwidth).split(",")]
    if any(rate <= 0 for rate in rates) or len(rates) > evacuation.MAX_PAIRS:
        raise die(f"--bandwidth: 1 to {evacuation.MAX_PAIRS} rates above 0, one per MSP pair")
    names = ["pair"] if len(rates) == 1 else [f"pair {i + 1}" for i in range(len(rates))]
    return [evacuation.MspPair(name, rate) for name, rate in zip(names, rates)], 0.0


def _read_text(path: Optional[str], option: str) -> str:
    try:
        with open(str(path), encoding="utf-8") as handle:
            return handle.read()
    except OSError as exc:
        raise die(f"{option}: cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise die(f"{option}: {path} is not text") from None


def _dirty_overrides(dirty: Optional[list[str]], names: set[str]) -> dict[str, float]:
    overrides = {}
    for text in dirty or []:
        name, equals, rate = text.rpartition("=")
        if not equals or not name:
            raise die(f"--dirty {text!r}: expected NAME=RATE, e.g. db01=600MiB/s")
        if name not in names:
            raise die(f"--dirty {text!r}: no partition {name!r} in --partitions")
        overrides[name] = parse_or_die(units.parse_rate_bps, rate, "--dirty") / 8
    return overrides


def _kind(partition: partitions.Partition) -> str:
    if partition.state is None:  # lshwres alone: a partition that is not running has 0 MB
        return evacuation.ACTIVE if partition.memory_bytes else evacuation.INACTIVE
    if partition.state in partitions.ACTIVE_STATES:
        return evacuation.ACTIVE
    return evacuation.INACTIVE if partition.state in partitions.INACTIVE_STATES else evacuation.BLOCKED


def _migrations(partition_file: Optional[str], states: Optional[str], dirty_rate: Optional[str],
                dirty: Optional[list[str]]) -> tuple[list[evacuation.Migration], dict[str, Any]]:
    if partition_file is None:
        raise die("--evacuate needs --partitions FILE (lshwres -r mem -m SYSTEM --level lpar -F lpar_name,curr_mem)")
    try:
        found = partitions.parse_partitions(_read_text(partition_file, "--partitions"), partition_file)
        vios: list[str] = []
        if states is not None:
            table = partitions.parse_states(_read_text(states, "--states"), states)
            found, vios = partitions.apply_states(found, table, states)
    except partitions.PartitionFileError as exc:
        raise die(str(exc)) from None
    default_Bps = (parse_or_die(units.parse_rate_bps, dirty_rate, "--dirty-rate") / 8 if dirty_rate
                   else evacuation.DEFAULT_DIRTY_RATE_BPS)
    overrides = _dirty_overrides(dirty, {p.name for p in found})
    sources = {p.name: "--dirty" if p.name in overrides else "file" if p.dirty_rate_Bps is not None else "default"
               for p in found}
    migrations = [evacuation.Migration(p.name, p.memory_bytes, overrides.get(p.name, p.dirty_rate_Bps
                  if p.dirty_rate_Bps is not None else default_Bps), _kind(p), p.state) for p in found]
    inputs = {"partitions": partition_file, "states": states, "vios_left_out": vios,
              "dirty_rate_default_Bps": default_Bps, "dirty_rate_default_is_assumption": dirty_rate is None,
              "dirty_rate_from": sources}
    return migrations, inputs


def _write_timeline(doc: dict[str, Any], path: str) -> None:
    try:
        timeline.write_timeline(doc, path)
    except OSError as exc:
        raise die(f"cannot write {path}: {exc.strerror or exc}") from None
    err.print(f"wrote {escape(path)}", highlight=False)


def _time(value: Any) -> str:
    return units.shown(units.format_duration, value) if value is not None else "never"


def _render_evacuation(doc: dict[str, Any], console: Console) -> None:
    plan_doc = doc["plan"]
    table = Table(title="Evacuation plan (order as listed)")
    for column in ("partition", "state", "memory", "dirty rate", "start", "end", "passes", "converges"):
        table.add_column(column, justify="left" if column in ("partition", "state") else "right")
    for row in plan_doc["partitions"]:
        kind = row["kind"]
        state = row["state"] or ("running" if kind == evacuation.ACTIVE else "not running")
        converges = ("yes" if row["converges"] else "NO") if kind == evacuation.ACTIVE else (
            "config only" if kind == evacuation.INACTIVE else "BLOCKED")
        table.add_row(escape(row["name"]), escape(state), units.format_bytes(row["memory_bytes"]),
                      units.format_byte_rate(row["dirty_rate_Bps"]) if kind == evacuation.ACTIVE else "-",
                      _time(row["start_s"]), _time(row["end_s"]),
                      str(row["passes"]), converges)
    console.print(table)
    for line in _summary_lines(doc):
        console.print(escape(line), highlight=False)
    limit = doc["assumptions"]["per_system_limit"]
    source = "IBM's table" if limit == evacuation.PER_SYSTEM_LIMIT else "--max-concurrent"
    console.print(escape("Assumptions: dirty rate " + units.format_byte_rate(doc["inputs"]["dirty_rate_default_Bps"])
                         + (" where none given (ours, not IBM's)" if doc["inputs"]["dirty_rate_default_is_assumption"]
                            else " where none given") + f"; at most {limit} per system ({source}); migrations "
                         "share the pairs fairly, each charged at its share while every slot runs"), style="dim")


def _summary_lines(doc: dict[str, Any]) -> list[str]:
    plan_doc = doc["plan"]
    total = plan_doc["total_seconds"]
    lines = [f"Total: {_time(total)}"]
    if doc["window_s"] is not None:
        lines[0] += f" for a window of {units.format_duration(doc['window_s'])}: " + (
            "fits" if doc["fits_window"] else "does NOT fit")
    lines.append(f"At least {units.format_duration(doc['lower_bound_seconds'])}: all memory over all pairs at once")
    lines.append(f"{plan_doc['slots']} at once over {', '.join(plan_doc['pairs_used'])} "
                 f"({units.format_rate_bps(plan_doc['pool_bps'])}), {units.format_rate_bps(plan_doc['share_bps'])} "
                 "each while all run")
    unused = [p["name"] for p in doc["pairs"] if not p["used"]]
    if unused:
        lines.append("Left out, they would slow the rest: " + ", ".join(unused))
    lines.append(f"Bottleneck ({doc['bottleneck']['kind']}): {doc['bottleneck']['detail']}")
    if doc["soonest"]:
        order = doc["soonest"]["order"]
        lines.append(f"Sooner in another order ({doc['soonest']['order_name']}): "
                     f"{_time(doc['soonest']['total_seconds'])}: " + ", ".join(order[:_ORDER_SHOWN])
                     + (f" and {len(order) - _ORDER_SHOWN} more (--json lists them)" if len(order) > _ORDER_SHOWN
                        else ""))
    for suggestion in doc["suggestions"]:
        fits = {True: " (fits)", False: " (still too long)", None: ""}[suggestion["fits_window"]]
        lines.append(f"Would finish sooner: {suggestion['what']}: {_time(suggestion['total_seconds'])}{fits}"
                     + (f" ({suggestion['note']})" if suggestion["note"] else ""))
    if doc["inputs"]["vios_left_out"]:
        lines.append("VIOS stay on the frame: " + ", ".join(doc["inputs"]["vios_left_out"]))
    return lines


def _render(doc: dict[str, Any], console: Console) -> None:
    table = Table(title="LPM migration plan", show_header=False)
    table.add_column("what")
    table.add_column("value", justify="right")
    seconds = doc.get("seconds")
    rows = [
        ("memory", units.format_bytes(doc["memory_bytes"])),
        ("dirty rate", units.format_byte_rate(doc["dirty_rate_Bps"])),
        ("bandwidth", units.format_rate_bps(doc["bandwidth_bps"])),
        ("converges", "yes" if doc["converges"] else "NO: dirty rate >= bandwidth, LPM would stall"),
        ("predicted time", units.format_duration(seconds) if seconds is not None else "never"),
        ("pre-copy passes", str(doc["passes"])),
        ("left for demand paging", units.format_bytes(doc["residual_bytes"])),
    ]
    if doc["window_s"] is not None:
        rows.append(("window", units.format_duration(doc["window_s"])))
        rows.append(("fits the window", "yes" if doc["fits_window"] else "NO"))
        need = doc["required_bps"]
        rows.append(("bandwidth the window needs", units.format_rate_bps(need) if need else "none suffices"))
    for what, value in rows:
        table.add_row(what, value)
    console.print(table)
    assumptions = doc.get("assumptions", {})
    console.print("Assumptions: " + ", ".join(f"{k}={v}" for k, v in assumptions.items()), style="dim")
