"""The four candidate models as scikit-learn-style estimators, fitted robustly by least squares.

Each estimator keeps its hyper-parameter (``log_x``: work in log10 x) from ``__init__``, learns in
``fit(x, y)`` (which returns ``self``) and names learned state with a trailing underscore:
``params_`` (a dict keyed like the formula's arguments), ``rss_``, ``r2_``, ``aicc_``, ``bic_``,
``residuals_``. Non-linear fits never depend on one starting point: the linear parameters are
profiled out (variable projection) over a grid of the non-linear ones, and the best grid points are
refined with bounded ``scipy.optimize.least_squares`` (sigmoid, from up to three starts) or a bounded
scalar search of the profile (power-law exponent, breakpoint). Flat, constant or tiny curves give valid (if uninformative) fits, never an exception.

Information criteria use k = fitted parameters + 1 (the noise variance) and a Gaussian likelihood:
AIC = n·ln(RSS/n) + 2k, AICc = AIC + 2k(k+1)/(n−k−1) (undefined, ``None``, when n ≤ k+1),
BIC = n·ln(RSS/n) + k·ln n.
"""
from __future__ import annotations

import numpy as np
from scipy.optimize import least_squares, minimize_scalar
from scipy.special import expit

from emergelab.explain import formulas as F


def information_criteria(rss: float, n: int, n_params: int) -> tuple[float | None, float]:
    """(AICc, BIC) of a least-squares fit with ``n_params`` fitted parameters on ``n`` points."""
    k = n_params + 1
    ll = n * np.log(rss / n)
    bic = float(ll + k * np.log(n))
    if n - k - 1 <= 0:
        return None, bic
    return float(ll + 2 * k + 2 * k * (k + 1) / (n - k - 1)), bic


def _two_param_projection(S: np.ndarray, Y: np.ndarray, coef: bool = True):
    """Least squares of each row of Y (B×n) on [1, s] for each row s of S (G×n).

    Returns (rss G×B, intercept G×B, amplitude G×B): y ≈ intercept + amplitude·s; with
    ``coef=False`` only rss (the bootstrap needs no more).
    """
    n = S.shape[1]
    s_mean = S.mean(axis=1, keepdims=True)
    Sc = S - s_mean                                   # G×n
    sxx = np.einsum("gn,gn->g", Sc, Sc)[:, None]      # G×1
    inv = np.where(sxx > 1e-12 * max(1.0, n), 1.0 / np.maximum(sxx, 1e-300), 0.0)
    y_mean = Y.mean(axis=1)                           # B
    Yc = Y - y_mean[:, None]                          # B×n
    sxy = Sc @ Yc.T                                   # G×B
    syy = np.einsum("bn,bn->b", Yc, Yc)[None, :]      # 1×B
    rss = np.maximum(syy - sxy * sxy * inv, 0.0)
    if not coef:
        return rss
    amp = sxy * inv
    intercept = y_mean[None, :] - amp * s_mean
    return rss, intercept, amp


class _CurveModel:
    """Shared state and scoring of the estimators below."""

    base_name = ""
    n_params = 0

    def __init__(self, log_x: bool = True):
        self.log_x = log_x

    @property
    def name(self) -> str:
        if self.base_name == "power_law":
            return "power_law"
        return f"{self.base_name}_log" if self.log_x else self.base_name

    @property
    def family(self) -> str:
        return F.MODELS[self.name].family

    def _t(self, x) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        return np.log10(x) if self.log_x else x

    def predict(self, x) -> np.ndarray:
        return F.evaluate(self.name, self.params_, x)

    def _score(self, x: np.ndarray, y: np.ndarray) -> "_CurveModel":
        pred = self.predict(x)
        self.residuals_ = y - pred
        n = len(y)
        rss = float(np.sum(self.residuals_ ** 2))
        if not np.isfinite(rss):
            rss = float(np.sum((y - y.mean()) ** 2)) * 10 + 1.0
        tss = float(np.sum((y - y.mean()) ** 2))
        self.rss_ = rss
        # a perfect fit would make ln(RSS) = −inf: floor RSS at a negligible fraction of the values' size
        floor = n * (1e-9 * max(1.0, float(np.max(np.abs(y))))) ** 2
        self.r2_ = None if tss <= floor else float(1.0 - rss / tss)
        self.aicc_, self.bic_ = information_criteria(max(rss, floor), n, self.n_params)
        self.n_ = n
        return self

    def to_dict(self) -> dict:
        return {"params": {k: float(v) for k, v in self.params_.items()}, "aicc": self.aicc_, "bic": self.bic_,
                "r2": self.r2_, "rss": self.rss_, "residuals": [float(r) for r in self.residuals_],
                "family": self.family, "n_params": self.n_params}


class LinearFit(_CurveModel):
    """y = intercept + slope·t, t = log10 x (or x), by ordinary least squares."""

    base_name = "linear"
    n_params = 2

    def fit(self, x, y) -> "LinearFit":
        t, y = self._t(x), np.asarray(y, dtype=float)
        rss, b0, b1 = _two_param_projection(t[None, :], y[None, :])
        self.params_ = {"intercept": float(b0[0, 0]), "slope": float(b1[0, 0])}
        return self._score(x, y)


class PowerLawFit(_CurveModel):
    """y = a + b·x^c: c profiled over a grid (a, b by least squares for each c), then refined.

    x is rescaled by its geometric mean during fitting for conditioning; |c| is bounded so that
    x^c spans at most 6 decades over the data (and |c| ≤ 10).
    """

    base_name = "power_law"
    n_params = 3

    def fit(self, x, y) -> "PowerLawFit":
        x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
        lx = np.log10(x)
        x_ref = 10 ** lx.mean()
        span = float(lx.max() - lx.min())
        c_max = min(10.0, 6.0 / span) if span > 0 else 1.0
        xr_log = np.log(x / x_ref)
        cs = np.linspace(-c_max, c_max, 81)
        cs = cs[np.abs(cs) > 1e-3]
        S = np.exp(np.outer(cs, xr_log))
        rss, a, b = _two_param_projection(S, y[None, :])
        i = int(np.argmin(rss[:, 0]))
        c_best, a_, b_ = float(cs[i]), float(a[i, 0]), float(b[i, 0])

        def prof(c):
            r, a1, b1 = _two_param_projection(np.exp(c * xr_log)[None, :], y[None, :])
            return float(r[0, 0]), float(a1[0, 0]), float(b1[0, 0])

        # the profile RSS is smooth in c: refine between the grid neighbours of the best grid point
        lo, hi = cs[max(i - 1, 0)], cs[min(i + 1, len(cs) - 1)]
        try:
            r = minimize_scalar(lambda c: prof(c)[0], bounds=(lo, hi), method="bounded",
                                options={"xatol": 1e-8 * c_max})
            if r.fun < rss[i, 0]:
                c_best = float(r.x)
                _, a_, b_ = prof(c_best)
        except ValueError:
            pass
        c_ = c_best
        self.params_ = {"a": a_, "b": b_ * x_ref ** (-c_), "c": c_}
        return self._score(x, y)


def sigmoid_grid(t: np.ndarray, n_x0: int = 61, n_slope: int = 16) -> tuple[np.ndarray, np.ndarray, tuple]:
    """Grid of (x0, slope) for the sigmoid: x0 over the observed range, 10→90 % widths from 1 % to 5×
    the range. Returns the grid's x0s, slopes and the bounds (x0_lo, x0_hi, slope_lo, slope_hi)."""
    lo, hi = float(t.min()), float(t.max())
    span = max(hi - lo, 1e-9)
    widths = np.geomspace(span / 100, 5 * span, n_slope)
    slopes = F.LOGISTIC_10_90 / widths
    x0s = np.linspace(lo, hi, n_x0)
    return x0s, slopes, (lo, hi, float(slopes.min()), float(slopes.max()))


def sigmoid_profile(t: np.ndarray, Y: np.ndarray, x0s: np.ndarray, slopes: np.ndarray, coef: bool = True):
    """Profile RSS of the sigmoid over the (x0, slope) grid (x0-major) for each row of Y:
    (rss, floor, amp, X0, SL), or rss alone with ``coef=False``."""
    X0, SL = np.meshgrid(x0s, slopes, indexing="ij")
    X0, SL = X0.ravel(), SL.ravel()
    S = expit(SL[:, None] * (t[None, :] - X0[:, None]))
    if not coef:
        return _two_param_projection(S, Y, coef=False)
    rss, floor, amp = _two_param_projection(S, Y)
    return rss, floor, amp, X0, SL


class SigmoidFit(_CurveModel):
    """y = floor + (ceiling − floor)·expit(slope·(t − x0)), t = log10 x (or x); slope > 0.

    x0 is bounded to the observed range of t and the 10→90 % width to [1 %, 500 %] of that range;
    floor and ceiling are free (ceiling < floor describes a falling curve).
    """

    base_name = "sigmoid"
    n_params = 4

    def fit(self, x, y) -> "SigmoidFit":
        x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
        t = self._t(x)
        x0s, slopes, (x0_lo, x0_hi, s_lo, s_hi) = sigmoid_grid(t)
        rss, floor, amp, X0, SL = sigmoid_profile(t, y[None, :], x0s, slopes)
        rss = rss[:, 0]
        # several starts: the best grid point, then up to two more with a clearly different midpoint
        # that the grid finds almost as good (a second basin)
        starts, taken = [], []
        order = np.argsort(rss)
        for g in order:
            if len(starts) == 3 or rss[g] > 1.5 * rss[order[0]] + 1e-12:
                break
            if all(abs(X0[g] - X0[h]) > 0.1 * max(x0_hi - x0_lo, 1e-9) for h in taken):
                taken.append(g)
                starts.append(np.array([floor[g, 0], floor[g, 0] + amp[g, 0], X0[g], SL[g]]))

        def resid(p):
            return p[0] + (p[1] - p[0]) * expit(p[3] * (t - p[2])) - y

        def jac(p):
            s = expit(p[3] * (t - p[2]))
            ds = (p[1] - p[0]) * s * (1 - s)
            return np.column_stack([1 - s, s, -p[3] * ds, (t - p[2]) * ds])

        lb = [-np.inf, -np.inf, x0_lo, s_lo]
        ub = [np.inf, np.inf, max(x0_hi, x0_lo + 1e-9), s_hi]
        best, best_rss = starts[0], float(np.sum(resid(starts[0]) ** 2))
        for p0 in starts:
            p0 = np.clip(p0, lb, ub)
            try:
                with np.errstate(all="ignore"):
                    r = least_squares(resid, p0, jac=jac, bounds=(lb, ub), x_scale="jac", max_nfev=100)
            except (ValueError, np.linalg.LinAlgError):
                continue
            r_rss = float(np.sum(r.fun ** 2))
            if np.all(np.isfinite(r.x)) and r_rss < best_rss:
                best, best_rss = r.x, r_rss
        self.params_ = dict(zip(("floor", "ceiling", "x0", "slope"), (float(v) for v in best)))
        return self._score(x, y)


def breakpoint_profile(t: np.ndarray, Y: np.ndarray, bps: np.ndarray):
    """Profile RSS of the breakpoint model at each breakpoint in ``bps`` for each row of Y.

    Returns (rss G×B, beta G×3×B) with beta = (y0, slope_before, slope_after).
    """
    D = t[None, :] - bps[:, None]                                          # G×n
    X = np.stack([np.ones_like(D), np.minimum(D, 0.0), np.maximum(D, 0.0)], axis=2)  # G×n×3
    XtX = np.einsum("gnk,gnl->gkl", X, X) + 1e-10 * np.eye(3)[None]
    XtY = np.einsum("gnk,bn->gkb", X, Y)                                   # G×3×B
    beta = np.linalg.solve(XtX, XtY)
    yy = np.einsum("bn,bn->b", Y, Y)[None, :]
    rss = np.maximum(yy - np.einsum("gkb,gkb->gb", beta, XtY), 0.0)
    return rss, beta


def breakpoint_range(t: np.ndarray) -> tuple[float, float]:
    """Breakpoints are searched between the 2nd and the 2nd-to-last distinct t (≥ 2 points each side)."""
    u = np.unique(t)
    if len(u) < 4:
        return float(u[0]), float(u[-1])
    return float(u[1]), float(u[-2])


class BreakpointFit(_CurveModel):
    """Two lines meeting at (x0, y0) in t = log10 x (or x): x0 profiled on a grid, then refined."""

    base_name = "breakpoint"
    n_params = 4

    def fit(self, x, y) -> "BreakpointFit":
        x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
        t = self._t(x)
        lo, hi = breakpoint_range(t)
        bps = np.linspace(lo, hi, 121)
        rss, beta = breakpoint_profile(t, y[None, :], bps)
        i = int(np.argmin(rss[:, 0]))
        bp, b = bps[i], beta[i, :, 0]
        if hi > lo:
            def prof(v):
                r, _ = breakpoint_profile(t, y[None, :], np.array([v]))
                return float(r[0, 0])

            a_, c_ = bps[max(i - 1, 0)], bps[min(i + 1, len(bps) - 1)]
            try:
                r = minimize_scalar(prof, bounds=(a_, c_), method="bounded", options={"xatol": 1e-6 * (hi - lo)})
                if r.fun < rss[i, 0]:
                    bp = float(r.x)
                    b = breakpoint_profile(t, y[None, :], np.array([bp]))[1][0, :, 0]
            except ValueError:
                pass
        self.params_ = {"x0": float(bp), "y0": float(b[0]), "slope_before": float(b[1]), "slope_after": float(b[2])}
        return self._score(x, y)


ESTIMATORS = (LinearFit, PowerLawFit, SigmoidFit, BreakpointFit)


def fit_models(x: np.ndarray, y: np.ndarray, log_x: bool = True) -> dict[str, _CurveModel]:
    """All four candidate models fitted to (x, y); a model whose fit fails is left out.

    Non-finite points (and x ≤ 0 on a log axis) are ignored."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    ok = np.isfinite(x) & np.isfinite(y) & ((x > 0) if log_x else True)
    x, y = x[ok], y[ok]
    out = {}
    if len(np.unique(x)) < 3:
        return out
    for cls in ESTIMATORS:
        est = cls(log_x=log_x)
        try:
            with np.errstate(all="ignore"):
                est.fit(x, y)
        except (ValueError, FloatingPointError, np.linalg.LinAlgError):
            continue
        out[est.name] = est
    return out


def select(fits: dict[str, _CurveModel]) -> tuple[str | None, str | None, str | None]:
    """(best, best smooth, best sharp) model names by AICc; among models whose AICc is undefined
    (too few points), a family's best is its lowest-BIC member, and the overall best falls back to
    the model with the fewest parameters."""
    def best_of(names):
        names = [n for n in names if n in fits]
        if not names:
            return None
        defined = [n for n in names if fits[n].aicc_ is not None]
        if defined:
            return min(defined, key=lambda n: fits[n].aicc_)
        return min(names, key=lambda n: fits[n].bic_)

    smooth = best_of([n for n in fits if fits[n].family == "smooth"])
    sharp = best_of([n for n in fits if fits[n].family == "sharp"])
    defined = [n for n in fits if fits[n].aicc_ is not None]
    if defined:
        best = min(defined, key=lambda n: fits[n].aicc_)
    else:
        best = min(fits, key=lambda n: fits[n].n_params) if fits else None
    return best, smooth, sharp
