"""Open the report in headless Chromium through Playwright: console errors, every figure drawn, a grid
cell's details opened by a click, and a screenshot of the first screen.

Used by the report's browser test and by ``emergelab report --screenshot``. Playwright's wheel ships
its driver; the browser is the system's Chromium (Debian's ``chromium``, or ``$CHROMIUM``) passed as
``executable_path`` — nothing is downloaded. Every request that is not the page's own file is blocked
and counted, so the check also proves the page needs no network.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from emergelab.errors import UserError

VIEWPORT = {"width": 1280, "height": 800}
#: a figure is drawn when Plotly has put at least one trace (or heatmap) into its SVG
DRAWN = """() => Array.from(document.querySelectorAll('.plot')).filter(el => {
  const svg = el.querySelector('svg.main-svg'); const r = svg && svg.getBoundingClientRect();
  return !(r && r.width > 0 && r.height > 0 && el.querySelectorAll('.cartesianlayer .trace, .heatmaplayer .hm, image').length > 0);
}).map(el => el.id)"""
FIRST_SCREEN = """() => Array.from(document.querySelectorAll('.answers li')).map(li => li.getBoundingClientRect().bottom)"""


def find_chromium() -> str | None:
    for name in (os.environ.get("CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


@dataclass
class PageCheck:
    title: str = ""
    console_errors: list[str] = field(default_factory=list)
    blocked_requests: list[str] = field(default_factory=list)
    figures: int = 0
    undrawn: list[str] = field(default_factory=list)  # ids of figures with an empty SVG
    images: int = 0
    broken_images: list[str] = field(default_factory=list)
    cell_opened: str | None = None  # the id of the grid cell panel a click opened (None: no grid)
    answers_bottom: list[float] = field(default_factory=list)  # each answer line's bottom edge (px) at load


def _first_cell(page, result: PageCheck) -> None:
    cell = page.query_selector("button.cell")
    if cell is None:
        return
    target = cell.get_attribute("data-panel")
    cell.click()
    page.wait_for_selector(f"#{target}:not([hidden]) .plot .main-svg", state="visible", timeout=20_000)
    if cell.get_attribute("aria-expanded") == "true":
        result.cell_opened = target


def check_page(html_path: str | Path, screenshot: str | Path | None = None, timeout_s: float = 120) -> PageCheck:
    """Load ``html_path``; screenshot the first screen (1280×800) before anything is clicked; click the
    first grid cell; then open everything and check every figure and image."""
    exe = find_chromium()
    if exe is None:
        raise UserError("no Chromium found; install Debian's `chromium` (apt-get install chromium, or `make browser`) or set $CHROMIUM")
    from playwright.sync_api import Error, sync_playwright

    if not Path(html_path).is_file():
        raise UserError(f"no report at {html_path}; run `emergelab report STUDY_DIR` first")
    url = Path(html_path).resolve().as_uri()
    result = PageCheck()
    with sync_playwright() as pw:
        try:
            browser = pw.chromium.launch(executable_path=exe, args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        except Error as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise UserError(f"Chromium at {exe} did not start ({first}); reinstall Debian's `chromium` or point $CHROMIUM at a working one") from None
        try:
            page = browser.new_page(viewport=VIEWPORT)
            page.set_default_timeout(timeout_s * 1000)
            page.on("console", lambda m: result.console_errors.append(m.text) if m.type in ("error", "assert") else None)
            page.on("pageerror", lambda e: result.console_errors.append(str(e)))

            def route(r):
                if r.request.url == url or r.request.url.startswith("data:"):
                    return r.continue_()
                result.blocked_requests.append(r.request.url)
                return r.abort()

            page.route("**/*", route)
            page.goto(url, wait_until="load")
            result.title = page.title()
            page.wait_for_timeout(300)
            result.answers_bottom = page.evaluate(FIRST_SCREEN)
            if screenshot is not None:
                Path(screenshot).parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(screenshot))
            _first_cell(page, result)
            result.figures = page.evaluate("() => window.emergelab.renderAll()")
            result.undrawn = page.evaluate(DRAWN)
            imgs = page.evaluate("() => Array.from(document.images).map(i => [i.alt || i.src.slice(0, 40), i.complete && i.naturalWidth > 0])")
            result.images = len(imgs)
            result.broken_images = [alt for alt, ok in imgs if not ok]
        finally:
            browser.close()
    return result
