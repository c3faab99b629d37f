"""Self-contained HTML reports: one result, or a before / after comparison. Presentation only.

Charts use plotly (the optional extra ``pip install 'lpmbench[report]'``), chosen over matplotlib because:

* it is pure Python (plotly + narwhals + packaging), so it installs on an AIX / VIOS orchestrator where
  matplotlib's compiled wheels (numpy, freetype, kiwisolver) do not exist;
* the charts are interactive in any browser: hover gives the exact value of each stream in each interval,
  and clicking a legend entry hides a stream, which matters with 8 to 64 streams on one chart;
* plotly.js is embedded once in the page (about 4.8 MB), so the page opens with no network access, on a
  jump host, or as a ticket attachment.

Every text taken from a result is escaped with ``html.escape``: results come from files and from remote
agents. Text handed to plotly is escaped too, because plotly.js reads a subset of HTML in names and titles.
Any key may be missing (older runs, partial runs, AIX): what is absent reads "not measured".
"""

from __future__ import annotations

import contextlib
import html
import math
import os
import re
from typing import Any, Optional

from lpmbench import __version__
from lpmbench.analysis.compare import NOT_MEASURED, Row, compare, efficiency, section
from lpmbench.analysis.units import finite_or_none as number
from lpmbench.analysis.units import format_bytes, format_rate_bps, shown

INSTALL_HINT = "pip install 'lpmbench[report]'"
_PLOT_CONFIG = {"displaylogo": False, "responsive": True}


class ReportExtraMissing(RuntimeError):
    """The plotting extra is not installed; the message says how to install it."""


def _plotly() -> tuple[Any, Any, Any]:
    try:
        import plotly.graph_objects as go
        import plotly.io as pio
        import plotly.offline as offline
    except ImportError as exc:
        raise ReportExtraMissing(f"HTML reports need the plotting extra: {INSTALL_HINT}  ({exc})") from None
    return go, pio, offline


def check_extra() -> None:
    """Raise ReportExtraMissing now, e.g. before a run whose page could not be written afterwards."""
    _plotly()


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _fact(value: Any) -> str:
    """A fact for display (not yet escaped): None reads unknown, booleans on/off, dicts k=v."""
    if value is None:
        return "unknown"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, dict):
        return ", ".join(f"{k} {_fact(v)}" for k, v in value.items()) or "-"
    if isinstance(value, list):
        return ", ".join(_fact(v) for v in value) or "-"
    return str(value)


def _table(headers: list[str], rows: list[list[str]], css: str = "") -> str:
    """A table of already-escaped cells."""
    head = "".join(f"<th>{h}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f'<table class="{css}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _dicts(result: dict[str, Any], key: str) -> list[dict[str, Any]]:
    """The objects in a list-valued key; anything else in or instead of the list is skipped."""
    value = result.get(key)
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _badge(status: Any) -> str:
    text = str(status) if status is not None else "unknown"
    css = text if text in ("pass", "warn", "fail") else "unknown"
    return f'<span class="badge {css}">{_e(text.upper())}</span>'


# ---- series over time ---------------------------------------------------------------------------------

def _intervals(result: dict[str, Any]) -> list[dict[str, Any]]:
    return [i for i in _dicts(result, "intervals") if number(i.get("t")) is not None]


def _total_series(intervals: list[dict[str, Any]], key: str) -> tuple[list[float], list[Optional[float]]]:
    return [number(i["t"]) for i in intervals], [number(i.get(key)) for i in intervals]


def _stream_series(intervals: list[dict[str, Any]], key: str) -> dict[str, tuple[list, list]]:
    """Per stream label: (times, values), from each interval's per-stream samples."""
    series: dict[str, tuple[list, list]] = {}
    for interval in intervals:
        streams = interval.get("streams") if isinstance(interval.get("streams"), list) else []
        for sample in streams:
            if not isinstance(sample, dict):
                continue
            times, values = series.setdefault(f"stream {_e(sample.get('id', '?'))}", ([], []))
            times.append(number(interval["t"]))
            values.append(number(sample.get(key)))
    return series


def _has_values(values: list[Optional[float]]) -> bool:
    return any(v is not None for v in values)


def _figure(go: Any, title: str, y_title: str, y_format: str = "") -> Any:
    figure = go.Figure()
    figure.update_layout(title=_e(title), template="plotly_white", height=380, hovermode="x unified",
                         margin={"l": 70, "r": 20, "t": 50, "b": 50}, legend={"orientation": "v"})
    figure.update_xaxes(title="seconds since start", rangemode="tozero")
    figure.update_yaxes(title=_e(y_title), tickformat=y_format, rangemode="tozero")
    return figure


def _chart(pio: Any, figure: Any, div_id: str) -> str:
    return pio.to_html(figure, include_plotlyjs=False, full_html=False, div_id=div_id, config=_PLOT_CONFIG)


_CHARTS = (  # interval key, title, y axis, y tick format, total trace name
    ("goodput_bps", "Goodput per stream and in total", "bit/s", ".3s", "total"),
    ("retransmits", "Retransmitted segments per interval", "segments", "", "total"),
    ("rtt_ms", "Round-trip time (smoothed, TCP_INFO)", "ms", "", "mean of streams"),
)


def _run_charts(result: dict[str, Any]) -> str:
    go, pio, _ = _plotly()
    intervals = _intervals(result)
    parts = []
    for key, title, y_title, y_format, total_name in _CHARTS:
        times, totals = _total_series(intervals, key)
        per_stream = _stream_series(intervals, key)
        if not _has_values(totals) and not any(_has_values(v) for _, v in per_stream.values()):
            parts.append(f"<p class='missing'>{_e(title)}: {NOT_MEASURED}</p>")
            continue
        figure = _figure(go, title, y_title, y_format)
        for name, (t, values) in per_stream.items():
            figure.add_trace(go.Scatter(x=t, y=values, name=name, mode="lines+markers", line={"width": 1}))
        figure.add_trace(go.Scatter(x=times, y=totals, name=total_name, mode="lines+markers",
                                    line={"width": 3, "color": "black"}))
        parts.append(_chart(pio, figure, f"chart-{key}"))
    return "\n".join(parts)


def _compare_charts(before: dict[str, Any], after: dict[str, Any]) -> str:
    go, pio, _ = _plotly()
    parts = []
    for key, title, y_title, y_format, total_name in _CHARTS:
        figure = _figure(go, f"{title.split(' per ')[0].split(' (')[0]}: {total_name}, before and after",
                         y_title, y_format)
        drawn = False
        for label, result, color, dash in (("before", before, "#888888", "dash"), ("after", after, "#1f77b4", "solid")):
            times, values = _total_series(_intervals(result), key)
            if _has_values(values):
                drawn = True
                figure.add_trace(go.Scatter(x=times, y=values, name=label, mode="lines+markers",
                                            line={"width": 3, "color": color, "dash": dash}))
        parts.append(_chart(pio, figure, f"compare-{key}") if drawn
                     else f"<p class='missing'>{_e(title)}: {NOT_MEASURED}</p>")
    return "\n".join(parts)


# ---- sections of one result --------------------------------------------------------------------------

def _summary(result: dict[str, Any]) -> str:
    sender, receiver = section(result, "sender"), section(result, "receiver")
    retrans = number(result.get("retransmit_rate"))
    duration = number(result.get("duration_s"))
    facts = [
        ("Verdict", _badge(result.get("verdict"))),
        ("Goodput", _e(shown(format_rate_bps, result.get("goodput_bps")))),
        ("Retransmit rate", _e(NOT_MEASURED if retrans is None else f"{retrans:.3%}")),
        ("Moved", _e(f"{shown(format_bytes, result.get('bytes'))} in "
                     f"{'-' if duration is None else f'{duration:.1f}'} s")),
        ("Streams", _e(section(result, "config").get("streams", len(_dicts(result, "streams"))))),
        ("Data plane", _e(f"{result.get('dataplane', '?')}, {sender.get('send_method') or '?'} send")),
        ("CPU (whole host)", _e(f"sender {_fact(sender.get('cpu_percent'))} %, "
                                f"receiver {_fact(receiver.get('cpu_percent'))} %")),
        ("Run", _e(f"{result.get('run_id', '?')}, started {result.get('started_at', '?')}, "
                   f"lpmbench {result.get('lpmbench_version', '?')}")),
    ]
    if result.get("partial") or result.get("error"):
        facts.append(("Partial run", f"<span class='bad'>{_e(result.get('error') or 'yes')}</span>"))
    return "<dl class='summary'>" + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in facts) + "</dl>"


def _checks(result: dict[str, Any]) -> str:
    rows = [[_badge(c.get("status")), _e(c.get("name", "?")), _e(c.get("detail", "")), _e(c.get("remedy", ""))]
            for c in _dicts(result, "checks")]
    if not rows:
        return f"<p class='missing'>Checks: {NOT_MEASURED}</p>"
    return _table(["status", "check", "detail (cause)", "remedy"], rows, "checks")


_PATH_KEYS = (("mtu", "path MTU (probed end to end)"), ("sender_interface", "sender interface"),
              ("sender_mtu", "sender interface MTU"), ("receiver_interface", "receiver interface"),
              ("receiver_mtu", "receiver interface MTU"))
_INTERFACE_KEYS = (("name", "interface"), ("speed_mbps", "speed (Mb/s)"), ("duplex", "duplex"), ("mtu", "MTU"),
                   ("jumbo_frames", "jumbo frames"), ("large_send", "large_send"),
                   ("large_receive", "large_receive"), ("flow_control", "flow control"),
                   ("virtual", "virtual adapter"), ("driver", "driver / adapter"))


def _path(result: dict[str, Any]) -> str:
    path = section(result, "path")
    if path:
        known = dict(_PATH_KEYS)
        rows = [[_e(label), _e(_fact(path[key]) if key in path else NOT_MEASURED)] for key, label in _PATH_KEYS]
        rows += [[_e(key), _e(_fact(value))] for key, value in path.items() if key not in known]
        path_html = _table(["path", ""], rows, "facts")
    else:
        path_html = f"<p class='missing'>Path MTU: {NOT_MEASURED}</p>"
    return path_html + _efficiency(result)


def _efficiency(result: dict[str, Any]) -> str:
    value = efficiency(result)
    raw = result.get("efficiency")
    if value is None and not isinstance(raw, dict):
        return f"<p class='missing'>Efficiency: {NOT_MEASURED}</p>"
    text = f"Efficiency: <b>{_e(NOT_MEASURED if value is None else f'{value:.1%}')}</b> of the wire limit"
    if isinstance(raw, dict):
        extra = {k: v for k, v in raw.items() if k not in ("value", "efficiency")}
        text += f" ({_e(_fact(extra))})" if extra else ""
    return f"<p>{text} (goodput / (slowest link speed x payload fraction at the path MTU)).</p>"


def _interfaces(result: dict[str, Any]) -> str:
    interfaces = section(result, "interfaces")
    sides = {role: interfaces.get(role) for role in ("sender", "receiver")}
    if not any(isinstance(facts, dict) for facts in sides.values()):
        return f"<p class='missing'>Interface facts: {NOT_MEASURED}</p>"
    keys = list(_INTERFACE_KEYS)
    known = {key for key, _ in keys}
    for facts in sides.values():  # facts added by newer agents show too, after the known ones
        for key in facts if isinstance(facts, dict) else ():
            if key not in known:
                known.add(key)
                keys.append((key, key))
    rows = [[_e(label)] + [_e(_interface_fact(key, facts)) for facts in sides.values()] for key, label in keys]
    return _table(["", "sender MSP", "receiver MSP"], rows, "facts")


def _interface_fact(key: str, facts: Any) -> str:
    if not isinstance(facts, dict) or key not in facts:
        return NOT_MEASURED
    value = facts[key]
    if key == "virtual" and isinstance(value, bool):
        return "yes" if value else "no"  # "virtual adapter: off" would read as a setting
    return _fact(value)


def _lpm(result: dict[str, Any]) -> str:
    partitions = _dicts(result, "lpm")
    if not partitions:
        return f"<p class='missing'>Partitions: {NOT_MEASURED} (no partitions given for this run)</p>"
    rows = []
    for p in partitions:
        seconds = number(p.get("predicted_seconds"))
        window = number(p.get("window_s"))
        fits = p.get("fits_window")
        rows.append([_e(p.get("name", "?")), _e(shown(format_bytes, p.get("memory_bytes"))),
                     _e(f"{shown(format_bytes, p.get('dirty_rate_Bps'))}/s"),
                     _e(_duration(seconds) if seconds is not None else "never (does not converge)"),
                     _e(_fact(p.get("passes"))),
                     _e("-" if window is None else _duration(window)),
                     _e("-" if fits is None else ("yes" if fits else "NO")),
                     _e(shown(format_rate_bps, p.get("required_bps")))])
    return _table(["partition", "memory", "dirty rate", "predicted time", "passes", "window", "fits",
                   "bandwidth needed"], rows, "facts")


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "never"
    return f"{seconds:.1f} s" if seconds < 120 else f"{int(seconds // 60)} min {int(seconds % 60):02d} s"


_STREAM_KEYS = (("id", "stream"), ("bytes", "bytes"), ("goodput_bps", "goodput"), ("retransmits", "retransmits"),
                ("segments_out", "segments out"), ("rtt_ms", "rtt ms"), ("rttvar_ms", "rttvar ms"),
                ("mss", "mss"), ("pmtu", "pmtu"), ("cwnd", "cwnd"), ("busy_us", "busy us"),
                ("rwnd_limited_us", "rwnd limited us"), ("sndbuf_limited_us", "sndbuf limited us"))


def _stream_cell(key: str, value: Any) -> str:
    if key == "bytes":
        return shown(format_bytes, value)
    if key == "goodput_bps":
        return shown(format_rate_bps, value)
    return "-" if value is None else _fact(value)


def _streams(result: dict[str, Any]) -> str:
    streams = _dicts(result, "streams")
    if not streams:
        return f"<p class='missing'>Streams: {NOT_MEASURED}</p>"
    rows = [[_e(_stream_cell(key, s.get(key))) for key, _ in _STREAM_KEYS] for s in streams]
    return _table([label for _, label in _STREAM_KEYS], rows, "numbers")


_HOST_KEYS = ("host", "address", "hostname", "os", "version", "dataplane", "send_method", "event_loop",
              "cpu_percent", "process_cpu_s")


def _hosts(result: dict[str, Any]) -> str:
    sides = (section(result, "sender"), section(result, "receiver"))
    rows = [[_e(key)] + [_e(_fact(side[key]) if key in side else "-") for side in sides] for key in _HOST_KEYS]
    return _table(["", "sender (A)", "receiver (B)"], rows, "facts")


# ---- pages -------------------------------------------------------------------------------------------

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 1200px;
       color: #222; padding: 0 1em; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 0.5em 0; }
th, td { border: 1px solid #ddd; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f4f4f4; }
table.numbers td { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
dl.summary { display: grid; grid-template-columns: max-content auto; gap: 4px 16px; }
dt { font-weight: bold; }
.badge { padding: 1px 8px; border-radius: 4px; color: white; font-weight: bold; }
.badge.pass { background: #2e7d32; } .badge.warn { background: #e6a100; } .badge.fail { background: #c62828; }
.badge.unknown { background: #888; }
.missing { color: #777; font-style: italic; }
.bad, tr.worse td.change { color: #c62828; font-weight: bold; } tr.better td.change { color: #2e7d32; }
footer { margin-top: 3em; color: #777; font-size: 0.9em; }
"""


def _h2(title: str) -> str:
    anchor = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")
    return f"<h2 id='{anchor}'>{title}</h2>"


def _page(title: str, body: str) -> str:
    _, _, offline = _plotly()
    return (f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'><title>{_e(title)}</title>"
            f"<style>{_CSS}</style>\n<script type='text/javascript'>{offline.get_plotlyjs()}</script>\n"
            f"</head><body>\n<h1>{_e(title)}</h1>\n{body}\n"
            f"<footer>Made by lpmbench {_e(__version__)}. Self-contained: this page fetches nothing."
            f"</footer>\n</body></html>\n")


def _pair_title(result: dict[str, Any]) -> str:
    return f"{section(result, 'sender').get('host', '?')} -> {section(result, 'receiver').get('host', '?')}"


def render_html(result: dict[str, Any]) -> str:
    """The whole page for one result. Raises ReportExtraMissing without the plotting extra."""
    body = "\n".join([
        _summary(result),
        _h2("Checks"), _checks(result),
        _h2("Over time"), _run_charts(result),
        _h2("Path"), _path(result),
        _h2("Interfaces of both MSPs"), _interfaces(result),
        _h2("Partitions (LPM model)"), _lpm(result),
        _h2("Streams at the end of the run"), _streams(result),
        _h2("Hosts"), _hosts(result),
    ])
    return _page(f"lpmbench: {_pair_title(result)}", body)


def _compare_table(rows: list[Row]) -> str:
    body = "".join(
        f"<tr class='{_e(r.trend)}'><td>{_e(r.metric)}</td><td>{_e(r.before)}</td><td>{_e(r.after)}</td>"
        f"<td class='change'>{_e(r.change)}</td></tr>" for r in rows)
    return ("<table class='compare'><thead><tr><th></th><th>before</th><th>after</th><th>change</th></tr>"
            f"</thead><tbody>{body}</tbody></table>")


def render_compare_html(before: dict[str, Any], after: dict[str, Any]) -> str:
    """The whole page comparing two results. Raises ReportExtraMissing without the plotting extra."""
    rows = compare(before, after)
    body = "\n".join([
        _h2("Run"), _compare_table([r for r in rows if r.section == "context"]),
        _h2("Metrics"), _compare_table([r for r in rows if r.section == "metrics"]),
        _h2("Checks"), _compare_table([r for r in rows if r.section == "checks"]),
        _h2("Over time"), _compare_charts(before, after),
        _h2("Checks after, with causes and remedies"), _checks(after),
        _h2("Interfaces before"), _interfaces(before),
        _h2("Interfaces after"), _interfaces(after),
    ])
    return _page(f"lpmbench: before {_pair_title(before)} / after {_pair_title(after)}", body)


def _write_atomically(text: str, path: str) -> None:
    """Write beside the target, then rename: a failed write never leaves half a page. A plain open (not
    mkstemp) so the file gets the user's umask like any other file they create."""
    temporary = f"{path}.{os.getpid()}.tmp"
    try:
        with open(temporary, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def write_html(result: dict[str, Any], path: str) -> None:
    """Render one result and write it to ``path``. ReportExtraMissing without the extra; OSError on write."""
    _write_atomically(render_html(result), path)


def write_compare_html(before: dict[str, Any], after: dict[str, Any], path: str) -> None:
    """Render a before / after comparison and write it to ``path``."""
    _write_atomically(render_compare_html(before, after), path)
