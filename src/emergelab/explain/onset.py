"""The onset of a transition (sigmoid midpoint or breakpoint), its rise and width, and a bootstrap CI.

The *rise* of a fitted curve is measured on the observed range only: along t (log10 x, or −loss on
the loss axis) the running maximum of the good-direction prediction climbs from its start by
``rise``; the *width* is the t-distance over which it climbs from 10 % to 90 % of that rise (in
decades, or nats on the loss axis). For a sigmoid inside the range this is 2·ln 9 / slope.

The confidence interval of the onset comes from a residual bootstrap: fitted values plus resampled
(centred, df-corrected) residuals of the onset model, refitted for each resample by profiling the
model's RSS over a fine grid of its non-linear parameters (vectorised over resamples, so 200
resamples cost milliseconds). When the fitted transition is narrower than the gap between the data
points around it, the data cannot place it more finely than that gap, and the interval is widened
to cover it (``resolved = False``). An onset on the edge of its search range (the transition's
centre lies outside the observed range) is not reported.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from emergelab.explain.curves import Curve
from emergelab.explain.fit import breakpoint_profile, breakpoint_range, sigmoid_grid, sigmoid_profile


@dataclass
class Rise:
    rise: float  # in the metric's units, good direction (≥ 0)
    width: float  # t-distance of the 10 %→90 % climb (inf when there is no rise)
    center: float  # t where the climb passes 50 %
    start: float  # prediction at the lowest t
    end: float  # prediction at the highest t


def x_of_t(curve: Curve, t: np.ndarray) -> np.ndarray:
    """x from the axis coordinate t (log10 x, or −loss on the loss axis)."""
    return 10.0 ** t if curve.log_x else -t


def rise_of(curve: Curve, model, n_grid: int = 512) -> Rise:
    """Rise and 10→90 % width of a fitted model over the curve's observed range."""
    t = curve.t
    grid = np.linspace(t.min(), t.max(), n_grid)
    with np.errstate(all="ignore"):
        pred = np.asarray(model.predict(x_of_t(curve, grid)), dtype=float)
    if not np.all(np.isfinite(pred)):
        return Rise(0.0, float("inf"), float("nan"), float("nan"), float("nan"))
    g = pred if curve.higher_is_better else -pred
    climb = np.maximum.accumulate(g) - g[0]
    total = float(climb[-1])
    if total <= 0:
        return Rise(0.0, float("inf"), float("nan"), float(pred[0]), float(pred[-1]))
    z = climb / total
    t10, t50, t90 = (float(grid[np.argmax(z >= q)]) for q in (0.1, 0.5, 0.9))
    return Rise(total, t90 - t10, t50, float(pred[0]), float(pred[-1]))


def onset_t(model) -> float | None:
    """The onset parameter (x0, in t units) of a sharp model, else None."""
    return float(model.params_["x0"]) if "x0" in model.params_ else None


def at_bound(curve: Curve, model, tol: float = 0.005) -> bool:
    """True when the onset parameter sits on the edge of its search range: the transition's centre is
    then not inside the observed range, and no onset is reported."""
    u = curve.t if curve.log_x else curve.x
    lo, hi = (float(u.min()), float(u.max())) if model.base_name == "sigmoid" else breakpoint_range(u)
    span = max(float(u.max() - u.min()), 1e-12)
    p = float(model.params_["x0"])
    return p <= lo + tol * span or p >= hi - tol * span


def bootstrap_onsets(curve: Curve, model, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Onsets (t units) refitted on ``n_boot`` residual-bootstrap resamples of the onset model."""
    u, y = (curve.t if curve.log_x else curve.x), curve.y  # the model's own coordinate
    n = len(y)
    fitted = y - model.residuals_
    res = model.residuals_ - model.residuals_.mean()
    res = res * np.sqrt(n / max(n - model.n_params, 1))
    Y = fitted[None, :] + res[rng.integers(0, n, size=(n_boot, n))]
    if model.base_name == "sigmoid":
        x0s, slopes, _ = sigmoid_grid(u, n_x0=121, n_slope=12)
        rss = sigmoid_profile(u, Y, x0s, slopes, coef=False)
        rss = rss.reshape(len(x0s), len(slopes), n_boot).min(axis=1)  # profile out the slope
    else:
        lo, hi = breakpoint_range(u)
        x0s = np.linspace(lo, hi, 121)
        rss, _ = breakpoint_profile(u, Y, x0s)
    onsets = _refine_minimum(x0s, rss)
    # parameters live in log10 x (or x on the loss axis); t is −x there
    return onsets if curve.log_x else -onsets


def _refine_minimum(grid: np.ndarray, rss: np.ndarray) -> np.ndarray:
    """Per column of ``rss`` (G×B), the grid minimum refined by a parabola through its neighbours."""
    i = np.clip(np.argmin(rss, axis=0), 1, len(grid) - 2)
    cols = np.arange(rss.shape[1])
    a, b, c = rss[i - 1, cols], rss[i, cols], rss[i + 1, cols]
    den = a - 2 * b + c
    shift = np.where(den > 0, 0.5 * (a - c) / np.where(den > 0, den, 1.0), 0.0)
    step = grid[1] - grid[0]
    return grid[i] + np.clip(shift, -1, 1) * step


@dataclass
class Onset:
    model: str
    t: float  # onset in t units
    ci: tuple[float, float] | None  # in t units
    resolved: bool
    n_bootstrap: int


def estimate_onset(curve: Curve, model, rise: Rise, n_boot: int, level: float,
                   rng: np.random.Generator) -> Onset | None:
    """Onset of a sharp model with a bootstrap CI (in t units)."""
    p = onset_t(model)
    if p is None or not np.isfinite(p) or at_bound(curve, model):
        return None
    t0 = p if curve.log_x else -p
    ci = None
    if n_boot > 0 and len(curve.y) >= 4:
        boots = bootstrap_onsets(curve, model, n_boot, rng)
        a = (1 - level) / 2
        lo, hi = np.quantile(boots, [a, 1 - a])
        ci = (float(min(lo, t0)), float(max(hi, t0)))
    t = np.unique(curve.t)
    left, right = t[t <= t0], t[t >= t0]
    resolved = True
    if len(left) and len(right):
        gap = float(right.min() - left.max())
        if rise.width < gap:
            resolved = False
            lo_b, hi_b = float(left.max()), float(right.min())
            ci = (min(ci[0], lo_b), max(ci[1], hi_b)) if ci else (lo_b, hi_b)
    return Onset(model.name, float(t0), ci, resolved, n_boot if ci else 0)
