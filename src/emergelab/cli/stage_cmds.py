"""`emergelab prepare | train`: single stages of an existing (or new) study directory."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from emergelab.cli.app import app, console


def _run(stage: str, study_dir: Path) -> None:
    from emergelab.study import run_stages

    did = run_stages(study_dir, [stage], console=console)
    console.print(f"{stage}: {'nothing to do' if not did.get(stage) else f'{did[stage]} unit(s) done'}")


@app.command()
def prepare(
    spec_file: Optional[Path] = typer.Argument(None, metavar="[SPEC.yaml]"),
    preset: Optional[str] = typer.Option(None, "--preset", "-p"),
    out: Path = typer.Option(..., "--out", "-o", help="Study directory."),
    set_: list[str] = typer.Option([], "--set", "-s", help="Override: dotted.key=yaml-value."),
) -> None:
    """Build the study's data: corpus, tokenizer, task sets and latent labels under OUT/data."""
    from emergelab.spec import load_spec
    from emergelab.study import run_study

    spec = load_spec(spec_file, preset, set_)
    did = run_study(spec, out, ["prepare"], console=console)
    console.print(f"prepare: {'nothing to do' if not did['prepare'] else 'data written'} → {out / 'data'}")


@app.command()
def train(study_dir: Path = typer.Argument(..., help="A study directory made by `emergelab prepare` or `study`.")) -> None:
    """Pretrain every rung of the ladder (resumes exactly where a killed run stopped).

    Runs unchanged under `accelerate launch` (DDP, one shard of every global batch per process).
    """
    from emergelab.train.launch import is_main_process, launched_processes, train_launched

    if launched_processes() > 1:
        n = train_launched(study_dir, console)
        if is_main_process():
            console.print(f"train: {'nothing to do' if not n else f'{n} unit(s) done'} on {launched_processes()} processes")
        return
    _run("train", study_dir)
