"""The report's figures, each a pure function of the measurement table (and fits) → a data URI."""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from emergelab.measurements import METRICS
from emergelab.report.style import MARKERS, PALETTE, new_figure, to_data_uri

LABELS = {
    "exact_match": "exact match (fraction)", "token_accuracy": "per-token accuracy (fraction)",
    "target_logprob": "target log-probability (nats)", "target_logprob_per_token": "log-prob per target token (nats)",
    "brier": "Brier score (lower is better)", "edit_distance": "token edit distance (tokens)",
    "mc_accuracy": "multiple-choice accuracy", "selectivity": "probe selectivity (acc − control)",
    "accuracy": "accuracy (fraction)", "macro_f1": "macro-F1", "loss": "loss (nats/token)",
}


@dataclass
class Figure:
    title: str
    uri: str
    alt: str


def _rung_order(df: pd.DataFrame) -> list[str]:
    sizes = df[df.rung != ""].groupby("rung")["n_params"].max().sort_values()
    return list(sizes.index)


def _style(i: int) -> dict:
    return {"color": PALETTE[i % len(PALETTE)], "marker": MARKERS[i % len(MARKERS)]}


def _step_axis(ax) -> None:
    ax.set_xscale("symlog", linthresh=1)
    ax.set_xlim(left=0)
    ax.set_xlabel("training step (optimizer updates, symlog)")


def training_loss(df: pd.DataFrame) -> Figure | None:
    """Training loss vs tokens per rung: one panel per objective (``pretrain``, ``pretrain/mlm``, …)."""
    d = df[df.source == "train"]
    panels = sorted({(t, m) for t, m in zip(d.task, d.metric)}, key=lambda tm: (tm[1] != "loss", tm[0]))
    if not panels:
        return None
    fig, axes = new_figure(ncols=len(panels), width=5.0 if len(panels) == 1 else 3.4, height=3.2)
    for ax, (task, metric) in zip(axes, panels):
        dm = d[(d.task == task) & (d.metric == metric)]
        for i, rung in enumerate(_rung_order(dm)):
            r = dm[dm.rung == rung].sort_values("tokens")
            ax.plot(r.tokens.clip(lower=1), r.value, color=PALETTE[i % len(PALETTE)], lw=1.2,
                    label=f"{rung} ({int(r.n_params.iloc[0]):,} params)")
        ax.set_xscale("log")
        ax.set_xlabel("tokens seen (log)")
        objective = task.split("/", 1)[1].upper() if "/" in task else "total"
        ax.set_ylabel(f"{objective} {metric} " + ("(fraction)" if metric == "accuracy" else "(nats/token)"))
        ax.set_title(f"{objective} {metric}", fontsize=8)
    axes[0].legend(fontsize=7, frameon=False)
    names = ", ".join(f"{t} {m}" for t, m in panels)
    return Figure("Training loss per rung" + (" and objective" if len(panels) > 1 else ""), to_data_uri(fig),
                  f"Training curves ({names}) against tokens seen, one line per rung of the ladder.")


def capability(df: pd.DataFrame, task: str, metric: str, fits: dict | None = None) -> Figure | None:
    """One metric of a task vs step per rung, vs parameters at the last step, and vs compute."""
    dm = df[(df.source == "eval") & (df.task == task) & (df.step >= 0) & (df.metric == metric)]
    if dm.empty:
        return None
    fig, axes = new_figure(ncols=3, width=3.9, height=2.9)
    rungs = _rung_order(dm)
    label = LABELS.get(metric, metric)
    chance = df[(df.task == task) & (df.metric == f"chance/{metric}")]
    ax = axes[0]
    for i, rung in enumerate(rungs):
        r = dm[dm.rung == rung].sort_values("step")
        ax.errorbar(r.step, r.value, yerr=r.stderr.fillna(0), ms=3, lw=1.2, capsize=0, label=rung, **_style(i))
        fit = (fits or {}).get((task, metric, "step", rung))
        if fit is not None:
            ax.plot(fit[0], fit[1], color=PALETTE[i % len(PALETTE)], lw=0.8, ls="--")
    _step_axis(ax)
    ax.set_ylabel(label)
    ax.set_title("vs training step (dashed: fitted model)", fontsize=8)
    if not chance.empty:
        ax.axhline(chance.value.iloc[0], color="grey", lw=0.7, ls=":", label="chance")
    ax.legend(fontsize=6, frameon=False)
    last = dm[dm.step == dm.groupby("rung").step.transform("max")].sort_values("n_params")
    ax = axes[1]
    ax.errorbar(last.n_params, last.value, yerr=last.stderr.fillna(0), color=PALETTE[0], marker="o", ms=4, lw=1.2,
                label="final checkpoints")
    fit = (fits or {}).get((task, metric, "params", None))
    if fit is not None:
        ax.plot(fit[0], fit[1], color=PALETTE[3], lw=1.0, ls="--", label=f"fit: {fit[2]}")
        if fit[3] is not None:
            ax.axvspan(*fit[3], color=PALETTE[3], alpha=0.12, label="onset 95% CI")
    ax.legend(fontsize=6, frameon=False)
    ax.set_xscale("log")
    ax.set_xlabel("parameters (log)")
    ax.set_ylabel(label)
    ax.set_title("vs parameters (final checkpoint of each rung)", fontsize=8)
    ax = axes[2]
    for i, rung in enumerate(rungs):
        r = dm[(dm.rung == rung) & (dm.flops > 0)].sort_values("flops")
        ax.plot(r.flops, r.value, ms=3, lw=1.0, label=rung, **_style(i))
    ax.set_xscale("log")
    ax.set_xlabel("training compute (FLOPs, log)")
    ax.set_ylabel(label)
    ax.set_title("vs training compute", fontsize=8)
    kind = METRICS.get(metric, (True, "continuous"))[1]
    alt = (f"Task {task}, {kind} metric {metric}: against training step for each rung, against parameter count at "
           "the final checkpoint, and against training compute; dashed lines are fitted models.")
    return Figure(f"{task}: {metric} ({kind})", to_data_uri(fig), alt)


def probe_heatmaps(df: pd.DataFrame, latent: str) -> Figure | None:
    d = df[(df.source == "probe") & (df.task == latent) & (df.metric == "selectivity")]
    if d.empty:
        return None
    rungs = _rung_order(d)
    fig, axes = new_figure(ncols=len(rungs), width=2.6, height=2.6)
    vmax = max(0.05, float(d.value.max()))
    im = None
    for ax, rung in zip(axes, rungs):
        piv = d[d.rung == rung].pivot_table(index="layer", columns="step", values="value")
        im = ax.imshow(piv.values, aspect="auto", origin="lower", cmap="cividis", vmin=0, vmax=vmax)
        ax.set_xticks(range(piv.shape[1]))
        ax.set_xticklabels([str(s) for s in piv.columns], rotation=90, fontsize=5)
        ax.set_yticks(range(piv.shape[0]))
        ax.set_yticklabels(["emb"] + [str(i) for i in piv.index[1:]], fontsize=6)
        ax.set_xlabel("checkpoint step")
        ax.set_title(rung, fontsize=8)
    axes[0].set_ylabel("layer (0 = embeddings)")
    if im is not None:  # beside the last panel only: one spanning every panel overlaps them after tight_layout
        fig.colorbar(im, ax=axes[-1], fraction=0.1, pad=0.04, label="selectivity")
    return Figure(f"Latent variable {latent}: selectivity by layer × step",
                  to_data_uri(fig),
                  f"Heatmaps, one per rung, of linear-probe selectivity for the latent {latent} "
                  "(probe accuracy minus control-task accuracy) by layer and checkpoint step.")


def latent_vs_capability(df: pd.DataFrame, latent: str, task: str, metric: str) -> Figure | None:
    p = df[(df.source == "probe") & (df.task == latent) & (df.metric == "selectivity")]
    e = df[(df.source == "eval") & (df.task == task) & (df.metric == metric) & (df.step >= 0)]
    if p.empty or e.empty:
        return None
    best = p.groupby(["rung", "step"]).value.max().reset_index()
    fig, (ax1, ax2) = new_figure(ncols=2, width=4.0, height=3.0)
    for i, rung in enumerate(_rung_order(p)):
        r = best[best.rung == rung].sort_values("step")
        ax1.plot(r.step, r.value, ms=3, lw=1.2, label=rung, **_style(i))
        c = e[e.rung == rung].sort_values("step")
        ax2.plot(c.step, c.value, ms=3, lw=1.2, label=rung, **_style(i))
    for ax in (ax1, ax2):
        _step_axis(ax)
    ax1.set_ylabel("best-layer selectivity")
    ax1.set_title(f"latent {latent}", fontsize=9)
    ax2.set_ylabel(LABELS.get(metric, metric))
    ax2.set_title(f"capability {task}: {metric}", fontsize=9)
    ax1.legend(fontsize=6, frameon=False)
    return Figure(f"Latent {latent} beside capability {task}", to_data_uri(fig),
                  f"Left: best-layer probe selectivity of {latent} against training step per rung. "
                  f"Right: {metric} on {task} against training step per rung.")


def head_scores(df: pd.DataFrame) -> Figure | None:
    d = df[(df.source == "heads") & (df.metric == "max")]
    if d.empty:
        return None
    kinds = sorted(set(d.task))
    fig, axes = new_figure(ncols=len(kinds), width=3.6, height=3.0)
    for ax, kind in zip(axes, kinds):
        k = d[d.task == kind].groupby(["rung", "step"]).value.max().reset_index()
        for i, rung in enumerate(_rung_order(d)):
            r = k[k.rung == rung].sort_values("step")
            ax.plot(r.step, r.value, ms=3, lw=1.2, label=rung, **_style(i))
        _step_axis(ax)
        ax.set_ylabel("best head's score (attention mass)")
        ax.set_title(f"{kind.replace('_', ' ')} score", fontsize=9)
    axes[0].legend(fontsize=6, frameon=False)
    return Figure("Attention heads over training", to_data_uri(fig),
                  "The highest score of any head for each head type (" + ", ".join(kinds) +
                  ") against training step, one line per rung.")


def paired_metrics(df: pd.DataFrame, task: str) -> list[str]:
    """The task's metrics ordered discontinuous first (as measured)."""
    have = [m for m in df[(df.source == "eval") & (df.task == task)].metric.unique() if not m.startswith("chance/")
            and m != "answer_length"]
    return sorted(have, key=lambda m: (METRICS.get(m, (True, "continuous"))[1] != "discontinuous", m))
