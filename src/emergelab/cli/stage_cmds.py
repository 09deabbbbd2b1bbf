"""`emergelab prepare | train | evaluate | probe | finetune`: single stages of a study, through the runner."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer

from emergelab.cli.app import app, console
from emergelab.errors import UserError
from emergelab.layout import Layout
from emergelab.study import load_resolved, make_executor, read_spec, run_launched, run_stages, run_study

EXECUTOR_HELP = "local or ray (default: the study's executor; see `emergelab study --help`)."


def run_one(stage: str, study_dir: Path, executor: str | None = None) -> None:
    """Run one stage of an existing study directory (lock, spec, incremental) and say what it did."""
    if executor not in (None, "local", "ray"):
        raise UserError(f"--executor: {executor!r} is not an executor; allowed: local, ray")
    ex = make_executor(load_resolved(Layout(study_dir)), executor) if executor else None
    did = run_stages(study_dir, [stage], console=console, executor=ex)
    console.print(f"{stage}: {'nothing to do' if not did.get(stage) else f'{did[stage]} unit(s) done'}")


@app.command()
def prepare(
    spec_file: Optional[Path] = typer.Argument(None, metavar="[SPEC.yaml]", help="Study spec; default: the preset."),
    preset: Optional[str] = typer.Option(None, "--preset", "-p", help="Named preset: default, smoke, …"),
    out: Path = typer.Option(..., "--out", "-o", help="Study directory."),
    set_: list[str] = typer.Option([], "--set", "-s", help="Override: dotted.key=yaml-value."),
) -> None:
    """Build the study's data: corpus, tokenizer, task sets and latent labels under OUT/data."""
    spec = read_spec(spec_file, preset, set_)
    did = run_study(spec, out, ["prepare"], console=console)
    console.print(f"prepare: {'nothing to do' if not did['prepare'] else 'data written'} → {out / 'data'}")


@app.command()
def train(study_dir: Path = typer.Argument(..., help="A study directory made by `emergelab prepare` or `study`."),
          executor: Optional[str] = typer.Option(None, "--executor", help=EXECUTOR_HELP)) -> None:
    """Pretrain every rung of the ladder (resumes exactly where a killed run stopped).

    Runs unchanged under `accelerate launch` (DDP, one shard of every global batch per process).
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))  # set by accelerate launch / torchrun
    if world > 1:
        main = int(os.environ.get("RANK", "0")) == 0
        n = run_launched(study_dir, "train", console, main=main)
        if main:
            console.print(f"train: {'nothing to do' if not n else f'{n} unit(s) done'} on {world} processes")
        return
    run_one("train", study_dir, executor)
