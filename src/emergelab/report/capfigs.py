"""A capability's figures: its metrics against training step, parameters, compute and pretraining loss.

Each rung is one legend group (its line, seed band, fit and onset band toggle together), each seed
another (its thin per-seed lines, hidden until asked for). The fit is drawn only where it explains the
curve (a learned curve whose chosen model has R² ≥ 0.9); the onset band only on emergent (and
transient) curves, where the explain stage estimated one.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from emergelab.explain.formulas import evaluate
from emergelab.measurements import CHANCE_PREFIX, METRICS
from emergelab.report import fmt
from emergelab.report import plot as P
from emergelab.report.capabilities import Capability, Cell, metric_name, rung_order

LABELS = {
    "exact_match": "exact match (fraction)", "token_accuracy": "per-token accuracy (fraction)",
    "target_logprob": "target log-prob (nats)", "target_logprob_per_token": "log-prob per token (nats)",
    "brier": "Brier score (lower is better)", "edit_distance": "edit distance (tokens)",
    "mc_accuracy": "multiple-choice accuracy (fraction)", "selectivity": "probe selectivity (acc − control)",
    "accuracy": "accuracy (fraction)", "macro_f1": "macro-F1", "loss": "loss (nats/token)",
}
ONSET_VERDICTS = ("emergent", "transient")
FIT_R2 = 0.9
TITLES = {"step": "vs training step", "params": "vs parameters (final checkpoints)", "flops": "vs training compute",
          "loss": "vs pretraining loss (held-out)"}


def label(metric: str) -> str:
    return LABELS.get(metric, metric_name(metric))


@dataclass
class Series:
    """A metric's points: ``agg`` one row per (rung, step) over seeds, ``seeds`` one per seed."""
    agg: pd.DataFrame
    seeds: pd.DataFrame
    chance: float | None


def series(df: pd.DataFrame, task: str, k_shot: int, metric: str) -> Series:
    d = df[(df.source == "eval") & (df.task == task) & (df.k_shot == k_shot)]
    m = d[(d.metric == metric) & (d.step >= 0)]
    hl = df[(df.source == "eval") & (df.task == "heldout") & (df.metric == "loss") & (df.step >= 0)]
    loss = hl.groupby(["rung", "step"]).value.mean().rename("loss")
    g = m.groupby(["rung", "step"])
    agg = g.agg(value=("value", "mean"), n_params=("n_params", "max"), flops=("flops", "mean"), k=("seed", "nunique"),
                sd=("value", "std"), stderr=("stderr", "mean")).reset_index()
    agg["se"] = np.where(agg.k > 1, agg.sd / np.sqrt(agg.k.clip(lower=1)), agg.stderr)
    agg = agg.join(loss, on=["rung", "step"])
    chance = d[d.metric == CHANCE_PREFIX + metric].value
    return Series(agg, m, float(chance.iloc[0]) if len(chance) else None)


def explains(curve: dict | None) -> bool:
    """Draw the chosen fit only where it explains the curve."""
    if not curve or curve.get("verdict") in ("not learned", "uncertain", "insufficient data", None):
        return False
    fit = (curve.get("fits") or {}).get(curve.get("best_model") or "")
    return bool(fit) and (fit.get("r2") or 0) >= FIT_R2


def fit_line(curve: dict) -> tuple[np.ndarray, np.ndarray] | None:
    xs = np.asarray([x for x in curve.get("x") or [] if x is not None], dtype=float)
    if curve.get("log_x"):
        xs = xs[xs > 0]
    if len(xs) < 2:
        return None
    x = np.logspace(np.log10(xs.min()), np.log10(xs.max()), 80) if curve.get("log_x") else np.linspace(xs.min(), xs.max(), 80)
    try:
        y = np.asarray(evaluate(curve["best_model"], curve["fits"][curve["best_model"]]["params"], x), dtype=float)
    except (KeyError, ValueError, TypeError):  # a fit the report cannot draw is left out
        return None
    ok = np.isfinite(y)
    return (x[ok], y[ok]) if ok.sum() >= 2 else None


class Panels:
    """Draws one metric of one capability into subplots; ``curves[(metric, axis, rung)]`` are explain records."""

    def __init__(self, df: pd.DataFrame, cap: Capability):
        ev = df[df.source == "eval"]
        self.df, self.cap = ev[(ev.task == cap.task) | (ev.task == "heldout")], cap
        self.rungs = rung_order(df)
        self._series: dict[str, Series] = {}
        self.curves = {(c["metric"], c["axis"], c.get("rung")): c for cell in cap.cells.values() for c in cell.curves}
        self._legend: set[str] = set()

    def restart(self) -> None:
        """A new figure: every legend group gets its entry again."""
        self._legend = set()

    def series(self, metric: str) -> Series:
        if metric not in self._series:
            self._series[metric] = series(self.df, self.cap.task, self.cap.k_shot, metric)
        return self._series[metric]

    def colour(self, rung: str) -> str:
        return P.colour(self.rungs.index(rung) if rung in self.rungs else 0)

    def _shown(self, group: str) -> bool:
        """Each legend group gets one legend entry in the whole figure."""
        first = group not in self._legend
        self._legend.add(group)
        return first

    @staticmethod
    def hover(v: pd.DataFrame, rung: str, n_params, metric: str, seed: str, axis: str) -> dict:
        """Rung, seed, step (and the panel's own x) and value ± standard error: the per-trace words in
        the template, the per-point numbers (step, stderr) as customdata — a fraction of per-point text."""
        x = " · %{x:.2~e} FLOPs" if axis == "flops" else " · loss %{x:.3~g}" if axis == "loss" else ""
        se = v.se.to_numpy(float) if "se" in v else np.full(len(v), np.nan)
        pm = " ± %{customdata[1]:.2~g}" if np.isfinite(se).any() and (se[np.isfinite(se)] > 0).any() else ""
        return {"customdata": np.c_[v.step.to_numpy(float), np.nan_to_num(se)],
                "hovertemplate": f"{rung} ({fmt.count(n_params)} params) · {seed} · step %{{customdata[0]:,}}{x}"
                                 f"<br>{metric_name(metric)} = %{{y:.3~g}}{pm}<extra></extra>"}

    def _xs(self, axis: str, v: pd.DataFrame) -> np.ndarray:
        return P.step_x(v.step) if axis == "step" else v["flops" if axis == "flops" else "loss"].to_numpy(float)

    def lines(self, fig, row: int, col: int, s: Series, metric: str, axis: str) -> None:
        """One line per rung (mean over seeds) with its ± band, and each seed's own thin line."""

        nseed = s.seeds.seed.nunique()
        for rung in [r for r in self.rungs if r in set(s.agg.rung)]:
            v = s.agg[s.agg.rung == rung].sort_values("step")
            if axis == "flops":
                v = v[v.flops > 0]
            if axis == "loss":
                v = v[np.isfinite(v.loss)]
            if v.empty:
                continue
            x, c = self._xs(axis, v), self.colour(rung)
            fig.add(P.band(x, v.value - v.se, v.value + v.se, c, rung), row, col)
            seed = f"mean of {nseed} seeds" if nseed > 1 else f"seed {int(s.seeds.seed.iloc[0])}"
            fig.add(P.scatter(x=x, y=v.value, mode="lines+markers", name=f"{rung} ({fmt.count(v.n_params.max())})",
                                     legendgroup=rung, showlegend=self._shown(rung), line={"color": c, "width": 1.6},
                                     marker={"symbol": P.SYMBOLS[self.rungs.index(rung) % 8], "size": 5},
                                     **self.hover(v, rung, v.n_params.max(), metric, seed, axis)), row, col)
            if nseed > 1:
                self._seed_lines(fig, row, col, s, rung, metric, axis)

    def _seed_lines(self, fig, row, col, s: Series, rung: str, metric: str, axis: str) -> None:

        for seed, v in s.seeds[s.seeds.rung == rung].groupby("seed"):
            v = v.sort_values("step")
            if axis != "step":
                v = v.assign(loss=np.nan) if axis == "flops" else v.join(s.agg.set_index(["rung", "step"]).loss, on=["rung", "step"])
            v = v.assign(se=v.stderr)
            x = self._xs(axis, v)
            group = f"seed {int(seed)}"
            if self._shown(group):  # the seed's legend entry, in grey: its lines take each rung's colour
                fig.add(P.scatter(x=[None], y=[None], mode="lines", name=group, legendgroup=group, visible="legendonly",
                                  legendrank=2000, line={"color": "#666666", "width": 1, "dash": "dot"}), row, col)
            fig.add(P.scatter(x=x, y=v.value, mode="lines", name=group, legendgroup=group,
                                     showlegend=False, visible="legendonly",
                                     line={"color": self.colour(rung), "width": 0.8, "dash": "dot"},
                                     **self.hover(v, rung, v.n_params.max(), metric, group, axis)), row, col)

    def fit_and_onset(self, fig, row, col, curve: dict | None, group: str, c: str, y0: float, y1: float, axis: str) -> None:

        if explains(curve):
            line = fit_line(curve)
            if line is not None:
                x = P.step_x(line[0]) if axis == "step" else line[0]
                fig.add(P.scatter(x=x, y=line[1], mode="lines", line={"color": c, "width": 1, "dash": "dash"},
                                         name=f"fit ({curve['best_model']})", legendgroup=group, showlegend=False,
                                         hovertemplate=f"fit: {curve['best_model']} (R² {fmt.num(curve['fits'][curve['best_model']]['r2'])})"
                                                       "<extra></extra>"), row, col)
        o = (curve or {}).get("onset")
        if curve and curve.get("verdict") in ONSET_VERDICTS and o and o.get("x") is not None:
            where = f" ({curve['rung']})" if curve.get("rung") else ""
            text = f"{curve['verdict']} onset{where}: {fmt.with_unit(axis, o['x'])} {fmt.interval(axis, o.get('ci'))}"
            ci = o.get("ci")
            tx = (lambda v: float(P.step_x([v])[0])) if axis == "step" else float
            if ci and None not in ci:
                fig.add(P.vspan(tx(ci[0]), tx(ci[1]), y0, y1, c, group, text), row, col)
            fig.add(P.vline(tx(o["x"]), y0, y1, c, group, text), row, col)

    def yrange(self, s: Series) -> tuple[float, float]:
        lo = (s.agg.value - s.agg.se.fillna(0)).min()
        hi = (s.agg.value + s.agg.se.fillna(0)).max()
        return (float(lo), float(hi)) if np.isfinite(lo) and np.isfinite(hi) else (0.0, 1.0)

    def draw(self, fig, row: int, col: int, metric: str, axis: str, s: Series, xtitle: bool = True) -> None:
        """One panel: ``metric`` against ``axis``."""
        y0, y1 = self.yrange(s)
        if axis == "params":
            self.params_panel(fig, row, col, s, metric)
        else:
            self.lines(fig, row, col, s, metric, axis)
        if axis == "step":
            for rung in self.rungs:
                self.fit_and_onset(fig, row, col, self.curves.get((metric, "step", rung)), rung, self.colour(rung), y0, y1, axis)
        else:
            self.fit_and_onset(fig, row, col, self.curves.get((metric, axis, None)), f"{axis} curve", "#444444", y0, y1, axis)
        if s.chance is not None:
            fig.hline(s.chance, row, col)
        title = fmt.AXIS_UNIT[axis] if xtitle else None
        if axis == "step":
            P.step_axis(fig, s.agg.step, row, col, title)
        elif axis == "params":
            fig.xaxis(row, col, title, type="log")
        elif axis == "flops":
            fig.xaxis(row, col, title, type="log", exponentformat="power")
        else:
            fig.xaxis(row, col, title, autorange="reversed")

    def params_panel(self, fig, row: int, col: int, s: Series, metric: str) -> None:
        """The final checkpoint of each rung against its parameter count (each rung its own point)."""

        last = s.agg[s.agg.step == s.agg.groupby("rung").step.transform("max")].sort_values("n_params")
        fig.add(P.scatter(x=last.n_params, y=last.value, mode="lines", line={"color": "#bbb", "width": 1},
                                 hoverinfo="skip", showlegend=False, name="final checkpoints"), row, col)
        nseed = s.seeds.seed.nunique()
        for r in last.itertuples():
            c = self.colour(r.rung)
            fig.add(P.scatter(x=[r.n_params], y=[r.value], mode="markers", legendgroup=r.rung, showlegend=False,
                                     name=r.rung, marker={"color": c, "size": 8, "symbol": P.SYMBOLS[self.rungs.index(r.rung) % 8]},
                                     error_y={"type": "data", "array": [0 if not np.isfinite(r.se) else r.se], "color": c},
                                     **self.hover(last[last.rung == r.rung], r.rung, r.n_params, metric,
                                                  f"mean of {nseed} seeds" if nseed > 1 else "final step", "params")), row, col)


def axes_of(df: pd.DataFrame, cap: Capability) -> list[str]:
    """The axes a capability's figure shows: step always; parameters with two or more rungs; compute; loss."""
    out = ["step"]
    if df[df.rung != ""].rung.nunique() >= 2:
        out.append("params")
    out.append("flops")
    if ((df.source == "eval") & (df.task == "heldout")).any():
        out.append("loss")
    return out


def capability_figure(df: pd.DataFrame, cap: Capability, fid: str) -> P.Plot:
    """The capability's shown metrics (rows) against step, parameters, compute and loss (columns)."""
    axes = axes_of(df, cap)
    metrics = cap.metrics
    titles = [f"{metric_name(m)} {TITLES[a]}" if r == 0 else metric_name(m) + " " + TITLES[a]
              for r, m in enumerate(metrics) for a in axes]
    fig = P.new(rows=len(metrics), cols=len(axes), titles=titles, v_space=min(0.3 / max(len(metrics) - 1, 1), 0.12))
    panels = Panels(df, cap)
    for r, m in enumerate(metrics, start=1):
        s = panels.series(m)
        for c, a in enumerate(axes, start=1):
            panels.draw(fig, r, c, m, a, s, xtitle=r == len(metrics))
        fig.yaxis(r, 1, label(m))
    kinds = ", ".join(f"{metric_name(m)} ({METRICS.get(m, (True, 'continuous'))[1]})" for m in metrics)
    alt = (f"{cap.name}: {kinds}, one row each, against training step per rung, against parameter count at each rung's "
           "final checkpoint, against training compute and against held-out pretraining loss. Lines are rungs (mean "
           "over seeds, shaded ± standard error); dashed lines are fitted models where they explain the curve; shaded "
           "boxes are onset intervals of emergent curves; the dotted horizontal line is chance.")
    return P.finish(fig, fid, f"{cap.name}: paired metrics", alt, 110 + 250 * len(metrics))


def cell_figure(panels: Panels, cell: Cell, fid: str) -> P.Plot:
    cap = panels.cap
    fig = P.new(1, 1)
    panels.restart()
    panels.draw(fig, 1, 1, cell.metric, cell.axis, panels.series(cell.metric))
    fig.yaxis(1, 1, label(cell.metric))
    alt = (f"{cap.name}: {metric_name(cell.metric)} {TITLES[cell.axis]}, one line or point per rung; dashed: fit where it "
           "explains the curve; shaded: onset interval of an emergent curve.")
    return P.finish(fig, fid, f"{cap.name}: {metric_name(cell.metric)} {TITLES[cell.axis]}", alt, 340)
