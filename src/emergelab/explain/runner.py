"""The explain stage: measurement table in, ``explanations.json`` out (schema version 3).

``explain_table(df, options, allowed=None) -> dict`` is pure; ``run_explain(measurements, out, options)``
reads the table, calls it and writes the result atomically. ``allowed(latent, task) -> bool`` chooses
the latent–capability pairs given a lead (default: ``options.leads``; a mechanism map plugs in here).
The decision procedure is ``docs/verdicts.md``. The result (plain floats, non-finite ones as null;
x values in the axis' own units — n_params, step, FLOPs or held-out loss)::

    {
      "schema_version": 3,
      "options": {...ExplainOptions...},
      "summary": {"n_curves": int, "verdicts": {"smooth": int, "emergent": int, ..., "uncertain": int}},
      "curves": [{
        "task", "metric", "k_shot", "axis": "params|step|flops|loss", "rung": str | null (step axis only),
        "x_name": "n_params|step|flops|heldout_loss", "log_x", "higher_is_better", "kind", "n_points",
        "n_seeds", "x": [...], "y": [...] (mean over seeds), "sigma": [...] (σ of each y),
        "sigma_source": "stderr|binomial|estimated|mixed", "dropped": {...},
        "chance": float | null, "chance_source": "rows|start",
        "verdict": "smooth|emergent|metric-induced|transient|not learned|uncertain|insufficient data",
        "verdict_share": float | null (share of replicates giving the verdict; for 'uncertain' the top
                          share), "verdict_shares": {verdict: share}, "n_replicates": int,
        "label": "emergent (0.97)", "evidence": str, "flags": [str],
        "shape": {"observed", "start", "peak", "peak_x", "end", "gain", "share", "window": [x, x],
                  "n_before", "n_after", "edge"} | null,
        "onset": {"model", "x", "log10_x" | null, "ci": [lo, hi] | null, "ci_level", "width",
                  "width_ci", "unit": "decade|nats", "resolved", "inside", "n_replicates"} | null
                 (emergent and transient curves only),
        "metric_check": {"partner", "length", "length_source": "rows|estimated", "r2", "n_points",
                         "predicts", "partner_verdict", "partner_share"} | null (exact match only),
        "fits": {model_name: {"params", "aicc", "bic", "r2", "rss", "residuals", "family", "n_params"}},
        "best_model", "best_smooth", "best_sharp", "delta_aicc": AICc(best smooth) − AICc(best sharp),
        "scores": {"linearity", "breakthroughness", "total_improvement", "wei": {...}},
        "looks_emergent": bool (the observed curve's own shape is emergent)}],
      "nonlinearity": [{"task", "k_shot", "n_points", "length", "length_source", "r2"}],
      "latent_onsets": [{"latent", "axis", "rung", "onset", "onset_ci", "persistence", "layer",
                         "selectivity_at_onset", "selectivity_of", "first_checkpoint",
                         "final_selectivity", "n_checkpoints", "threshold"}],
      "latent_leads": [{"latent", "task", "metric", "k_shot", "axis", "rung", "verdict", "latent_onset",
                        "latent_onset_ci", "capability_onset", "capability_ci", "lead", "lead_ci",
                        "lead_decades", "relation": "lead|lag|simultaneous"}],
      "mechanisms": [{"signal", "task", "metric", "k_shot", "axis": "step", "rung",
                      "signature_onset": {"x", "ci"} | null, "capability_onset": {"x", "ci"} | null,
                      "load_bearing_onset": {"x", "ci"} | null, "status": "observed|load-bearing|neither",
                      "why"}]  (explain.mechanism; latent_onsets also holds head scores, latent "heads/<score>")
    }

Fits, AICc and the BIG-bench and Wei et al. scores are evidence, never the definition. A fitted curve
is drawn with ``emergelab.explain.formulas.evaluate(name, fits[name]["params"], x)``.
"""
from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from emergelab.explain.curves import (
    Curve,
    answer_lengths,
    capability_points,
    extract_curves,
)
from emergelab.explain.fit import fit_models, select
from emergelab.explain.heads import head_onsets
from emergelab.explain.induced import check_sentence, induce, metric_check, partner_of
from emergelab.explain.latent import (
    Allowed,
    any_pair,
    from_links,
    latent_leads,
    latent_onsets,
    linked,
)
from emergelab.explain.mechanism import add_evidence, mechanism_records
from emergelab.explain.nonlinearity import nonlinearity_tests
from emergelab.explain.onset import estimate_onset, x_of_t
from emergelab.explain.scores import curve_scores
from emergelab.explain.shape import EMERGENT, TRANSIENT
from emergelab.explain.verdict import (
    CODE_NAMES,
    VERDICTS,
    Assessment,
    assess,
    decide,
    fmt_interval,
    fmt_verdict,
    fmt_x,
    shape_sentence,
    split_sentence,
    verdict_shares,
    width_unit,
)
from emergelab.io import atomic_write_json
from emergelab.measurements import conform, read_table
from emergelab.spec.explain import EXPLANATIONS_SCHEMA, ExplainOptions

SCHEMA_VERSION = EXPLANATIONS_SCHEMA
X_NAME = {"params": "n_params", "step": "step", "flops": "flops", "loss": "heldout_loss"}
CODE_OF = {v: k for k, v in CODE_NAMES.items()}


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


def base_record(curve: Curve) -> dict:
    return {"task": curve.task, "metric": curve.metric, "k_shot": curve.k_shot, "axis": curve.axis,
            "rung": curve.rung, "x_name": X_NAME[curve.axis], "log_x": curve.log_x,
            "higher_is_better": curve.higher_is_better, "kind": curve.kind, "n_points": len(curve.x),
            "n_seeds": curve.n_seeds, "x": curve.x, "y": curve.y, "sigma": None, "sigma_source": None,
            "dropped": curve.dropped, "chance": curve.chance, "chance_source": curve.chance_source,
            "verdict": "insufficient data", "verdict_share": None, "verdict_shares": {}, "n_replicates": 0,
            "label": "insufficient data", "evidence": "", "flags": [], "shape": None, "onset": None,
            "metric_check": None, "fits": {}, "best_model": None, "best_smooth": None, "best_sharp": None,
            "delta_aicc": None, "scores": None, "looks_emergent": False}


def evidence_fits(curve: Curve, rec: dict) -> None:
    """The AICc comparison and the BIG-bench / Wei scores (evidence only)."""
    fits = fit_models(curve.x, curve.y, log_x=curve.log_x)
    best, smooth, sharp = select(fits) if fits else (None, None, None)
    rec.update(fits={k: v.to_dict() for k, v in fits.items()}, best_model=best, best_smooth=smooth, best_sharp=sharp)
    if smooth and sharp and fits[smooth].aicc_ is not None and fits[sharp].aicc_ is not None:
        rec["delta_aicc"] = fits[smooth].aicc_ - fits[sharp].aicc_
    rec["scores"] = curve_scores(curve, 0.05, 0.1)


def shape_record(curve: Curve, a: Assessment) -> dict:
    o, s = a.observed, curve.sign
    ref = o["start"] if curve.chance is None else max(o["start"], s * curve.chance)
    return {"observed": CODE_NAMES[a.obs_code], "start": s * o["start"], "peak": s * o["peak"],
            "peak_x": float(curve.x[int(o["peak_index"])]), "end": s * o["end"], "gain": o["peak"] - ref,
            "share": o["share"], "window": [float(curve.x[int(o["window_from"])]), float(curve.x[int(o["window_to"])])],
            "n_before": int(o["n_before"]), "n_after": int(o["n_after"]), "edge": int(o["edge"])}


def onset_record(curve: Curve, a: Assessment, code: int, opts: ExplainOptions) -> dict | None:
    upto = int(a.observed["peak_index"]) + 1 if code == TRANSIENT else len(curve.x)
    on = estimate_onset(curve, upto, a.reps[a.codes == code], opts.ci_level)
    if on is None:
        return None
    reps = None if on.replicates is None else x_of_t(curve, on.replicates)
    return {"model": on.model, "x": float(x_of_t(curve, on.t)), "log10_x": on.t if curve.log_x else None,
            "ci": None if on.ci is None else sorted(float(v) for v in x_of_t(curve, np.array(on.ci))),
            "ci_level": opts.ci_level, "width": on.width, "width_ci": on.width_ci, "unit": width_unit(curve),
            "resolved": on.resolved, "inside": on.inside, "n_replicates": on.n_replicates, "replicates": reps,
            "_t_ci": on.ci}


def curve_flags(curve: Curve, a: Assessment, onset: dict | None, opts: ExplainOptions) -> list[str]:
    o, flags = a.observed, []
    if o["share"] >= opts.sharpness and o["n_after"] < o["edge"] and o["learned"]:
        flags.append("rise at the end of the range")
    if o["share"] >= opts.sharpness and o["n_before"] < opts.min_before and o["learned"]:
        flags.append("rise at the start of the range")
    if onset is not None and not onset["inside"]:
        flags.append("midpoint outside the observed range")
    if onset is not None and not onset["resolved"]:
        flags.append("transition narrower than the gap between points")
    if a.sigma_source in ("estimated", "mixed"):
        flags.append("noise estimated from the curve")
    return flags


def finish(curve: Curve, rec: dict, a: Assessment, codes: np.ndarray, opts: ExplainOptions, extra: str) -> None:
    """Verdict, share, onset, flags and evidence of one analysed curve."""
    shares = verdict_shares(codes)
    verdict, share = decide(shares, opts)
    code = CODE_OF.get(verdict)
    onset = onset_record(curve, a, code, opts) if code in (EMERGENT, TRANSIENT) else None
    own = a.obs_code if code is None or code > TRANSIENT else code
    parts = [shape_sentence(curve, a, own, opts)]
    if onset is not None:
        parts.append(f"onset {fmt_x(curve, onset['x'])}{fmt_interval(curve, onset.pop('_t_ci'))}, "
                     f"10→90% width {onset['width']:.2f} {onset['unit']}")
    if extra:
        parts.append(extra)
    if rec["delta_aicc"] is not None:
        parts.append(f"AICc sharp vs smooth model: Δ={rec['delta_aicc']:+.1f}")
    parts.append(split_sentence(shares, len(codes)) + ("" if verdict != "uncertain" else f" ({opts.verdict_share:g} needed)"))
    flags = curve_flags(curve, a, onset, opts)
    if verdict == "smooth" and "rise at the end of the range" in flags:
        # a sharp rise with too few points past it is not shown to be emergent, nor is it gradual: the range
        # does not decide it (more checkpoints or rungs past the rise would). A rise at the very start is the
        # ordinary early learning curve and stays smooth.
        verdict = "uncertain"
        parts.append("the observed range does not decide between emergent and smooth")
    rec.update(verdict=verdict, verdict_share=share, verdict_shares=shares, n_replicates=len(codes),
               label=fmt_verdict(verdict, share), onset=onset, flags=flags,
               evidence="; ".join(parts), shape=shape_record(curve, a), sigma=a.sigma, sigma_source=a.sigma_source,
               looks_emergent=a.obs_code == EMERGENT)


def pair_metric(curve, rec, a, by_curve, assessed, lengths, opts) -> tuple[np.ndarray, str]:
    """The exact-match curve's replicate codes after the metric-induced rule, and what to say about it."""
    partner = partner_of(curve, by_curve)
    if partner is None or partner.key not in assessed:
        return a.codes, ""
    pa = assessed[partner.key]
    check = metric_check(curve, a.sigma, partner, lengths.get(curve.task), opts.nonlinearity_r2, opts.min_gain)
    p_verdict, p_share = decide(verdict_shares(pa.codes), opts)
    rec["metric_check"] = {**check, "partner_verdict": p_verdict, "partner_share": p_share}
    return induce(a.codes, pa.codes, check["predicts"]), check_sentence(check, p_verdict, p_share, opts.nonlinearity_r2)


def seed_agreement(curve: Curve, opts: ExplainOptions) -> dict:
    """Each seed's own observed shape, and how many seeds give the curve's most common one
    (``"emergent in 3/3 seeds"``); nothing for a single seed. Metric-induced is judged on the mean only."""
    if curve.n_seeds < 2:
        return {}
    one = opts.model_copy(update={"n_bootstrap": 0})
    names = []
    for row in curve.seeds:
        keep = np.isfinite(row)
        if keep.sum() < opts.min_points:
            names.append("insufficient data")
            continue
        c = replace(curve, x=curve.x[keep], y=row[keep], seeds=row[None, keep],
                    stderr=curve.stderr[keep] if len(curve.stderr) else curve.stderr,
                    n_items=curve.n_items[keep] if len(curve.n_items) else curve.n_items)
        names.append(CODE_NAMES[assess(c, one, np.random.default_rng(0)).obs_code])
    top = max(set(names), key=lambda v: (names.count(v), v))
    return {"seed_verdicts": names, "seed_agreement": f"{top} in {names.count(top)}/{len(names)} seeds"}


def explain_table(df: pd.DataFrame, options: ExplainOptions | dict | None = None,
                  allowed: Allowed | None = None) -> dict:
    """Explain every capability curve of a measurement table; returns the explanations dict."""
    opts = options if isinstance(options, ExplainOptions) else ExplainOptions(**(options or {}))
    df = conform(df)
    curves = extract_curves(df, opts.axes)
    records, assessed = [], {}
    for i, curve in enumerate(curves):
        rec = base_record(curve)
        records.append(rec)
        if curve.n_distinct < opts.min_points:
            n = curve.n_distinct
            rec["evidence"] = (f"only {n} distinct value{'s' if n != 1 else ''} of {curve.axis} "
                               f"(at least {opts.min_points} needed)")
            continue
        evidence_fits(curve, rec)
        # per-curve stream: results do not depend on the order of the curves
        assessed[curve.key] = assess(curve, opts, np.random.default_rng([opts.seed, i]))
    lengths = answer_lengths(df)
    by_curve = {c.key: c for c in curves}
    for curve, rec in zip(curves, records):
        if curve.key in assessed:
            a = assessed[curve.key]
            codes, extra = pair_metric(curve, rec, a, by_curve, assessed, lengths, opts)
            finish(curve, rec, a, codes, opts, extra)
            rec.update(seed_agreement(curve, opts))
    onsets = latent_onsets(df, opts.threshold, opts.n_bootstrap, opts.verdict_share, opts.ci_level, opts.seed)
    onsets += head_onsets(df, opts.head_threshold, opts.head_sigma, opts.n_bootstrap, opts.verdict_share, opts.ci_level, opts.seed)
    caps = [r for r in records if r["verdict"] in ("emergent", "transient") and r["axis"] in ("step", "params")]
    leads = latent_leads(onsets, caps, allowed or (linked if opts.leads == "linked" else any_pair), opts.ci_level)
    mechanisms = mechanism_records(df, onsets, records, opts)
    add_evidence(records, mechanisms)
    for r in onsets:
        r.pop("replicate_onsets")
    for r in records:
        if r["onset"]:
            r["onset"].pop("replicates")
    counts = {v: sum(r["verdict"] == v for r in records) for v in VERDICTS}
    nonlin = nonlinearity_tests(capability_points(df), lengths, opts.min_gain)
    out = {"schema_version": SCHEMA_VERSION, "options": opts.model_dump(mode="json"),
           "summary": {"n_curves": len(records), "verdicts": counts},
           "curves": records, "nonlinearity": nonlin, "latent_onsets": onsets, "latent_leads": leads,
           "mechanisms": mechanisms}
    return _clean(out)


def run_explain(measurements_path: str | Path, out_path: str | Path,
                options: ExplainOptions | dict | None = None, links: list[tuple[str, str]] | None = None) -> dict:
    """Read the measurement table, explain it and write ``out_path`` atomically; returns the dict. With
    ``links`` (the study's mechanism map: ``(signal, task)`` pairs) and ``leads: linked``, leads follow them."""
    opts = options if isinstance(options, ExplainOptions) else ExplainOptions(**(options or {}))
    allowed = from_links(links) if links is not None and opts.leads == "linked" else None
    result = explain_table(read_table(measurements_path), opts, allowed)
    atomic_write_json(out_path, result)
    return result
