"""`emergelab report`: the study's self-contained HTML page."""
from __future__ import annotations

from pathlib import Path

import typer

from emergelab.cli.app import app, console
from emergelab.layout import Layout
from emergelab.study import run_stages


@app.command()
def report(
    study_dir: Path = typer.Argument(..., help="Study directory."),
    open_: bool = typer.Option(False, "--open", help="Open the report in a browser."),
    screenshot: Path = typer.Option(None, "--screenshot", help="Also check the page in headless Chromium and save a PNG of its first screen (1280×800)."),
) -> None:
    """Write STUDY_DIR/report/index.html from the measurements and explanations.

    On a study directory this is the study's report stage (under its lock; rebuilt only when the
    measurements or explanations changed); a directory holding only measurements.parquet works too."""
    lay = Layout(study_dir)
    if lay.spec.exists():
        run_stages(study_dir, ["report"], console=console)
        path = lay.report
    else:
        from emergelab.report.build import build_report, require_study  # pandas and plotly: only when drawing

        require_study(study_dir)
        path = build_report(study_dir)
    console.print(f"Report: {path}")
    if screenshot is not None:
        from emergelab.report.browser import check_page

        res = check_page(path, screenshot)
        console.print(f"Screenshot: {screenshot} ({res.figures} figures, {len(res.undrawn)} not drawn, "
                      f"{len(res.console_errors)} console errors, {len(res.blocked_requests)} network requests blocked)")
    if open_:
        import webbrowser

        if not webbrowser.open(path.resolve().as_uri()):
            console.print("No browser found; open the file above by hand.")
