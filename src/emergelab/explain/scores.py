"""Emergence scores: BIG-bench linearity and breakthroughness, and Wei et al.'s near-chance criterion.

BIG-bench (Srivastava et al. 2022, appendix "linearity and breakthroughness"), for performances
y_1 … y_n ordered by increasing scale (here: along the axis, signed so that larger is better):

    I(y) = sign(argmax_i y_i − argmin_i y_i) · (max_i y_i − min_i y_i)       total improvement
    L    = I(y) / RootMeanSquare({y_{i+1} − y_i}_i)                          linearity
    B    = I(y) / RootMedianSquare({y_{i+1} − y_i}_i)                        breakthroughness

with RootMeanSquare(v) = sqrt(mean v_i²) and RootMedianSquare(v) = sqrt(median v_i²). Steady steps
give L ≈ B ≈ n−1; one jump among flat steps gives a small median step, hence a large B. Both are 0
for a flat curve (I = 0) and B is infinite (``None`` in JSON) when more than half the steps are exactly
0. The x values only order the points (BIG-bench assumes roughly log-uniform model sizes).

Wei et al. (2022): an ability is emergent when performance is near chance below some scale and
clearly above it after. Here: the first ``n_near`` ≥ 2 points lie at most ``tol`` above chance, the
next one is clearly above it (≥ 2·tol: a jump, not the next step of a ramp), every later point stays
above the band, and the best is at least ``min_rise`` above chance (tol = chance_tolerance × scale,
min_rise × scale). It needs a chance level: with none (``chance_source == "start"``) it never holds.
These scores are evidence quoted in ``explanations.json``; the verdict is ``explain.shape``'s.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from emergelab.explain.curves import Curve


def total_improvement(y: np.ndarray) -> float:
    """I(y) = sign(argmax y − argmin y)·(max y − min y)."""
    y = np.asarray(y, dtype=float)
    if len(y) == 0:
        return 0.0
    return float(np.sign(int(np.argmax(y)) - int(np.argmin(y))) * (y.max() - y.min()))


def root_mean_square(v: np.ndarray) -> float:
    """sqrt(mean v²)"""
    return float(np.sqrt(np.mean(np.square(v)))) if len(v) else 0.0


def root_median_square(v: np.ndarray) -> float:
    """sqrt(median v²)"""
    return float(np.sqrt(np.median(np.square(v)))) if len(v) else 0.0


def _ratio(i: float, d: float) -> float:
    if i == 0:
        return 0.0
    return i / d if d > 0 else float(np.sign(i) * np.inf)


def linearity(y: np.ndarray) -> float:
    """L = I(y) / RootMeanSquare(Δy) (BIG-bench)."""
    return _ratio(total_improvement(y), root_mean_square(np.diff(np.asarray(y, dtype=float))))


def breakthroughness(y: np.ndarray) -> float:
    """B = I(y) / RootMedianSquare(Δy) (BIG-bench)."""
    return _ratio(total_improvement(y), root_median_square(np.diff(np.asarray(y, dtype=float))))


@dataclass
class Wei:
    emergent: bool
    n_near: int  # leading points within tol of chance
    last_near_x: float | None  # the largest x still near chance
    first_above_x: float | None  # the first x clearly above it
    chance: float
    tol: float


def wei_criterion(curve: Curve, chance_tolerance: float, min_rise: float) -> Wei:
    """Wei et al.'s criterion on a curve (good-direction values, ordered along the axis)."""
    g = curve.good
    if curve.chance is None:  # no chance level: the criterion cannot hold
        return Wei(False, 0, None, None, float("nan"), float(chance_tolerance * curve.scale))
    c = curve.chance if curve.higher_is_better else -curve.chance
    tol = chance_tolerance * curve.scale
    n = len(g)
    near = g <= c + tol
    s = int(np.argmin(near)) if not near.all() else n
    emergent = bool(2 <= s < n and g[s] >= c + 2 * tol
                    and np.all(g[s:] > c + tol) and g[s:].max() >= c + min_rise * curve.scale)
    last = float(curve.x[s - 1]) if 1 <= s <= n else None
    first = float(curve.x[s]) if s < n else None
    return Wei(emergent, s, last, first, float(curve.chance), float(tol))


def curve_scores(curve: Curve, chance_tolerance: float, min_rise: float) -> dict:
    """Linearity, breakthroughness and Wei's criterion of one curve, JSON-ready."""
    g = curve.good
    return {"linearity": linearity(g), "breakthroughness": breakthroughness(g),
            "total_improvement": total_improvement(g),
            "wei": asdict(wei_criterion(curve, chance_tolerance, min_rise))}
