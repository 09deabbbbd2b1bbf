"""`emergelab report`: the study's self-contained HTML page."""
from __future__ import annotations

from pathlib import Path

import typer

from emergelab.cli.app import app, console


@app.command()
def report(
    study_dir: Path = typer.Argument(..., help="Study directory."),
    open_: bool = typer.Option(False, "--open", help="Open the report in a browser."),
) -> None:
    """Write STUDY_DIR/report/index.html from the measurements and explanations."""
    from emergelab.report.build import build_report

    path = build_report(study_dir)
    console.print(f"Report: {path}")
    if open_:
        import webbrowser

        if not webbrowser.open(path.resolve().as_uri()):
            console.print("No browser found; open the file above by hand.")
