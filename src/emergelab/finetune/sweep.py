"""Sample-efficiency sweeps: every method x label count x seed, one row set each, and their summary.

Runs go to ``OUT/runs/<method>/n<k>/seed<s>/`` (``nall`` for every label); a run already recorded
with the same settings is skipped, so a killed sweep resumes. ``OUT/measurements.parquet`` is the
concatenation of the rows of every run in OUT (so sweeps of different methods, e.g. with different
learning rates, can share one OUT) and ``OUT/summary.csv`` summarises them.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Callable, Sequence

import pandas as pd

from emergelab.corpus.labelled import LabelledData
from emergelab.finetune.baselines import BASELINES
from emergelab.finetune.config import FinetuneConfig
from emergelab.finetune.model_dir import check_model_dir
from emergelab.finetune.run import ROWS, data_digest, data_name_of, prepare_splits, run_one, spec_digest
from emergelab.finetune.sampling import check_label_counts
from emergelab.io import atomic_write_text
from emergelab.measurements import combine_parts


def run_dir_for(out_dir: Path, config: FinetuneConfig, n_labels: int | None, seed: int) -> Path:
    method = config.method + ("-scratch" if config.from_scratch else "")
    return out_dir / "runs" / method / ("nall" if n_labels is None else f"n{n_labels}") / f"seed{seed}"


def finetune_sweep(
    model_dir: str | Path,
    data: LabelledData,
    *,
    methods: Sequence[str] = ("lora",),
    label_counts: Sequence[int | None] = (None,),
    seeds: Sequence[int] = (0,),
    config: FinetuneConfig | None = None,
    eval_data: LabelledData | None = None,
    eval_size: int | None = None,
    out_dir: str | Path | None = None,
    data_name: str | None = None,
    save_weights: bool = False,
    study: str = "",
    device: str | None = None,
    progress=None,
    on_run: Callable[[dict], None] | None = None,
    baselines: Sequence[str] = BASELINES,
) -> list[dict]:
    """Fine-tune ``model_dir`` for every method x label count (None = all) x seed; return measurement rows.

    ``config`` gives every other hyper-parameter (its ``method`` is replaced by each of ``methods``).
    ``on_run`` receives each run's record (``finetune.json`` content) as it finishes. ``baselines`` are
    scored once per label count and seed, with the first method's runs (they do not depend on the method).
    """
    config = config or FinetuneConfig()
    configs = [replace(config, method=m) for m in methods]  # validates every method name first
    base = check_model_dir(model_dir)
    splits = prepare_splits(data, eval_data=eval_data, eval_size=eval_size)
    check_label_counts(label_counts, splits.pool, held_out=splits.held_out)
    name = data_name or data_name_of(data)
    data_hash, eval_hash = data_digest(data), data_digest(eval_data) if eval_data else ""
    out = Path(out_dir) if out_dir else None
    rows: list[dict] = []
    baseline_cache: dict = {}  # what the baselines of this sweep's runs share (evaluation features, model-free scores)
    for m, cfg in enumerate(configs):
        for k in label_counts:
            for seed in seeds:
                spec = spec_digest(base, cfg, data_hash, eval_hash, splits.held_out, k, seed, name)
                rec = run_one(base, splits, config=cfg, seed=seed, n_labels=k, data_name=name,
                              run_dir=run_dir_for(out, cfg, k, seed) if out else None, save=save_weights,
                              spec_hash=spec, study=study, device=device, progress=progress,
                              baselines=baselines if m == 0 else (), baseline_cache=baseline_cache)
                rec.pop("model", None)
                rec.pop("tokenizer", None)
                rows += rec["rows"]
                if on_run is not None:
                    on_run(rec)
    if out is not None:
        everything = combine_parts(out / "runs", out / ROWS)  # this sweep's runs and any recorded earlier in OUT
        atomic_write_text(out / "summary.csv", summarize(everything).to_csv(index=False))
    return rows


def summarize(rows: Sequence[dict] | pd.DataFrame) -> pd.DataFrame:
    """Mean and sample standard deviation over seeds of accuracy and macro-F1, per task and label count.

    Fine-tuning runs (``source="finetune"``) and their baselines (``source="baseline"``) both get a row;
    a label count's baselines follow its runs. ``majority_baseline`` is NaN on baseline rows.
    """
    df = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
    if "source" not in df:
        df = df.assign(source="finetune")
    df = df[df["source"].isin(["finetune", "baseline"])]
    keys = ["source", "task", "rung", "k_shot"]
    wide = df.pivot_table(index=[*keys, "seed"], columns="metric", values="value").reset_index()
    if "majority_baseline" not in wide:
        wide["majority_baseline"] = float("nan")
    n_eval = df.groupby(keys)["n"].max().rename("n_eval")
    agg = wide.groupby(keys).agg(
        seeds=("seed", "nunique"),
        accuracy_mean=("accuracy", "mean"), accuracy_std=("accuracy", "std"),
        macro_f1_mean=("macro_f1", "mean"), macro_f1_std=("macro_f1", "std"),
        majority_baseline=("majority_baseline", "mean"),
    )
    out = agg.join(n_eval).reset_index()
    out["_baseline"] = out["source"] == "baseline"
    out = out.sort_values(["k_shot", "_baseline", "task"], kind="stable").drop(columns="_baseline")
    return out.reset_index(drop=True)
