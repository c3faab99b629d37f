"""A self-contained HTML page with an inline SVG Gantt chart of an evacuation plan. Presentation only.

No JavaScript and no library: the page opens offline, on a jump host or as a ticket attachment, and stays a
few kilobytes. Every text that came from an input file (partition and pair names, states) is escaped.
The input is the JSON-ready document of :func:`lpmbench.analysis.evacuation.assess`; keys may be missing.
"""

from __future__ import annotations

import contextlib
import html
import math
import os
from typing import Any, Optional

from lpmbench import __version__
from lpmbench.analysis.units import finite_or_none, format_bytes, format_duration, format_rate_bps, shown

__all__ = ["render_timeline", "write_timeline"]

_WIDTH = 960
_LABEL_WIDTH = 220
_RIGHT_MARGIN = 24
_ROW_HEIGHT = 22
_BAR_HEIGHT = 14
_TOP = 30
_MAX_LABEL_CHARS = 30
_TICK_STEPS_S = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)
_TARGET_TICKS = 8
_STYLE = """
body { font-family: system-ui, sans-serif; margin: 24px; color: #1b1f24; max-width: 1000px; }
h1 { font-size: 20px; } h2 { font-size: 16px; margin-top: 28px; }
.verdict { font-weight: 600; } .fits { color: #1a7f37; } .late { color: #cf222e; }
table { border-collapse: collapse; font-size: 13px; } td, th { padding: 3px 10px; text-align: right; }
td:first-child, th:first-child { text-align: left; } tr:nth-child(even) { background: #f6f8fa; }
svg text { font-size: 12px; fill: #1b1f24; } .axis { stroke: #8c959f; } .grid { stroke: #d0d7de; }
.precopy { fill: #0969da; } .paging { fill: #54aeff; } .stall { fill: #cf222e; } .config { fill: #8c959f; }
.window { stroke: #cf222e; stroke-dasharray: 6 4; stroke-width: 2; } .note { fill: #57606a; }
"""


def _seconds(value: Any) -> Optional[float]:
    """A time from the document: a finite number of seconds, not negative, or None."""
    number = finite_or_none(value)
    return number if number is not None and number >= 0 else None


def _dicts(value: Any) -> list[dict[str, Any]]:
    """The dicts of a list from the document; anything else reads as none."""
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _label(name: str) -> str:
    return name if len(name) <= _MAX_LABEL_CHARS else name[: _MAX_LABEL_CHARS - 1] + "\u2026"


def _tick_step(span_s: float) -> float:
    for step in _TICK_STEPS_S:
        if span_s / step <= _TARGET_TICKS:
            return float(step)
    return 86400.0 * math.ceil(span_s / 86400 / _TARGET_TICKS)


def _axis_end(doc: dict[str, Any], rows: list[dict[str, Any]]) -> float:
    times = [_seconds(r.get("end_s")) for r in rows] + [_seconds(doc.get("window_s"))]
    return max([t for t in times if t is not None and t > 0], default=60.0) * 1.05


def _bar(row: dict[str, Any], y: float, x_of: Any, span: float) -> str:
    """One partition's bar: pre-copy, then demand paging; red to the edge when it never ends."""
    start = _seconds(row.get("start_s"))
    end = _seconds(row.get("end_s"))
    name = _e(row.get("name", "?"))
    if row.get("kind") != "active":
        what = "configuration only" if row.get("kind") == "inactive" else f"blocked: {row.get('state')}"
        return (f'<rect class="config" x="{x_of(0):.1f}" y="{y:.1f}" width="4" height="{_BAR_HEIGHT}"><title>'
                f'{name}: {_e(what)}</title></rect><text class="note" x="{x_of(0) + 8:.1f}" y="{y + 11:.1f}">'
                f'{_e(what)}</text>')
    if start is None:
        return f'<text class="note" x="{x_of(0):.1f}" y="{y + 11:.1f}">never starts: every slot is held</text>'
    if end is None:
        return (f'<rect class="stall" x="{x_of(start):.1f}" y="{y:.1f}" width="{x_of(span) - x_of(start):.1f}" '
                f'height="{_BAR_HEIGHT}"><title>{name}: never converges while sharing</title></rect>'
                f'<text x="{x_of(start) + 6:.1f}" y="{y + 11:.1f}" fill="#ffffff" style="fill:#ffffff">'
                "never converges while sharing</text>")
    paging = _seconds(row.get("demand_paging_seconds")) or 0.0
    switch = max(start, end - paging)
    tip = f"{name}: {format_duration(start)} to {format_duration(end)}, {row.get('passes')} passes"
    return (f'<rect class="precopy" x="{x_of(start):.1f}" y="{y:.1f}" width="{max(x_of(switch) - x_of(start), 1):.1f}"'
            f' height="{_BAR_HEIGHT}"><title>{tip}</title></rect>'
            f'<rect class="paging" x="{x_of(switch):.1f}" y="{y:.1f}" width="{x_of(end) - x_of(switch):.1f}" '
            f'height="{_BAR_HEIGHT}"><title>{name}: demand paging</title></rect>')


def _tick_label(seconds: float) -> str:
    """Ticks fall on whole steps: 30s, 5m, 1h 30m."""
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s"
    hours, minutes = divmod(whole // 60, 60)
    if not hours:
        return f"{minutes}m"
    return f"{hours}h" + (f" {minutes:02d}m" if minutes else "")


def _axis(span: float, x_of: Any, bottom: float) -> list[str]:
    parts = [f'<line class="axis" x1="{_LABEL_WIDTH}" y1="{bottom}" x2="{x_of(span):.1f}" y2="{bottom}"/>']
    step = _tick_step(span)
    tick = 0.0
    while tick <= span:
        x = x_of(tick)
        parts.append(f'<line class="grid" x1="{x:.1f}" y1="{_TOP - 6}" x2="{x:.1f}" y2="{bottom}"/>'
                     f'<text x="{x:.1f}" y="{bottom + 16}" text-anchor="middle">{_tick_label(tick)}</text>')
        tick += step
    return parts


def _chart(doc: dict[str, Any], plan: dict[str, Any]) -> str:
    rows = _dicts(plan.get("partitions"))
    rows.sort(key=lambda r: (_seconds(r.get("start_s")) is None, _seconds(r.get("start_s")) or 0.0))
    span = _axis_end(doc, rows)
    bottom = _TOP + len(rows) * _ROW_HEIGHT + 4
    scale = (_WIDTH - _LABEL_WIDTH - _RIGHT_MARGIN) / span

    def x_of(seconds: float) -> float:
        return _LABEL_WIDTH + seconds * scale

    parts = _axis(span, x_of, bottom)
    for number, row in enumerate(rows):
        y = _TOP + number * _ROW_HEIGHT
        full = str(row.get("name", "?"))
        parts.append(f'<text x="{_LABEL_WIDTH - 8}" y="{y + 11}" text-anchor="end"><title>{_e(full)}</title>'
                     f'{_e(_label(full))}</text>' + _bar(row, y, x_of, span))
    window = _seconds(doc.get("window_s"))
    if window is not None:
        # The label goes left of the line: the axis ends just past the window when the plan fits it.
        parts.append(f'<line class="window" x1="{x_of(window):.1f}" y1="{_TOP - 12}" x2="{x_of(window):.1f}" '
                     f'y2="{bottom}"/><text x="{x_of(window) - 4:.1f}" y="{_TOP - 14}" text-anchor="end">window '
                     f'{_e(format_duration(window))}</text>')
    height = bottom + 28
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{_WIDTH}" height="{height}" '
            f'viewBox="0 0 {_WIDTH} {height}" role="img" aria-label="evacuation timeline">{"".join(parts)}</svg>')


def _summary(doc: dict[str, Any], plan: dict[str, Any]) -> str:
    total = _seconds(plan.get("total_seconds"))
    window = _seconds(doc.get("window_s"))
    fits = doc.get("fits_window")
    took = f"takes {format_duration(total)}" if total is not None else "never finishes"
    verdict = took if window is None else f"{took}: " + (
        "fits" if fits else "does NOT fit") + f" the window of {format_duration(window)}"
    css = "fits" if fits or (fits is None and doc.get("finishes")) else "late"
    bottleneck = doc.get("bottleneck") if isinstance(doc.get("bottleneck"), dict) else {}
    lower = doc.get("lower_bound_seconds")
    pairs = [str(p) for p in plan.get("pairs_used") or []] if isinstance(plan.get("pairs_used"), list) else []
    items = [
        f'<p class="verdict {css}">The evacuation {_e(verdict)}</p>',
        f"<p>Bottleneck ({_e(bottleneck.get('kind', '?'))}): {_e(bottleneck.get('detail', ''))}</p>",
        f"<p>No evacuation over these pairs can be faster than {_e(shown(format_duration, lower))} (all memory "
        f"over all pairs at once). {_e(plan.get('slots', '?'))} migrate at once over {_e(', '.join(pairs))} at "
        f"{_e(shown(format_rate_bps, plan.get('share_bps')))} each, in the order listed.</p>",
    ]
    suggestions = _dicts(doc.get("suggestions"))
    if suggestions:
        items.append("<h2>What would finish sooner</h2><ul>" + "".join(
            f"<li>{_e(s.get('what'))}: {_e(shown(format_duration, s.get('total_seconds')))}"
            + (" (fits)" if s.get("fits_window") else "") + (f" <small>({_e(s['note'])})</small>" if s.get("note")
                                                              else "") + "</li>" for s in suggestions) + "</ul>")
    return "".join(items)


def _end(row: dict[str, Any]) -> str:
    end = _seconds(row.get("end_s"))
    if end is not None:
        return format_duration(end)
    return "never" if row.get("kind") == "active" else "-"


def _table(plan: dict[str, Any]) -> str:
    head = "<tr><th>partition</th><th>memory</th><th>start</th><th>end</th><th>passes</th><th>converges</th></tr>"
    body = []
    for row in _dicts(plan.get("partitions")):
        converges = "yes" if row.get("converges") else "NO"
        body.append(f"<tr><td>{_e(row.get('name', '?'))}</td><td>{_e(shown(format_bytes, row.get('memory_bytes')))}"
                    f"</td><td>{_e(shown(format_duration, row.get('start_s')))}</td>"
                    f"<td>{_e(_end(row))}</td><td>{_e(row.get('passes', '-'))}</td>"
                    f"<td>{converges}</td></tr>")
    return f"<table>{head}{''.join(body)}</table>"


def render_timeline(doc: dict[str, Any], title: Optional[str] = None) -> str:
    """The page for one evacuation assessment (the dict ``evacuation.assess`` returns)."""
    plan = doc.get("plan") if isinstance(doc.get("plan"), dict) else {}
    heading = title or "Evacuation plan"
    sections = [f"<h1>{_e(heading)}</h1>", _summary(doc, plan), _chart(doc, plan), _table(plan)]
    soonest = doc.get("soonest")
    if isinstance(soonest, dict):
        sections += [f"<h2>Sooner: {_e(soonest.get('order_name', 'another order'))}, "
                     f"{_e(shown(format_duration, soonest.get('total_seconds')))}</h2>", _chart(doc, soonest)]
    return ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{_e(heading)}</title><style>{_STYLE}</style></head><body>{''.join(sections)}"
            f"<p class=\"note\">lpmbench {_e(__version__)}: bars are pre-copy (dark) then demand paging (light); "
            "red never converges while sharing.</p></body></html>")


def write_timeline(doc: dict[str, Any], path: str, title: Optional[str] = None) -> None:
    """Write the page beside ``path`` and rename it into place, so a failed write leaves no half page."""
    temporary = f"{path}.{os.getpid()}.tmp"
    try:
        with open(temporary, "w", encoding="utf-8") as handle:
            handle.write(render_timeline(doc, title))
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
