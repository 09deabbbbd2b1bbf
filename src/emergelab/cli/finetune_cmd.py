"""`emergelab finetune`: full or parameter-efficient fine-tuning of a local model on labelled data."""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Optional

import typer

from emergelab.cli.app import app, console, stdout
from emergelab.errors import UserError


def _split(value: Optional[str]) -> list[str]:
    return [p.strip() for p in (value or "").split(",") if p.strip()]


@app.command("finetune")
def finetune_cmd(
    model: Path = typer.Option(..., "--model", help="Local model directory (save_pretrained: config, safetensors, tokenizer), e.g. a checkpoint."),
    data: Path = typer.Option(..., "--data", help="Labelled data: CSV/TSV/JSONL (classify); word/TAG lines, a folder of them, or CoNLL (tag)."),
    out: Path = typer.Option(..., "--out", help="Output directory: the run (reloadable) or, for a sweep, runs/ and the summary."),
    task: str = typer.Option("classify", "--task", help="classify: one label per text; tag: one label per word."),
    method: str = typer.Option("lora", "--method", help="full, lora, adalora, ia3 or adapter; several separated by commas."),
    labels: str = typer.Option("all", "--labels", help="Labelled training examples: counts and/or 'all', e.g. 16,64,256,all."),
    seeds: int = typer.Option(1, "--seeds", min=1, help="Runs per label count, with seeds --seed, --seed+1, ..."),
    seed: int = typer.Option(0, "--seed", help="First seed (training subset, head initialisation, batch order)."),
    eval_data: Optional[Path] = typer.Option(None, "--eval-data", help="Separate evaluation data; default: a fixed held-out split of --data."),
    eval_size: Optional[int] = typer.Option(None, "--eval-size", min=1, help="Examples held out for evaluation (default 20 %, at most 1000)."),
    text_column: str = typer.Option("text", "--text-column", help="Column with the text (or token list, tag JSONL)."),
    label_column: str = typer.Option("label", "--label-column", help="Column with the label (or tag list); for CoNLL a column number."),
    epochs: float = typer.Option(3.0, "--epochs", help="Passes over the labelled examples (at least --min-steps steps)."),
    steps: Optional[int] = typer.Option(None, "--steps", min=1, help="Optimizer steps (overrides --epochs)."),
    min_steps: int = typer.Option(50, "--min-steps", min=0, help="Fewest steps when counting by epochs."),
    lr: Optional[float] = typer.Option(None, "--lr", help="Peak learning rate (default per method: full 1e-4, lora/adalora 1e-3, ia3 3e-3, adapter 1e-3)."),
    head_lr: Optional[float] = typer.Option(None, "--head-lr", help="Peak learning rate of the new task head (default: --lr)."),
    val_fraction: float = typer.Option(0.1, "--val-fraction", help="Early stopping (with --epochs): labels held out to validate; 0 = off."),
    patience: int = typer.Option(3, "--patience", min=1, help="Early stopping: validations (10 per run) without improvement before stopping."),
    batch_size: int = typer.Option(16, "--batch-size", min=1, help="Training examples per step."),
    max_length: int = typer.Option(128, "--max-length", min=2, help="Tokens per example (longer ones are truncated)."),
    lora_r: int = typer.Option(8, "--lora-r", min=1, help="LoRA rank."),
    adapter_kind: str = typer.Option("pfeiffer", "--adapter-kind", help="Bottleneck adapters: pfeiffer (after FFN) or houlsby (after attention and FFN)."),
    target_modules: Optional[str] = typer.Option(None, "--target-modules", help="Modules for lora/adalora/ia3, e.g. query,value (default: peft's for the model type)."),
    from_scratch: bool = typer.Option(False, "--from-scratch", help="Same architecture, random weights: what pretraining is worth."),
    name: Optional[str] = typer.Option(None, "--name", help="Data name in task names finetune/<name>/<method> (default: the data file's stem)."),
    save_weights: bool = typer.Option(False, "--save-weights", help="Sweeps: also save every run's weights (a single run always does)."),
    baselines: bool = typer.Option(True, "--baselines/--no-baselines", help="Score the baselines beside the runs: majority, frozen checkpoint + logistic regression, TF-IDF n-grams + logistic regression."),
    export: Optional[Path] = typer.Option(None, "--export", help="Single run: also save a plain transformers model (LoRA/AdaLoRA/IA3 merged in) here."),
    device: Optional[str] = typer.Option(None, "--device", help="cpu or cuda (default: cuda when available)."),
    trust_remote_code: bool = typer.Option(False, "--trust-remote-code", help="Run the model directory's own Python code (only if you trust it)."),
) -> None:
    """Fine-tune a model on labelled data: full, LoRA, AdaLoRA, IA3 or bottleneck adapters.

    One method, label count and seed: a single run saved in OUT (reload with
    [bold]emergelab.finetune.load_finetuned(OUT)[/bold]). Several: a sample-efficiency sweep, e.g.
    [bold]--labels 16,64,256,all --seeds 3[/bold], with a mean ± std summary.
    """
    from emergelab.finetune.model_dir import check_model_dir
    from emergelab.io import StudyLock

    methods, counts, config = _checked_plan(task, method, labels, dict(
        epochs=epochs, steps=steps, min_steps=min_steps, lr=lr, head_lr=head_lr, val_fraction=val_fraction,
        patience=patience, batch_size=batch_size, max_length=max_length,
        lora_r=lora_r, adapter_kind=adapter_kind, target_modules=tuple(_split(target_modules)) or None,
        from_scratch=from_scratch, trust_remote_code=trust_remote_code))
    seed_list = list(range(seed, seed + seeds))
    single = _is_single(methods, counts, seed_list, export)
    check_model_dir(model)  # a bad model directory fails before the data is read
    train, evald = _load_data(data, eval_data, task=task, text_column=text_column, label_column=label_column)
    _quiet()
    t0 = time.perf_counter()
    with StudyLock(out):  # a second process on the same --out stops at once instead of racing
        run = _single if single else _sweep
        run(model, train, evald, config=config, methods=methods, counts=counts, seeds=seed_list, eval_size=eval_size,
            out=out, name=name, device=device, export=export, save_weights=save_weights, baselines=baselines)
    console.print(f"wall time {time.perf_counter() - t0:.1f} s")


def _checked_plan(task: str, method: str, labels: str, config: dict):
    """The checks that need no model or data, first; then (methods, label counts, run config)."""
    from emergelab.corpus.labelled import TASKS

    if task not in TASKS:
        raise UserError(f"--task must be classify or tag, got {task!r}")
    return _plan(method, labels, config)


def _load_data(data: Path, eval_data: Optional[Path], *, task: str, text_column: str, label_column: str):
    """(the labelled training pool, the separate evaluation data or None)."""
    from emergelab.corpus.labelled import load_labelled

    train = load_labelled(data, task=task, text_column=text_column, label_column=label_column)
    evald = (load_labelled(eval_data, task=task, text_column=text_column, label_column=label_column, min_classes=1)
             if eval_data else None)
    return train, evald


def _is_single(methods: list[str], counts: list, seeds: list[int], export: Optional[Path]) -> bool:
    """Whether this is one run (which ``--export`` needs) rather than a sweep."""
    single = len(methods) == 1 and len(counts) == 1 and len(seeds) == 1
    if export is not None and not single:
        raise UserError("--export needs a single run (one --method, one --labels value, --seeds 1)")
    return single


def _plan(method: str, labels: str, settings: dict):
    """(methods, label counts, the first method's config); every method is checked before anything loads."""
    from dataclasses import replace

    from emergelab.finetune.config import FinetuneConfig
    from emergelab.finetune.sampling import parse_label_counts

    methods = _split(method)
    if not methods:
        raise UserError("--method needs at least one of full, lora, adalora, ia3, adapter")
    counts = parse_label_counts(labels)
    config = FinetuneConfig(method=methods[0], **settings)
    for m in methods[1:]:
        replace(config, method=m)  # refuse an unknown method before loading anything
    return methods, counts, config


def _quiet() -> None:
    import logging

    from transformers.utils import logging as hf_logging

    if logging.getLogger().level >= logging.WARNING:
        hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()  # our rich bar is the progress display


def _progress():
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TimeRemainingColumn(), console=console, transient=True)


def _fmt_params(n: int) -> str:
    return f"{n / 1e6:.2f}M" if n >= 1e6 else f"{n / 1e3:.1f}k" if n >= 1e3 else str(n)


def _single(model, train, evald, *, config, methods, counts, seeds, eval_size, out, name, device, export, save_weights,
            baselines) -> None:
    """One method, label count and seed: the run saved in ``out`` (``save_weights`` is implied)."""
    n_labels, seed = counts[0], seeds[0]
    from rich.table import Table

    from emergelab.finetune.baselines import BASELINES
    from emergelab.finetune.export import export_merged
    from emergelab.finetune.run import finetune

    with _progress() as progress:
        rec = finetune(model, train, config=config, n_labels=n_labels, seed=seed, eval_data=evald, eval_size=eval_size,
                       out_dir=out, data_name=name, device=device, progress=progress,
                       baselines=BASELINES if baselines else ())
    ev = rec["eval"]
    note = " (recorded earlier)" if rec.get("skipped") else ""
    table = Table(title=f"{rec['task_name']} on {rec['base']['rung']}{note}")
    for col in ("method", "labels", "accuracy", "macro-F1", "majority", "n eval", "train s"):
        table.add_column(col, justify="right", no_wrap=col == "method")
    table.add_row(rec["method"], str(rec["k_shot"]), f"{ev['accuracy']:.3f}±{ev['accuracy_stderr']:.3f}",
                  f"{ev['macro_f1']:.3f}", f"{ev['majority_baseline']:.3f}", str(ev["n"]), f"{rec['train']['seconds']:.1f}")
    for b, sc in (rec.get("baselines") or {}).items():  # the same labels and evaluation examples, no fine-tuning
        table.add_row(f"{b} (baseline)", str(rec["k_shot"]), f"{sc['accuracy']:.3f}±{sc['accuracy_stderr']:.3f}",
                      f"{sc['macro_f1']:.3f}", "", str(sc["n"]), "")
    stdout.print(table)
    t = rec["train"]
    stopped = (f" (early stopping on {t['validation_examples']} held-out labels: best at step {t['best_step']} "
               f"of {t['planned_steps']})" if t.get("validation_examples") else "")
    console.print(f"trainable parameters: {_fmt_params(rec['trainable_params'])} of {_fmt_params(rec['total_params'])} "
                  f"({100 * rec['trainable_fraction']:.2f} %); {t['steps']} steps{stopped}")
    if rec.get("adalora_ranks"):
        ranks = rec["adalora_ranks"]
        console.print(f"AdaLoRA final ranks (initial {rec['adalora_initial_rank']} each, total {sum(ranks.values())} "
                      f"of {rec['adalora_initial_rank'] * len(ranks)}): " + ", ".join(f"{k.split('.', 1)[-1]}={v}" for k, v in ranks.items()))
    console.print(f"saved the run to {out} (finetune.json, measurements.parquet, weights)")
    if export is not None:
        export_merged(out, export)
        console.print(f"exported a plain transformers model to {export}")


def _sweep(model, train, evald, *, config, methods, counts, seeds, eval_size, out, name, device, export, save_weights,
           baselines) -> None:
    """Every method × label count × seed (``export`` is refused before a sweep starts)."""
    from rich.table import Table

    from emergelab.finetune.baselines import BASELINES
    from emergelab.finetune.sweep import finetune_sweep, summarize

    seconds: dict[tuple[str, int], list[float]] = {}
    trainable: dict[str, str] = {}

    def on_run(rec: dict) -> None:
        ev = rec["eval"]
        seconds.setdefault((rec["task_name"], rec["k_shot"]), []).append(rec["train"]["seconds"])
        trainable[rec["task_name"]] = f"{_fmt_params(rec['trainable_params'])} ({100 * rec['trainable_fraction']:.2f} %)"
        tag = " (recorded)" if rec.get("skipped") else ""
        console.print(f"{rec['method']:>8} k={rec['k_shot']:<6} seed={rec['seed']}  accuracy {ev['accuracy']:.3f}  "
                      f"macro-F1 {ev['macro_f1']:.3f}  {rec['train']['seconds']:.1f} s{tag}")

    with _progress() as progress:
        rows = finetune_sweep(model, train, methods=methods, label_counts=counts, seeds=seeds, config=config,
                              eval_data=evald, eval_size=eval_size, out_dir=out, data_name=name,
                              save_weights=save_weights, device=device, progress=progress, on_run=on_run,
                              baselines=BASELINES if baselines else ())
    summary = summarize(rows)
    n_eval = int(summary["n_eval"].max())
    table = Table(title=f"sample efficiency on {summary['rung'].iloc[0]}: mean ± std over seeds, {n_eval} eval")
    for col in ("method", "labels", "seeds", "macro-F1", "accuracy", "majority", "s/run"):
        table.add_column(col, justify="right", no_wrap=col == "method")
    for r in summary.itertuples():  # each label count's runs, then its baselines
        secs = seconds.get((r.task, r.k_shot), [math.nan])
        baseline = r.source == "baseline"
        table.add_row(r.task.rsplit("/", 1)[-1] + (" (baseline)" if baseline else ""), str(r.k_shot), str(r.seeds),
                      _pm(r.macro_f1_mean, r.macro_f1_std), _pm(r.accuracy_mean, r.accuracy_std),
                      "" if baseline else f"{r.majority_baseline:.3f}", "" if baseline else f"{sum(secs) / len(secs):.1f}")
    stdout.print(table)
    for task, text in trainable.items():
        console.print(f"{task}: trainable parameters {text}")
    console.print(f"wrote {len(rows)} rows to {out / 'measurements.parquet'} and the summary to {out / 'summary.csv'}")


def _pm(mean: float, std: float) -> str:
    return f"{mean:.3f}" if math.isnan(std) else f"{mean:.3f}±{std:.3f}"
