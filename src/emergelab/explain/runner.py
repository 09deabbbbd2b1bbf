"""The explain stage: measurement table in, ``explanations.json`` out.

``explain_table(df, options) -> dict`` is pure; ``run_explain(measurements, out, options)`` reads the
table, calls it and writes the result atomically. The result (all numbers plain floats, non-finite
ones as null; x values in the axis' own units — n_params, step, FLOPs or held-out loss)::

    {
      "schema_version": 1,
      "options": {...ExplainOptions...},
      "summary": {"n_curves": int, "verdicts": {"smooth": int, "emergent": int, ...}},
      "curves": [{
        "task", "metric", "k_shot", "axis": "params|step|flops|loss", "rung": str | null (step axis only),
        "x_name": "n_params|step|flops|heldout_loss", "log_x": bool, "higher_is_better": bool,
        "kind": "discontinuous|continuous", "n_points": int, "x": [...], "y": [...], "dropped": {...},
        "chance": float, "chance_source": "rows|zero|start",
        "fits": {model_name: {"params": {...}, "aicc": float | null, "bic", "r2": float | null, "rss",
                              "residuals": [...], "family": "smooth|sharp", "n_params": int}},
        "best_model", "best_smooth", "best_sharp": model_name | null,
        "delta_aicc": AICc(best smooth) − AICc(best sharp) | null,
        "rise": {"model", "rise", "width", "unit": "decade|nats", "start", "end"} | null,
        "onset": {"model", "x", "log10_x" | null, "ci": [lo, hi] | null, "ci_level", "resolved": bool,
                  "n_bootstrap": int} | null,
        "scores": {"linearity", "breakthroughness", "total_improvement",
                   "wei": {"emergent", "n_near", "last_near_x", "first_above_x", "chance", "tol"}},
        "gain", "reference", "looks_emergent": bool, "route": "model|wei" | null,
        "verdict": "smooth|emergent|metric-induced|not learned|insufficient data", "evidence": str}],
      "nonlinearity": [{"task", "k_shot", "n_points", "length", "length_source": "rows|estimated",
                        "r2", "flags": [{"axis", "rung", "exact_match_best", "token_accuracy_best",
                                         "sharp_vs_smooth": bool}]}],
      "latent_onsets": [{"latent", "axis": "step|params", "rung", "onset", "layer",
                         "selectivity_at_onset", "first_checkpoint", "final_selectivity",
                         "n_checkpoints", "threshold"}],
      "latent_leads": [{"latent", "task", "metric", "k_shot", "axis", "rung", "verdict", "latent_onset",
                        "capability_onset", "capability_ci", "lead", "lead_ci", "lead_decades",
                        "lead_decades_ci", "relation": "lead|lag|simultaneous"}]
    }

A fitted curve is drawn with ``emergelab.explain.formulas.evaluate(name, fits[name]["params"], x)``.
Onsets (and leads) are given for every learned curve with a sharp-model fit; leads are computed for
curves judged emergent or metric-induced.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from emergelab.explain.curves import Curve, answer_lengths, capability_points, extract_curves
from emergelab.explain.fit import fit_models, select
from emergelab.explain.latent import latent_leads, latent_onsets
from emergelab.explain.nonlinearity import nonlinearity_tests
from emergelab.explain.onset import estimate_onset, rise_of, x_of_t
from emergelab.explain.scores import curve_scores
from emergelab.explain.verdict import PARTNERS, VERDICTS, judge, metric_induced
from emergelab.io import atomic_write_json
from emergelab.measurements import conform, read_table
from emergelab.spec.explain import ExplainOptions

SCHEMA_VERSION = 1
X_NAME = {"params": "n_params", "step": "step", "flops": "flops", "loss": "heldout_loss"}


def _clean(obj):
    """Plain JSON types; non-finite floats become None."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [_clean(v) for v in obj.tolist()]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    return obj


def analyse_curve(curve: Curve, opts: ExplainOptions, rng: np.random.Generator) -> tuple[dict, object]:
    """Fits, scores, onset and the rules 1–3, 5, 6 verdict of one curve (JSON-ready, and its Judgement)."""
    rec = {"task": curve.task, "metric": curve.metric, "k_shot": curve.k_shot, "axis": curve.axis,
           "rung": curve.rung, "x_name": X_NAME[curve.axis], "log_x": curve.log_x,
           "higher_is_better": curve.higher_is_better, "kind": curve.kind, "n_points": int(len(curve.x)),
           "x": curve.x, "y": curve.y, "dropped": curve.dropped, "chance": curve.chance,
           "chance_source": curve.chance_source, "fits": {}, "best_model": None, "best_smooth": None,
           "best_sharp": None, "delta_aicc": None, "rise": None, "onset": None, "scores": None}
    enough = curve.n_distinct >= opts.min_points
    fits = fit_models(curve.x, curve.y, log_x=curve.log_x) if enough else {}
    best, smooth, sharp = select(fits) if fits else (None, None, None)
    rec.update(fits={k: v.to_dict() for k, v in fits.items()}, best_model=best, best_smooth=smooth, best_sharp=sharp)
    if smooth and sharp and fits[smooth].aicc_ is not None and fits[sharp].aicc_ is not None:
        rec["delta_aicc"] = fits[smooth].aicc_ - fits[sharp].aicc_
    scores = curve_scores(curve, opts.chance_tolerance, opts.min_rise) if len(curve.y) else None
    rec["scores"] = scores
    rise = onset = None
    if sharp:
        rise = rise_of(curve, fits[sharp])
        rec["rise"] = {"model": sharp, "rise": rise.rise, "width": rise.width,
                       "unit": "decade" if curve.log_x else "nats", "start": rise.start, "end": rise.end}
    j = judge(curve, fits, best, smooth, sharp, rise, None, scores or {}, opts)
    if sharp and j.learned:
        onset = estimate_onset(curve, fits[sharp], rise, opts.n_bootstrap, opts.ci_level, rng)
        if onset is not None:
            j = judge(curve, fits, best, smooth, sharp, rise, onset, scores, opts)
            x = float(x_of_t(curve, np.array(onset.t)))
            ci = None if onset.ci is None else sorted(float(v) for v in x_of_t(curve, np.array(onset.ci)))
            rec["onset"] = {"model": onset.model, "x": x, "log10_x": onset.t if curve.log_x else None,
                            "ci": ci, "ci_level": opts.ci_level, "resolved": onset.resolved,
                            "n_bootstrap": onset.n_bootstrap}
    _set_judgement(rec, j)
    return rec, j


def _set_judgement(rec: dict, j) -> None:
    rec.update(gain=j.gain, reference=j.reference, looks_emergent=j.looks_emergent, route=j.route,
               verdict=j.verdict, evidence=j.evidence)


def _partner(by_key: dict, rec: dict) -> tuple[str, dict] | None:
    for m in PARTNERS:
        p = by_key.get((rec["task"], m, rec["k_shot"], rec["axis"], rec["rung"]))
        if p is not None and p["verdict"] != "insufficient data":
            return m, p
    return None


def explain_table(df: pd.DataFrame, options: ExplainOptions | dict | None = None) -> dict:
    """Explain every capability curve of a measurement table; returns the explanations dict."""
    opts = options if isinstance(options, ExplainOptions) else ExplainOptions(**(options or {}))
    df = conform(df)
    curves = extract_curves(df, opts.axes)
    records, judgements = [], []
    for i, curve in enumerate(curves):
        rng = np.random.default_rng([opts.seed, i])  # per-curve stream: results do not depend on order
        rec, j = analyse_curve(curve, opts, rng)
        records.append(rec)
        judgements.append(j)

    nonlin = nonlinearity_tests(capability_points(df), answer_lengths(df), opts.min_gain)
    nl_by_task = {(r["task"], r["k_shot"]): r for r in nonlin}
    by_key = {(r["task"], r["metric"], r["k_shot"], r["axis"], r["rung"]): r for r in records}
    # rule 4 reads the partner's first-pass verdict: decide every upgrade before applying any
    upgrades = []
    for curve, rec, j in zip(curves, records, judgements):
        new = metric_induced(curve, j, _partner(by_key, rec), nl_by_task.get((rec["task"], rec["k_shot"])), opts)
        if new is not None:
            upgrades.append((rec, new))
    for rec, new in upgrades:
        _set_judgement(rec, new)

    for nl in nonlin:
        for rec in records:
            if (rec["task"], rec["metric"], rec["k_shot"]) != (nl["task"], "exact_match", nl["k_shot"]):
                continue
            p = by_key.get((nl["task"], "token_accuracy", nl["k_shot"], rec["axis"], rec["rung"]))
            if p is None or rec["best_model"] is None or p["best_model"] is None:
                continue
            em_best, p_best = rec["best_model"], p["best_model"]
            nl["flags"].append({"axis": rec["axis"], "rung": rec["rung"], "exact_match_best": em_best,
                                "token_accuracy_best": p_best,
                                "sharp_vs_smooth": rec["fits"][em_best]["family"] == "sharp"
                                and p["fits"][p_best]["family"] == "smooth"})

    onsets = latent_onsets(df, opts.threshold)
    caps = [r for r in records if r["verdict"] in ("emergent", "metric-induced") and r["axis"] in ("step", "params")]
    leads = latent_leads(onsets, caps)
    counts = {v: sum(r["verdict"] == v for r in records) for v in VERDICTS}
    out = {"schema_version": SCHEMA_VERSION, "options": opts.model_dump(mode="json"),
           "summary": {"n_curves": len(records), "verdicts": counts},
           "curves": records, "nonlinearity": nonlin, "latent_onsets": onsets, "latent_leads": leads}
    return _clean(out)


def run_explain(measurements_path: str | Path, out_path: str | Path,
                options: ExplainOptions | dict | None = None) -> dict:
    """Read the measurement table, explain it and write ``out_path`` atomically; returns the dict."""
    result = explain_table(read_table(measurements_path), options)
    atomic_write_json(out_path, result)
    return result
