"""HTML reports rendered from results saved by real runs: self-contained and small, led by the headline, facts
in words with units (never a result key), inline SVG charts of the measured series, escaped, robust to missing
keys, and needing nothing beyond lpmbench."""

from __future__ import annotations

import copy
import os
import re
import subprocess
import sys
from html import unescape
from html.parser import HTMLParser

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from report_fixtures import black_hole, load

from lpmbench.analysis import headline
from lpmbench.analysis.units import format_rate_bps
from lpmbench.render import html as htmlreport

MAX_PAGE_BYTES = 1 << 20  # a fleet report embeds many pages: each 10 s run well under 1 MB


class PageText(HTMLParser):
    """What a reader sees (text outside <style>), and every tag or attribute that would fetch something."""

    FETCHING_TAGS = {"link", "iframe", "object", "embed", "img", "video", "audio", "source", "base", "frame", "script"}

    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []
        self.fetches: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self._in_style = tag == "style"
        if tag in self.FETCHING_TAGS:
            self.fetches.append(f"<{tag}>")
        for name, value in attrs:
            if name in ("src", "href", "srcset", "data", "poster", "action") and not (value or "").startswith("#"):
                self.fetches.append(f"{tag} {name}={value}")

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False if tag == "style" else self._in_style

    def handle_data(self, data: str) -> None:
        if not self._in_style:
            self.text.append(data)


def parsed(page: str) -> PageText:
    parser = PageText()
    parser.feed(page)
    return parser


def assert_self_contained(page: str) -> None:
    assert parsed(page).fetches == []
    lowered = page.lower()
    assert "@import" not in lowered and "url(" not in lowered and "<script" not in lowered


def result_keys(value: object) -> set[str]:
    """Every key of every object in a result, at any depth."""
    if isinstance(value, dict):
        return set(map(str, value)) | {k for v in value.values() for k in result_keys(v)}
    if isinstance(value, list):
        return {k for v in value for k in result_keys(v)}
    return set()


def check_texts(result: dict) -> list[str]:
    """Texts the checks wrote (detail, remedy, the headline made of them): judged with the checks, not here."""
    texts = [str(c.get(k, "")) for c in result.get("checks", []) for k in ("detail", "remedy")]
    head = headline.of(result)
    return texts + [e[k] for e in head["findings"] + head["notes"] for k in ("sentence", "fix")]


def labels_and_values(page: str, result: dict) -> str:
    """The page's text without what the checks wrote: the labels, units and facts the page itself chose."""
    text = " ".join(" ".join(parsed(page).text).split())
    for said in sorted(filter(str.strip, check_texts(result)), key=len, reverse=True):
        text = text.replace(" ".join(said.split()), " ")
    return text


def chart(page: str, title: str) -> str:
    """The SVG of the chart with this title."""
    match = re.search(r'<svg[^>]*aria-label="' + re.escape(title) + r'".*?</svg>', page, re.S)
    assert match, title
    return match.group(0)


def hover_values(svg: str, series: str) -> list[str]:
    """The hover texts of one series' points: 'NAME at T s: VALUE'."""
    return [unescape(t) for t in re.findall(r"<title>(" + re.escape(series) + r" at [^<]*)</title>", svg)]


def test_a_realistic_10_s_page_is_small_and_self_contained():
    page = htmlreport.render_html(load("local-10s-lpars.json"))
    assert_self_contained(page)
    assert len(page.encode()) < MAX_PAGE_BYTES
    assert len(page.encode()) < 100_000  # about 25 kB today; plotly made 4.8 MB


def test_an_hour_of_64_streams_stays_under_a_megabyte():
    result = load("local-10s-lpars.json")
    interval = result["intervals"][0]
    samples = [dict(interval["streams"][0], id=i) for i in range(64)]
    result["intervals"] = [dict(interval, t=float(t + 1), streams=samples) for t in range(3600)]
    result["streams"] = [dict(result["streams"][0], id=i) for i in range(64)]
    assert len(htmlreport.render_html(result).encode()) < MAX_PAGE_BYTES


def test_charts_draw_every_stream_and_the_measured_totals():
    result = load("local-10s-lpars.json")
    page = htmlreport.render_html(result)
    assert page.count("<svg") == 3
    goodput = chart(page, "Goodput per stream and in total, per interval")
    assert goodput.count("<path") == len(result["streams"]) + 1
    assert hover_values(goodput, "all streams") == [f"all streams at {i['t']:g} s: {format_rate_bps(i['goodput_bps'])}"
                                                    for i in result["intervals"]]
    retransmits = chart(page, "Retransmitted segments per interval")
    assert [v.split(": ")[1] for v in hover_values(retransmits, "all streams")] == [
        f"{i['retransmits']:g}" for i in result["intervals"]]
    rtt = chart(page, "Round-trip time per stream (smoothed, from TCP)")
    assert hover_values(rtt, "mean of streams")[0].endswith(f"{result['intervals'][0]['rtt_ms']:g} ms")


def test_the_page_leads_with_the_headline_of_a_failing_run():
    result = black_hole()
    page = htmlreport.render_html(result)
    text = " ".join(" ".join(parsed(page).text).split())
    network, outlook = text.index("Network FAIL"), text.index("LPM outlook FAIL")
    first = result["headline"]["findings"][0]
    assert first["check"] == "jumbo frames end to end"
    assert network < outlook < text.index(first["sentence"]) < text.index("Fix: " + first["fix"]) < text.index(
        "Key figures")
    assert "Only one MSP pair was tested" in text and text.index("NOTE") < text.index("Key figures")


def test_facts_read_in_words_with_units():
    page = htmlreport.render_html(black_hole())
    for row in ("<td>path MTU (largest packet that crosses end to end)</td><td>1500 bytes</td>",
                "<td>link speed</td><td>10 Gb/s</td><td>1 Gb/s</td>",
                "<td>flow control</td><td>receive off, transmit off</td><td>receive off, transmit off</td>",
                "<td>large_receive (receive offload)</td><td>on</td><td>off</td>",
                "<td>errors and drops during the run</td><td>receive errors 0, transmit errors 0, receive drops 0, "
                "transmit drops 0</td><td>receive errors 0, transmit errors 0, receive drops 310, transmit drops 0"
                "</td>",
                "<td>probe error</td><td>none</td>",
                "<dt>Data plane</dt><dd>C data plane, sending with send()</dd>"):
        assert row in page, row
    assert re.search(r"<p>Efficiency: <b>\d+\.\d%</b> of 9\d\d Mbit/s", page)
    assert "<td>db01</td>" in page and "never (does not converge)" in page


@pytest.mark.parametrize("make", [lambda: load("local-10s-lpars.json"), black_hole,
                                  lambda: load("edited-jumbo-blackhole.json")], ids=["pass", "fail", "older"])
def test_no_result_key_shows_raw(make):
    result = make()
    page = htmlreport.render_html(result)
    text = labels_and_values(page, result)
    # large_send and large_receive are the VIOS attribute names admins know these settings by; they are labelled.
    raw = {k for k in result_keys(result) if "_" in k} - {"large_send", "large_receive"}
    assert raw and not [key for key in raw if re.search(rf"\b{re.escape(key)}\b", text)]
    for words in ("send send", "busy us", " us ", "counters delta", "probe error: unknown", "None", "True"):
        assert words not in text, words


def test_older_run_says_not_measured_for_what_it_lacks():
    page = htmlreport.render_html(load("local.json"))
    for label in ("Path MTU", "Efficiency", "Interface facts", "Partitions"):
        assert f"{label}: not measured" in page
    assert page.count("<svg") == 3


HOSTILE = "<img src=x onerror=alert(1)>"


def test_text_from_results_is_escaped_everywhere():
    result = black_hole()
    result["sender"]["host"] = HOSTILE
    result["checks"][3]["detail"] = HOSTILE
    result["checks"][3]["remedy"] = "</svg></style>" + HOSTILE
    result["headline"]["findings"][0]["sentence"] = HOSTILE
    result["interfaces"]["receiver"]["name"] = HOSTILE
    result["interfaces"]["receiver"][HOSTILE] = HOSTILE
    result["path"][HOSTILE] = 1
    result["lpm"][0]["name"] = HOSTILE
    result["streams"][0]["id"] = HOSTILE
    result["intervals"][0]["streams"][0]["id"] = HOSTILE
    result["error"] = HOSTILE
    page = htmlreport.render_html(result)
    assert "<img" not in page and "<script" not in page
    assert page.count("<svg") == page.count("</svg>") == 3 and page.count("</style>") == 1
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert_self_contained(page)


def test_every_key_may_be_missing():
    full = black_hole()
    for key in full:
        partial = {k: v for k, v in full.items() if k != key}
        assert "<h1>" in htmlreport.render_html(partial), key
    assert "not measured" in htmlreport.render_html({})


def test_malformed_sections_do_not_break_the_page():
    result = black_hole()
    result.update(path=[1500], interfaces={"sender": 5, "receiver": None}, efficiency="high", lpm={"db01": 1},
                  streams=["x", {"id": 0}], checks=[None, {"status": 7}], intervals=[{"t": "1"}, 5],
                  headline={"findings": [1]}, pairs=[None, 3])
    page = htmlreport.render_html(result)
    for label in ("Path MTU", "Efficiency", "Interface facts", "Partitions"):
        assert f"{label}: not measured" in page
    assert "Goodput per stream and in total, per interval: not measured" in page


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8)


@settings(max_examples=40, deadline=None)
@given(st.dictionaries(st.sampled_from(["path", "interfaces", "efficiency", "lpm", "streams", "intervals", "pairs",
                                        "checks", "sender", "config", "goodput_bps", "verdict", "headline"]),
                       JSON_VALUES))
def test_arbitrary_json_in_any_section_renders(overrides):
    page = htmlreport.render_html({**load("local.json"), **overrides})
    assert page.rstrip().endswith("</html>")


def test_redundant_pairs_are_listed_with_their_sum():
    result = load("local-10s-lpars.json")
    second = {"sender": "msp-a2", "receiver": "msp-b2", "goodput_bps": 9.1e9, "retransmit_rate": 0.002,
              "verdict": "warn", "partial": False, "failed_checks": [{"name": "retransmit rate", "status": "warn"}]}
    result.update(pairs=[{"sender": "a", "receiver": "b", "goodput_bps": 1e9, "verdict": "pass"}, second],
                  aggregate_goodput_bps=10.1e9)
    page = htmlreport.render_html(result)
    assert "<td>msp-a2 -&gt; msp-b2</td><td>9.10 Gbit/s</td><td>0.200 %</td>" in page
    assert "<b>10.1 Gbit/s</b>" in page


def test_compare_page_flags_runs_that_are_not_comparable():
    before, after = load("local.json"), load("local-10s-lpars.json")
    page = htmlreport.render_compare_html(before, after)
    assert_self_contained(page)
    text = " ".join(" ".join(parsed(page).text).split())
    assert "These runs are not directly comparable:" in text
    assert "a different number of streams" not in text  # both ran 4 streams
    assert "different durations (2 s, then 10 s)" in text
    assert "<tr class='mismatch'><td>duration</td><td>2 s</td><td>10 s</td><td class='change'>not comparable" in page
    assert "started" not in re.sub(r"run \w+, started [^;.]*", "", text.split("Metrics")[0])  # no noise rows
    goodput = chart(page, "Goodput, all streams: before and after")
    assert len(hover_values(goodput, "after")) == len(after["intervals"])
    assert "<td>goodput</td>" in page and "<td>path MTU</td>" in page


def test_compare_page_of_comparable_runs_says_so():
    before = black_hole()
    page = htmlreport.render_compare_html(before, dict(before, run_id="again", started_at="later"))
    assert "The runs are comparable" in page and "not directly comparable" not in page


def test_write_html_writes_the_page_and_leaves_no_temporary_file(tmp_path):
    target = tmp_path / "report.html"
    htmlreport.write_html(load("local.json"), str(target))
    assert target.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert os.listdir(tmp_path) == ["report.html"]
    with pytest.raises(FileNotFoundError):
        htmlreport.write_html(load("local.json"), str(tmp_path / "no-such-dir" / "r.html"))


def test_the_report_needs_no_plotting_library(tmp_path):
    # A separate interpreter in which plotly cannot be imported, as on a VIOS with nothing but lpmbench.
    target = tmp_path / "r.html"
    code = ("import sys, json; sys.modules['plotly'] = None\n"
            "from lpmbench.render import html as htmlreport\n"
            f"htmlreport.write_html(json.load(open({str(load.__globals__['FIXTURES'] / 'local.json')!r})), "
            f"{str(target)!r})\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert target.read_text(encoding="utf-8").count("<svg") == 3


def test_reports_do_not_modify_the_result():
    # pair renders, then prints JSON of the same dict
    result = black_hole()
    before = copy.deepcopy(result)
    htmlreport.render_html(result)
    htmlreport.render_compare_html(result, result)
    assert result == before
