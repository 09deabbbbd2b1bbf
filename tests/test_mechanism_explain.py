"""Explain's side of the mechanism map: head-score onsets lead only along declared links, and the
load-bearing onset of an intervention's specificity with its status."""
import numpy as np
import pytest

from emergelab.explain import formulas as F
from emergelab.explain import synthetic as S
from emergelab.explain.heads import head_onsets
from emergelab.explain.latent import from_links
from emergelab.explain.mechanism import load_bearing_onset
from emergelab.explain.runner import explain_table
from emergelab.measurements import mechanism_metric, parse_mechanism_metric

STEPS = np.unique(np.round(np.logspace(0, 4, 15)).astype(int))
OPTS = {"axes": ("step",), "n_bootstrap": 100}


def head_rows(score: str, steps, maxima: np.ndarray, rung: str = "r0", seed: int = 0) -> list[dict]:
    """``source="heads"`` per-layer maxima (n_steps × n_layers), as the probe stage writes them."""
    return [{**S.checkpoint_base(rung, 1_000_000, s), "source": "heads", "task": score, "layer": layer, "metric": "max",
             "value": float(maxima[i, layer]), "n": 32, "seed": seed} for i, s in enumerate(steps) for layer in range(maxima.shape[1])]


def mech_rows(signal: str, task: str, metric: str, steps, spec, drop, se=0.02, rung: str = "r0") -> list[dict]:
    out = []
    for s, sp, d in zip(steps, spec, drop):
        for q, v in (("drop", d), ("control_drop", d - sp), ("specificity", sp)):
            out.append({**S.checkpoint_base(rung, 1_000_000, s), "source": "mechanism", "task": task, "layer": 1,
                        "metric": mechanism_metric(q, metric, signal), "value": float(v), "stderr": se, "n": 128})
    return out


def _copy_curve(seed=0):
    rng = np.random.default_rng(seed)
    return F.sigmoid_in_log(STEPS, 0.0, 0.9, 2.5, 15.0) + rng.normal(0, 0.02, len(STEPS))


def test_mechanism_metric_names_round_trip_even_with_a_colon_in_the_signal():
    assert parse_mechanism_metric(mechanism_metric("specificity", "exact_match", "ginc:concept")) == ("specificity", "exact_match", "ginc:concept")
    assert parse_mechanism_metric("exact_match") is None and parse_mechanism_metric("chance/exact_match") is None


def test_a_head_score_onset_is_where_the_best_layer_stays_above_the_threshold():
    m = np.where(STEPS[:, None] >= 100, 0.8, 0.05) * np.array([[0.2, 1.0]])  # layer 1 forms the pattern at step 100
    (o,) = [o for o in head_onsets(S.frame(head_rows("induction", STEPS, m)), 0.3, 0.02, n_rep=200) if o["axis"] == "step"]
    assert o["latent"] == "heads/induction" and o["onset"] == 100 and o["layer"] == 1
    assert o["onset_ci"] is not None and o["onset_ci"][0] <= 100 <= o["onset_ci"][1]
    assert "head score" in o["selectivity_of"]


def test_seeds_spread_sets_the_head_scores_noise():
    m = np.where(STEPS[:, None] >= 100, 0.8, 0.05) * np.ones((1, 2))
    rng = np.random.default_rng(1)
    noisy = [head_rows("induction", STEPS, np.clip(m + rng.normal(0, 0.3, m.shape), 0, 1), seed=s) for s in range(3)]
    quiet = [head_rows("induction", STEPS, m, seed=s) for s in range(3)]
    (a,) = [o for o in head_onsets(S.frame(*noisy), 0.3, 0.02, n_rep=200) if o["axis"] == "step"]
    (b,) = [o for o in head_onsets(S.frame(*quiet), 0.3, 0.02, n_rep=200) if o["axis"] == "step"]
    width = lambda o: (o["onset_ci"][1] - o["onset_ci"][0]) if o["onset_ci"] else np.inf  # noqa: E731
    assert b["onset"] == 100 and width(b) < width(a)


def test_head_score_onsets_lead_only_along_declared_links():
    """Both head scores form before the copy task emerges and so does another emergent task; the map links
    heads/induction to copying only, so that is the one lead."""
    m = np.where(STEPS[:, None] >= 27, 0.8, 0.05) * np.ones((1, 2))
    df = S.frame(S.step_rows("copy", "exact_match", STEPS, _copy_curve()), S.step_rows("other", "exact_match", STEPS, _copy_curve(1)),
                 head_rows("induction", STEPS, m), head_rows("previous_token", STEPS, m))
    res = explain_table(df, OPTS, allowed=from_links([("heads/induction", "copy")]))
    assert {c["task"]: c["verdict"] for c in res["curves"]} == {"copy": "emergent", "other": "emergent"}
    assert [(r["latent"], r["task"], r["relation"]) for r in res["latent_leads"]] == [("heads/induction", "copy", "lead")]
    everything = explain_table(df, {**OPTS, "leads": "all"})
    assert len(everything["latent_leads"]) == 4  # two head scores × two tasks: the map is what restricts them


def test_load_bearing_onset_is_where_specificity_stays_significantly_positive():
    xs = np.array([0, 1, 2, 4, 8, 16, 32, 64, 128], float)
    v = np.array([0, 0, 0.01, 0.0, 0.3, 0.5, 0.6, 0.6, 0.62])
    o = load_bearing_onset(xs, v, np.full(len(v), 0.03), z=2, floor=0.05, n_rep=200, share=0.8, level=0.95,
                           rng=np.random.default_rng(0))
    assert o["x"] == 8 and o["ci"][0] <= 8 <= o["ci"][1]
    # significant but tiny specificity is not load-bearing (min_gain), nor is a large one lost at the end
    assert load_bearing_onset(xs, np.full(len(v), 0.03), np.full(len(v), 0.005), z=2, floor=0.05, n_rep=0, share=0.8,
                              level=0.95, rng=np.random.default_rng(0)) is None
    lost = v.copy()
    lost[-2:] = 0.0
    assert load_bearing_onset(xs, lost, np.full(len(v), 0.03), z=2, floor=0.05, n_rep=0, share=0.8, level=0.95,
                              rng=np.random.default_rng(0)) is None


def test_mechanism_records_give_the_three_onsets_and_a_status():
    heads = np.where(STEPS[:, None] >= 27, 0.8, 0.05) * np.ones((1, 2))
    cap = _copy_curve()
    spec = np.where(STEPS >= 373, 0.6, 0.0)  # removing the heads costs copying once it has formed
    df = S.frame(S.step_rows("copy", "exact_match", STEPS, cap), head_rows("induction", STEPS, heads),
                 mech_rows("heads/induction", "copy", "exact_match", STEPS, spec, spec + 0.02),
                 mech_rows("in_repeat", "copy", "exact_match", STEPS, np.zeros(len(STEPS)), np.full(len(STEPS), 0.01)))
    res = explain_table(df, OPTS, allowed=from_links([("heads/induction", "copy"), ("in_repeat", "copy")]))
    recs = {r["signal"]: r for r in res["mechanisms"]}
    h = recs["heads/induction"]
    assert set(h) >= {"signal", "task", "metric", "axis", "rung", "signature_onset", "capability_onset",
                      "load_bearing_onset", "status", "why"}
    assert h["status"] == "load-bearing" and h["load_bearing_onset"]["x"] == 373
    assert h["signature_onset"]["x"] == 27 and h["capability_onset"]["x"] == pytest.approx(10 ** 2.5, rel=0.25)
    assert recs["in_repeat"]["status"] == "neither" and recs["in_repeat"]["load_bearing_onset"] is None
    (curve,) = res["curves"]
    assert "heads/induction load-bearing from step 373" in curve["evidence"] and "in_repeat neither" in curve["evidence"]
