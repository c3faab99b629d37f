"""Screenshots of the HTML pages (a passing run, a failing run, a comparison) drawn by headless Chromium, as an
admin's browser draws them, with every fetch pointed at a closed port: the pages must need none.

The PNGs go to $LPMBENCH_SCREENSHOT_DIR when set (CI keeps them as artefacts), else to pytest's tmp_path.
Chromium is installed by .ci/run (apt-get install chromium); without a chromium binary these tests skip.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import struct
import subprocess
import tempfile
import zlib

import pytest
from report_fixtures import black_hole, load

from lpmbench.render import html as htmlreport

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
WIDTH, HEIGHT = 1280, 2000
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary on PATH (.ci/run installs it with apt)")


@pytest.fixture
def shots(tmp_path: pathlib.Path) -> pathlib.Path:
    where = pathlib.Path(os.environ.get("LPMBENCH_SCREENSHOT_DIR") or tmp_path)
    where.mkdir(parents=True, exist_ok=True)
    return where


def screenshot(page: pathlib.Path, png: pathlib.Path) -> None:
    with tempfile.TemporaryDirectory() as profile:
        flags = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={profile}", "--proxy-server=127.0.0.1:9", "--hide-scrollbars",
                 f"--window-size={WIDTH},{HEIGHT}", f"--screenshot={png}", page.as_uri()]
        done = subprocess.run(flags, capture_output=True, text=True, timeout=90)
    assert png.exists(), done.stderr[-2000:]


def png_rows(png: pathlib.Path) -> tuple[int, int, bytes]:
    """Width, height and the filtered scanlines (zlib-inflated IDAT) of an 8-bit RGB(A) PNG."""
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height, depth, colour = struct.unpack(">IIBB", data[16:26])
    assert depth == 8 and colour in (2, 6)
    chunks, offset = [], 8
    while offset < len(data):
        length, kind = struct.unpack(">I4s", data[offset:offset + 8])
        if kind == b"IDAT":
            chunks.append(data[offset + 8:offset + 8 + length])
        offset += 12 + length
    return width, height, zlib.decompress(b"".join(chunks))


def assert_drawn(png: pathlib.Path) -> None:
    """The right size and not blank: a blank page compresses to a few kB and its scanlines are nearly all zero
    after PNG's row filters (each row repeats the one above); charts, badges and text are not."""
    width, height, rows = png_rows(png)
    assert (width, height) == (WIDTH, HEIGHT)
    assert png.stat().st_size > 50_000
    assert sum(1 for byte in rows if byte) > 0.02 * len(rows)


def render_and_shoot(html: str, name: str, where: pathlib.Path) -> pathlib.Path:
    page, png = where / f"{name}.html", where / f"{name}.png"
    page.write_text(html, encoding="utf-8")
    screenshot(page, png)
    assert_drawn(png)
    return png


def test_pass_page(shots):
    render_and_shoot(htmlreport.render_html(load("local-10s-lpars.json")), "pass", shots)


def test_fail_page(shots):
    render_and_shoot(htmlreport.render_html(black_hole()), "fail", shots)


def test_compare_page(shots):
    before, after = black_hole(), load("local-10s-lpars.json")
    render_and_shoot(htmlreport.render_compare_html(before, after), "compare", shots)


def test_a_blank_page_is_told_apart(tmp_path):
    """The blankness test itself: an empty page must not pass it."""
    page = tmp_path / "blank.html"
    page.write_text("<!DOCTYPE html><html><body></body></html>", encoding="utf-8")
    png = tmp_path / "blank.png"
    screenshot(page, png)
    with pytest.raises(AssertionError):
        assert_drawn(png)
