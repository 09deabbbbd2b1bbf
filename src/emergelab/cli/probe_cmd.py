"""`emergelab probe`: the probe stage of a study, or linear probes of any local model on labelled data."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from emergelab.cli.app import app, console, stdout
from emergelab.cli.stage_cmds import EXECUTOR_HELP, run_one
from emergelab.errors import UserError


def _parse_layers(values: Optional[list[str]]) -> Optional[list[int]]:
    """``--layers 0,2,4`` or ``--layers 0 --layers 2``; negative counts from the last layer."""
    if not values:
        return None
    out = []
    for value in values:
        for part in value.split(","):
            part = part.strip()
            if not part:
                continue
            try:
                out.append(int(part))
            except ValueError:
                raise UserError(f"--layers takes integers such as 0,3,-1; got {part!r}") from None
    return out or None


@app.command("probe")
def probe(
    study_dir: Optional[Path] = typer.Argument(None, help="A study directory: run its probe stage (every checkpoint, latent and layer)."),
    model: Optional[Path] = typer.Option(None, "--model", help="A local Hugging Face model directory (BERT, GPT-2, Llama; safetensors)."),
    data: Optional[Path] = typer.Option(None, "--data", help="Labelled data: word/TAG lines, CoNLL or JSONL (tag); CSV, TSV or JSONL of texts and labels (classify)."),
    task: str = typer.Option("tag", "--task", help="tag: one label per word; classify: one label per text."),
    text_column: Optional[str] = typer.Option(None, "--text-column", help="Column holding the text (classify) or the token list (tag JSONL)."),
    label_column: Optional[str] = typer.Option(None, "--label-column", help="Column holding the label (classify) or the tag list (tag JSONL)."),
    max_examples: int = typer.Option(2000, "--max-examples", min=2, help="Sentences or texts probed (a seeded random subset)."),
    layers: Optional[list[str]] = typer.Option(None, "--layers", help="Hidden-state indices to probe, e.g. 0,3,-1 (0 = embeddings); default all."),
    pool_how: str = typer.Option("mean", "--pool", help="Pooling of tokens for classify: mean, first ([CLS]) or last."),
    max_length: int = typer.Option(128, "--max-length", min=2, help="Truncate each example to this many tokens."),
    name: Optional[str] = typer.Option(None, "--name", help="Task name in the measurement table (default: the data file's stem)."),
    seed: int = typer.Option(0, "--seed", help="Seeds the subset, the train/test split and the control task."),
    batch_size: int = typer.Option(32, "--batch-size", min=1, help="Examples per forward pass."),
    out: Optional[Path] = typer.Option(None, "--out", help="Directory for measurements.parquet (standalone mode)."),
    trust_remote_code: bool = typer.Option(False, "--trust-remote-code", help="Run the model directory's own Python code (only if you trust it)."),
    workers: int = typer.Option(2, "--workers", min=1, help="Layers probed at once, each in its own process with one thread (standalone mode)."),
    executor: Optional[str] = typer.Option(None, "--executor", help="With STUDY_DIR: " + EXECUTOR_HELP),
) -> None:
    """Linear probes with control tasks: a study's probe stage, or any local model on labelled data.

    [bold]emergelab probe STUDY_DIR[/bold] probes every checkpoint of a study.
    [bold]emergelab probe --model DIR --data FILE --out DIR[/bold] probes a model on word tags or text classes.
    """
    if study_dir is not None:
        if model is not None or data is not None:
            raise UserError("give either STUDY_DIR or --model/--data, not both")
        run_one("probe", study_dir, executor)
        return
    if model is None or data is None or out is None:
        raise UserError("give a STUDY_DIR, or --model DIR --data FILE --out DIR to probe a model on labelled data")
    if task not in ("tag", "classify"):
        raise UserError(f"--task must be tag or classify, got {task!r}")
    if pool_how not in ("mean", "first", "last"):
        raise UserError(f"--pool must be mean, first or last, got {pool_how!r}")
    if not data.exists():
        raise UserError(f"no labelled data at {data}; give a file (or, for tag, a folder of tagged files)")
    _standalone(model, data, task=task, text_column=text_column, label_column=label_column, max_examples=max_examples,
                layers=_parse_layers(layers), how=pool_how, max_length=max_length, name=name or data.stem, seed=seed,
                batch_size=batch_size, out=out, trust_remote_code=trust_remote_code, workers=workers)


def _standalone(model_dir: Path, data_path: Path, *, task: str, text_column, label_column, max_examples: int,
                layers, how: str, max_length: int, name: str, seed: int, batch_size: int, out: Path,
                trust_remote_code: bool = False, workers: int = 1) -> None:
    from rich.table import Table
    from transformers.utils import logging as hf_logging

    from emergelab.corpus.labelled import load_labelled
    from emergelab.measurements import write_part
    from emergelab.probe.standalone import probe_labelled

    hf_logging.disable_progress_bar()  # the rich status line is the progress display here
    kwargs = {k: v for k, v in (("text_column", text_column), ("label_column", label_column)) if v is not None}
    labelled = load_labelled(data_path, task=task, **kwargs)
    table = Table(title=f"linear probes: {name} on {model_dir.name}")
    for col in ("layer", "accuracy", "control accuracy", "selectivity", "majority baseline", "n test"):
        table.add_column(col, justify="right")

    def on_layer(layer: int, r: dict) -> None:
        table.add_row(str(layer), f"{r['accuracy']:.3f}", f"{r['control_accuracy']:.3f}", f"{r['selectivity']:+.3f}",
                      f"{r['majority_baseline']:.3f}", str(r["n_test"]))

    with console.status(f"probing {model_dir} on {data_path.name}"):
        rows, features = probe_labelled(model_dir, labelled, task=name, layers=layers, max_examples=max_examples,
                                        seed=seed, max_length=max_length, batch_size=batch_size, how=how,
                                        on_layer=on_layer, trust_remote_code=trust_remote_code, workers=workers)
    stdout.print(table)
    baselines = Table(title="baselines on the same test rows (no model layer)")
    for col in ("baseline", "accuracy", "n test"):
        baselines.add_column(col, justify="right")
    for r in rows:  # what needs no model (majority) or only the word itself (word lookup)
        if r["source"] == "baseline":
            baselines.add_row(r["metric"].removesuffix("_baseline").replace("_", " "), f"{r['value']:.3f}", str(r["n"]))
    stdout.print(baselines)
    n_classes = len(set(features.y.tolist()))
    note = f"; {features.n_dropped} words lost to truncation" if features.n_dropped else ""
    console.print(f"{len(features.y)} labelled {'words' if task == 'tag' else 'texts'}, {n_classes} classes{note}")
    path = out / "measurements.parquet"
    write_part(path, rows)
    console.print(f"wrote {len(rows)} rows to {path}")
