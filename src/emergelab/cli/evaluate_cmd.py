"""`emergelab evaluate`: score capability tasks on every checkpoint of a study."""
from __future__ import annotations

from pathlib import Path

import typer

from emergelab.cli.app import app, console


@app.command()
def evaluate(study_dir: Path = typer.Argument(..., help="Study directory.")) -> None:
    """Evaluate every task × k-shot on every checkpoint that has not been evaluated yet."""
    from emergelab.study import run_stages

    did = run_stages(study_dir, ["evaluate"], console=console)
    console.print(f"evaluate: {did['evaluate']} checkpoint(s) evaluated")
