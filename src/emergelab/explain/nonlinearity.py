"""The metric-nonlinearity test: is exact match just per-token accuracy to the power L?

If each of the L answer tokens is right with probability p independently, exact match is p^L
(Schaeffer et al. 2023): a smooth rise of p becomes a sharp-looking rise of EM. EM and p are paired
checkpoint by checkpoint and the prediction p^L is judged in linear space — where EM is measured and
where its noise is — by the weighted R² = 1 − Σw(EM − p^L)² / Σw(EM − ĒM_w)², w = 1/σ²_EM.

L is the task's ``answer_length`` row (source="eval", rung="", step=-1): every task knows its answer
length. Only without one is it estimated, by weighted least squares in linear space,
L̂ = argmin_{1 ≤ L ≤ 200} Σw(EM − p^L)² (a fit through log space, with zeros clipped, is dominated by
the points where EM ≈ 0 and underestimates L). The test is skipped (``r2 = None``) with fewer than 3
paired points or when EM never moves by at least ``min_gain`` (R² of a flat curve means nothing).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.optimize import minimize_scalar

from emergelab.explain.formulas import exact_match_from_token_accuracy

DISCONTINUOUS, CONTINUOUS = "exact_match", "token_accuracy"
MAX_LENGTH = 200.0


def weighted_r2(y: np.ndarray, pred: np.ndarray, w: np.ndarray | None = None) -> float | None:
    """1 − Σw(y − pred)² / Σw(y − ȳ_w)² (None when y is constant)."""
    y, pred = np.asarray(y, dtype=float), np.asarray(pred, dtype=float)
    w = np.ones_like(y) if w is None else np.asarray(w, dtype=float)
    mean = float(np.sum(w * y) / np.sum(w))
    tss = float(np.sum(w * (y - mean) ** 2))
    if tss <= 1e-12 * max(1.0, float(np.sum(w))):
        return None
    return float(1 - np.sum(w * (y - pred) ** 2) / tss)


def r_squared(y: np.ndarray, pred: np.ndarray) -> float | None:
    """Unweighted R²."""
    return weighted_r2(y, pred)


def estimate_length(em: np.ndarray, p: np.ndarray, w: np.ndarray | None = None) -> float | None:
    """L̂ = argmin Σw(EM − p^L)² over 1 ≤ L ≤ 200, in linear space (None with fewer than 2 points)."""
    em, p = np.asarray(em, dtype=float), np.clip(np.asarray(p, dtype=float), 0.0, 1.0)
    w = np.ones_like(em) if w is None else np.asarray(w, dtype=float)
    if len(em) < 2 or np.ptp(p) <= 0:
        return None

    def loss(log_l):
        return float(np.sum(w * (em - exact_match_from_token_accuracy(p, np.exp(log_l))) ** 2))

    grid = np.linspace(0.0, np.log(MAX_LENGTH), 60)
    g = grid[int(np.argmin([loss(v) for v in grid]))]
    r = minimize_scalar(loss, bounds=(max(g - 0.1, 0.0), min(g + 0.1, np.log(MAX_LENGTH))), method="bounded")
    return float(np.exp(r.x))


def predict_exact_match(em: np.ndarray, p: np.ndarray, w: np.ndarray, length: float | None,
                        min_gain: float) -> dict:
    """{length, length_source: rows|estimated, r2, n_points} of EM ≈ p^L on paired points."""
    rec = {"length": length, "length_source": "rows" if length is not None else None, "r2": None,
           "n_points": len(em)}
    if length is None:
        est = estimate_length(em, p, w)
        if est is not None:
            rec["length"], rec["length_source"] = est, "estimated"
    if rec["length"] is not None and len(em) >= 3 and np.ptp(em) >= min_gain:
        rec["r2"] = weighted_r2(em, exact_match_from_token_accuracy(p, rec["length"]), w)
    return rec


def nonlinearity_tests(points: pd.DataFrame, lengths: dict[str, float], min_gain: float) -> list[dict]:
    """One record per (task, k_shot) having both exact_match and token_accuracy, pooled over every
    rung × step (unweighted). ``points`` are capability points averaged over seeds."""
    out = []
    d = points[points.metric.isin([DISCONTINUOUS, CONTINUOUS])]
    for (task, k_shot), g in d.groupby(["task", "k_shot"], sort=True):
        wide = g.pivot_table(index=["rung", "step"], columns="metric", values="value", aggfunc="mean")
        if DISCONTINUOUS not in wide or CONTINUOUS not in wide:
            continue
        wide = wide[[DISCONTINUOUS, CONTINUOUS]].dropna()
        em, p = wide[DISCONTINUOUS].to_numpy(float), wide[CONTINUOUS].to_numpy(float)
        rec = predict_exact_match(em, p, np.ones_like(em), lengths.get(task), min_gain)
        out.append({"task": task, "k_shot": int(k_shot), **rec})
    return out
