"""HTML reports rendered from results saved by real runs: self-contained, with their charts, escaped, robust
to missing keys, and drawn by a real browser (Debian's chromium) when it is installed."""

from __future__ import annotations

import copy
import json
import os
import pathlib
import shutil
import struct
import subprocess
import sys
import tempfile
from html.parser import HTMLParser

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("plotly", reason="the report extra is not installed: pip install 'lpmbench[report]'")

from lpmbench.render import html as htmlreport  # noqa: E402

FIXTURES = pathlib.Path(__file__).parent / "fixtures" / "results"
CHART_IDS = ("chart-goodput_bps", "chart-retransmits", "chart-rtt_ms")


def load(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


class ExternalReferences(HTMLParser):
    """Collects every tag or attribute that would make a browser fetch something."""

    FETCHING_TAGS = {"link", "iframe", "object", "embed", "img", "video", "audio", "source", "base", "frame"}

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag in self.FETCHING_TAGS:
            self.found.append(f"<{tag}>")
        for name, value in attrs:
            if name in ("src", "href", "srcset", "data", "poster", "action") and not (value or "").startswith("#"):
                self.found.append(f"{tag} {name}={value}")


def assert_self_contained(page: str) -> None:
    parser = ExternalReferences()
    parser.feed(page)
    assert parser.found == []
    lowered = page.lower()
    assert "@import" not in lowered and "url(http" not in lowered
    assert lowered.count("* plotly.js v") == 1  # the library is inline, exactly once


def plot_arguments(page: str, div_id: str) -> tuple[list, dict]:
    """The data and layout handed to Plotly.newPlot for one chart, parsed back from the page."""
    start = page.index(f'Plotly.newPlot(                        "{div_id}",')
    decoder = json.JSONDecoder()
    position = page.index("[", start)
    data, end = decoder.raw_decode(page, position)
    layout, _ = decoder.raw_decode(page, page.index("{", end))
    return data, layout


def test_real_run_page_is_self_contained_and_holds_three_charts():
    result = load("local-8-streams.json")
    page = htmlreport.render_html(result)
    assert_self_contained(page)
    assert page.count("Plotly.newPlot(") == 3
    goodput, layout = plot_arguments(page, "chart-goodput_bps")
    assert [trace["name"] for trace in goodput] == [f"stream {i}" for i in range(8)] + ["total"]
    assert goodput[-1]["y"] == [i["goodput_bps"] for i in result["intervals"]]
    assert goodput[-1]["x"] == [i["t"] for i in result["intervals"]]
    assert goodput[3]["y"] == [next(s["goodput_bps"] for s in i["streams"] if s["id"] == 3)
                               for i in result["intervals"]]
    assert "Goodput" in layout["title"]["text"]
    retransmits, _ = plot_arguments(page, "chart-retransmits")
    assert sum(retransmits[-1]["y"]) == sum(i["retransmits"] for i in result["intervals"])
    rtt, _ = plot_arguments(page, "chart-rtt_ms")
    assert rtt[-1]["name"] == "mean of streams" and rtt[-1]["y"] == [i["rtt_ms"] for i in result["intervals"]]


def test_verdict_causes_remedies_path_and_interfaces_are_shown():
    page = htmlreport.render_html(load("edited-jumbo-blackhole.json"))
    assert '<span class="badge fail">FAIL</span>' in page
    assert "a switch drops jumbo frames" in page  # the cause
    assert "enable jumbo frames (MTU 9000 or more) on every switch port" in page  # the remedy
    assert "<td>path MTU (probed end to end)</td><td>1500</td>" in page
    assert "<td>speed (Mb/s)</td><td>10000</td><td>1000</td>" in page
    assert "<td>flow control</td><td>rx on, tx on</td><td>rx off, tx off</td>" in page
    assert "<td>large_receive</td><td>on</td><td>unknown</td>" in page
    assert "Efficiency: <b>62.0%</b>" in page
    assert "<td>db01</td>" in page and "never (does not converge)" in page


def test_older_run_says_not_measured_for_what_it_lacks():
    page = htmlreport.render_html(load("local.json"))
    for label in ("Path MTU", "Efficiency", "Interface facts", "Partitions"):
        assert f"{label}: not measured" in page
    assert page.count("Plotly.newPlot(") == 3


HOSTILE = "<img src=x onerror=alert(1)>"


def test_text_from_results_is_escaped_everywhere():
    result = load("edited-jumbo-blackhole.json")
    result["sender"]["host"] = HOSTILE
    result["checks"][3]["detail"] = HOSTILE
    result["checks"][3]["remedy"] = "</script>" + HOSTILE
    result["interfaces"]["receiver"]["name"] = HOSTILE
    result["interfaces"]["receiver"][HOSTILE] = HOSTILE
    result["path"][HOSTILE] = 1
    result["lpm"][0]["name"] = HOSTILE
    result["streams"][0]["id"] = HOSTILE
    result["intervals"][0]["streams"][0]["id"] = HOSTILE
    result["error"] = HOSTILE
    page = htmlreport.render_html(result)
    assert "<img" not in page
    # The library and the three charts are the only scripts: nothing from the result closed or opened one.
    assert page.count("<script") == page.count("</script>") == 4
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert_self_contained(page)


def test_every_key_may_be_missing():
    full = load("edited-jumbo-blackhole.json")
    for key in full:
        partial = {k: v for k, v in full.items() if k != key}
        assert "<h1>" in htmlreport.render_html(partial), key
    assert "not measured" in htmlreport.render_html({})


def test_malformed_sections_do_not_break_the_page():
    result = load("edited-jumbo-blackhole.json")
    result.update(path=[1500], interfaces={"sender": 5, "receiver": None}, efficiency="high", lpm={"db01": 1},
                  streams=["x", {"id": 0}], checks=[None, {"status": 7}], intervals=[{"t": "1"}, 5])
    page = htmlreport.render_html(result)
    for label in ("Path MTU", "Efficiency", "Interface facts", "Partitions"):
        assert f"{label}: not measured" in page
    assert "Goodput per stream and in total: not measured" in page


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8)


@settings(max_examples=40, deadline=None)
@given(st.dictionaries(st.sampled_from(["path", "interfaces", "efficiency", "lpm", "streams", "intervals",
                                        "checks", "sender", "config", "goodput_bps", "verdict"]), JSON_VALUES))
def test_arbitrary_json_in_any_section_renders(overrides):
    page = htmlreport.render_html({**load("local.json"), **overrides})
    assert page.rstrip().endswith("</html>")


def test_compare_page_holds_both_runs():
    before, after = load("local.json"), load("local-8-streams.json")
    page = htmlreport.render_compare_html(before, after)
    assert_self_contained(page)
    goodput, _ = plot_arguments(page, "compare-goodput_bps")
    assert [t["name"] for t in goodput] == ["before", "after"]
    assert goodput[1]["y"] == [i["goodput_bps"] for i in after["intervals"]]
    assert "<td>goodput</td>" in page and "<td>path MTU</td>" in page
    assert "<tr class='info'><td>streams</td><td>4</td><td>8</td>" in page


def test_write_html_writes_the_page_and_leaves_no_temporary_file(tmp_path):
    target = tmp_path / "report.html"
    htmlreport.write_html(load("local.json"), str(target))
    assert target.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert os.listdir(tmp_path) == ["report.html"]
    with pytest.raises(FileNotFoundError):
        htmlreport.write_html(load("local.json"), str(tmp_path / "no-such-dir" / "r.html"))


def test_missing_extra_raises_with_the_install_hint():
    # A separate interpreter where importing plotly fails, as on a host without the extra.
    code = ("import sys; sys.modules['plotly'] = None\n"
            "from lpmbench.render import html as htmlreport\n"
            "for call in (htmlreport.check_extra, lambda: htmlreport.render_html({})):\n"
            "    try:\n        call()\n"
            "    except htmlreport.ReportExtraMissing as exc:\n        print(exc)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("pip install 'lpmbench[report]'") == 2


CHROMIUM = shutil.which("chromium")


def _png_size(path: pathlib.Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", header[16:24])


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)")
def test_headless_chromium_draws_the_charts(tmp_path):
    page = tmp_path / "report.html"
    htmlreport.write_html(load("edited-jumbo-blackhole.json"), str(page))
    shot = tmp_path / "report.png"
    with tempfile.TemporaryDirectory() as profile:
        # Any fetch would go to a closed loopback port: the page must need none.
        flags = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={profile}", "--proxy-server=127.0.0.1:9", "--virtual-time-budget=5000",
                 "--window-size=1280,2000"]
        dom = subprocess.run([*flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=60)
        subprocess.run([*flags, f"--screenshot={shot}", page.as_uri()], capture_output=True, timeout=60)
    # plotly.js marks each chart it drew with js-plotly-plot and draws into main-svg elements.
    for chart in CHART_IDS:
        assert f'id="{chart}" class="plotly-graph-div js-plotly-plot"' in dom.stdout
    assert dom.stdout.count('class="main-svg"') >= 3
    assert _png_size(shot) == (1280, 2000)
    assert shot.stat().st_size > 50_000  # a blank 1280x2000 page compresses to a few kB


def test_reports_survive_a_round_trip_through_copy():
    # render must not modify the result it is given (pair renders, then prints JSON of the same dict)
    result = load("edited-jumbo-blackhole.json")
    before = copy.deepcopy(result)
    htmlreport.render_html(result)
    htmlreport.render_compare_html(result, result)
    assert result == before
