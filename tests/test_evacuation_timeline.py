"""The evacuation timeline page (lpmbench.render.timeline): self-contained, escaped, tolerant, and drawn by a
real browser (Debian's chromium) when it is installed."""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
import tempfile
import zlib
from pathlib import Path

import pytest

from lpmbench.analysis.evacuation import EvacuationAssumptions, Migration, MspPair, assess
from lpmbench.render.timeline import render_timeline, write_timeline

GiB, MiB = 2**30, 2**20
HOSTILE = '<script>alert("x")</script> & "db"'


def frame(window_s: float = 1800.0) -> dict:
    migrations = [Migration("DB2 PROD 01", 384 * GiB, 250 * MiB), Migration(HOSTILE, 64 * GiB, 32 * MiB),
                  Migration("archive", 0, kind="inactive", state="Not Activated")]
    migrations += [Migration(f"app {i:02d}", (16 + 8 * i) * GiB, 32 * MiB) for i in range(17)]
    return assess(migrations, [MspPair("vios-a1->vios-b1", 9.41e9)], EvacuationAssumptions(), window_s)


def test_every_name_is_escaped_and_the_page_needs_nothing_from_outside():
    page = render_timeline(frame())
    assert "<script" not in page and HOSTILE not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &quot;db&quot;" in page
    # Nothing to fetch: the only URL is the SVG namespace, which browsers never load.
    assert re.findall(r"https?://[^\"' ]+", page) == ["http://www.w3.org/2000/svg"]
    assert len(page.encode()) < 40_000


def test_one_bar_per_partition_and_the_window_line():
    doc = frame()
    page = render_timeline(doc)
    assert page.count('class="precopy"') == 18  # 17 apps and the hostile one converge
    assert page.count('class="stall"') == 1 and "never converges while sharing" in page
    assert page.count('class="config"') == 1 and "configuration only" in page
    assert page.count('class="window"') == 1 and "window 30m 00s" in page
    assert "does NOT fit the window of 30m 00s" in page
    assert "move DB2 PROD 01 alone first" in page


def test_a_sooner_order_gets_its_own_chart():
    doc = frame()
    doc["soonest"] = {**doc["plan"], "order_name": "longest pre-copy first", "total_seconds": 60.0}
    assert render_timeline(doc).count("<svg") == 2


def test_missing_and_wrong_keys_read_as_missing():
    assert "never finishes" in render_timeline({})
    broken = {"plan": {"partitions": [{"name": "x", "kind": "active", "start_s": "soon", "end_s": None},
                                      "not a row"], "total_seconds": "?"}, "window_s": -5, "bottleneck": "?"}
    page = render_timeline(broken)
    assert "never starts" in page and "<svg" in page
    for odd in ({"plan": {"partitions": None, "pairs_used": "x"}, "suggestions": "y", "soonest": {"partitions": 5}},
                {"plan": "x"}, {"plan": {"partitions": [{"name": None, "kind": "inactive"}]}}):
        assert "<svg" in render_timeline(odd)


def test_written_atomically(tmp_path):
    target = tmp_path / "timeline.html"
    write_timeline(frame(), str(target))
    assert target.read_text().startswith("<!DOCTYPE html>")
    assert [p.name for p in tmp_path.iterdir()] == ["timeline.html"]
    with pytest.raises(OSError):
        write_timeline(frame(), str(tmp_path / "no such dir" / "x.html"))


def _png_pixels(path: Path) -> tuple[int, int, list[bytes]]:
    """Width, height and rows of RGB(A) pixels of a non-interlaced 8-bit PNG, as chromium writes it."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height, depth, colour = struct.unpack(">IIBB", data[16:26])
    assert depth == 8 and colour in (2, 6)
    channels = 4 if colour == 6 else 3
    chunks, at = [], 8
    while at < len(data):
        length, kind = struct.unpack(">I4s", data[at:at + 8])
        if kind == b"IDAT":
            chunks.append(data[at + 8:at + 8 + length])
        at += 12 + length
    raw = zlib.decompress(b"".join(chunks))
    stride, rows, previous = width * channels, [], bytes(width * channels)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for x in range(stride):
            left = line[x - channels] if x >= channels else 0
            up, corner = previous[x], previous[x - channels] if x >= channels else 0
            guess = left + up - corner
            paeth = min((abs(guess - left), 0, left), (abs(guess - up), 1, up), (abs(guess - corner), 2, corner))[2]
            line[x] = (line[x] + (0, left, up, (left + up) // 2, paeth)[kind]) & 0xFF
        rows.append(bytes(line))
        previous = bytes(line)
    return width, height, rows


def _count(rows: list[bytes], channels: int, rgb: tuple[int, int, int]) -> int:
    wanted = bytes(rgb)
    return sum(1 for row in rows for x in range(0, len(row), channels) if row[x:x + 3] == wanted)


CHROMIUM = "/usr/bin/chromium"


@pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason="/usr/bin/chromium is not installed (apt-get install "
                                                           "chromium)")
def test_headless_chromium_draws_the_timeline(tmp_path):
    page = tmp_path / "timeline.html"
    write_timeline(frame(), str(page))
    shot = tmp_path / "timeline.png"
    with tempfile.TemporaryDirectory() as profile:
        # Any fetch would go to a closed loopback port: the page must need none.
        flags = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", f"--user-data-dir={profile}",
                 "--proxy-server=127.0.0.1:9", "--window-size=1000,900", f"--screenshot={shot}"]
        subprocess.run([*flags, page.as_uri()], capture_output=True, timeout=60)
    width, height, rows = _png_pixels(shot)
    assert (width, height) == (1000, 900)
    channels = len(rows[0]) // width
    # The stalled partition's bar is red across the chart, the others are blue: the SVG was drawn.
    assert _count(rows, channels, (0xCF, 0x22, 0x2E)) > 5_000
    assert _count(rows, channels, (0x09, 0x69, 0xDA)) > 20_000
