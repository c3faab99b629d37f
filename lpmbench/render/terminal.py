"""Terminal and JSON rendering of a result document. Presentation only: no decisions are made here.

The terminal view leads with the headline (lpmbench.analysis.headline): the network verdict, the LPM outlook
and what needs action, worst first, each with its fix. Then the pairs (with --redundant), the streams and every
check. At 80 columns the stream table keeps each value on one line (short headers, no vertical rules) and prose
wraps as prose; with 120 columns or more the table adds the TCP details a wider terminal has room for.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Optional

from rich import box
from rich.console import Console, Group
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from lpmbench.analysis import headline as headlines
from lpmbench.analysis.units import finite_or_none, format_bytes, format_rate_bps, shown

_STATUS_STYLE = {"pass": "bold green", "warn": "bold yellow", "fail": "bold red", "unknown": "dim", "info": "cyan"}
_LINE_LABEL = {"pass": "PASS", "warn": "WARN", "fail": "FAIL", "unknown": "NOT JUDGED"}
WIDE = 120  # columns from which the stream table shows the TCP details too
SEND_METHODS = {"zerocopy": "MSG_ZEROCOPY", "sendfile": "sendfile()", "send": "send()"}


def _opt(value: Any, fmt: str = "{}") -> str:
    return "-" if value is None else fmt.format(value)


def progress_line(interval: dict[str, Any]) -> str:
    """One line per interval while a run goes on."""
    return (f"{interval['t']:6.1f} s  {shown(format_rate_bps, interval['goodput_bps']):>14}  "
            f"retransmits {_opt(interval['retransmits']):>6}  rtt {_opt(interval.get('rtt_ms'), '{:.3f}')} ms")


def render_json(result: dict[str, Any]) -> str:
    """The result as JSON, led by its verdict and headline (built from the checks when the result has none)."""
    lead = {key: result[key] for key in ("lpmbench_version", "run_id", "started_at", "verdict") if key in result}
    rest = {key: value for key, value in result.items() if key != "headline"}
    document = {**lead, "headline": headlines.of(result), **rest}
    return json.dumps(document, indent=2, sort_keys=False)


def _badge(status: str, label: Optional[str] = None) -> Text:
    style = _STATUS_STYLE.get(status, "dim")
    return Text(label or status.upper(), style=style)


def render_terminal(result: dict[str, Any], console: Console) -> None:
    console.print(_headline(headlines.of(result)))
    console.print()
    console.print(_run_line(result), highlight=False)
    pairs = _pairs_view(result)
    if pairs is not None:
        console.print(pairs)
    console.print(_streams_table(result, wide=console.width >= WIDE))
    console.print(_cpu_line(result), highlight=False)
    console.print()
    console.print(_checks(result))
    style = _STATUS_STYLE.get(result["verdict"], "dim")
    console.print(f"Verdict: [{style}]{escape(str(result['verdict']).upper())}[/{style}]  "
                  f"{shown(format_rate_bps, result['goodput_bps'])} over {result['duration_s']:.1f} s, "
                  f"{escape(str(result['sender']['host']))} -> {escape(str(result['receiver']['host']))}",
                  highlight=False)
    if result.get("error"):
        # Error text may come from a remote agent: never let it be read as markup.
        console.print(f"[bold red]Error:[/bold red] {escape(str(result['error']))}", highlight=False)


def _prose_grid(*fixed: int) -> Table:
    """Columns of fixed width, then one that wraps as prose: labels never split, sentences flow."""
    grid = Table.grid(padding=(0, 1))
    for width in fixed:
        grid.add_column(no_wrap=True, min_width=width)
    grid.add_column(overflow="fold")
    return grid


def _headline(head: dict[str, Any]) -> Group:
    """The two verdict lines, then each finding that needs action with its fix, then the notes."""
    lines = _prose_grid(11, 10)
    for key, label in ((headlines.NETWORK, "Network"), (headlines.LPM, "LPM outlook")):
        line = head[key]
        lines.add_row(Text(label, style="bold"), _badge(line["verdict"], _LINE_LABEL.get(line["verdict"])),
                      Text(line["summary"]))
    entries = _prose_grid(3, 4)
    for number, entry in enumerate(head["findings"], 1):
        entries.add_row(Text(f"{number}."), _badge(entry["status"]), _finding_text(entry))
    for entry in head["notes"]:
        entries.add_row(Text("-"), _badge(entry["status"], "NOTE"), _finding_text(entry))
    return Group(lines, entries) if entries.row_count else Group(lines)


def _finding_text(entry: dict[str, str]) -> Text:
    text = Text(entry["sentence"])
    if entry["fix"]:
        text.append("\nFix: ", style="bold")
        text.append(entry["fix"])
    return text


def _run_line(result: dict[str, Any]) -> Text:
    sender, receiver = result["sender"], result["receiver"]
    method = sender.get("send_method")
    sending = f", sending with {SEND_METHODS.get(method, method)}" if method else ""
    return Text(f"{sender['host']} -> {receiver['host']}: {result['dataplane']} data plane{sending}, "
                f"run {result['run_id']}", style="bold")


def _cpu_line(result: dict[str, Any]) -> Text:
    sender, receiver = result["sender"], result["receiver"]
    return Text(f"CPU (whole host, mean over the run): sender {_opt(sender.get('cpu_percent'), '{:.0f}')} %, "
                f"receiver {_opt(receiver.get('cpu_percent'), '{:.0f}')} %", style="dim")


def _column(table: Table, header: str) -> None:
    table.add_column(header, justify="right", no_wrap=True)


def _ms(value: Any) -> str:
    number = finite_or_none(value)
    return "-" if number is None else f"{number:.3f}"


def _limited(stream: dict[str, Any], key: str) -> str:
    """Share of the stream's busy time it spent limited by a window or buffer."""
    busy, limited = finite_or_none(stream.get("busy_us")), finite_or_none(stream.get(key))
    return "-" if not busy or limited is None else f"{limited / busy:.0%}"


_COMPACT: tuple[tuple[str, Callable[[dict[str, Any]], str]], ...] = (
    ("stream", lambda s: str(s["id"])),
    ("received", lambda s: shown(format_bytes, s["bytes"])),
    ("goodput", lambda s: shown(format_rate_bps, s["goodput_bps"])),
    ("retrans", lambda s: _opt(s["retransmits"])),
    ("segs out", lambda s: _opt(s["segments_out"])),
    ("rtt ms", lambda s: _ms(s["rtt_ms"])),
    ("mss", lambda s: _opt(s["mss"])),
)
_TOTALLED = ("stream", "received", "goodput", "retrans", "segs out")  # columns that add up over the streams
_WIDE_EXTRA: tuple[tuple[str, Callable[[dict[str, Any]], str]], ...] = (
    ("rttvar ms", lambda s: _ms(s.get("rttvar_ms"))),
    ("path mtu", lambda s: _opt(s.get("pmtu"))),
    ("cwnd", lambda s: _opt(s.get("cwnd"))),
    ("window-limited", lambda s: _limited(s, "rwnd_limited_us")),
    ("buffer-limited", lambda s: _limited(s, "sndbuf_limited_us")),
)


def _streams_table(result: dict[str, Any], wide: bool) -> Table:
    columns = _COMPACT + (_WIDE_EXTRA if wide else ())
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    for header, _ in columns:
        _column(table, header)
    for stream in result["streams"]:
        table.add_row(*(Text(show(stream)) for _, show in columns))
    total = {"id": "total", "bytes": result["bytes"], "goodput_bps": result["goodput_bps"],
             "retransmits": result["retransmits"], "segments_out": result["segments_out"]}
    table.add_row(*(Text(show(total) if header in _TOTALLED else "") for header, show in columns), style="bold")
    return table


def _pair_entries(result: dict[str, Any]) -> list[dict[str, Any]]:
    pairs = result.get("pairs")
    return [p for p in pairs if isinstance(p, dict)] if isinstance(pairs, list) else []


def _problems(pair: dict[str, Any]) -> str:
    """The pair's own warnings and failures, by check name; empty when it has none."""
    failed = pair.get("failed_checks") if isinstance(pair.get("failed_checks"), list) else []
    names = [f"{c.get('name')} ({c.get('status')})" for c in failed
             if isinstance(c, dict) and c.get("status") in ("warn", "fail")]
    return ", ".join(names) or ("partial run" if pair.get("partial") else "")


def _pairs_view(result: dict[str, Any]) -> Optional[Group]:
    """Every MSP pair of a --redundant run, each with its own goodput and verdict, and their sum; then each
    pair's own warnings and failures as prose (a column of them would wrap check names at 80 columns)."""
    pairs = _pair_entries(result)
    if len(pairs) < 2:
        return None
    table = Table(title="MSP pairs, run at once", box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False,
                  title_justify="left")
    table.add_column("pair", no_wrap=True)
    for header in ("goodput", "retransmitted", "verdict"):
        _column(table, header)
    problems = _prose_grid(0)
    for pair in pairs:
        rate = finite_or_none(pair.get("retransmit_rate"))
        name = f"{pair.get('sender', '?')} -> {pair.get('receiver', '?')}"
        table.add_row(Text(name), Text(shown(format_rate_bps, finite_or_none(pair.get("goodput_bps")))),
                      Text("-" if rate is None else f"{rate:.3%}"), _badge(str(pair.get("verdict"))))
        own = _problems(pair)
        if own:
            problems.add_row(Text(f"{name}:", style="bold"), Text(own))
    table.add_row(Text("together"), Text(shown(format_rate_bps, finite_or_none(result.get("aggregate_goodput_bps")))),
                  Text(""), Text(""), style="bold")
    return Group(table, problems) if problems.row_count else Group(table)


def _checks(result: dict[str, Any]) -> Table:
    """Every check, one entry each: status, name and what was found; the fix of a check the run could not
    judge (the fixes of those that need action lead the output already)."""
    grid = _prose_grid(7)
    for c in result["checks"]:
        text = Text(f"{c['name']}: ", style="bold")
        text.append(c["detail"])
        if c["status"] == "unknown" and c["remedy"]:
            text.append(f"\nTo judge it: {c['remedy']}", style="dim")
        grid.add_row(_badge(c["status"]), text)
    return grid
