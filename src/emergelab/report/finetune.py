"""The report's fine-tuning section: sample-efficiency curves and what pretraining is worth.

Rows are ``source="finetune"`` with ``task = finetune/<data>/<method>`` (``-scratch``: the same
architecture from random weights), ``k_shot`` = labelled training examples and one ``seed`` per run
(see ``finetune.run``). For each data set the section shows, per rung, macro-F1 against labelled
examples for every method and starting checkpoint (random init dashed) beside the baselines
(``source="baseline"``: majority, frozen features + logistic regression, TF-IDF + logistic regression), the gain of the latest
checkpoint over random init, and a table of accuracy and macro-F1 with their spread over seeds.
"""
from __future__ import annotations

import html

import numpy as np
import pandas as pd

from emergelab.report import fmt
from emergelab.report import plot as P

SCRATCH = "random init"
MAX_PANELS = 6


def runs(df: pd.DataFrame) -> pd.DataFrame:
    """One row per run: data, method, base (``step N`` or random init), rung, k, seed and its metrics."""
    # baselines (source="baseline", task finetune/<data>/<majority|frozen-logreg|tfidf-logreg>) stand beside the
    # runs they were computed with, as methods of their own
    d = df[(df.source == "finetune") | ((df.source == "baseline") & df.task.str.startswith("finetune/"))]
    if d.empty:
        return pd.DataFrame()
    wide = d.pivot_table(index=["task", "rung", "n_params", "step", "k_shot", "seed"], columns="metric",
                         values="value").reset_index()
    parts = wide.task.str.split("/", n=2, expand=True)
    wide["data"] = parts[1]
    wide["scratch"] = parts[2].str.endswith("-scratch")
    wide["method"] = parts[2].str.removesuffix("-scratch")
    wide["base"] = np.where(wide.scratch, SCRATCH, "step " + wide.step.astype(str))
    return wide


def summary(w: pd.DataFrame) -> pd.DataFrame:
    """Mean and sample standard deviation over seeds, per data, rung, method, base and label count."""
    cols = [c for c in ("accuracy", "macro_f1", "majority_baseline") if c in w]
    g = w.groupby(["data", "rung", "n_params", "method", "scratch", "step", "base", "k_shot"])
    out = g[cols].agg(["mean", "std"])
    out.columns = [f"{a}_{b}" for a, b in out.columns]
    return out.join(g.seed.nunique().rename("seeds")).reset_index()


def _base_order(s: pd.DataFrame) -> list[tuple[bool, int]]:
    return sorted({(bool(a), int(b)) for a, b in zip(s.scratch, s.step)}, key=lambda x: (x[0], x[1]))


def _ks_axis(fig, row: int, col: int, ks, title: str) -> None:
    """Log x axis ticked at the label counts that were run (16, 64, …), not at powers of ten."""
    ticks = sorted({int(k) for k in ks})
    fig.xaxis(row, col, title, type="log", tickvals=ticks, ticktext=[str(t) for t in ticks])


def curves_figure(s: pd.DataFrame, data: str, fid: str) -> P.Plot:
    """Macro-F1 vs labelled examples: a panel per rung, a line per method × starting checkpoint."""
    rungs = list(s.sort_values("n_params").rung.unique())[-MAX_PANELS:]
    sizes = s.groupby("rung").n_params.max()
    fig = P.new(1, len(rungs), titles=[f"{r} ({fmt.count(sizes[r])} params)" for r in rungs])
    bases = _base_order(s)
    methods = sorted(s.method.unique())
    for col, rung in enumerate(rungs, start=1):
        r = s[s.rung == rung]
        for (scratch, step) in bases:
            for m in methods:
                c = r[(r.scratch == scratch) & (r.step == step) & (r.method == m)].sort_values("k_shot")
                if c.empty:
                    continue
                i = bases.index((scratch, step))
                name = f"{m}, {SCRATCH if scratch else f'step {fmt.step(step)}'}"
                colour = "#777777" if scratch else P.colour(i)
                text = [f"{rung} · {name} · {int(k)} labels · {int(n)} seed(s)<br>macro-F1 = {fmt.pm(v, sd)}"
                        for k, n, v, sd in zip(c.k_shot, c.seeds, c.macro_f1_mean, c.macro_f1_std)]
                fig.add(P.scatter(x=c.k_shot, y=c.macro_f1_mean, mode="lines+markers", name=name, legendgroup=name,
                                  showlegend=col == 1, line={"color": colour, "width": 1.4, "dash": "dash" if scratch else "solid"},
                                  marker={"symbol": P.SYMBOLS[methods.index(m) % len(P.SYMBOLS)], "size": 6},
                                  error_y={"type": "data", "array": c.macro_f1_std.fillna(0), "color": colour, "thickness": 1},
                                  text=text, hovertemplate="%{text}<extra></extra>"), 1, col)
        _ks_axis(fig, 1, col, r.k_shot, "labelled training examples (log scale)")
    fig.yaxis(1, 1, "macro-F1 on held-out examples")
    alt = (f"Fine-tuning on {data}: macro-F1 (mean ± sd over seeds) against the number of labelled training "
           "examples, one panel per rung, one line per method and starting checkpoint; dashed grey lines start "
           "from random weights.")
    return P.finish(fig, fid, f"{data}: sample efficiency by method and checkpoint", alt, 340)


def pretraining_worth(s: pd.DataFrame) -> pd.DataFrame:
    """Macro-F1 of the latest checkpoint minus random init, per rung, method and label count."""
    pre = s[~s.scratch]
    if pre.empty or not s.scratch.any():
        return pd.DataFrame()
    last = pre[pre.step == pre.groupby(["rung", "method"]).step.transform("max")]
    keys = ["rung", "n_params", "method", "k_shot"]
    both = last.merge(s[s.scratch], on=keys, suffixes=("", "_scratch"))
    both["gain"] = both.macro_f1_mean - both.macro_f1_mean_scratch
    return both[keys + ["step", "gain"]]


def worth_figure(g: pd.DataFrame, data: str, fid: str) -> P.Plot:
    fig = P.new(1, 1)
    for i, ((rung, m), c) in enumerate(g.sort_values("n_params").groupby(["rung", "method"], sort=False)):
        c = c.sort_values("k_shot")
        name = f"{rung} {m} (step {fmt.step(c.step.iloc[0])})"
        fig.add(P.scatter(x=c.k_shot, y=c.gain, mode="lines+markers", name=name, line={"color": P.colour(i), "width": 1.4},
                          marker={"symbol": P.SYMBOLS[i % len(P.SYMBOLS)], "size": 6},
                          text=[f"{name} · {int(k)} labels<br>macro-F1 gain = {fmt.num(v)}" for k, v in zip(c.k_shot, c.gain)],
                          hovertemplate="%{text}<extra></extra>"))
    fig.hline(0)
    _ks_axis(fig, 1, 1, g.k_shot, "labelled training examples (log scale)")
    fig.yaxis(1, 1, "macro-F1 gain over random init")
    alt = (f"Fine-tuning on {data}: macro-F1 of the latest fine-tuned checkpoint minus macro-F1 of the same "
           "architecture fine-tuned from random weights, against labelled examples, one line per rung and method.")
    return P.finish(fig, fid, f"{data}: what pretraining is worth", alt, 320)


def _pm(mean: float, sd: float) -> str:
    return f"{mean:.3f}" + ("" if pd.isna(sd) else f" ± {sd:.3f}")


def table(s: pd.DataFrame) -> str:
    header = ["rung", "method", "start", "labels", "seeds", "accuracy", "macro-F1", "majority-class accuracy"]
    s = s.sort_values(["n_params", "method", "scratch", "step", "k_shot"])
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in (
            r.rung, r.method, r.base, int(r.k_shot), int(r.seeds), _pm(r.accuracy_mean, r.accuracy_std),
            _pm(r.macro_f1_mean, r.macro_f1_std), f"{r.majority_baseline_mean:.3f}")) + "</tr>"
        for r in s.itertuples())
    head = "".join(f"<th scope='col'>{h}</th>" for h in header)
    return (f"<details><summary>Accuracy and macro-F1 (mean ± sd over seeds)</summary><table><thead><tr>{head}"
            f"</tr></thead><tbody>{body}</tbody></table></details>")


def section(df: pd.DataFrame) -> str:
    """The section's HTML ('' without fine-tuning rows)."""
    w = runs(df)
    if w.empty:
        return ""
    out = []
    for i, (data, s) in enumerate(summary(w).groupby("data")):
        out.append(f"<h3>{html.escape(str(data))}</h3>" + curves_figure(s, data, f"fig-finetune-{i}").html())
        gain = pretraining_worth(s)
        if not gain.empty:
            out.append(worth_figure(gain, data, f"fig-finetune-worth-{i}").html())
        out.append(table(s))
    return "".join(out)
