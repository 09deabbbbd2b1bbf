"""The verdict on one curve — smooth, emergent, metric-induced, not learned, insufficient data — and
the one sentence of evidence that quotes its numbers.

Decision rules, applied in this order (thresholds are ``ExplainOptions`` fields; "scale" is 1 for
metrics bounded in [0, 1] and the curve's largest |value| otherwise):

1. ``insufficient data``: fewer than ``min_points`` distinct x values.
2. ``not learned``: the best value reached — the best model's highest good-direction prediction at
   the data, capped by the best observation — rises less than ``min_gain``·scale above the reference
   level (the chance level: ``chance/<metric>`` rows, or 0 for exact_match and token_accuracy; else
   the fitted starting value), or less than twice the best model's residual standard deviation.
3. The curve *looks emergent* when
   - (``n ≥ min_points_fit``) the better sharp model (sigmoid or breakpoint) beats the better smooth
     one (linear or power law) by ΔAICc ≥ ``delta_aicc``, its rise over the observed range is at least
     ``min_rise``·scale, and that rise goes from 10 % to 90 % within ``sharp_width`` (decades of x;
     nats on the loss axis); or
   - (``n < min_points_fit``, where a 4-parameter model cannot win an AICc comparison) Wei et al.'s
     criterion holds: ≥ 2 leading points near chance, then a jump clearly above it that lasts, the
     best at least ``min_rise``·scale above chance (see ``scores``; it needs a chance level).
4. ``metric-induced`` (discontinuous metrics only): the paired continuous metric of the same task,
   k-shot, axis and rung (token_accuracy, else target_logprob_per_token, target_logprob,
   edit_distance, brier) is ``smooth`` with a best model of R² ≥ ``smooth_r2`` (positive evidence of a
   smooth rise, not merely a failure to show a jump), and either the curve looks emergent or — for
   exact_match beside token_accuracy — EM ≈ p^L with L ≥ 2 explains EM with R² ≥ ``nonlinearity_r2``:
   the curve's shape is then the shape of the metric, not of the model.
5. ``emergent``: the curve looks emergent.
6. ``smooth``: otherwise.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from emergelab.explain.curves import AXIS_LABEL, Curve
from emergelab.explain.formulas import MODELS
from emergelab.explain.onset import Onset, Rise, x_of_t
from emergelab.spec.explain import ExplainOptions

VERDICTS = ("smooth", "emergent", "metric-induced", "not learned", "insufficient data")
PARTNERS = ("token_accuracy", "target_logprob_per_token", "target_logprob", "edit_distance", "brier")


def fmt_num(v: float) -> str:
    if v is None or not np.isfinite(v):
        return "n/a"
    a = abs(v)
    if a != 0 and (a >= 1e5 or a < 1e-3):
        return f"{v:.2g}"
    return f"{v:.3g}"


def fmt_x(curve: Curve, x: float) -> str:
    """A point on the axis in words: 'step 240', '1.2e+07 params', '3.4e+15 FLOPs', 'loss 2.31'."""
    if curve.axis == "step":
        return f"step {x:,.0f}" if x >= 10 else f"step {x:.2g}"
    if curve.axis == "loss":
        return f"loss {x:.3g}"
    return f"{x:.2g} {AXIS_LABEL[curve.axis]}"


def fmt_ci(curve: Curve, ci) -> str:
    if ci is None:
        return ""
    lo, hi = sorted(float(v) for v in x_of_t(curve, np.asarray(ci)))
    if curve.axis == "step":
        return f" [{lo:,.0f}, {hi:,.0f}]"
    if curve.axis == "loss":
        return f" [{lo:.3g}, {hi:.3g}]"
    return f" [{lo:.2g}, {hi:.2g}]"


def model_label(curve: Curve, name: str) -> str:
    return MODELS[name].label.format(x=AXIS_LABEL[curve.axis])


def width_unit(curve: Curve) -> str:
    return "decade" if curve.log_x else "nats"


@dataclass
class Judgement:
    verdict: str
    evidence: str
    learned: bool
    looks_emergent: bool
    route: str | None  # "model" | "wei" | None
    gain: float | None
    reference: float | None
    headline: str = ""  # the evidence's first clause, for quoting inside another sentence


def judge(curve: Curve, fits: dict, best: str | None, smooth: str | None, sharp: str | None,
          rise: Rise | None, onset: Onset | None, scores: dict, opts: ExplainOptions) -> Judgement:
    """Rules 1–3, 5 and 6 (rule 4 needs the paired metric: see ``metric_induced``)."""
    n = curve.n_distinct
    if n < opts.min_points or best is None:
        ev = (f"only {n} distinct value{'s' if n != 1 else ''} of {AXIS_LABEL[curve.axis]} "
              f"(at least {opts.min_points} needed)")
        return Judgement("insufficient data", ev, False, False, None, None, None)
    b = fits[best]
    pred = b.predict(curve.x)
    g = pred if curve.higher_is_better else -pred
    ref = curve.chance if curve.chance_source != "start" else float(pred[0])
    ref_g = ref if curve.higher_is_better else -ref
    # the best value reached: the fit's, but never beyond the best observation (a poor fit can overshoot)
    best_g = min(float(np.max(g)), float(np.max(curve.good)))
    gain = best_g - ref_g
    sigma = float(np.sqrt(b.rss_ / max(len(curve.y) - b.n_params, 1)))
    ref_name = {"rows": "chance", "zero": "chance (0)", "start": "its starting value"}[curve.chance_source]
    if gain < opts.min_gain * curve.scale or gain < 2 * sigma:
        need = max(opts.min_gain * curve.scale, 2 * sigma)
        best_v = best_g if curve.higher_is_better else -best_g
        return Judgement("not learned", f"its best value {fmt_num(best_v)} is {fmt_num(gain)} better than "
                         f"{ref_name} {fmt_num(ref)}, short of the {fmt_num(need)} that counts as learned",
                         False, False, None, gain, ref)

    B, L = scores["breakthroughness"], scores["linearity"]
    tail = f"; linearity {fmt_num(L)}, breakthroughness {fmt_num(B)}"
    unit = width_unit(curve)
    if len(curve.y) >= opts.min_points_fit and smooth and sharp:
        a_smooth, a_sharp = fits[smooth].aicc_, fits[sharp].aicc_
        d = a_smooth - a_sharp if a_smooth is not None and a_sharp is not None else None
        sharp_l, smooth_l = model_label(curve, sharp), model_label(curve, smooth)
        ok_aicc = d is not None and d >= opts.delta_aicc
        ok_rise = rise is not None and rise.rise >= opts.min_rise * curve.scale
        ok_width = rise is not None and rise.width <= opts.sharp_width
        if ok_aicc and ok_rise and ok_width:
            where = ""
            if onset is not None:
                at = float(x_of_t(curve, np.array(onset.t)))
                where = f" around {fmt_x(curve, at)}{fmt_ci(curve, onset.ci)}"
            head = f"{sharp_l} beats {smooth_l} by ΔAICc={d:.1f}"
            ev = (f"{head}; 10→90% rise of {fmt_num(rise.rise)} within {rise.width:.2f} {unit}{where}; "
                  f"breakthroughness {fmt_num(B)}")
            return Judgement("emergent", ev, True, True, "model", gain, ref,
                             f"{head}, rise within {rise.width:.2f} {unit}")
        if not ok_aicc:
            why = (f"no sharp model is preferred ({sharp_l} vs {smooth_l}: ΔAICc={d:+.1f}, "
                   f"{opts.delta_aicc:g} needed)"
                   if d is not None else "no sharp model can be compared")
        elif not ok_rise:
            why = f"{sharp_l} is preferred (ΔAICc={d:.1f}) but rises only {fmt_num(rise.rise if rise else 0)}"
        else:
            why = f"{sharp_l} is preferred (ΔAICc={d:.1f}) but its 10→90% rise spans {rise.width:.2f} {unit}"
        head = f"{model_label(curve, best)} fits best (R²={fmt_num(fits[best].r2_)})"
        return Judgement("smooth", f"{head}; {why}{tail}", True, False, "model", gain, ref, head)

    w = scores["wei"]
    if w["emergent"]:
        above = curve.y[w["n_near"]:]
        top = float(above.max() if curve.higher_is_better else above.min())
        head = (f"near chance ({fmt_num(w['chance'])} + {fmt_num(w['tol'])}) up to {fmt_x(curve, w['last_near_x'])}, "
                f"then {fmt_num(float(curve.y[w['n_near']]))} at {fmt_x(curve, w['first_above_x'])}")
        ev = (f"{head} rising to {fmt_num(top)}, by Wei et al.'s criterion ({len(curve.y)} points are too few "
              f"for a sharp-model comparison); breakthroughness {fmt_num(B)}")
        return Judgement("emergent", ev, True, True, "wei", gain, ref, head + " (Wei et al.)")
    if curve.chance_source == "start":
        head = f"rises by {fmt_num(gain)}, but without a chance level Wei et al.'s criterion cannot call it emergent"
    else:
        head = f"rises by {fmt_num(gain)} without a near-chance stretch followed by a clear jump (Wei et al.)"
    ev = f"{head}; {len(curve.y)} points are too few for a sharp-model comparison{tail}"
    return Judgement("smooth", ev, True, False, "wei", gain, ref, head)


def metric_induced(curve: Curve, own: Judgement, partner: tuple[str, dict] | None,
                   nonlin: dict | None, opts: ExplainOptions) -> Judgement | None:
    """Rule 4: a new Judgement when the discontinuous curve's shape is the metric's, else None.

    ``partner`` is (metric, record) of the paired continuous curve (its ``verdict``, ``best_model``
    and that model's R²); ``nonlin`` the task's EM ≈ p^L record.
    """
    if curve.kind != "discontinuous" or not own.learned or partner is None:
        return None
    p_metric, p_rec = partner
    if p_rec["verdict"] != "smooth":
        return None
    p_best = p_rec["best_model"]
    p_r2 = p_rec["fits"][p_best]["r2"] if p_best in p_rec["fits"] else None
    if p_r2 is None or p_r2 < opts.smooth_r2:
        return None
    p_desc = f"{p_metric} on the same task is smooth ({model_label(curve, p_best)}, R²={fmt_num(p_r2)})"
    if (curve.metric == "exact_match" and p_metric == "token_accuracy" and nonlin is not None
            and nonlin.get("r2") is not None and nonlin["length"] is not None and nonlin["length"] >= 2
            and nonlin["r2"] >= opts.nonlinearity_r2):
        src = "given" if nonlin["length_source"] == "rows" else "estimated"
        shape = f"{'it looks emergent: ' if own.looks_emergent else 'on its own, '}{own.headline}"
        ev = (f"exact_match ≈ token_accuracy^L with L={fmt_num(nonlin['length'])} ({src}) explains it "
              f"(R²={nonlin['r2']:.2f}) and {p_desc}; {shape}")
        return Judgement("metric-induced", ev, True, own.looks_emergent, own.route, own.gain, own.reference)
    if own.looks_emergent:
        ev = f"looks emergent ({own.headline}) but {p_desc}"
        return Judgement("metric-induced", ev, True, True, own.route, own.gain, own.reference)
    return None
