"""What the report is about: the capabilities, the metrics worth showing for each, and one verdict
cell per (metric, axis) — the verdict grid's model, read from ``explanations.json`` and the table.

A metric equal to a shown one at every measured point (``token_accuracy`` and ``1 − edit_distance``
for single-token answers, ``target_logprob_per_token`` for one-token targets) is not shown again: the
capability keeps a note naming it. A step-axis cell pools the per-rung curves ("emergent in 4/5 rungs").
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from emergelab.measurements import CHANCE_PREFIX, METRICS

AXES = ("params", "step", "flops", "loss")
#: the order metrics are shown in: the capability's own (discontinuous) metric first
PREFERRED = ["exact_match", "mc_accuracy", "mc_accuracy_norm", "token_accuracy", "target_logprob",
             "target_logprob_per_token", "target_pll", "brier", "edit_distance"]
#: how much a verdict says, for choosing a capability's answer (findings first)
ANSWER_RANK = {"emergent": 0, "transient": 1, "metric-induced": 2, "smooth": 3, "uncertain": 4, "not learned": 5,
               "insufficient data": 6}
FINDINGS = ("emergent", "transient", "metric-induced")
METRIC_NAME = {"exact_match": "exact match", "token_accuracy": "per-token accuracy", "target_logprob": "target log-prob",
               "target_logprob_per_token": "log-prob per token", "edit_distance": "edit distance", "brier": "Brier score",
               "mc_accuracy": "multiple-choice accuracy", "mc_accuracy_norm": "multiple-choice accuracy (length-normalised)",
               "target_pll": "target pseudo-log-likelihood", "loss": "loss"}


def metric_name(m: str) -> str:
    return METRIC_NAME.get(m, m.replace("_", " "))


def metric_order(metrics) -> list[str]:
    return sorted(metrics, key=lambda m: (PREFERRED.index(m) if m in PREFERRED else len(PREFERRED),
                                          METRICS.get(m, (True, "continuous"))[1] != "discontinuous", m))


@dataclass
class Cell:
    """One (capability, metric, axis): its curve(s) and their pooled verdict."""
    id: str
    task: str
    k_shot: int
    metric: str
    axis: str
    curves: list[dict]
    verdict: str = ""
    share: float | None = None
    text: str = ""  # 'emergent in 4/5 rungs', or the seeds' agreement

    @property
    def rank(self) -> tuple:
        return (ANSWER_RANK.get(self.verdict, 9), AXES.index(self.axis), PREFERRED.index(self.metric)
                if self.metric in PREFERRED else len(PREFERRED))

    def counts(self) -> Counter:
        return Counter(c.get("verdict", "") for c in self.curves)

    def onset_curve(self) -> dict | None:
        """The curve whose onset the answer quotes: the single curve, or the largest rung with the verdict."""
        with_onset = [c for c in self.curves if c.get("verdict") == self.verdict and c.get("onset")]
        return with_onset[-1] if with_onset else None


@dataclass
class Capability:
    task: str
    k_shot: int
    metrics: list[str]  # shown, in PREFERRED order
    same_as: dict[str, list[str]] = field(default_factory=dict)  # shown metric → identical hidden ones
    cells: dict[tuple[str, str], Cell] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.task if self.k_shot == 0 else f"{self.task} ({self.k_shot}-shot)"

    @property
    def slug(self) -> str:
        return "cap-" + "".join(ch if ch.isalnum() else "-" for ch in self.name.lower())

    def answer_cell(self) -> Cell | None:
        """The cell the capability's answer line leads with: the strongest finding, params before steps."""
        cells = [c for c in self.cells.values() if c.axis in ("params", "step")] or list(self.cells.values())
        return min(cells, key=lambda c: c.rank) if cells else None


def _same(a: pd.Series, b: pd.Series) -> str | None:
    """'' if b equals a at every point, '1 − ' if b = 1 − a, else None (both on the same index)."""
    both = pd.concat([a, b], axis=1, join="outer")
    if both.isna().any().any() or len(both) == 0:
        return None
    x, y = both.iloc[:, 0].to_numpy(float), both.iloc[:, 1].to_numpy(float)
    if np.allclose(x, y, rtol=0, atol=1e-9):
        return ""
    if np.allclose(x, 1 - y, rtol=0, atol=1e-9):
        return "1 − "
    return None


def identical_metrics(df: pd.DataFrame, task: str, k_shot: int) -> tuple[list[str], dict[str, list[str]]]:
    """The task's metrics to show, and for each the others equal to it at every point (with '1 − ')."""
    d = df[(df.source == "eval") & (df.task == task) & (df.k_shot == k_shot) & (df.step >= 0)
           & ~df.metric.str.startswith(CHANCE_PREFIX) & (df.metric != "answer_length")]
    series = {m: g.set_index(["rung", "step", "seed"]).value.sort_index() for m, g in d.groupby("metric")}
    shown, same = [], {}
    for m in metric_order(series):
        for s in shown:
            how = _same(series[s], series[m])
            if how is not None:
                same[s].append(how + metric_name(m))
                break
        else:
            shown.append(m)
            same[m] = []
    return shown, {k: v for k, v in same.items() if v}


def _pool(cell: Cell) -> None:
    """The cell's verdict and text from its curves (one, or one per rung)."""
    counts = cell.counts()
    if not counts:
        return
    cell.verdict = min(counts, key=lambda v: (-counts[v], ANSWER_RANK.get(v, 9)))
    if len(cell.curves) == 1:
        c = cell.curves[0]
        cell.share = c.get("verdict_share")
        cell.text = c.get("seed_agreement", "")
        return
    n = len(cell.curves)
    cell.share = counts[cell.verdict] / n
    cell.text = f"{cell.verdict} in {counts[cell.verdict]}/{n} rungs"
    others = [f"{v} {k}" for v, k in sorted(counts.items(), key=lambda vk: ANSWER_RANK.get(vk[0], 9)) if v != cell.verdict]
    if others:
        cell.text += " (" + ", ".join(others) + ")"


def rung_order(df: pd.DataFrame) -> list[str]:
    """Rungs smallest first."""
    d = df[df.rung != ""]
    return list(d.groupby("rung")["n_params"].max().sort_values(kind="stable").index)


def capabilities(df: pd.DataFrame, expl: dict) -> list[Capability]:
    """One Capability per evaluated (task, k_shot) but the held-out loss, with its grid cells."""
    curves = [c for c in expl.get("curves", []) if c.get("task") != "heldout"]
    order = {r: i for i, r in enumerate(rung_order(df))}
    ev = df[(df.source == "eval") & (df.task != "heldout") & (df.step >= 0)]
    keys = sorted({(str(t), int(k)) for t, k in zip(ev.task, ev.k_shot)} | {(c["task"], int(c.get("k_shot", 0))) for c in curves})
    out = []
    for task, k in keys:
        shown, same = identical_metrics(df, task, k)
        mine = [c for c in curves if c["task"] == task and int(c.get("k_shot", 0)) == k]
        shown = shown or metric_order({c["metric"] for c in mine})
        cap = Capability(task, k, shown, same)
        for metric in shown:
            for axis in AXES:
                cs = sorted((c for c in mine if c["metric"] == metric and c["axis"] == axis),
                            key=lambda c: order.get(c.get("rung"), -1))
                if cs:
                    cell = Cell(f"{cap.slug}-{metric}-{axis}".replace("_", "-"), task, k, metric, axis, cs)
                    _pool(cell)
                    cap.cells[(metric, axis)] = cell
        out.append(cap)
    return out
