"""The shape of a curve on the axis as plotted: learned, transient, sharp — for a batch of replicates.

Everything here works on good-direction values G (replicates × points, ordered along t = log10 x, or
−loss on the loss axis) with the per-point noise σ at which the rules read them (see ``explain.noise``).
With e = ``edge_points(n)`` (2 on a ladder of fewer than 15 points, 3 on longer curves):

- start S = mean of the first e points, end E = mean of the last e, peak P = the largest 3-point
  running mean (at index p); σ_S, σ_E, σ_P follow from σ.
- **learned**: P − S ≥ max(min_gain·scale, z·sqrt(σ_P² + σ_S²)) — it rises along the axis — and, when
  the chance level c is known, P − c ≥ max(min_gain·scale, z·σ_P). A curve that does not rise is not
  learned whatever its level.
- **transient** (Singh et al. 2023): learned, the peak has at least e points after it, and the curve
  loses most of its gain: P − E ≥ lose_frac·(P − S) and P − E ≥ z·sqrt(σ_P² + σ_E²).
- **sharp** (concentration of the improvement along the axis; cf. BIG-bench breakthroughness,
  Srivastava et al. 2022): m = the monotone (isotonic, 1/σ²-weighted) fit of G. The steepest window
  is the pair of points i < j with t_j − t_i ≤ W (or adjacent points, when their gap exceeds W)
  maximising m_j − m_i; its *share* = (m_j − m_i) / max(E − S, m_j − m_i), the part of the rise from
  the start level to the end level that happens inside one window (levels, being means of e points,
  are steadier under noise than the isotonic fit's extremes). The rise is
  carried by the points past the window's three-quarter level (m ≥ m_i + 0.75·(m_j − m_i): a slow creep
  after the jump does not hide the points that hold it) and preceded by the points before its 10 %
  level. Sharp when share ≥ ``sharpness``, at least ``min_before`` points precede
  the rise and at least e points are past it (one lucky last point is not a transition).

``classify`` turns these into one code per replicate: not learned, smooth, emergent, transient.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.isotonic import isotonic_regression

NOT_LEARNED, SMOOTH, EMERGENT, TRANSIENT = 0, 1, 2, 3
SHAPE_NAMES = {NOT_LEARNED: "not learned", SMOOTH: "smooth", EMERGENT: "emergent", TRANSIENT: "transient"}


def edge_points(n: int, short: int = 2, long: int = 3, long_curve: int = 15) -> int:
    """Points that make a level at either end: ``short`` below ``long_curve`` points, else ``long``."""
    return short if n < long_curve else long


def running_mean(G: np.ndarray, sigma: np.ndarray, half: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Centred running mean of width 2·half + 1 (shorter at the ends) of each row, and its σ."""
    n = G.shape[1]
    lo = np.maximum(np.arange(n) - half, 0)
    hi = np.minimum(np.arange(n) + half + 1, n)
    c = np.concatenate([np.zeros((G.shape[0], 1)), np.cumsum(G, axis=1)], axis=1)
    v = np.concatenate([[0.0], np.cumsum(sigma ** 2)])
    cnt = hi - lo
    return (c[:, hi] - c[:, lo]) / cnt, np.sqrt(v[hi] - v[lo]) / cnt


def monotone_fit(G: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """Non-decreasing least-squares fit of each row, weighted by 1/σ² (isotonic regression).

    Vectorised over rows by the min–max formula m_i = max_{a≤i} min_{b≥i} mean_w(g_a … g_b)
    (Barlow et al. 1972); long curves use PAV row by row."""
    w = 1.0 / np.maximum(sigma, 1e-12) ** 2
    R, n = G.shape
    if n > 40:
        return np.vstack([isotonic_regression(g, sample_weight=w, increasing=True) for g in G])
    C = np.concatenate([np.zeros((R, 1)), np.cumsum(G * w, axis=1)], axis=1)
    W = np.concatenate([[0.0], np.cumsum(w)])
    a, b = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    valid = b >= a
    den = np.where(valid, W[b + 1] - W[a], 1.0)
    A = np.where(valid[None], (C[:, b + 1] - C[:, a]) / den[None], np.inf)     # R × a × b
    tail_min = np.minimum.accumulate(A[:, :, ::-1], axis=2)[:, :, ::-1]      # min over b ≥ i
    tail_min = np.where(valid[None], tail_min, -np.inf)                       # only a ≤ i
    return tail_min.max(axis=1)


def window_pairs(t: np.ndarray, width: float) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs (i, j), i < j, with t_j − t_i ≤ width, plus every adjacent pair."""
    i, j = np.triu_indices(len(t), k=1)
    ok = (t[j] - t[i] <= width + 1e-9) | (j == i + 1)
    return i[ok], j[ok]


def steepest_window(t: np.ndarray, M: np.ndarray, width: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row of the monotone fits M: (i, j, rise) of the window of width ≤ ``width`` rising most;
    ties go to the narrowest window."""
    i, j = window_pairs(t, width)
    rise = M[:, j] - M[:, i]                                   # R × pairs
    span = t[j] - t[i]
    top = rise.max(axis=1, keepdims=True)
    tied = rise >= top - 1e-9 * np.maximum(np.abs(top), 1e-12)
    best = np.argmin(np.where(tied, span[None, :], np.inf), axis=1)
    return i[best], j[best], rise[np.arange(len(best)), best]


def first_at_least(M: np.ndarray, level: np.ndarray) -> np.ndarray:
    """Per row, the first index where M ≥ level (n when never)."""
    hit = M >= level[:, None] - 1e-12
    return np.where(hit.any(axis=1), np.argmax(hit, axis=1), M.shape[1])


@dataclass
class ShapeRules:
    """The thresholds of the shape rules (``ExplainOptions`` fields of the same names)."""

    min_gain: float = 0.05
    noise_z: float = 3.0
    lose_frac: float = 0.5
    sharpness: float = 0.8
    window: float = 1.0
    min_before: int = 2
    edge_short: int = 2
    edge_long: int = 3
    long_curve: int = 15


def shape_stats(t: np.ndarray, G: np.ndarray, sigma: np.ndarray, chance: float | None, scale: float,
                rules: ShapeRules) -> dict[str, np.ndarray]:
    """The statistics of the module docstring, one value per row of G."""
    R, n = G.shape
    e = edge_points(n, rules.edge_short, rules.edge_long, rules.long_curve)
    S, E = G[:, :e].mean(axis=1), G[:, -e:].mean(axis=1)
    s_S, s_E = np.sqrt(np.sum(sigma[:e] ** 2)) / e, np.sqrt(np.sum(sigma[-e:] ** 2)) / e
    rm, s_rm = running_mean(G, sigma)
    p = np.argmax(rm, axis=1)
    P, s_P = rm[np.arange(R), p], s_rm[p]
    z, floor = rules.noise_z, rules.min_gain * scale
    learned = P - S >= np.maximum(floor, z * np.sqrt(s_P ** 2 + s_S ** 2))
    if chance is not None:
        learned &= P - chance >= np.maximum(floor, z * s_P)
    drop = P - E
    transient = (learned & (p < n - e) & (drop >= rules.lose_frac * (P - S))
                 & (drop >= z * np.sqrt(s_P ** 2 + s_E ** 2)))
    M = monotone_fit(G, sigma)
    total = M[:, -1] - M[:, 0]
    i, j, rise = steepest_window(t, M, rules.window)
    level_rise = np.maximum(E - S, rise)  # the rise from the start level to the end level
    share = np.where(rise > 0, rise / np.where(level_rise > 0, level_rise, 1.0), 0.0)
    base = M[np.arange(R), i]
    n_before = first_at_least(M, base + 0.1 * rise)
    n_after = n - first_at_least(M, base + 0.75 * rise)
    sharp = (share >= rules.sharpness) & (n_before >= rules.min_before) & (n_after >= e)
    return {"start": S, "end": E, "peak": P, "peak_index": p, "learned": learned, "transient": transient,
            "total_rise": total, "window_rise": rise, "window_from": i, "window_to": j, "share": share,
            "n_before": n_before, "n_after": n_after, "sharp": sharp, "edge": np.full(R, e)}


def classify(stats: dict[str, np.ndarray]) -> np.ndarray:
    """One shape code per replicate: not learned, transient, emergent (sharp) or smooth, in that order."""
    out = np.full(len(stats["learned"]), SMOOTH)
    out[stats["sharp"]] = EMERGENT
    out[stats["transient"]] = TRANSIENT
    out[~stats["learned"]] = NOT_LEARNED
    return out
