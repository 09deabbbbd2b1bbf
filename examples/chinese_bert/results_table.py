"""Print the study's fine-tuning results as a Markdown table, every run beside its baselines.

    python examples/chinese_bert/results_table.py studies/chinese_bert [--metric accuracy]

One row per base model (rung and pretraining step, or random init); one column per label count, and the
label counts' baselines as rows below (TF-IDF and majority are the same for every base model; the frozen
checkpoint + logistic regression is per checkpoint).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd


def table(rows: pd.DataFrame, metric: str) -> str:
    d = rows[rows.metric == metric].copy()
    d["method"] = d.task.str.rsplit("/", n=1).str[-1]
    d["base"] = [f"{r} random init" if m.endswith("-scratch") else f"{r} step {s}"
                 for r, s, m in zip(d.rung, d.step, d.method)]
    d.loc[d.source == "baseline", "base"] = [
        f"{m} ({r} step {s})" if m == "frozen-logreg" else m
        for r, s, m in zip(d[d.source == "baseline"].rung, d[d.source == "baseline"].step, d[d.source == "baseline"].method)]
    wide = d.pivot_table(index=["source", "base"], columns="k_shot", values="value", aggfunc="mean")
    wide = wide.sort_index(level=0, ascending=False)  # fine-tuning first, then the baselines
    counts = list(wide.columns)
    lines = ["| | " + " | ".join(f"{k:,} labels" for k in counts) + " |", "|---|" + "---:|" * len(counts)]
    for (source, base), vals in wide.iterrows():
        name = f"baseline: {base}" if source == "baseline" else f"full fine-tuning, {base}"
        lines.append(f"| {name} | " + " | ".join("" if pd.isna(v) else f"{v:.3f}" for v in vals) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("study", type=Path)
    ap.add_argument("--metric", default="accuracy", choices=["accuracy", "macro_f1"])
    args = ap.parse_args()
    parts = sorted((args.study / "parts" / "finetune").rglob("*.parquet"))
    print(table(pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True), args.metric))


if __name__ == "__main__":
    main()
