"""The inline SVG line charts of the HTML report (render/svgchart.py): scales, gaps, long runs, many streams."""

from __future__ import annotations

import re

from lpmbench.render import svgchart
from lpmbench.render.svgchart import Series, line_chart


def paths(svg: str) -> list[str]:
    return re.findall(r'<path d="([^"]*)"', svg)


def test_nothing_measured_draws_nothing():
    assert line_chart("t", [Series("a", [(1.0, None), (2.0, None)])], str) == ""
    assert line_chart("t", [], str) == ""


def test_axis_reaches_past_the_highest_value_with_labelled_ticks():
    svg = line_chart("t", [Series("a", [(1.0, 3.0), (2.0, 27.0)], emphasis=True)], lambda v: f"{v:g} u")
    labels = re.findall(r'text-anchor="end">([^<]*)</text>', svg)
    assert labels[0] == "0 u" and labels[-1] == "30 u"  # ticks 0, 10, 20, 30: 27 sits under a labelled line
    assert "a at 2 s: 27 u" in svg  # hover value of a point


def test_a_gap_lifts_the_pen():
    svg = line_chart("t", [Series("a", [(1.0, 1.0), (2.0, None), (3.0, 1.0), (4.0, 2.0)])], str)
    (d,) = paths(svg)
    assert d.count("M") == 2 and d.count("L") == 1


def test_a_long_run_is_averaged_to_a_bounded_number_of_points():
    points = [(float(t), 1.0 if t % 2 else 3.0) for t in range(86_400)]
    (d,) = paths(line_chart("t", [Series("a", points)], str))
    assert d.count("L") + d.count("M") == svgchart.MAX_POINTS
    # Averaging keeps the level: every averaged point is the mean of alternating 1 and 3.
    y_values = {float(y) for y in re.findall(r"[ML]\d+ ([\d.]+)", d)}
    assert len(y_values) <= 2


def test_many_streams_keep_a_short_legend():
    series = [Series(f"stream {i}", [(1.0, float(i)), (2.0, float(i))]) for i in range(64)]
    series.append(Series("all streams", [(1.0, 64.0), (2.0, 64.0)], emphasis=True))
    svg = line_chart("t", series, str)
    assert len(paths(svg)) == 65
    assert "and 56 more (thin lines)" in svg and ">all streams</text>" in svg


def test_names_are_escaped():
    svg = line_chart("<t>", [Series("<b>x</b>", [(1.0, 1.0)], emphasis=True)], str)
    assert "<b>" not in svg and "&lt;b&gt;x&lt;/b&gt;" in svg and 'aria-label="&lt;t&gt;"' in svg
