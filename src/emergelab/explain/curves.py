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

Values are averaged over seeds (and any duplicate rows). Chance levels come from the
``chance/<metric>`` rows; without one, exact_match and token_accuracy take chance 0 and other
metrics take the curve's first value ("start") as their reference level.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from emergelab.measurements import CHANCE_PREFIX, METRICS

#: Metrics whose values lie in [0, 1] (thresholds on them are absolute).
BOUNDED = {"exact_match", "mc_accuracy", "token_accuracy", "accuracy", "macro_f1", "control_accuracy",
           "selectivity", "majority_baseline", "brier"}
#: Metrics whose chance level is 0 when the table has no chance row (generation metrics).
ZERO_CHANCE = {"exact_match", "token_accuracy"}
#: Metric rows that describe a task rather than measure a checkpoint.
META_METRICS = {"answer_length"}
HELDOUT = ("heldout", "loss")

AXIS_LABEL = {"params": "params", "step": "step", "flops": "FLOPs", "loss": "loss"}


def metric_info(metric: str) -> tuple[bool, str]:
    """(higher_is_better, kind) of a metric; unknown metrics count as higher-is-better and continuous."""
    return METRICS.get(metric, (True, "continuous"))


@dataclass
class Curve:
    """One capability curve: points (x, y) sorted from 'less' to 'more' along the axis."""

    task: str
    metric: str
    k_shot: int
    axis: str
    rung: str | None  # the rung for the step axis, else None
    x: np.ndarray
    y: np.ndarray
    higher_is_better: bool
    kind: str  # "discontinuous" | "continuous"
    chance: float
    chance_source: str  # "rows" | "zero" | "start"
    scale: float  # reference size of the metric: thresholds are fractions of it
    dropped: dict = field(default_factory=dict)

    @property
    def log_x(self) -> bool:
        return self.axis != "loss"

    @property
    def t(self) -> np.ndarray:
        """The axis coordinate that grows with 'more': log10 x, or −loss on the loss axis."""
        return np.log10(self.x) if self.log_x else -self.x

    @property
    def good(self) -> np.ndarray:
        """Values signed so that larger is better."""
        return self.y if self.higher_is_better else -self.y

    @property
    def n_distinct(self) -> int:
        return int(len(np.unique(self.x)))

    @property
    def key(self) -> tuple:
        return (self.task, self.metric, self.k_shot, self.axis, self.rung)


def _mean_by(d: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    return d.groupby(keys, as_index=False, sort=True).agg(
        value=("value", "mean"), n_params=("n_params", "max"), flops=("flops", "mean"))


def chance_levels(df: pd.DataFrame) -> dict[tuple[str, str], float]:
    """(task, metric) -> chance level from the ``chance/<metric>`` rows."""
    rows = df[df.metric.str.startswith(CHANCE_PREFIX)]
    out = rows.groupby(["task", "metric"]).value.mean()
    return {(t, m[len(CHANCE_PREFIX):]): float(v) for (t, m), v in out.items() if np.isfinite(v)}


def answer_lengths(df: pd.DataFrame) -> dict[str, float]:
    """task -> answer length L in tokens from the ``answer_length`` rows."""
    rows = df[(df.metric == "answer_length") & (df.source == "eval")]
    return {t: float(v) for t, v in rows.groupby("task").value.mean().items() if np.isfinite(v) and v > 0}


def capability_points(df: pd.DataFrame) -> pd.DataFrame:
    """Eval rows that measure a checkpoint (no chance/answer-length rows), averaged over seeds."""
    d = df[(df.source == "eval") & (df.step >= 0) & ~df.metric.str.startswith(CHANCE_PREFIX)
           & ~df.metric.isin(META_METRICS) & np.isfinite(df.value)]
    return _mean_by(d, ["task", "metric", "k_shot", "rung", "step"])


def heldout_loss(df: pd.DataFrame) -> pd.DataFrame:
    """Held-out pretraining loss per (rung, step)."""
    d = df[(df.source == "eval") & (df.task == HELDOUT[0]) & (df.metric == HELDOUT[1]) & (df.step >= 0)
           & np.isfinite(df.value)]
    return d.groupby(["rung", "step"], as_index=False).value.mean().rename(columns={"value": "loss"})


def _make(task, metric, k_shot, axis, rung, x, y, chances, dropped) -> Curve:
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    ok = np.isfinite(x) & np.isfinite(y) & ((x > 0) if axis != "loss" else True)
    dropped = {**dropped, "nonpositive_or_nonfinite": int((~ok).sum())}
    x, y = x[ok], y[ok]
    order = np.argsort(x if axis != "loss" else -x, kind="stable")
    x, y = x[order], y[order]
    hib, kind = metric_info(metric)
    if (task, metric) in chances:
        chance, source = chances[(task, metric)], "rows"
    elif metric in ZERO_CHANCE:
        chance, source = 0.0, "zero"
    else:
        chance, source = (float(y[0]) if len(y) else float("nan")), "start"
    bounded = metric in BOUNDED or (len(y) > 0 and metric not in METRICS and y.min() >= 0 and y.max() <= 1)
    scale = 1.0 if bounded else float(np.max(np.abs(y))) if len(y) and np.max(np.abs(y)) > 0 else 1.0
    return Curve(task, metric, int(k_shot), axis, rung, x, y, hib, kind, float(chance), source, scale, dropped)


def extract_curves(df: pd.DataFrame, axes=("params", "step", "flops", "loss")) -> list[Curve]:
    """Every capability curve of the table along the requested axes."""
    pts = capability_points(df)
    if pts.empty:
        return []
    chances = chance_levels(df)
    loss = heldout_loss(df)
    curves: list[Curve] = []
    for (task, metric, k_shot), g in pts.groupby(["task", "metric", "k_shot"], sort=True):
        is_heldout = (task, metric) == HELDOUT
        if "params" in axes:
            last = g[g.step == g.groupby("rung").step.transform("max")].sort_values("n_params")
            curves.append(_make(task, metric, k_shot, "params", None, last.n_params, last.value, chances, {}))
        if "step" in axes:
            for rung, r in g.groupby("rung", sort=True):
                n0 = int((r.step == 0).sum())
                r = r[r.step > 0]
                curves.append(_make(task, metric, k_shot, "step", str(rung), r.step, r.value, chances, {"step0": n0}))
        if "flops" in axes:
            curves.append(_make(task, metric, k_shot, "flops", None, g.flops, g.value, chances, {}))
        if "loss" in axes and not is_heldout and not loss.empty:
            m = g.merge(loss, on=["rung", "step"], how="inner")
            curves.append(_make(task, metric, k_shot, "loss", None, m.loss, m.value, chances,
                                {"no_loss": int(len(g) - len(m))}))
    return curves
