"""The verdict on one curve — its shape on the observed curve and on replicates drawn from its
measurement uncertainty, the share of replicates giving each verdict, and one sentence of evidence.

The rules are ``explain.shape``'s (learned, transient, sharp) and ``explain.induced``'s (metric-induced);
``docs/verdicts.md`` states them with their references. A verdict is the one that at least
``verdict_share`` of the replicates give; otherwise the curve is ``uncertain`` and the evidence quotes
the split. ``insufficient data``: fewer than ``min_points`` distinct x values.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from emergelab.explain.curves import AXIS_LABEL, Curve
from emergelab.explain.noise import REPLICATE_INFLATION, point_sigma, replicates
from emergelab.explain.onset import x_of_t
from emergelab.explain.shape import SHAPE_NAMES, ShapeRules, classify, shape_stats
from emergelab.spec.explain import ExplainOptions

VERDICTS = ("smooth", "emergent", "metric-induced", "transient", "not learned", "uncertain", "insufficient data")
METRIC_INDUCED = 4
CODE_NAMES = {**SHAPE_NAMES, METRIC_INDUCED: "metric-induced"}


def fmt_num(v: float | None) -> str:
    if v is None or not np.isfinite(v):
        return "n/a"
    a = abs(v)
    if a != 0 and (a >= 1e5 or a < 1e-3):
        return f"{v:.2g}"
    return f"{v:.3g}"


def fmt_verdict(verdict: str, share: float | None) -> str:
    """A verdict with its share of replicates, as the CLI and the report show it: 'emergent (0.97)'."""
    return verdict if share is None else f"{verdict} ({share:.2f})"


def fmt_x(curve: Curve, x: float) -> str:
    """A point on the axis in words: 'step 240', '1.2e+07 params', '3.4e+15 FLOPs', 'loss 2.31'."""
    if curve.axis == "step":
        return f"step {x:,.0f}" if x >= 10 else f"step {x:.2g}"
    if curve.axis == "loss":
        return f"loss {x:.3g}"
    return f"{x:.2g} {AXIS_LABEL[curve.axis]}"


def fmt_interval(curve: Curve, ci) -> str:
    if ci is None:
        return ""
    lo, hi = sorted(float(v) for v in x_of_t(curve, np.asarray(ci)))
    if curve.axis == "step":
        return f" [{lo:,.0f}, {hi:,.0f}]"
    return f" [{lo:.3g}, {hi:.3g}]" if curve.axis == "loss" else f" [{lo:.2g}, {hi:.2g}]"


def width_unit(curve: Curve) -> str:
    return "decade" if curve.log_x else "nats"


def rules_for(curve: Curve, opts: ExplainOptions) -> ShapeRules:
    return ShapeRules(min_gain=opts.min_gain, noise_z=opts.noise_z, lose_frac=opts.lose_frac,
                      sharpness=opts.sharpness, window=opts.window if curve.log_x else opts.window_loss,
                      min_before=opts.min_before, edge_short=opts.edge_points[0], edge_long=opts.edge_points[1],
                      long_curve=opts.long_curve)


@dataclass
class Assessment:
    """The shape of one curve: observed statistics (scalars) and the replicates' codes."""

    sigma: np.ndarray
    sigma_source: str
    observed: dict
    obs_code: int
    reps: np.ndarray  # replicates × points, the metric's own direction
    codes: np.ndarray  # one shape code per replicate


def assess(curve: Curve, opts: ExplainOptions, rng: np.random.Generator) -> Assessment:
    """Shape statistics of the observed curve and shape codes of its replicates."""
    sigma, source = point_sigma(curve)
    rules = rules_for(curve, opts)
    chance = None if curve.chance is None else curve.sign * curve.chance
    obs = shape_stats(curve.t, curve.good[None, :], sigma, chance, curve.scale, rules)
    obs_code = int(classify(obs)[0])
    observed = {k: (v[0].item() if hasattr(v[0], "item") else v[0]) for k, v in obs.items()}
    if opts.n_bootstrap > 0:
        reps = replicates(curve, sigma, opts.n_bootstrap, rng)
        st = shape_stats(curve.t, curve.sign * reps, REPLICATE_INFLATION * sigma, chance, curve.scale, rules)
        codes = classify(st)
    else:
        reps, codes = curve.y[None, :], np.array([obs_code])
    return Assessment(sigma, source, observed, obs_code, reps, codes)


def verdict_shares(codes: np.ndarray) -> dict[str, float]:
    """Share of replicates per verdict (only verdicts some replicate gives)."""
    vals, counts = np.unique(codes, return_counts=True)
    return {CODE_NAMES[int(v)]: float(c) / len(codes) for v, c in zip(vals, counts)}


def decide(shares: dict[str, float], opts: ExplainOptions) -> tuple[str, float]:
    """(verdict, its share): the majority when it reaches ``verdict_share``, else ('uncertain', top share)."""
    top = max(shares, key=lambda k: (shares[k], k))
    return (top, shares[top]) if shares[top] >= opts.verdict_share else ("uncertain", shares[top])


def shape_sentence(curve: Curve, a: Assessment, code: int, opts: ExplainOptions) -> str:
    """Why the observed curve has the shape ``code``, in numbers."""
    o, sgn = a.observed, curve.sign
    start, peak, end = (fmt_num(sgn * o[k]) for k in ("start", "peak", "end"))
    ref = "its start" if curve.chance is None else f"chance {fmt_num(curve.chance)} / its start"
    if code == 0:
        return (f"does not rise along the axis: its peak {peak} against {ref} {start} is short of "
                f"max({fmt_num(opts.min_gain * curve.scale)}, {opts.noise_z:g} standard errors)")
    at = fmt_x(curve, float(curve.x[int(o["peak_index"])]))
    if code == 3:
        lost = (o["peak"] - o["end"]) / max(o["peak"] - o["start"], 1e-12)
        return f"rises from {start} to a peak of {peak} at {at}, then loses {lost:.0%} of that gain by the end ({end})"
    i, j = int(o["window_from"]), int(o["window_to"])
    win = f"{fmt_x(curve, float(curve.x[i]))}–{fmt_x(curve, float(curve.x[j]))}"
    head = (f"{o['share']:.0%} of its rise ({start} → {end}) lies within {opts.window if curve.log_x else opts.window_loss:g} "
            f"{width_unit(curve)} ({win})")
    if code == 2:
        return f"{head}, with {o['n_before']} points before and {o['n_after']} past it"
    if o["share"] < opts.sharpness:
        return f"{head}: a gradual rise ({opts.sharpness:.0%} needed in one window)"
    if o["n_before"] < opts.min_before:
        return f"{head}, but it rises from the start of the range ({o['n_before']} point before it)"
    return (f"{head}, but only {o['n_after']} point{'s' if o['n_after'] != 1 else ''} lie past it at the end of "
            f"the range ({o['edge']} needed): too few to call it emergent")


def split_sentence(shares: dict[str, float], n: int) -> str:
    parts = ", ".join(f"{k} {v:.2f}" for k, v in sorted(shares.items(), key=lambda kv: -kv[1]))
    return f"replicates ({n}): {parts}"
