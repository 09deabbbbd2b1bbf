"""The report in a real browser (Playwright driving the system Chromium): it loads with no console
errors and no network request, every figure is drawn, a grid cell's click opens its details, and the
first screen (1280×800) holds every capability's answer line."""
from __future__ import annotations

import re
import struct

import pytest

from emergelab.report.browser import VIEWPORT, check_page, find_chromium
from emergelab.report.build import build_report
from tests.test_report_build import make_study

pytestmark = pytest.mark.skipif(find_chromium() is None,
                                reason="no Chromium: `make browser` installs Debian's chromium (as root), or set $CHROMIUM")


def _png_size(path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", head[16:24])


def _assert_clean(res, html: str) -> None:
    assert res.console_errors == [] and res.blocked_requests == []
    assert res.figures == html.count("<div class='plot'") > 0 and res.undrawn == []
    assert res.broken_images == []
    assert res.cell_opened is not None and res.cell_opened in re.findall(r"data-panel='([^']+)'", html)
    assert res.answers_bottom and max(res.answers_bottom) <= VIEWPORT["height"]  # every answer line on the first screen


def test_smoke_report_in_chromium(smoke_study, tmp_path):
    page = smoke_study / "report" / "index.html"
    res = check_page(page, tmp_path / "report.png")
    _assert_clean(res, page.read_text())
    assert res.title.startswith("emergelab report") and res.figures >= 10
    assert _png_size(tmp_path / "report.png") == (VIEWPORT["width"], VIEWPORT["height"])


def test_mechanism_figures_render(tmp_path):
    page = build_report(make_study(tmp_path / "study"))
    res = check_page(page)
    _assert_clean(res, page.read_text())
    assert len(res.answers_bottom) == 2


def test_report_is_self_contained(smoke_study):
    html = (smoke_study / "report" / "index.html").read_text()
    outside = re.sub(r"<script>.*?</script>", "", html, flags=re.S)
    for needle in ("<script src", "<link", "http://", "https://", "@import", "url("):
        assert needle not in outside
    assert html.count("<script>") == 2  # plotly.js once, then the page's own
    plots = re.findall(r"<div class='plot'[^>]*>", outside)
    assert len(plots) >= 10 and all(re.search(r"role='img' aria-label='[^']{40,}'", tag) for tag in plots)
