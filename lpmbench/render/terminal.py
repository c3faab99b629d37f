"""Terminal and JSON rendering of a result document. Presentation only: no decisions are made here."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from lpmbench.analysis.units import format_bytes, format_rate_bps, shown

_STATUS_STYLE = {"pass": "bold green", "warn": "bold yellow", "fail": "bold red", "unknown": "dim"}



def _opt(value: Any, fmt: str = "{}") -> str:
    return "-" if value is None else fmt.format(value)


def progress_line(interval: dict[str, Any]) -> str:
    """One line per interval while a run goes on."""
    return (f"{interval['t']:6.1f} s  {shown(format_rate_bps, interval['goodput_bps']):>14}  "
            f"retransmits {_opt(interval['retransmits']):>6}  rtt {_opt(interval.get('rtt_ms'), '{:.3f}')} ms")


def render_json(result: dict[str, Any]) -> str:
    return json.dumps(result, indent=2, sort_keys=False)


def render_terminal(result: dict[str, Any], console: Console) -> None:
    console.print(_streams_table(result))
    console.print(_checks_table(result))
    style = _STATUS_STYLE[result["verdict"]]
    console.print(f"Verdict: [{style}]{result['verdict'].upper()}[/{style}]  "
                  f"{shown(format_rate_bps, result['goodput_bps'])} over {result['duration_s']:.1f} s, "
                  f"{escape(str(result['sender']['host']))} -> {escape(str(result['receiver']['host']))}")
    if result.get("error"):
        # Error text may come from a remote agent: never let it be read as markup.
        console.print(f"[bold red]Error:[/bold red] {escape(str(result['error']))}")


def _streams_table(result: dict[str, Any]) -> Table:
    sender, receiver = result["sender"], result["receiver"]
    title = escape(f"{sender['host']} -> {receiver['host']}  ({result['dataplane']} data plane, "
                   f"send method {sender.get('send_method') or '?'}, run {result['run_id']})")
    table = Table(title=title)
    for column in ("stream", "bytes", "goodput", "retransmits", "segments out", "rtt ms", "mss"):
        table.add_column(column, justify="right")
    for s in result["streams"]:
        table.add_row(str(s["id"]), shown(format_bytes, s["bytes"]), shown(format_rate_bps, s["goodput_bps"]),
                      _opt(s["retransmits"]), _opt(s["segments_out"]), _opt(s["rtt_ms"], "{:.3f}"), _opt(s["mss"]))
    table.add_row("total", shown(format_bytes, result["bytes"]), shown(format_rate_bps, result["goodput_bps"]),
                  _opt(result["retransmits"]), _opt(result["segments_out"]), "", "", style="bold")
    table.caption = (f"CPU: sender {_opt(sender.get('cpu_percent'), '{:.0f}')} %, "
                     f"receiver {_opt(receiver.get('cpu_percent'), '{:.0f}')} % (whole host)")
    return table


def _checks_table(result: dict[str, Any]) -> Table:
    table = Table(title="Checks")
    table.add_column("status")
    table.add_column("check")
    table.add_column("detail")
    table.add_column("remedy")
    for c in result["checks"]:
        style = _STATUS_STYLE.get(c["status"], "")
        table.add_row(f"[{style}]{escape(c['status'].upper())}[/{style}]", escape(c["name"]), escape(c["detail"]),
                      escape(c["remedy"]))
    return table
