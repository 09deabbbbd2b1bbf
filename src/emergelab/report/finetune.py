"""The report's fine-tuning section: sample-efficiency curves and what pretraining is worth.

Rows are ``source="finetune"`` with ``task = finetune/<data>/<method>`` (``-scratch``: the same
architecture from random weights), ``k_shot`` = labelled training examples and one ``seed`` per run
(see ``finetune.run``). For each data set the section shows, per rung, macro-F1 against labelled
examples for every method and starting checkpoint (random init dashed), the gain of the latest
checkpoint over random init, and a table of accuracy and macro-F1 with their spread over seeds.
"""
from __future__ import annotations

import html

import numpy as np
import pandas as pd

from emergelab.report.style import MARKERS, PALETTE, new_figure, to_data_uri

SCRATCH = "random init"
MAX_PANELS = 6


def runs(df: pd.DataFrame) -> pd.DataFrame:
    """One row per run: data, method, base (``step N`` or random init), rung, k, seed and its metrics."""
    d = df[df.source == "finetune"]
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


def curves_figure(s: pd.DataFrame, data: str):
    """Macro-F1 vs labelled examples: a panel per rung, a line per method × starting checkpoint."""
    rungs = list(s.sort_values("n_params").rung.unique())[-MAX_PANELS:]
    fig, axes = new_figure(ncols=len(rungs), width=3.6 if len(rungs) > 1 else 5.0, height=3.1)
    bases = _base_order(s)
    methods = sorted(s.method.unique())
    for ax, rung in zip(axes, rungs):
        r = s[s.rung == rung]
        for (scratch, step) in bases:
            for m in methods:
                c = r[(r.scratch == scratch) & (r.step == step) & (r.method == m)].sort_values("k_shot")
                if c.empty:
                    continue
                i = bases.index((scratch, step))
                label = f"{m}, {SCRATCH if scratch else f'step {step}'}"
                ax.errorbar(c.k_shot, c.macro_f1_mean, yerr=c.macro_f1_std.fillna(0), ms=4, lw=1.2, capsize=2,
                            ls="--" if scratch else "-", color="grey" if scratch else PALETTE[i % len(PALETTE)],
                            marker=MARKERS[methods.index(m) % len(MARKERS)], label=label)
        _label_axis(ax, r.k_shot)
        ax.set_xlabel("labelled training examples (log)")
        ax.set_ylabel("macro-F1 on held-out examples")
        ax.set_title(f"{rung} ({int(r.n_params.iloc[0]):,} params)", fontsize=8)
    axes[0].legend(fontsize=6, frameon=False)
    alt = (f"Fine-tuning on {data}: macro-F1 (mean ± sd over seeds) against the number of labelled training "
           "examples, one panel per rung, one line per method and starting checkpoint; dashed grey lines start "
           "from random weights.")
    return f"{data}: sample efficiency by method and checkpoint", to_data_uri(fig), alt


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


def _label_axis(ax, ks) -> None:
    """Log x axis ticked at the label counts that were run (16, 64, …), not at powers of ten."""
    from matplotlib.ticker import FixedLocator, NullLocator

    ticks = sorted({int(k) for k in ks})
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticklabels([str(t) for t in ticks])


def worth_figure(g: pd.DataFrame, data: str):
    fig, (ax,) = new_figure(width=5.0, height=3.1)
    for i, ((rung, m), c) in enumerate(g.sort_values("n_params").groupby(["rung", "method"], sort=False)):
        c = c.sort_values("k_shot")
        ax.plot(c.k_shot, c.gain, lw=1.2, ms=4, color=PALETTE[i % len(PALETTE)], marker=MARKERS[i % len(MARKERS)],
                label=f"{rung} {m} (step {int(c.step.iloc[0])})")
    ax.axhline(0, color="grey", lw=0.7, ls=":")
    _label_axis(ax, g.k_shot)
    ax.set_xlabel("labelled training examples (log)")
    ax.set_ylabel("macro-F1 gain over random init")
    ax.legend(fontsize=6, frameon=False)
    alt = (f"Fine-tuning on {data}: macro-F1 of the latest fine-tuned checkpoint minus macro-F1 of the same "
           "architecture fine-tuned from random weights, against labelled examples, one line per rung and method.")
    return f"{data}: what pretraining is worth", to_data_uri(fig), alt


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


def section(df: pd.DataFrame, img) -> str:
    """The section's HTML ('' without fine-tuning rows); ``img(title, uri, alt)`` renders one figure."""
    w = runs(df)
    if w.empty:
        return ""
    out = []
    for data, s in summary(w).groupby("data"):
        out.append(f"<h3>{html.escape(str(data))}</h3>" + img(*curves_figure(s, data)))
        gain = pretraining_worth(s)
        if not gain.empty:
            out.append(img(*worth_figure(gain, data)))
        out.append(table(s))
    return "".join(out)
