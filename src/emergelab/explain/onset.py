"""The onset (sigmoid midpoint) and 10→90 % width of a transition, with intervals from the replicates.

Onsets are given only for curves judged emergent or transient. The point estimate is the midpoint x0
of ``SigmoidFit`` on the observed rising part of the curve (up to its peak, for a transient one); the
replicates that give the curve's verdict are refitted by profiling the sigmoid's RSS over a grid of
(x0, slope) — vectorised over replicates — and the interval is the central ``ci_level`` quantile range
of their midpoints (and widths). When the fitted transition is narrower than the gap between the data
points around it, the data cannot place it more finely than that gap, and the interval is widened to
cover it (``resolved = False``). A midpoint on the edge of the observed range is flagged
(``inside = False``): the transition's centre then lies outside what was measured.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from emergelab.explain.curves import Curve
from emergelab.explain.fit import SigmoidFit, sigmoid_grid, sigmoid_profile
from emergelab.explain.formulas import LOGISTIC_10_90


def x_of_t(curve: Curve, t: np.ndarray) -> np.ndarray:
    """x from the axis coordinate t (log10 x, or −loss on the loss axis)."""
    return 10.0 ** np.asarray(t, dtype=float) if curve.log_x else -np.asarray(t, dtype=float)


def model_coord(curve: Curve) -> np.ndarray:
    """The sigmoid's own coordinate: log10 x on log axes, x (the loss) on the loss axis."""
    return curve.t if curve.log_x else curve.x


def profile_sigmoids(u: np.ndarray, Y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(midpoints, 10→90 % widths) of the least-squares sigmoid on a grid, one per row of Y."""
    x0s, slopes, _ = sigmoid_grid(u, n_x0=121, n_slope=16)
    rss = sigmoid_profile(u, Y, x0s, slopes, coef=False)             # (x0 × slope) × rows
    best = np.argmin(rss, axis=0)
    i, k = np.unravel_index(best, (len(x0s), len(slopes)))
    return x0s[i], LOGISTIC_10_90 / slopes[k]


@dataclass
class Onset:
    model: str
    t: float  # midpoint on the axis coordinate t
    ci: tuple[float, float] | None  # in t units
    width: float  # 10→90 % width, in decades (nats on the loss axis)
    width_ci: tuple[float, float] | None
    resolved: bool
    inside: bool
    n_replicates: int
    replicates: np.ndarray | None = None  # midpoints of the replicates, t units


def _interval(v: np.ndarray, level: float) -> tuple[float, float] | None:
    v = v[np.isfinite(v)]
    if len(v) < 2:
        return None
    a = (1 - level) / 2
    lo, hi = np.quantile(v, [a, 1 - a])
    return float(lo), float(hi)


def estimate_onset(curve: Curve, upto: int, reps: np.ndarray, level: float) -> Onset | None:
    """Onset of the rise in points 0 … ``upto`` − 1 of ``curve``; ``reps`` (rows × n) are the replicates
    that share the curve's verdict, in the metric's own direction."""
    u = model_coord(curve)[:upto]
    if len(np.unique(u)) < 4:
        return None
    with np.errstate(all="ignore"):
        fit = SigmoidFit(log_x=curve.log_x).fit(curve.x[:upto], curve.y[:upto])
    p0, slope = fit.params_["x0"], fit.params_["slope"]
    if not np.isfinite(p0):
        return None
    span = float(u.max() - u.min())
    inside = bool(u.min() + 0.005 * span < p0 < u.max() - 0.005 * span)
    to_t = (lambda v: v) if curve.log_x else (lambda v: -v)
    width = float(LOGISTIC_10_90 / slope) if slope > 0 else float("inf")
    ci = width_ci = rep_t = None
    if len(reps) >= 2:
        mids, widths = profile_sigmoids(u, reps[:, :upto])
        rep_t = to_t(mids)
        ci = _interval(rep_t, level)
        width_ci = _interval(widths, level)
    t0 = float(to_t(p0))
    if ci is not None:
        ci = (min(ci[0], t0), max(ci[1], t0))
    t = np.unique(curve.t[:upto])
    left, right = t[t <= t0], t[t >= t0]
    resolved = True
    if len(left) and len(right) and width < float(right.min() - left.max()):
        resolved = False
        lo_b, hi_b = float(left.max()), float(right.min())
        ci = (min(ci[0], lo_b), max(ci[1], hi_b)) if ci else (lo_b, hi_b)
    return Onset(fit.name, t0, ci, width, width_ci, resolved, inside, len(reps), rep_t)
