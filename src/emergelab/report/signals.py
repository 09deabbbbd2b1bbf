"""Latent variables and attention heads: what is linked to a capability, and their figures on the
capability's own step axis (onsets marked), the selectivity heatmaps, the head scores and training loss."""
from __future__ import annotations

import numpy as np
import pandas as pd

from emergelab.explain.latent import linked
from emergelab.measurements import HEADS_PREFIX
from emergelab.report import fmt
from emergelab.report import plot as P
from emergelab.report.capabilities import Capability, metric_name, rung_order
from emergelab.report.capfigs import ONSET_VERDICTS, label


def links_of(task: str, links: list[tuple[str, str]] | None, leads: list[dict], latents: list[str],
             heads: list[str]) -> tuple[list[str], list[str]]:
    """The probed latents and head kinds linked to ``task``: the study's mechanism map where it has one,
    else the explain stage's leads and same-world latents (never another world's)."""
    if links is not None:
        sig = {s for s, t in links if t == task}
        return ([x for x in latents if x in sig], [h for h in heads if HEADS_PREFIX + h in sig])
    lat = sorted({x["latent"] for x in leads if x.get("task") == task} | {x for x in latents if linked(x, task)})
    return [x for x in latents if x in lat], (heads if ":" not in task else [])


def best_selectivity(df: pd.DataFrame, latent: str) -> pd.DataFrame:
    """Best-layer selectivity per (rung, step), averaged over seeds first."""
    d = df[(df.source == "probe") & (df.task == latent) & (df.metric == "selectivity") & (df.step >= 0)]
    per_layer = d.groupby(["rung", "step", "layer"]).agg(value=("value", "mean"), n_params=("n_params", "max")).reset_index()
    i = per_layer.groupby(["rung", "step"]).value.idxmax()
    return per_layer.loc[i].reset_index(drop=True)


def head_max(df: pd.DataFrame, kind: str) -> pd.DataFrame:
    d = df[(df.source == "heads") & (df.task == kind) & (df.metric == "max") & (df.step >= 0)]
    per_layer = d.groupby(["rung", "step", "layer"]).agg(value=("value", "mean"), n_params=("n_params", "max")).reset_index()
    i = per_layer.groupby(["rung", "step"]).value.idxmax()
    return per_layer.loc[i].reset_index(drop=True)


def _lines(fig, row: int, d: pd.DataFrame, rungs: list[str], what: str, shown: set) -> None:

    for rung in [r for r in rungs if r in set(d.rung)]:
        v = d[d.rung == rung].sort_values("step")
        i = rungs.index(rung)
        text = [f"{rung} ({fmt.count(r.n_params)} params) · step {fmt.step(r.step)} · layer {int(r.layer)}<br>{what} = {fmt.num(r.value)}"
                if "layer" in v else f"{rung} · step {fmt.step(r.step)}<br>{what} = {fmt.num(r.value)}" for r in v.itertuples()]
        fig.add(P.scatter(x=P.step_x(v.step), y=v.value, mode="lines+markers", name=rung, legendgroup=rung,
                                 showlegend=rung not in shown, line={"color": P.colour(i), "width": 1.5},
                                 marker={"symbol": P.SYMBOLS[i % 8], "size": 5}, text=text,
                                 hovertemplate="%{text}<extra></extra>"), row, 1)
        shown.add(rung)


def _onsets(fig, row: int, marks: list[tuple[str, float, list | None, str]], rungs: list[str], y0: float, y1: float) -> None:
    """Each (rung, onset, ci, what) as a dotted vertical line with its interval shaded."""
    for rung, x, ci, what in marks:
        c = P.colour(rungs.index(rung)) if rung in rungs else "#444444"
        text = f"{what} onset ({rung}): step {fmt.step(x)} {fmt.interval('step', ci)}"
        if ci and None not in ci:
            lo, hi = P.step_x(ci)
            fig.add(P.vspan(float(lo), float(hi), y0, y1, c, rung, text, alpha=0.08), row, 1)
        fig.add(P.vline(float(P.step_x([x])[0]), y0, y1, c, rung, text), row, 1)


def _range(v: pd.Series) -> tuple[float, float]:
    return (float(v.min()), float(v.max())) if len(v) and np.isfinite(v).all() else (0.0, 1.0)


def signals_figure(df: pd.DataFrame, cap: Capability, expl: dict, latents: list[str], heads: list[str], fid: str):
    """The capability, its linked latents' selectivity and its linked head scores, on one step axis."""
    from emergelab.report.capfigs import series

    head = cap.answer_cell()
    metric = head.metric if head is not None else cap.metrics[0]
    rungs = rung_order(df)
    rows = [("cap", metric)] + [("latent", x) for x in latents] + [("head", h) for h in heads]
    titles = [f"{cap.name}: {metric_name(metric)}"] + [f"latent {x}: best-layer selectivity" for x in latents] + \
             [f"{h.replace('_', ' ')} heads: best head's score" for h in heads]
    fig = P.new(rows=len(rows), cols=1, titles=titles, shared_x=True, v_space=0.08)
    shown: set = set()
    mechs = [m for m in expl.get("mechanisms") or [] if m.get("task") == cap.task]
    for r, (kind, name) in enumerate(rows, start=1):
        if kind == "cap":
            s = series(df, cap.task, cap.k_shot, metric).agg.assign(layer=-1)
            d = s[["rung", "step", "value", "n_params", "layer"]]
            marks = [(c["rung"], c["onset"]["x"], c["onset"].get("ci"), "capability") for c in expl.get("curves", [])
                     if c.get("task") == cap.task and c.get("metric") == metric and c.get("axis") == "step"
                     and c.get("verdict") in ONSET_VERDICTS and c.get("onset")]
            ytitle = label(metric)
        elif kind == "latent":
            d = best_selectivity(df, name)
            marks = [(o["rung"], o["onset"], o.get("onset_ci"), f"latent {name}") for o in expl.get("latent_onsets", [])
                     if o.get("latent") == name and o.get("axis") == "step" and o.get("onset") is not None]
            ytitle = "selectivity (acc − control)"
        else:
            d = head_max(df, name)
            marks = [(m["rung"], m["signature_onset"]["x"], m["signature_onset"].get("ci"), f"{name} heads") for m in mechs
                     if m.get("signal") == HEADS_PREFIX + name and m.get("axis", "step") == "step" and m.get("signature_onset")]
            ytitle = "head score (attention mass)"
        _lines(fig, r, d, rungs, ytitle, shown)
        _onsets(fig, r, marks, rungs, *_range(d.value))
        fig.yaxis(r, 1, ytitle)
        P.step_axis(fig, d.step if len(d) else [0, 1], r, 1, fmt.AXIS_UNIT["step"] if r == len(rows) else None)
    alt = (f"{cap.name} ({metric_name(metric)}) against training step per rung, above "
           + (f"the best-layer probe selectivity of {', '.join(latents)}" if latents else "")
           + (" and " if latents and heads else "") + (f"the best head's {', '.join(heads)} score" if heads else "")
           + " on the same step axis; dotted vertical lines mark onsets, shaded their intervals.")
    return P.finish(fig, fid, f"{cap.name}: linked signals over training", alt, 90 + 210 * len(rows))


def probe_heatmap(df: pd.DataFrame, latent: str, fid: str):
    """Selectivity by layer × checkpoint step, one panel per rung."""

    d = df[(df.source == "probe") & (df.task == latent) & (df.metric == "selectivity") & (df.step >= 0)]
    rungs = [r for r in rung_order(df) if r in set(d.rung)]
    fig = P.new(1, len(rungs), titles=rungs)
    vmax = max(0.05, float(d.value.max()))
    for i, rung in enumerate(rungs, start=1):
        piv = d[d.rung == rung].pivot_table(index="layer", columns="step", values="value", aggfunc="mean")
        fig.add(P.heatmap(z=piv.values, x=[fmt.step(s) for s in piv.columns], y=[("emb" if v == 0 else f"layer {v}") for v in piv.index],
                                 zmin=0, zmax=vmax, colorscale="Cividis", showscale=i == len(rungs),
                                 colorbar={"title": {"text": "selectivity"}}, name=rung,
                                 hovertemplate=f"{rung} · step %{{x}} · %{{y}}<br>selectivity = %{{z:.3f}}<extra></extra>"), 1, i)
        fig.xaxis(1, i, "checkpoint step", type="category")
    alt = (f"Heatmaps, one per rung, of linear-probe selectivity for the latent {latent} (probe accuracy minus "
           "control accuracy) by layer (emb = embeddings) and checkpoint step.")
    return P.finish(fig, fid, f"Latent {latent}: selectivity by layer and step", alt, 300)


def heads_figure(df: pd.DataFrame, fid: str):
    kinds = sorted(set(df[(df.source == "heads") & (df.metric == "max")].task))
    if not kinds:
        return None
    fig = P.new(1, len(kinds), titles=[f"{k.replace('_', ' ')} score" for k in kinds])
    shown: set = set()
    rungs = rung_order(df)
    for i, k in enumerate(kinds, start=1):

        d = head_max(df, k)
        for rung in [r for r in rungs if r in set(d.rung)]:
            v = d[d.rung == rung].sort_values("step")
            j = rungs.index(rung)
            fig.add(P.scatter(x=P.step_x(v.step), y=v.value, mode="lines+markers", name=rung, legendgroup=rung,
                                     showlegend=rung not in shown, line={"color": P.colour(j), "width": 1.5},
                                     marker={"symbol": P.SYMBOLS[j % 8], "size": 5},
                                     text=[f"{rung} · step {fmt.step(r.step)} · layer {int(r.layer)}<br>best head's score = {fmt.num(r.value)}"
                                           for r in v.itertuples()], hovertemplate="%{text}<extra></extra>"), 1, i)
            shown.add(rung)
        P.step_axis(fig, d.step, 1, i, fmt.AXIS_UNIT["step"])
    fig.yaxis(1, 1, "best head's score (attention mass)")
    alt = ("The highest score of any head for each head type (" + ", ".join(kinds) + ") against training step, one line per rung.")
    return P.finish(fig, fid, "Attention heads over training", alt, 340)


def training_figure(df: pd.DataFrame, fid: str):
    """Training loss against tokens seen per rung, one panel per objective."""

    d = df[df.source == "train"]
    panels = sorted({(t, m) for t, m in zip(d.task, d.metric)}, key=lambda tm: (tm[1] != "loss", tm[0]))
    if not panels:
        return None
    names = [(t.split("/", 1)[1].upper() if "/" in t else "total") + f" {m}" for t, m in panels]
    fig = P.new(1, len(panels), titles=names)
    rungs = rung_order(df)
    for i, (task, metric) in enumerate(panels, start=1):
        dm = d[(d.task == task) & (d.metric == metric)]
        for rung in [r for r in rungs if r in set(dm.rung)]:
            r = dm[dm.rung == rung].groupby("tokens").agg(value=("value", "mean"), step=("step", "max")).reset_index()
            r = r[r.tokens > 0]
            j = rungs.index(rung)
            fig.add(P.scatter(x=r.tokens, y=r.value, mode="lines", name=rung, legendgroup=rung, showlegend=i == 1,
                                     line={"color": P.colour(j), "width": 1.4},
                                     text=[f"{rung} · step {fmt.step(s)} · {fmt.count(t)} tokens<br>{metric} = {fmt.num(v)}"
                                           for s, t, v in zip(r.step, r.tokens, r.value)], hovertemplate="%{text}<extra></extra>"), 1, i)
        fig.xaxis(1, i, "tokens seen (log scale)", type="log")
        fig.yaxis(1, i, f"{metric} " + ("(fraction)" if metric == "accuracy" else "(nats/token)"))
    alt = f"Training curves ({', '.join(names)}) against tokens seen, one line per rung of the ladder (mean over seeds)."
    return P.finish(fig, fid, "Training loss per rung", alt, 340)
