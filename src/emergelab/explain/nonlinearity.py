"""The metric-nonlinearity test: is exact match just per-token accuracy to the power L?

If each of the L answer tokens is right with probability p independently, exact match is p^L
(Schaeffer et al. 2023): a smooth rise of p becomes a sharp-looking rise of EM. For every task and
k-shot with both ``exact_match`` and ``token_accuracy``, the two are paired checkpoint by checkpoint
(all rungs × steps), EM is predicted as p^L and R² = 1 − Σ(EM − p^L)² / Σ(EM − mean EM)² is reported.

L is the task's ``answer_length`` row (source="eval", rung="", step=-1). Without one it is
estimated by least squares through the origin of log EM on log p over the points with
0 < EM and 0 < p < 1: L̂ = Σ log p·log EM / Σ (log p)² — the L for which log EM = L·log p fits best.
The test is skipped (``r2 = None``) with fewer than 3 paired points or when EM never moves by at
least ``min_gain`` (R² of a flat curve means nothing).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from emergelab.explain.formulas import exact_match_from_token_accuracy

DISCONTINUOUS, CONTINUOUS = "exact_match", "token_accuracy"


def estimate_length(em: np.ndarray, p: np.ndarray) -> float | None:
    """L̂ = Σ log p·log EM / Σ (log p)² over points with EM > 0 and 0 < p < 1 (None if none)."""
    ok = (em > 0) & (p > 0) & (p < 1)
    if ok.sum() < 2:
        return None
    lp, le = np.log(p[ok]), np.log(em[ok])
    den = float(np.sum(lp * lp))
    return float(np.sum(lp * le) / den) if den > 0 else None


def r_squared(y: np.ndarray, pred: np.ndarray) -> float | None:
    tss = float(np.sum((y - y.mean()) ** 2))
    if tss <= 0:
        return None
    return float(1 - np.sum((y - pred) ** 2) / tss)


def nonlinearity_tests(points: pd.DataFrame, lengths: dict[str, float], min_gain: float) -> list[dict]:
    """One record per (task, k_shot) having both exact_match and token_accuracy.

    ``points`` are capability points (task, metric, k_shot, rung, step, value) averaged over seeds.
    """
    out = []
    d = points[points.metric.isin([DISCONTINUOUS, CONTINUOUS])]
    for (task, k_shot), g in d.groupby(["task", "k_shot"], sort=True):
        wide = g.pivot_table(index=["rung", "step"], columns="metric", values="value", aggfunc="mean")
        if DISCONTINUOUS not in wide or CONTINUOUS not in wide:
            continue
        wide = wide[[DISCONTINUOUS, CONTINUOUS]].dropna()
        em, p = wide[DISCONTINUOUS].to_numpy(float), wide[CONTINUOUS].to_numpy(float)
        rec = {"task": task, "k_shot": int(k_shot), "n_points": int(len(em)), "length": None,
               "length_source": None, "r2": None, "flags": []}
        if task in lengths:
            rec["length"], rec["length_source"] = float(lengths[task]), "rows"
        else:
            est = estimate_length(em, p)
            if est is not None:
                rec["length"], rec["length_source"] = est, "estimated"
        if rec["length"] is not None and len(em) >= 3 and np.ptp(em) >= min_gain:
            rec["r2"] = r_squared(em, exact_match_from_token_accuracy(p, rec["length"]))
        out.append(rec)
    return out
