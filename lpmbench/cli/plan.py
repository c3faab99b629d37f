"""``lpmbench plan``: how long would a partition take to move, and does it fit the window?"""

import json
import sys
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from lpmbench.analysis import lpm, units
from lpmbench.cli._common import EXIT_FAIL, EXIT_OK, app, die, parse_or_die


def load_run(path: str) -> tuple[float, float]:
    """(bandwidth bit/s, rtt s) measured by a saved ``pair --json`` result."""
    try:
        with open(path, encoding="utf-8") as handle:
            result = json.load(handle)
        bandwidth = float(result.get("aggregate_goodput_bps") or result["goodput_bps"])
        rtts = [s.get("min_rtt_ms") or s.get("rtt_ms") for s in result.get("streams", [])]
        rtts = [float(r) for r in rtts if isinstance(r, (int, float))]
    except OSError as exc:
        raise die(f"--from-run: cannot read {path}: {exc.strerror}") from None
    except (ValueError, KeyError, TypeError, AttributeError):
        raise die(f"--from-run: {path} is not an lpmbench pair --json result") from None
    if bandwidth <= 0:
        raise die(f"--from-run: {path} measured no goodput; run pair again")
    return bandwidth, (sum(rtts) / len(rtts) / 1000 if rtts else 0.0)


@app.command()
def plan(
    memory: Annotated[str, typer.Option(help="Partition memory touched, e.g. 256GiB, 64GB.")],
    dirty_rate: Annotated[str, typer.Option(help="Rate the partition dirties memory, e.g. 600MiB/s, 2Gbit.")]
    = "0MiB/s",
    bandwidth: Annotated[Optional[str], typer.Option(help="MSP-to-MSP bandwidth, e.g. 10Gbit, 940Mbit/s, 1.1GB/s "
                                                          "(or --from-run).")] = None,
    from_run: Annotated[Optional[str], typer.Option(help="Take bandwidth and RTT from a saved 'pair --json' "
                                                         "result.")] = None,
    window: Annotated[Optional[str], typer.Option(help="Migration window, e.g. 30m, 1h, 90s.")] = None,
    rtt_ms: Annotated[Optional[float], typer.Option(help="Round-trip time for post-resume demand paging.",
                                                    min=0)] = None,
    compression: Annotated[float, typer.Option(help="LPM compression factor (1 = none, the conservative case).",
                                               min=1.0, max=10.0)] = 1.0,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """Predict a migration: pre-copy passes, convergence, time, and the bandwidth a window needs."""
    memory_bytes = parse_or_die(units.parse_size_bytes, memory, "--memory")
    if memory_bytes <= 0:
        raise die("--memory must be more than 0 bytes")
    dirty_Bps = parse_or_die(units.parse_rate_bps, dirty_rate, "--dirty-rate") / 8
    window_s = parse_or_die(units.parse_duration_seconds, window, "--window") if window else None
    if window_s is not None and window_s <= 0:
        raise die("--window must be longer than 0 s")
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
