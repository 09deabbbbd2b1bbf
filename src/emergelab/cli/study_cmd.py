"""`emergelab study`: the whole pipeline on one command."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer

from emergelab.cli.app import app, console, stdout
from emergelab.study import STAGES, dry_run, read_spec, run_study


@app.command()
def study(
    spec_file: Optional[Path] = typer.Argument(None, metavar="[SPEC.yaml]", help="Study spec; default: the preset."),
    preset: Optional[str] = typer.Option(None, "--preset", "-p", help="Named preset: default, smoke, …"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Study directory (default: studies/<name>)."),
    set_: list[str] = typer.Option([], "--set", "-s", help="Override: dotted.key=yaml-value (repeatable)."),
    stages: Optional[str] = typer.Option(None, "--stages", help="Comma-separated subset of stages to run."),
    executor: Optional[str] = typer.Option(None, "--executor", help="Who runs the units: local (processes on this "
                                           "machine) or ray (Ray tasks; RAY_ADDRESS or ray.address, else a local "
                                           "instance). Default: the spec's executor (local)."),
    dry_run_: bool = typer.Option(False, "--dry-run", help="Print what the study would cost (units, disk, memory, "
                                                            "time) and stop; nothing is written to OUT."),
    no_preflight: bool = typer.Option(False, "--no-preflight", help="Skip the cost estimate and its disk and memory "
                                                                    "refusals (the spec is still validated)."),
) -> None:
    """Run a study end to end: prepare → train → evaluate → probe → finetune → explain → report.

    The preflight prints the units of work, the disk and memory it needs and the estimated wall time
    first, and refuses a study that would not fit. Re-running computes only what is missing; a killed
    run resumes where it stopped.
    """
    spec = read_spec(spec_file, preset, set_ + ([f"executor={executor}"] if executor else []))
    root = out or Path("studies") / spec.name
    chosen = [s.strip() for s in stages.split(",")] if stages else list(STAGES)
    if dry_run_:
        for line in dry_run(spec, root, chosen).lines():
            stdout.print(line, markup=False, highlight=False)
        return
    t0 = time.perf_counter()
    console.print(f"[bold]emergelab[/] study [cyan]{spec.name}[/] (spec {spec.hash()}) → {root}")
    did = run_study(spec, root, chosen, console=console, preflight=not no_preflight)
    elapsed = time.perf_counter() - t0
    if not any(did.values()):
        console.print(f"Nothing to do: the study is complete ({elapsed:.1f} s).")
    else:
        done = ", ".join(f"{k} ({v})" for k, v in did.items() if v)
        console.print(f"Done in {elapsed:.1f} s: {done}.")
    if (root / "report" / "index.html").exists():
        console.print(f"Report: {root / 'report' / 'index.html'}")
