"""Capability curves extracted from the measurement table, one per (task, metric, k_shot, axis[, rung]).

Axes (x of each point):

- ``params``: the final checkpoint of each rung (its largest step with this task/metric), x = n_params.
- ``step``: every checkpoint of one rung, x = step. Step 0 (initialisation) cannot go on a log axis:
  it is dropped from fits and scores (counted in ``Curve.dropped``), never shifted by an offset,
  so that every x stays a real step count.
- ``flops``: every rung × step point with flops > 0, x = flops.
- ``loss``: every rung × step point, x = held-out pretraining loss of that checkpoint (rows
  ``source="eval", task="heldout", metric="loss"``), the loss-threshold view of Du et al. (2024). Lower
  loss is "more": the axis is linear in the loss and ordered from high to low loss.

Values are averaged over duplicate rows; each seed stays a separate replicate of the curve
(``Curve.seeds``, one row per seed) and ``Curve.y`` is their mean. ``Curve.sigma`` is the measurement
uncertainty of each point of ``y`` (see ``explain.noise``). Chance levels come from the
``chance/<metric>`` rows; without one a curve is compared with its own start (``chance_source =
"start"``): no metric's chance is assumed.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from emergelab.measurements import CHANCE_PREFIX, METRICS

#: Metrics whose values lie in [0, 1] (thresholds on them are absolute).
BOUNDED = {"exact_match", "mc_accuracy", "mc_accuracy_norm", "token_accuracy", "accuracy", "macro_f1",
           "control_accuracy", "selectivity", "majority_baseline", "brier", "key_share"}
#: Metric rows that describe a task rather than measure a checkpoint.
META_METRICS = {"answer_length"}
HELDOUT = ("heldout", "loss")

AXIS_LABEL = {"params": "params", "step": "step", "flops": "FLOPs", "loss": "loss"}


def metric_info(metric: str) -> tuple[bool, str]:
    """(higher_is_better, kind) of a metric; unknown metrics count as higher-is-better and continuous."""
    return METRICS.get(metric, (True, "continuous"))


@dataclass
class Curve:
    """One capability curve: points (x, y) sorted from 'less' to 'more' along the axis.

    ``seeds`` (k × n, NaN where a seed lacks a point) holds the per-seed values whose mean is ``y``;
    ``stderr`` and ``n_items`` are each point's reported standard error (NaN if none) and item count
    (0 if unknown), averaged over its seeds.
    """

    task: str
    metric: str
    k_shot: int
    axis: str
    rung: str | None  # the rung for the step axis, else None
    x: np.ndarray
    y: np.ndarray
    higher_is_better: bool
    kind: str  # "discontinuous" | "continuous"
    chance: float | None
    chance_source: str  # "rows" | "start"
    scale: float  # reference size of the metric: thresholds are fractions of it
    bounded: bool = True
    seeds: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    stderr: np.ndarray = field(default_factory=lambda: np.zeros(0))
    n_items: np.ndarray = field(default_factory=lambda: np.zeros(0))
    dropped: dict = field(default_factory=dict)

    @property
    def log_x(self) -> bool:
        return self.axis != "loss"

    @property
    def t(self) -> np.ndarray:
        """The axis coordinate that grows with 'more': log10 x, or −loss on the loss axis."""
        return np.log10(self.x) if self.log_x else -self.x

    @property
    def sign(self) -> float:
        return 1.0 if self.higher_is_better else -1.0

    @property
    def good(self) -> np.ndarray:
        """Values signed so that larger is better."""
        return self.sign * self.y

    @property
    def n_distinct(self) -> int:
        return len(np.unique(self.x))

    @property
    def n_seeds(self) -> int:
        return int(self.seeds.shape[0])

    @property
    def key(self) -> tuple:
        return (self.task, self.metric, self.k_shot, self.axis, self.rung)


def chance_levels(df: pd.DataFrame) -> dict[tuple[str, str], float]:
    """(task, metric) -> chance level from the ``chance/<metric>`` rows."""
    rows = df[df.metric.str.startswith(CHANCE_PREFIX)]
    out = rows.groupby(["task", "metric"]).value.mean()
    return {(t, m[len(CHANCE_PREFIX):]): float(v) for (t, m), v in out.items() if np.isfinite(v)}


def answer_lengths(df: pd.DataFrame) -> dict[str, float]:
    """task -> answer length L in tokens from the ``answer_length`` rows."""
    rows = df[(df.metric == "answer_length") & (df.source == "eval")]
    return {t: float(v) for t, v in rows.groupby("task").value.mean().items() if np.isfinite(v) and v > 0}


def seed_points(df: pd.DataFrame) -> pd.DataFrame:
    """Eval rows that measure a checkpoint (no chance/answer-length rows), one per seed: duplicate rows
    averaged, their stderr combined as sqrt(mean stderr²)."""
    d = df[(df.source == "eval") & (df.step >= 0) & ~df.metric.str.startswith(CHANCE_PREFIX)
           & ~df.metric.isin(META_METRICS) & np.isfinite(df.value)].copy()
    d["var"] = d.stderr.astype(float) ** 2
    g = d.groupby(["task", "metric", "k_shot", "rung", "step", "seed"], as_index=False, sort=True).agg(
        value=("value", "mean"), var=("var", "mean"), n=("n", "mean"), n_params=("n_params", "max"),
        flops=("flops", "mean"))
    g["stderr"] = np.sqrt(g.pop("var"))
    return g


def capability_points(df: pd.DataFrame) -> pd.DataFrame:
    """Capability points averaged over seeds: (task, metric, k_shot, rung, step, value, n_params, flops)."""
    d = seed_points(df)
    return d.groupby(["task", "metric", "k_shot", "rung", "step"], as_index=False, sort=True).agg(
        value=("value", "mean"), n_params=("n_params", "max"), flops=("flops", "mean"))


def heldout_loss(df: pd.DataFrame) -> pd.DataFrame:
    """Held-out pretraining loss per (rung, step), averaged over seeds."""
    d = df[(df.source == "eval") & (df.task == HELDOUT[0]) & (df.metric == HELDOUT[1]) & (df.step >= 0)
           & np.isfinite(df.value)]
    return d.groupby(["rung", "step"], as_index=False).value.mean().rename(columns={"value": "loss"})


def _make(key: tuple, axis: str, rung, pts: pd.DataFrame, xcol: str, chances, dropped) -> Curve:
    """One curve from seed points that carry an x column; one x per (rung, step)."""
    task, metric, k_shot = key
    ok = np.isfinite(pts[xcol].to_numpy(float)) & ((pts[xcol] > 0) if axis != "loss" else True)
    dropped = {**dropped, "nonpositive_or_nonfinite": int(pts[["rung", "step"]][~ok].drop_duplicates().shape[0])}
    pts = pts[ok]
    vals = pts.pivot_table(index=["rung", "step"], columns="seed", values="value", aggfunc="mean", dropna=False)
    meta = pts.groupby(["rung", "step"]).agg(x=(xcol, "mean"), se=("stderr", lambda s: float(np.sqrt(np.nanmean(s ** 2)))
                                                                  if np.isfinite(s).any() else np.nan),
                                             n=("n", "mean"))
    meta = meta.loc[vals.index]
    x = meta.x.to_numpy(float)
    order = np.argsort(x if axis != "loss" else -x, kind="stable")
    seeds = vals.to_numpy(float).T[:, order] if len(vals) else np.zeros((0, 0))
    y = np.nanmean(seeds, axis=0) if seeds.size else np.zeros(0)
    x = x[order]
    hib, kind = metric_info(metric)
    if (task, metric) in chances:
        chance, source = chances[(task, metric)], "rows"
    else:
        chance, source = None, "start"
    bounded = metric in BOUNDED or (len(y) > 0 and metric not in METRICS and y.min() >= 0 and y.max() <= 1)
    top = float(np.max(np.abs(y))) if len(y) else 0.0
    scale = 1.0 if bounded else (top if top > 0 else 1.0)
    return Curve(task, metric, int(k_shot), axis, rung, x, y, hib, kind, chance, source, scale, bounded,
                 seeds, meta.se.to_numpy(float)[order], meta.n.fillna(0).to_numpy(float)[order], dropped)


def extract_curves(df: pd.DataFrame, axes=("params", "step", "flops", "loss")) -> list[Curve]:
    """Every capability curve of the table along the requested axes."""
    pts = seed_points(df)
    if pts.empty:
        return []
    chances = chance_levels(df)
    loss = heldout_loss(df)
    curves: list[Curve] = []
    for key, g in pts.groupby(["task", "metric", "k_shot"], sort=True):
        is_heldout = (key[0], key[1]) == HELDOUT
        if "params" in axes:
            last = g[g.step == g.groupby("rung").step.transform("max")]
            curves.append(_make(key, "params", None, last, "n_params", chances, {}))
        if "step" in axes:
            for rung, r in g.groupby("rung", sort=True):
                n0 = int(r[r.step == 0].seed.nunique() > 0)
                curves.append(_make(key, "step", str(rung), r[r.step > 0], "step", chances, {"step0": n0}))
        if "flops" in axes:
            curves.append(_make(key, "flops", None, g, "flops", chances, {}))
        if "loss" in axes and not is_heldout and not loss.empty:
            m = g.merge(loss, on=["rung", "step"], how="inner")
            n_pts = g[["rung", "step"]].drop_duplicates().shape[0]
            curves.append(_make(key, "loss", None, m, "loss", chances,
                                {"no_loss": int(n_pts - m[["rung", "step"]].drop_duplicates().shape[0])}))
    return curves
