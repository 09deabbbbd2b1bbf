"""The smoke study's report in a real browser: it loads with no console errors and every image decodes."""
from __future__ import annotations

import pytest

from emergelab.report.browser import check_page, find_chromium


@pytest.mark.skipif(find_chromium() is None, reason="Chromium is not installed (make test installs Debian's chromium where it can)")
def test_report_opens_cleanly_in_chromium(smoke_study, tmp_path):
    shot = tmp_path / "report.png"
    res = check_page(smoke_study / "report" / "index.html", shot)
    assert res.console_errors == []
    assert res.images >= 4 and res.broken_images == []
    assert res.title.startswith("emergelab report")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000


def test_report_is_self_contained(smoke_study):
    html = (smoke_study / "report" / "index.html").read_text()
    for needle in ("<script", "http://", "https://", "@import", "url("):
        assert needle not in html
    assert html.count("<img ") == html.count(" alt='")
    first_screen = html.split("id='the-study'")[0]
    assert "induction" in first_screen  # the answer comes first
