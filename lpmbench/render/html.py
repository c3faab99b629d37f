"""Self-contained HTML reports: one result, or a before / after comparison. Presentation only.

The page speaks to an admin, not to the JSON: it leads with the headline (the network verdict, the LPM
outlook and what needs action, each with its fix), labels every fact in words with its unit, and never shows
a result key. Charts are inline SVG drawn by :mod:`lpmbench.render.svgchart`: no library, no script, so the
page opens offline (a jump host, a ticket attachment) and a 10 s run makes a page of some tens of kilobytes
where the plotly version made 4.8 MB.

Every text taken from a result is escaped with ``html.escape``: results come from files and from remote
agents. Any key may be missing (older runs, partial runs, AIX): what is absent reads "not measured".
"""

from __future__ import annotations

import contextlib
import html
import math
import os
import re
from typing import Any, Callable, Optional

from lpmbench import __version__
from lpmbench.analysis import headline as headlines
from lpmbench.analysis.compare import (
    NOT_MEASURED,
    Row,
    comparability,
    compare,
    efficiency,
    section,
)
from lpmbench.analysis.units import finite_or_none as number
from lpmbench.analysis.units import format_bytes, format_duration, format_rate_bps, shown
from lpmbench.render import htmlfacts as say
from lpmbench.render import svgchart

SEND_METHODS = {"zerocopy": "MSG_ZEROCOPY (zero-copy send)", "sendfile": "sendfile()", "send": "send()"}
_VERDICT_WORDS = {"pass": "PASS", "warn": "WARN", "fail": "FAIL", "unknown": "NOT JUDGED", "info": "NOTE"}


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _table(headers: list[str], rows: list[list[str]], css: str = "") -> str:
    """A table of already-escaped cells."""
    head = "".join(f"<th>{h}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    # Wide tables (streams, checks) scroll inside their box instead of widening the page.
    return (f'<div class="scroll"><table class="{css}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody>'
            '</table></div>')


def _dicts(result: dict[str, Any], key: str) -> list[dict[str, Any]]:
    """The objects in a list-valued key; anything else in or instead of the list is skipped."""
    value = result.get(key)
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _badge(status: Any, text: Optional[str] = None) -> str:
    status = str(status) if status is not None else "unknown"
    css = status if status in _VERDICT_WORDS else "unknown"
    return f'<span class="badge {css}">{_e(text or _VERDICT_WORDS.get(status, status.upper()))}</span>'


def _missing(what: str, why: str = "") -> str:
    return f"<p class='missing'>{_e(what)}: {NOT_MEASURED}{_e(why)}</p>"


def _facts_table(rows: list[tuple[str, str]], headers: tuple[str, str] = ("", "")) -> str:
    return _table(list(headers), [[_e(label), _e(value)] for label, value in rows], "facts")


# ---- the headline ----------------------------------------------------------------------------------------

def _headline(result: dict[str, Any]) -> str:
    head = headlines.of(result)
    lines = "".join(
        f"<div class='line'><span class='label'>{label}</span>{_badge(head[key]['verdict'])} "
        f"<span>{_e(head[key]['summary'])}</span></div>"
        for key, label in ((headlines.NETWORK, "Network"), (headlines.LPM, "LPM outlook")))
    items = "".join(f"<li class='{_e(f['status'])}'>{_badge(f['status'])} {_e(f['sentence'])}"
                    + (f"<div class='fix'><b>Fix:</b> {_e(f['fix'])}</div>" if f["fix"] else "") + "</li>"
                    for f in head["findings"])
    findings = f"<h2>Needs action, worst first</h2><ol class='findings'>{items}</ol>" if items else ""
    notes = "".join(f"<p class='note'>{_badge('info', 'NOTE')} {_e(n['sentence'])}"
                    + (f" <span class='fix'>{_e(n['fix'])}</span>" if n["fix"] else "") + "</p>"
                    for n in head["notes"])
    return f"<section class='headline'>{lines}{findings}{notes}</section>"


# ---- charts ----------------------------------------------------------------------------------------------

def _intervals(result: dict[str, Any]) -> list[dict[str, Any]]:
    return [i for i in _dicts(result, "intervals") if _measured(i.get("t")) is not None]


def _measured(value: Any) -> Optional[float]:
    """A value a chart can draw: goodput, RTT and counts are never negative; anything else is a gap."""
    value = number(value)
    return value if value is not None and value >= 0 else None


def _total_points(intervals: list[dict[str, Any]], key: str) -> list[svgchart.Point]:
    return [(number(i["t"]), _measured(i.get(key))) for i in intervals]


def _stream_points(intervals: list[dict[str, Any]], key: str) -> dict[str, list[svgchart.Point]]:
    """Per stream label: (time, value) from each interval's per-stream samples."""
    series: dict[str, list[svgchart.Point]] = {}
    for interval in intervals:
        streams = interval.get("streams") if isinstance(interval.get("streams"), list) else []
        for sample in streams:
            if isinstance(sample, dict):
                points = series.setdefault(f"stream {sample.get('id', '?')}", [])
                points.append((number(interval["t"]), _measured(sample.get(key))))
    return series


def _count(value: float) -> str:
    return f"{value:g}"


_CHARTS: tuple[tuple[str, str, Callable[[float], str], str], ...] = (
    # interval key, title, value format with its unit, name of the total line
    ("goodput_bps", "Goodput per stream and in total, per interval", format_rate_bps, "all streams"),
    ("rtt_ms", "Round-trip time per stream (smoothed, from TCP)", lambda v: f"{v:g} ms", "mean of streams"),
    ("retransmits", "Retransmitted segments per interval", _count, "all streams"),
)


def _run_charts(result: dict[str, Any]) -> str:
    intervals = _intervals(result)
    parts = []
    for key, title, fmt, total_name in _CHARTS:
        series = [svgchart.Series(name, points) for name, points in _stream_points(intervals, key).items()]
        series.append(svgchart.Series(total_name, _total_points(intervals, key), emphasis=True))
        parts.append(svgchart.line_chart(title, series, fmt) or _missing(title))
    return "\n".join(parts)


def _compare_charts(before: dict[str, Any], after: dict[str, Any]) -> str:
    parts = []
    for key, title, fmt, total_name in _CHARTS:
        heading = f"{title.split(' per ')[0].split(' (')[0]}, {total_name}: before and after"
        series = [svgchart.Series("before", _total_points(_intervals(before), key), dashed=True, color="#888888"),
                  svgchart.Series("after", _total_points(_intervals(after), key), emphasis=True, color="#1f77b4")]
        parts.append(svgchart.line_chart(heading, series, fmt) or _missing(heading))
    return "\n".join(parts)


# ---- sections of one result ------------------------------------------------------------------------------

def _sending(side: dict[str, Any], dataplane: Any) -> str:
    plane = {"c": "C", "python": "Python"}.get(str(dataplane), str(dataplane or "unknown"))
    method = side.get("send_method")
    return f"{plane} data plane" + (f", sending with {SEND_METHODS.get(method, method)}" if method else "")


def _summary(result: dict[str, Any]) -> str:
    sender, receiver = section(result, "sender"), section(result, "receiver")
    duration = number(result.get("duration_s"))
    streams = section(result, "config").get("streams", len(_dicts(result, "streams")))
    facts = [
        ("Goodput", shown(format_rate_bps, result.get("goodput_bps"))),
        ("Retransmitted", say.percent(result.get("retransmit_rate"), 3) + " of segments sent"
         if number(result.get("retransmit_rate")) is not None else NOT_MEASURED),
        ("Moved", f"{shown(format_bytes, result.get('bytes'))} in "
                  f"{'-' if duration is None else f'{duration:.1f} s'} over {say.fact(streams)} TCP streams"),
        ("Data plane", _sending(sender, result.get("dataplane"))),
        ("CPU (whole host, mean)", f"sender {say.fact(sender.get('cpu_percent'))} %, "
                                   f"receiver {say.fact(receiver.get('cpu_percent'))} %"),
        ("Run", f"{result.get('run_id', '?')}, started {result.get('started_at', '?')} (UTC), "
                f"lpmbench {result.get('lpmbench_version', '?')}"),
    ]
    rows = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in facts)
    if result.get("partial") or result.get("error"):
        rows += f"<dt>Partial run</dt><dd class='bad'>{_e(result.get('error') or 'yes')}</dd>"
    return f"<dl class='summary'>{rows}</dl>"


def _pairs(result: dict[str, Any]) -> str:
    """Every MSP pair of a --redundant run with its own figures, and the sum LPM would use."""
    pairs = _dicts(result, "pairs")
    if len(pairs) < 2:
        return ""
    rows = []
    for pair in pairs:
        failed = pair.get("failed_checks") if isinstance(pair.get("failed_checks"), list) else []
        problems = [str(c.get("name")) for c in failed if isinstance(c, dict)]
        rows.append([_e(f"{pair.get('sender', '?')} -> {pair.get('receiver', '?')}"),
                     _e(shown(format_rate_bps, pair.get("goodput_bps"))),
                     _e(say.percent(pair.get("retransmit_rate"), 3)), _badge(pair.get("verdict")),
                     _e(", ".join(problems) or ("partial run" if pair.get("partial") else "none"))])
    rows.append(["<b>together</b>", f"<b>{_e(shown(format_rate_bps, result.get('aggregate_goodput_bps')))}</b>",
                 "", "", "what redundant MSP pairs carry in parallel"])
    return _h2("MSP pairs, run at once") + _table(["pair", "goodput", "retransmitted", "verdict",
                                                    "its own warnings and failures"], rows, "checks")


def _checks(result: dict[str, Any]) -> str:
    rows = [[_badge(c.get("status")), _e(c.get("name", "?")), _e(c.get("detail", "")), _e(c.get("remedy", ""))]
            for c in _dicts(result, "checks")]
    if not rows:
        return _missing("Checks")
    return _table(["status", "check", "what was found", "what to do"], rows, "checks")


_PATH_LABELS: dict[str, tuple[str, Callable[[Any], str]]] = {
    "mtu": ("path MTU (largest packet that crosses end to end)", say.bytes_unit),
    "mtu_source": ("path MTU found by", lambda v: {"udp probe": "a UDP probe with don't-fragment set",
                                                   "tcp evidence": "TCP: full-size segments crossed"}
                   .get(str(v), say.fact(v))),
    "probe_complete": ("probe finished", say.fact),
    "probe_error": ("probe error", lambda v: "none" if v is None else say.fact(v)),
    "probe_elapsed_s": ("probe took", say.seconds),
    "probe_unsupported": ("probe not possible because",
                          lambda v: "it is possible here" if v is None else say.fact(v)),
    "sender_interface": ("sender interface", say.fact),
    "sender_mtu": ("sender interface MTU", say.bytes_unit),
    "receiver_interface": ("receiver interface", say.fact),
    "receiver_mtu": ("receiver interface MTU", say.bytes_unit),
    "data_address": ("streams connected to", say.fact),
}


def _labelled(facts: dict[str, Any], labels: dict[str, tuple[str, Callable[[Any], str]]],
              always: tuple[str, ...] = ()) -> list[tuple[str, str]]:
    """Known facts with their labels and units (``always`` ones even when absent), then any others in say.words."""
    rows = [(label, show(facts[key]) if key in facts else NOT_MEASURED)
            for key, (label, show) in labels.items() if key in facts or key in always]
    return rows + [(say.words(str(key)), say.fact(value)) for key, value in facts.items() if key not in labels]


def _path(result: dict[str, Any]) -> str:
    path = section(result, "path")
    if path:
        path_html = _facts_table(_labelled(path, _PATH_LABELS, always=("mtu", "sender_mtu", "receiver_mtu")))
    else:
        path_html = _missing("Path MTU")
    return path_html + _efficiency(result)


def _efficiency(result: dict[str, Any]) -> str:
    value = efficiency(result)
    if value is None:
        return _missing("Efficiency")
    limit = number(result.get("wire_limit_bps"))
    of_what = f" of {format_rate_bps(limit)}" if limit and limit > 0 else ""
    return (f"<p>Efficiency: <b>{_e(f'{value:.1%}')}</b>{_e(of_what)}, the most the slowest link can carry at this "
            f"MTU (goodput / (slowest link speed x payload share of each frame)).</p>")


_INTERFACE_LABELS: dict[str, tuple[str, Callable[[Any], str]]] = {
    "name": ("interface", say.fact),
    "speed_mbps": ("link speed", say.speed),
    "duplex": ("duplex", say.fact),
    "mtu": ("MTU", say.bytes_unit),
    "jumbo_frames": ("jumbo frames", say.on_off),
    "large_send": ("large_send (segmentation offload)", say.on_off),
    "large_receive": ("large_receive (receive offload)", say.on_off),
    "flow_control": ("flow control", say.flow_control),
    "virtual": ("virtual adapter", say.fact),
    "driver": ("driver / adapter", say.fact),
    "counters_delta": ("errors and drops during the run", say.counters),
    "counters": ("errors and drops since boot", say.counters),
}


def _interfaces(result: dict[str, Any]) -> str:
    interfaces = section(result, "interfaces")
    sides = [interfaces.get(role) if isinstance(interfaces.get(role), dict) else {} for role in ("sender", "receiver")]
    if not any(sides):
        return _missing("Interface facts")
    keys = list(_INTERFACE_LABELS)
    for facts in sides:  # facts added by newer agents show too, after the known ones
        keys += [key for key in facts if key not in keys]
    rows = []
    for key in keys:
        label, show = _INTERFACE_LABELS.get(key, (say.words(str(key)), say.fact))
        rows.append([_e(label)] + [_e(show(facts[key]) if key in facts else NOT_MEASURED) for facts in sides])
    return _table(["", "sender MSP", "receiver MSP"], rows, "facts")


def _lpm(result: dict[str, Any]) -> str:
    partitions = _dicts(result, "lpm")
    if not partitions:
        return _missing("Partitions", " (no partitions given for this run: pair --lpar NAME:MEMORY[:DIRTY_RATE])")
    rows = []
    for p in partitions:
        seconds, window, fits = number(p.get("predicted_seconds")), number(p.get("window_s")), p.get("fits_window")
        rows.append([_e(p.get("name", "?")), _e(shown(format_bytes, p.get("memory_bytes"))),
                     _e(f"{shown(format_bytes, p.get('dirty_rate_Bps'))}/s"),
                     _e(_duration(seconds) if seconds is not None else "never (does not converge)"),
                     _e(say.fact(p.get("passes"))),
                     _e("none given" if window is None else _duration(window)),
                     _e("-" if fits is None else ("yes" if fits else "NO")),
                     _e(shown(format_rate_bps, p.get("required_bps"))
                        if number(p.get("required_bps")) is not None else "-")])
    return _table(["partition", "memory", "dirty rate", "predicted time", "copy passes", "window", "fits",
                   "bandwidth the window needs"], rows, "facts")


def _duration(seconds: float) -> str:
    return "never" if not math.isfinite(seconds) else format_duration(seconds)


def _busy(stream: dict[str, Any]) -> str:
    busy = number(stream.get("busy_us"))
    return "-" if busy is None else say.seconds(busy / 1e6)


def _limited(stream: dict[str, Any], key: str) -> str:
    busy, limited = number(stream.get("busy_us")), number(stream.get(key))
    return "-" if not busy or limited is None else f"{limited / busy:.0%}"


_STREAM_COLUMNS: tuple[tuple[str, Callable[[dict[str, Any]], str]], ...] = (
    ("stream", lambda s: say.fact(s.get("id", "?"))),
    ("received", lambda s: shown(format_bytes, s.get("bytes"))),
    ("goodput", lambda s: shown(format_rate_bps, s.get("goodput_bps"))),
    ("retransmitted segments", lambda s: say.fact(s.get("retransmits")) if s.get("retransmits") is not None else "-"),
    ("segments sent", lambda s: say.fact(s.get("segments_out")) if s.get("segments_out") is not None else "-"),
    ("RTT", lambda s: say.milliseconds(s.get("rtt_ms"))),
    ("RTT variation", lambda s: say.milliseconds(s.get("rttvar_ms"))),
    ("MSS (bytes)", lambda s: say.fact(s.get("mss")) if s.get("mss") is not None else "-"),
    ("path MTU (bytes)", lambda s: say.fact(s.get("pmtu")) if s.get("pmtu") is not None else "-"),
    ("congestion window (segments)", lambda s: say.fact(s.get("cwnd")) if s.get("cwnd") is not None else "-"),
    ("busy sending", _busy),
    ("limited by the receive window", lambda s: _limited(s, "rwnd_limited_us")),
    ("limited by the send buffer", lambda s: _limited(s, "sndbuf_limited_us")),
)


def _streams(result: dict[str, Any]) -> str:
    streams = _dicts(result, "streams")
    if not streams:
        return _missing("Streams")
    rows = [[_e(show(s)) for _, show in _STREAM_COLUMNS] for s in streams]
    return _table([label for label, _ in _STREAM_COLUMNS], rows, "numbers")


def _capabilities(value: Any) -> str:
    if not isinstance(value, dict):
        return say.fact(value)
    available = value.get("available") if isinstance(value.get("available"), list) else []
    missing = value.get("missing") if isinstance(value.get("missing"), dict) else {}
    can = ", ".join(say.words(str(name)) for name in available) or "none listed"
    cannot = "; ".join(f"{say.words(str(name))}: {say.fact(why)}" for name, why in missing.items())
    return f"can: {can}" + (f"; cannot: {cannot}" if cannot else "")


_HOST_LABELS: dict[str, tuple[str, Callable[[Any], str]]] = {
    "host": ("host as given", say.fact),
    "address": ("address", say.fact),
    "hostname": ("host name", say.fact),
    "os": ("operating system", say.fact),
    "version": ("lpmbench version", say.fact),
    "dataplane": ("data plane", lambda v: {"c": "C", "python": "Python"}.get(str(v), say.fact(v))),
    "dataplane_fallback_reason": ("why not the C data plane", lambda v: "-" if v is None else say.fact(v)),
    "send_method": ("send method", lambda v: SEND_METHODS.get(str(v), say.fact(v))),
    "send_methods": ("send methods available", lambda v: say.fact([SEND_METHODS.get(str(m), m) for m in v])
                     if isinstance(v, list) else say.fact(v)),
    "event_loop": ("event loop", say.fact),
    "cpu_percent": ("CPU, whole host (mean over the run)", lambda v: f"{say.fact(v)} %"),
    "process_cpu_s": ("CPU time of the agent", say.seconds),
    "cpu_note": ("why CPU figures are missing", say.fact),
    "capabilities": ("what this platform can do", _capabilities),
}


def _hosts(result: dict[str, Any]) -> str:
    sides = (section(result, "sender"), section(result, "receiver"))
    keys = list(_HOST_LABELS)
    for side in sides:
        keys += [key for key in side if key not in keys]
    rows = []
    for key in keys:
        if not any(key in side for side in sides):
            continue
        label, show = _HOST_LABELS.get(key, (say.words(str(key)), say.fact))
        rows.append([_e(label)] + [_e(show(side[key]) if key in side else "-") for side in sides])
    return _table(["", "sender (A)", "receiver (B)"], rows, "facts")


# ---- pages -------------------------------------------------------------------------------------------

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 1200px;
       color: #222; padding: 0 1em; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ccc; }
.sub { color: #666; margin-top: 0; }
table { border-collapse: collapse; margin: 0.5em 0; }
th, td { border: 1px solid #ddd; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f4f4f4; }
table.numbers td { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
dl.summary { display: grid; grid-template-columns: max-content auto; gap: 4px 16px; }
dt { font-weight: bold; }
.badge { display: inline-block; min-width: 3.2em; text-align: center; padding: 1px 8px; border-radius: 4px;
         color: white; font-weight: bold; font-size: 0.9em; }
.badge.pass { background: #2e7d32; } .badge.warn { background: #b26a00; } .badge.fail { background: #c62828; }
.badge.unknown { background: #888; } .badge.info { background: #1565c0; }
section.headline { border: 2px solid #ccc; border-radius: 8px; padding: 0.8em 1.2em; background: #fafafa; }
section.headline h2 { margin-top: 0.8em; border: none; font-size: 1.05em; }
.line { font-size: 1.15em; margin: 0.3em 0; } .line .label { display: inline-block; width: 8em; font-weight: bold; }
ol.findings li { margin: 0.5em 0; } .fix { margin: 0.2em 0 0 0; color: #333; }
.note { color: #333; }
.warning { border-left: 5px solid #b26a00; background: #fff8e1; padding: 0.5em 1em; }
.missing { color: #777; font-style: italic; }
.bad, tr.worse td.change { color: #c62828; font-weight: bold; } tr.better td.change { color: #2e7d32; }
tr.mismatch td { background: #fff3e0; } tr.mismatch td.change { color: #b26a00; font-weight: bold; }
.scroll { overflow-x: auto; }
figure.chart { margin: 1em 0; } svg text { font-size: 12px; fill: #333; } svg text.title { font-size: 14px;
font-weight: bold; } svg .grid { stroke: #e4e4e4; } svg .axis { stroke: #888; }
footer { margin-top: 3em; color: #777; font-size: 0.9em; }
"""


def _h2(title: str) -> str:
    anchor = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")
    return f"<h2 id='{anchor}'>{_e(title)}</h2>"


def _page(title: str, subtitle: str, body: str) -> str:
    return (f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'><title>{_e(title)}</title>"
            f"<meta name='viewport' content='width=device-width, initial-scale=1'><style>{_CSS}</style>\n"
            f"</head><body>\n<h1>{_e(title)}</h1><p class='sub'>{_e(subtitle)}</p>\n{body}\n"
            f"<footer>Made by lpmbench {_e(__version__)}. Self-contained: this page fetches nothing."
            f"</footer>\n</body></html>\n")


def _pair_title(result: dict[str, Any]) -> str:
    return f"{section(result, 'sender').get('host', '?')} -> {section(result, 'receiver').get('host', '?')}"


def render_html(result: dict[str, Any]) -> str:
    """The whole page for one result."""
    body = "\n".join([
        _headline(result),
        _h2("Key figures"), _summary(result),
        _pairs(result),
        _h2("Over time"), _run_charts(result),
        _h2("Every check"), _checks(result),
        _h2("Path"), _path(result),
        _h2("Interfaces of both MSPs"), _interfaces(result),
        _h2("Partitions (LPM model)"), _lpm(result),
        _h2("Streams at the end of the run"), _streams(result),
        _h2("Hosts"), _hosts(result),
    ])
    return _page(f"lpmbench: {_pair_title(result)}", "Is this MSP pair fit for Live Partition Mobility?", body)


def _compare_table(rows: list[Row]) -> str:
    body = "".join(
        f"<tr class='{_e(r.trend)}'><td>{_e(r.metric)}</td>"
        f"<td>{_e(r.before)}</td><td>{_e(r.after)}</td><td class='change'>{_e(r.change)}</td></tr>" for r in rows)
    return ("<table class='compare'><thead><tr><th></th><th>before</th><th>after</th><th>change</th></tr>"
            f"</thead><tbody>{body}</tbody></table>")


def _comparable(before: dict[str, Any], after: dict[str, Any]) -> str:
    reasons = comparability(before, after)
    if not reasons:
        return "<p>The runs are comparable: the same MSPs in the same direction, streams and duration.</p>"
    items = "".join(f"<li>{_e(reason)}</li>" for reason in reasons)
    return (f"<div class='warning'><b>These runs are not directly comparable:</b><ul>{items}</ul>"
            "A change below may come from how the runs differ, not from the network.</div>")


def _run_ids(before: dict[str, Any], after: dict[str, Any]) -> str:
    def one(label: str, result: dict[str, Any]) -> str:
        return f"{label}: run {result.get('run_id', '?')}, started {result.get('started_at', '?')} (UTC)"
    return f"<p class='sub'>{_e(one('before', before))}; {_e(one('after', after))}.</p>"


def render_compare_html(before: dict[str, Any], after: dict[str, Any]) -> str:
    """The whole page comparing two results."""
    rows = compare(before, after)
    body = "\n".join([
        _h2("Can these runs be compared?"), _comparable(before, after), _run_ids(before, after),
        _compare_table([r for r in rows if r.section == "context"]),
        _h2("After the change"), _headline(after),
        _h2("Metrics"), _compare_table([r for r in rows if r.section == "metrics"]),
        _h2("Checks"), _compare_table([r for r in rows if r.section == "checks"]),
        _h2("Over time"), _compare_charts(before, after),
        _h2("Checks after, with causes and what to do"), _checks(after),
        _h2("Interfaces before"), _interfaces(before),
        _h2("Interfaces after"), _interfaces(after),
    ])
    return _page(f"lpmbench: before {_pair_title(before)} / after {_pair_title(after)}",
                 "Did the change make the MSP network better for Live Partition Mobility?", body)


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
    """Render one result and write it to ``path``; OSError when it cannot be written."""
    _write_atomically(render_html(result), path)


def write_compare_html(before: dict[str, Any], after: dict[str, Any], path: str) -> None:
    """Render a before / after comparison and write it to ``path``."""
    _write_atomically(render_compare_html(before, after), path)
