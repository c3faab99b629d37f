"""Line charts as inline SVG, drawn here: no library, no script, a few kilobytes per chart.

The HTML report draws goodput, RTT and retransmits over time with this, so the page opens offline, stays
small when a fleet report embeds many of them, and needs nothing beyond lpmbench. Hovering a line or a point
shows its name and value (SVG ``<title>``), the part of an interactive chart an admin uses.
Every text is escaped: stream ids and names come from results, which come from files and remote agents.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass
from typing import Callable, Optional

WIDTH, HEIGHT = 960, 300
LEFT, RIGHT, TOP, BOTTOM = 96, 170, 34, 44  # room for the y labels, the legend, the title and the x axis
MAX_POINTS = 300  # per series: longer runs are averaged into this many points (a day at 1 s is 86400)
MAX_MARKERS = 300  # hover points of the emphasised series; beyond this the line alone
MAX_LEGEND = 10  # legend entries; more streams are summarised in one entry
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf")
Point = tuple[float, Optional[float]]


@dataclass(frozen=True)
class Series:
    """One line: ``points`` are (seconds, value or None); None leaves a gap. ``emphasis`` draws it thick, black,
    with hover points (the total or the mean)."""

    name: str
    points: list[Point]
    emphasis: bool = False
    dashed: bool = False
    color: str = ""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _nice_step(span: float, ticks: int) -> float:
    """A step of 1, 2 or 5 times a power of ten giving about ``ticks`` intervals over ``span``."""
    raw = span / max(ticks, 1)
    power = 10 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= raw)


def _ticks(top: float, ticks: int = 5) -> list[float]:
    """Ticks from zero to the first one at or above ``top``, so the highest value sits under a labelled line."""
    step = _nice_step(top, ticks)
    return [i * step for i in range(int(math.ceil(top / step - 1e-9)) + 1)]


def _averaged(points: list[Point]) -> list[Point]:
    """At most MAX_POINTS points: consecutive points averaged in buckets (gaps stay gaps)."""
    if len(points) <= MAX_POINTS:
        return points
    size = math.ceil(len(points) / MAX_POINTS)
    out: list[Point] = []
    for start in range(0, len(points), size):
        bucket = points[start:start + size]
        values = [v for _, v in bucket if v is not None]
        out.append((bucket[-1][0], sum(values) / len(values) if values else None))
    return out


def _path(points: list[Point], x_of: Callable[[float], float], y_of: Callable[[float], float]) -> str:
    """An SVG path through the points, lifting the pen over a gap."""
    parts, pen_down = [], False
    for x, y in points:
        if y is None:
            pen_down = False
            continue
        parts.append(f"{'L' if pen_down else 'M'}{x_of(x):.0f} {y_of(y):.1f}")  # a pixel is fine enough in x
        pen_down = True
    return " ".join(parts)


class _Frame:
    """The plot area and its scales for one chart."""

    def __init__(self, x_max: float, y_max: float) -> None:
        self.x_ticks = _ticks(x_max, 8)
        self.y_ticks = _ticks(y_max, 5)
        self.x_max = self.x_ticks[-1]
        self.y_max = self.y_ticks[-1]
        self.bottom = HEIGHT - BOTTOM

    def x(self, seconds: float) -> float:
        return LEFT + seconds / self.x_max * (WIDTH - LEFT - RIGHT)

    def y(self, value: float) -> float:
        return self.bottom - value / self.y_max * (self.bottom - TOP)


def _axes(frame: _Frame, y_format: Callable[[float], str], x_label: str) -> list[str]:
    parts = []
    for value in frame.y_ticks:
        y = frame.y(value)
        parts.append(f'<line class="grid" x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}"/>'
                     f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{_e(y_format(value))}</text>')
    for seconds in frame.x_ticks:
        x = frame.x(seconds)
        parts.append(f'<line class="axis" x1="{x:.1f}" y1="{frame.bottom}" x2="{x:.1f}" y2="{frame.bottom + 4}"/>'
                     f'<text x="{x:.1f}" y="{frame.bottom + 17}" text-anchor="middle">{seconds:g}</text>')
    parts.append(f'<line class="axis" x1="{LEFT}" y1="{frame.bottom}" x2="{WIDTH - RIGHT}" y2="{frame.bottom}"/>'
                 f'<text x="{(LEFT + WIDTH - RIGHT) / 2:.0f}" y="{HEIGHT - 8}" text-anchor="middle">'
                 f'{_e(x_label)}</text>')
    return parts


def _style(series: Series, index: int) -> tuple[str, str]:
    color = series.color or ("#111111" if series.emphasis else PALETTE[index % len(PALETTE)])
    width = 2.5 if series.emphasis else 1.2
    dash = ' stroke-dasharray="6 4"' if series.dashed else ""
    return color, f'stroke="{color}" stroke-width="{width}"{dash}'


def _markers(series: Series, points: list[Point], frame: _Frame, color: str,
             y_format: Callable[[float], str]) -> str:
    if not series.emphasis or len(points) > MAX_MARKERS:
        return ""
    return "".join(f'<circle cx="{frame.x(x):.1f}" cy="{frame.y(y):.1f}" r="3" fill="{color}"><title>'
                   f'{_e(series.name)} at {x:g} s: {_e(y_format(y))}</title></circle>'
                   for x, y in points if y is not None)


def _legend(series: list[Series], colors: list[str]) -> list[str]:
    shown = [(s, c) for s, c in zip(series, colors) if s.emphasis] + \
            [(s, c) for s, c in zip(series, colors) if not s.emphasis]
    overflow = len(shown) > MAX_LEGEND
    entries = shown[:MAX_LEGEND - 1] if overflow else shown  # the last row then says how many more
    parts = []
    x = WIDTH - RIGHT + 14
    for row, (s, color) in enumerate(entries):
        y = TOP + 6 + row * 18
        width = 3 if s.emphasis else 2
        parts.append(f'<line x1="{x}" y1="{y}" x2="{x + 22}" y2="{y}" stroke="{color}" stroke-width="{width}"/>'
                     f'<text x="{x + 28}" y="{y + 4}">{_e(s.name[:20])}</text>')
    if overflow:
        y = TOP + 6 + (MAX_LEGEND - 1) * 18
        parts.append(f'<text x="{x}" y="{y + 4}">and {len(shown) - MAX_LEGEND + 1} more (thin lines)</text>')
    return parts


def line_chart(title: str, series: list[Series], y_format: Callable[[float], str],
               x_label: str = "seconds since the start of the run") -> str:
    """An SVG line chart of ``series`` against time, y from zero; ``y_format`` labels values with their unit.
    Returns "" when no series holds a value (the caller says what was not measured)."""
    series = [Series(s.name, _averaged(s.points), s.emphasis, s.dashed, s.color) for s in series]
    values = [v for s in series for _, v in s.points if v is not None]
    if not values:
        return ""
    x_max = max((x for s in series for x, _ in s.points), default=1.0) or 1.0
    frame = _Frame(x_max, max(values) or 1.0)
    parts = _axes(frame, y_format, x_label)
    # Thin lines first, the emphasised series on top of them.
    for index, s in sorted(enumerate(series), key=lambda item: item[1].emphasis):
        color, stroke = _style(s, index)
        parts.append(f'<path d="{_path(s.points, frame.x, frame.y)}" fill="none" {stroke}>'
                     f'<title>{_e(s.name)}</title></path>' + _markers(s, s.points, frame, color, y_format))
    colors = [_style(s, index)[0] for index, s in enumerate(series)]
    parts += _legend(series, colors)
    return (f'<figure class="chart"><svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
            f'width="100%" role="img" aria-label="{_e(title)}"><text class="title" x="{LEFT}" y="20">{_e(title)}'
            f'</text>{"".join(parts)}</svg></figure>')
