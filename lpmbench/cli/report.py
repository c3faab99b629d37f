"""``lpmbench report`` and ``lpmbench compare``: saved results (``pair --json``) shown again, or side by side.

Exit codes: 0 when the view was shown (whatever the verdict), 2 for bad input: a missing or unreadable file,
a file that is not JSON, JSON that is not an lpmbench result, or an HTML page that cannot be written. Each gets
one line on stderr, never a traceback.
"""

import json
import os
from typing import Annotated, Any, Optional

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from lpmbench.analysis import compare as comparison
from lpmbench.cli._common import EXIT_OK, app, die, err
from lpmbench.render import html as htmlreport
from lpmbench.render import terminal as report

# A result of 256 streams over a day at 1 s intervals is about 100 MB of JSON; more is not a result.
MAX_RESULT_BYTES = 256 << 20
_VERDICTS = ("pass", "warn", "fail")
_STATUSES = (*_VERDICTS, "unknown", "info")


class ResultFileError(Exception):
    """A file that cannot be used as a result; the message names the file and says why, in one line."""


def load_result(path: str) -> dict[str, Any]:
    """Read and check a saved result. Raises ResultFileError with a one-line reason."""
    try:
        if os.path.getsize(path) > MAX_RESULT_BYTES:
            raise ResultFileError(f"{path}: larger than {MAX_RESULT_BYTES >> 20} MiB, not an lpmbench result")
        with open(path, encoding="utf-8") as handle:
            document = json.load(handle)
    except FileNotFoundError:
        raise ResultFileError(f"{path}: no such file") from None
    except OSError as exc:
        raise ResultFileError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise ResultFileError(f"{path}: not JSON (not UTF-8 text)") from None
    except json.JSONDecodeError as exc:
        raise ResultFileError(f"{path}: not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    except RecursionError:
        raise ResultFileError(f"{path}: not an lpmbench result (JSON nested too deeply)") from None
    problem = _not_a_result(document)
    if problem:
        raise ResultFileError(f"{path}: not an lpmbench result ({problem}); make one with lpmbench pair --json")
    return document


def _not_a_result(document: Any) -> Optional[str]:
    """Why this JSON is not a result, or None. Only the keys every result has had since the first contract
    are required; everything else may be missing (older, partial or AIX runs)."""
    if not isinstance(document, dict):
        return f"the top level is a JSON {type(document).__name__}, not an object"
    if document.get("verdict") not in _VERDICTS:
        return "no 'verdict' of pass, warn or fail"
    for key, kind in (("checks", list), ("streams", list), ("sender", dict), ("receiver", dict)):
        if not isinstance(document.get(key), kind):
            return f"'{key}' is missing or not a JSON {'array' if kind is list else 'object'}"
    for key in ("goodput_bps", "duration_s"):
        if comparison.number(document.get(key)) is None:
            return f"'{key}' is missing or not a number"
    return None


def _load_or_die(path: str) -> dict[str, Any]:
    try:
        return load_result(path)
    except ResultFileError as exc:
        raise die(str(exc)) from None


_STREAM_FIELDS = ("bytes", "goodput_bps", "retransmits", "segments_out", "rtt_ms", "mss", "rttvar_ms", "pmtu", "cwnd",
                  "busy_us", "rwnd_limited_us", "sndbuf_limited_us")


def _numeric(value: Any) -> Any:
    """The value itself when it is a finite number (an int stays an int, so counts print as counts)."""
    return value if comparison.number(value) is not None else None


def _text(value: Any, default: str = "?") -> str:
    """Text from a result; report.render_terminal escapes it for rich markup."""
    return str(value if value is not None else default)


def for_terminal(result: dict[str, Any]) -> dict[str, Any]:
    """A copy that report.render_terminal can show whatever a saved result lacks: absent fields become
    None (shown as "-"), odd statuses become unknown."""
    view = dict(result)
    for key in ("bytes", "retransmits", "segments_out"):
        view[key] = _numeric(result.get(key))
    view["run_id"], view["dataplane"] = _text(result.get("run_id")), _text(result.get("dataplane"))
    view["error"] = _text(result["error"]) if result.get("error") else None
    for role in ("sender", "receiver"):
        side = dict(result[role])
        side["host"] = _text(side.get("host"))
        side["send_method"] = str(side["send_method"]) if side.get("send_method") else None
        side["cpu_percent"] = _numeric(side.get("cpu_percent"))
        view[role] = side
    view["streams"] = [_stream_view(s) for s in result["streams"] if isinstance(s, dict)]
    view["checks"] = [_check_view(c) for c in result["checks"] if isinstance(c, dict)]
    return view


def _stream_view(stream: dict[str, Any]) -> dict[str, Any]:
    view = {key: _numeric(stream.get(key)) for key in _STREAM_FIELDS}
    view["id"] = _text(stream.get("id"))
    return view


def _check_view(check: dict[str, Any]) -> dict[str, str]:
    status = check.get("status") if check.get("status") in _STATUSES else "unknown"
    return {"name": _text(check.get("name")), "status": status, "detail": _text(check.get("detail"), ""),
            "remedy": _text(check.get("remedy"), "")}


def _write_page(write: Any, path: str, *results: dict[str, Any]) -> None:
    try:
        write(*results, path)
    except OSError as exc:
        raise die(f"cannot write {path}: {exc.strerror or exc}") from None
    err.print(f"wrote {escape(path)}", highlight=False)


HtmlOption = Annotated[Optional[str], typer.Option("--html", help="Also write a self-contained HTML page with "
                                                                  "charts here (opens offline, no extra needed).")]


@app.command("report")
def report_command(
    result_file: Annotated[str, typer.Argument(help="A result saved with lpmbench pair --json.")],
    html: HtmlOption = None,
) -> None:
    """Show a saved result again: the stream and check tables and the verdict, or an HTML page."""
    result = _load_or_die(result_file)
    report.render_terminal(for_terminal(result), Console())
    if html:
        _write_page(htmlreport.write_html, html, result)
    raise typer.Exit(EXIT_OK)


_TREND_STYLE = {comparison.BETTER: "bold green", comparison.WORSE: "bold red", comparison.MISMATCH: "bold yellow"}


def comparison_table(rows: list[comparison.Row], title: str) -> Table:
    """Rows of compare.compare as a rich table; cells are Text, so nothing from a result is read as markup.
    Compact (no vertical rules) so a value never wraps at 80 columns; only the row labels may."""
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    table.add_column("")
    for column in ("before", "after", "change"):
        table.add_column(column, no_wrap=True)
    for row in rows:
        table.add_row(Text(row.metric), Text(row.before), Text(row.after),
                      Text(row.change, style=_TREND_STYLE.get(row.trend, "")))
    return table


@app.command("compare")
def compare_command(
    before_file: Annotated[str, typer.Argument(help="The result before the change (pair --json).")],
    after_file: Annotated[str, typer.Argument(help="The result after the change.")],
    html: HtmlOption = None,
) -> None:
    """Put two saved results side by side: goodput, retransmit rate, path MTU, efficiency and every check."""
    before, after = _load_or_die(before_file), _load_or_die(after_file)
    rows = comparison.compare(before, after)
    console = Console()
    reasons = comparison.comparability(before, after)
    if reasons:  # first: every change below may come from how the runs differ
        console.print(Text("These runs are not directly comparable:", style="bold yellow"))
        listed = Table.grid(padding=(0, 1))
        listed.add_column(no_wrap=True)
        listed.add_column()
        for reason in reasons:
            listed.add_row(Text(" -"), Text(reason))
        console.print(listed)
    for section, title in (("context", "Runs"), ("metrics", "Metrics"), ("checks", "Checks")):
        console.print(comparison_table([r for r in rows if r.section == section], title))
    if html:
        _write_page(htmlreport.write_compare_html, html, before, after)
    raise typer.Exit(EXIT_OK)
