"""Measurement uncertainty of a curve's points, and replicate curves drawn from it.

Per point (value v of one seed, measured on n items), the standard error is, in this order:

- ``stderr`` when the rows report one;
- binomial, σ = sqrt(p̃(1 − p̃)/n) with p̃ = (v·n + ½)/(n + 1), for metrics bounded in [0, 1] whose rows
  give n (the ½ keeps a point measured at exactly 0 or 1 from counting as noiseless: with n = 4 a value
  of 0 has σ ≈ 0.15, with n = 2,000 it has σ ≈ 0.008);
- otherwise estimated from the curve itself: σ̂ = 1.4826·median|Δ²g| / √6 over its second differences
  (the median ignores the few second differences a jump touches; Δ² of a line is 0).

The mean of k seeds has σ = sqrt(mean σ²/k), or the seeds' own spread sd/√k when that is larger
(run-to-run variation is noise too). A point's σ is floored at ``SIGMA_FLOOR``·scale.

Replicates (Efron & Tibshirani 1993, parametric and smoothed bootstrap): with one seed, replicate r is
y + ε_r, ε_r ~ N(0, σ²) at each point independently; with k ≥ 2 seeds it is the mean of k seed curves
drawn with replacement, plus ε_r at σ of that mean (the added noise keeps two seeds from giving only
three distinct replicates). A replicate therefore carries the observed noise plus the drawn one, so the
decision rules are applied to it at noise level √2·σ (``REPLICATE_INFLATION``): the rules then treat
a replicate exactly as they treat a curve measured with that noise.
"""
from __future__ import annotations

import numpy as np

from emergelab.explain.curves import Curve

#: Smallest per-point σ, as a fraction of the metric's scale (no measurement is exact).
SIGMA_FLOOR = 1e-3
#: A replicate's noise relative to the observed curve's: observed noise plus drawn noise.
REPLICATE_INFLATION = float(np.sqrt(2.0))


def binomial_stderr(value: np.ndarray, n: np.ndarray) -> np.ndarray:
    """sqrt(p̃(1 − p̃)/n), p̃ = (v·n + ½)/(n + 1); NaN where n ≤ 0."""
    v = np.clip(np.asarray(value, dtype=float), 0.0, 1.0)
    n = np.asarray(n, dtype=float)
    with np.errstate(all="ignore"):
        p = (v * n + 0.5) / (n + 1.0)
        return np.where(n > 0, np.sqrt(p * (1 - p) / np.maximum(n, 1e-300)), np.nan)


def roughness_sigma(y: np.ndarray) -> float:
    """σ̂ = 1.4826·median|Δ²y|/√6 (0 with fewer than 3 points)."""
    y = np.asarray(y, dtype=float)
    if len(y) < 3:
        return 0.0
    return float(1.4826 * np.median(np.abs(np.diff(y, 2))) / np.sqrt(6.0))


def seed_stderr(curve: Curve) -> np.ndarray:
    """Per seed and point (k × n): reported stderr, else binomial from value and n, else NaN."""
    se = np.broadcast_to(curve.stderr, curve.seeds.shape).astype(float)
    if curve.bounded:
        binom = binomial_stderr(curve.seeds, np.broadcast_to(curve.n_items, curve.seeds.shape))
        se = np.where(np.isfinite(se), se, binom)
    return se


def point_sigma(curve: Curve) -> tuple[np.ndarray, str]:
    """(σ of each point of ``curve.y``, its source: "stderr" | "binomial" | "estimated" | "mixed")."""
    n = len(curve.y)
    if n == 0:
        return np.zeros(0), "estimated"
    se = seed_stderr(curve)
    have = np.isfinite(curve.seeds)
    k = np.maximum(have.sum(axis=0), 1)
    with np.errstate(all="ignore"):
        var = np.nansum(np.where(have, se ** 2, np.nan), axis=0) / k ** 2
    known = np.isfinite(se).any(axis=0) & np.isfinite(var)
    rough = roughness_sigma(curve.good)
    sigma = np.where(known, np.sqrt(np.where(known, var, 0.0)), rough / np.sqrt(k))
    if curve.n_seeds >= 2:  # seeds disagreeing by more than their measurement noise: that spread counts
        with np.errstate(all="ignore"):
            between = np.nanstd(curve.seeds, axis=0, ddof=1) / np.sqrt(k)
        sigma = np.fmax(sigma, np.where(k >= 2, between, 0.0))
    sigma = np.maximum(sigma, SIGMA_FLOOR * curve.scale)
    if known.all():
        source = "stderr" if np.isfinite(curve.stderr).all() else "binomial"
    else:
        source = "estimated" if not known.any() else "mixed"
    return sigma, source


def replicates(curve: Curve, sigma: np.ndarray, n_rep: int, rng: np.random.Generator) -> np.ndarray:
    """``n_rep`` replicate curves (n_rep × n) in the metric's own direction."""
    n = len(curve.y)
    noise = rng.normal(0.0, 1.0, size=(n_rep, n)) * sigma[None, :]
    k = curve.n_seeds
    if k < 2:
        return curve.y[None, :] + noise
    pick = rng.integers(0, k, size=(n_rep, k))
    drawn = curve.seeds[pick]                                   # n_rep × k × n
    with np.errstate(all="ignore"):
        mean = np.nanmean(drawn, axis=1)
    mean = np.where(np.isfinite(mean), mean, curve.y[None, :])  # every drawn seed lacked the point
    return mean + noise
