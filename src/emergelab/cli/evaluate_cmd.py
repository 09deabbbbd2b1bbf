"""`emergelab evaluate`: score capability tasks on a study's checkpoints, or on any local model."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from emergelab.cli.app import app, console, stdout
from emergelab.cli.stage_cmds import EXECUTOR_HELP, run_one
from emergelab.errors import UserError


def _k_list(text: str) -> list[int]:
    try:
        ks = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UserError(f"--k-shot {text!r} must be comma-separated counts, e.g. 0,1,4") from None
    if not ks or any(k < 0 for k in ks):
        raise UserError(f"--k-shot {text!r} must be comma-separated counts ≥ 0, e.g. 0,1,4")
    return ks


def print_table(df) -> None:
    """Metric rows as a rich table: task, k, metric, mean ± stderr, n, and the chance level."""
    from rich.table import Table

    from emergelab.measurements import CHANCE_PREFIX  # pandas: only when there is a table to print

    chance = {(r.task, r.metric[len(CHANCE_PREFIX):]): r.value for r in df[df.metric.str.startswith(CHANCE_PREFIX)].itertuples()}
    table = Table(show_header=True, header_style="bold")
    for col, just in [("task", "left"), ("k", "right"), ("metric", "left"), ("value", "right"), ("± stderr", "right"),
                      ("n", "right"), ("chance", "right")]:
        table.add_column(col, justify=just)
    rows = df[(df.step >= 0)].sort_values(["task", "k_shot", "metric"])
    for r in rows.itertuples():
        c = chance.get((r.task, r.metric))
        table.add_row(r.task, str(r.k_shot), r.metric, f"{r.value:.4f}", "" if r.stderr != r.stderr else f"{r.stderr:.4f}",
                      str(r.n), "" if c is None else f"{c:.4g}")
    stdout.print(table)


@app.command()
def evaluate(
    study_dir: Optional[Path] = typer.Argument(None, help="Study directory (evaluates its checkpoints); omit with --model."),
    model: Optional[Path] = typer.Option(None, "--model", "-m", help="A local Hugging Face model directory (causal or masked; safetensors)."),
    task: list[str] = typer.Option([], "--task", "-t", help="Task YAML in lm-eval's vocabulary, or a built-in task name (repeatable)."),
    k_shot: Optional[str] = typer.Option(None, "--k-shot", "-k", help="Comma-separated shot counts, e.g. 0,4 (default: the task's)."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Evaluate only the first N documents of each task."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Output directory for measurements.parquet (with --model)."),
    data: Optional[Path] = typer.Option(None, "--data", help="A prepared study's data/ directory, for world tasks (dataset_path: world)."),
    batch_size: int = typer.Option(32, "--batch-size", min=1, help="Requests per forward pass."),
    dtype: str = typer.Option("float32", "--dtype", help="float32, bfloat16 or auto (bfloat16 where the CPU has bf16 units; bf16 changes log-likelihoods by ~1e-2)."),
    threads: int = typer.Option(0, "--threads", min=0, help="torch CPU threads (0: torch's default)."),
    n_bootstrap: int = typer.Option(200, "--n-bootstrap", min=0, help="Bootstrap resamples for standard errors."),
    seed: int = typer.Option(0, "--seed", help="Seed of the bootstrap."),
    trust_remote_code: bool = typer.Option(False, "--trust-remote-code", help="Run the model directory's own Python code (only if you trust it)."),
    executor: Optional[str] = typer.Option(None, "--executor", help="With STUDY_DIR: " + EXECUTOR_HELP),
) -> None:
    """Evaluate a study (STUDY_DIR: every task × k-shot on every checkpoint not yet evaluated), or one
    model: `emergelab evaluate --model DIR --task TASK.yaml [--k-shot 0,4] [--limit N] --out DIR`."""
    if model is None:
        if study_dir is None:
            raise UserError("pass a STUDY_DIR, or --model DIR --task TASK.yaml --out DIR to evaluate one model")
        if task or out or k_shot or limit or data:
            raise UserError("--task/--out/--k-shot/--limit/--data go with --model; a study evaluates the tasks of its spec (eval.tasks, eval.task_files)")
        run_one("evaluate", study_dir, executor)
        return
    if study_dir is not None:
        raise UserError("pass either STUDY_DIR or --model, not both")
    if not task:
        raise UserError("--model needs at least one --task (a task YAML or a built-in task name)")
    if out is None:
        raise UserError("--model needs --out DIR for measurements.parquet")
    import torch

    from emergelab.evaluate.standalone import evaluate_model

    if threads:
        torch.set_num_threads(threads)
    ks = _k_list(k_shot) if k_shot else None

    def loaded(lm) -> None:
        console.print(f"[bold]{lm.name}[/]: {lm.kind} model, {lm.n_params():,} parameters, context {lm.max_length} tokens")

    with console.status("evaluating"):
        df, lm = evaluate_model(model, task, out, k_shot=ks, limit=limit, data_dir=data, batch_size=batch_size,
                                dtype=dtype, trust_remote_code=trust_remote_code, n_boot=n_bootstrap, seed=seed, on_model=loaded)
    for w in lm.warnings:
        console.print(f"[yellow]warning:[/] {w}")
    print_table(df)
    console.print(f"Measurements: {Path(out) / 'measurements.parquet'}")
