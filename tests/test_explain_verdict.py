"""Known-answer verdicts on generated curves with noise, several seeds each."""
import numpy as np
import pytest

from emergelab.explain import formulas as F
from emergelab.explain import synthetic as S
from emergelab.explain.runner import explain_table
from emergelab.spec.explain import ExplainOptions

SEEDS = range(4)
STEPS = np.unique(np.round(np.logspace(0, 4, 15)).astype(int))  # 1 … 10⁴, log-spaced checkpoints
T = np.log10(STEPS)
STEP_ONLY = ExplainOptions(axes=("step",), n_bootstrap=100)


def _curve(result, task, metric, axis="step"):
    (rec,) = [c for c in result["curves"] if (c["task"], c["metric"], c["axis"]) == (task, metric, axis)]
    return rec


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("a,b,c", [(0.95, -0.9, -0.25), (0.05, 0.01, 0.4)])  # saturating; convex in log-x
def test_power_law_is_smooth(seed, a, b, c):
    rng = np.random.default_rng(seed)
    y = F.power_law(STEPS, a, b, c) + rng.normal(0, 0.01, len(STEPS))
    res = explain_table(S.frame(S.step_rows("t", "token_accuracy", STEPS, y)), STEP_ONLY)
    rec = _curve(res, "t", "token_accuracy")
    assert rec["verdict"] == "smooth", rec["evidence"]


@pytest.mark.parametrize("seed", SEEDS)
def test_falling_loss_power_law_is_smooth(seed):
    rng = np.random.default_rng(seed)
    loss = F.power_law(STEPS, 2.0, 3.0, -0.3) * np.exp(rng.normal(0, 0.01, len(STEPS)))
    res = explain_table(S.frame(S.heldout_rows(STEPS, loss)), STEP_ONLY)
    rec = _curve(res, "heldout", "loss")
    assert rec["verdict"] == "smooth", rec["evidence"]


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("x0", [1.5, 2.3, 3.0])
def test_logistic_step_in_log_x_is_emergent_with_its_midpoint(seed, x0):
    rng = np.random.default_rng(seed)
    y = F.sigmoid_in_log(STEPS, 0.02, 0.9, x0, 15.0) + rng.normal(0, 0.02, len(STEPS))  # 10→90 % in 0.29 decade
    res = explain_table(S.frame(S.step_rows("t", "exact_match", STEPS, y)), STEP_ONLY)
    rec = _curve(res, "t", "exact_match")
    assert rec["verdict"] == "emergent", rec["evidence"]
    assert rec["onset"]["log10_x"] == pytest.approx(x0, abs=0.1)
    lo, hi = rec["onset"]["ci"]
    assert lo <= rec["onset"]["x"] <= hi
    assert "ΔAICc=" in rec["evidence"] and "breakthroughness" in rec["evidence"]


def _p_to_the_L(seed, length, with_length_row):
    rng = np.random.default_rng(seed)
    p = 0.55 + 0.11 * T  # smooth: linear in log-step, 0.55 → 0.99
    em = np.clip(p ** length + rng.normal(0, 0.01, len(T)), 0, 1)
    rows = S.step_rows("arith", "token_accuracy", STEPS, p + rng.normal(0, 0.005, len(T)))
    rows += S.step_rows("arith", "exact_match", STEPS, em)
    if with_length_row:
        rows.append(S.answer_length_row("arith", length))
    return explain_table(S.frame(rows), STEP_ONLY)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("with_length_row", [True, False])
def test_exact_match_as_p_to_the_L_is_metric_induced_and_p_is_smooth(seed, with_length_row):
    res = _p_to_the_L(seed, 10, with_length_row)
    em, p = _curve(res, "arith", "exact_match"), _curve(res, "arith", "token_accuracy")
    assert p["verdict"] == "smooth", p["evidence"]
    assert em["verdict"] == "metric-induced", em["evidence"]
    (nl,) = res["nonlinearity"]
    assert nl["length_source"] == ("rows" if with_length_row else "estimated")
    assert nl["length"] == pytest.approx(10, rel=0.1)
    assert nl["r2"] > 0.95


@pytest.mark.parametrize("seed", SEEDS)
def test_sharp_exact_match_beside_smooth_token_accuracy_is_metric_induced(seed):
    rng = np.random.default_rng(seed)
    rows = S.step_rows("t", "exact_match", STEPS, F.sigmoid_in_log(STEPS, 0.0, 0.8, 2.5, 12.0)
                       + rng.normal(0, 0.02, len(T)))
    rows += S.step_rows("t", "token_accuracy", STEPS, 0.3 + 0.15 * T + rng.normal(0, 0.01, len(T)))
    res = explain_table(S.frame(rows), STEP_ONLY)
    rec = _curve(res, "t", "exact_match")
    assert rec["verdict"] == "metric-induced" and rec["looks_emergent"], rec["evidence"]
    assert "token_accuracy on the same task is smooth" in rec["evidence"]


@pytest.mark.parametrize("seed", SEEDS)
def test_emergence_that_token_accuracy_shares_stays_emergent(seed):
    rng = np.random.default_rng(seed)
    p = F.sigmoid_in_log(STEPS, 0.3, 0.98, 2.5, 10.0)
    rows = S.step_rows("t", "token_accuracy", STEPS, p + rng.normal(0, 0.01, len(T)))
    rows += S.step_rows("t", "exact_match", STEPS, np.clip(p ** 5 + rng.normal(0, 0.01, len(T)), 0, 1))
    res = explain_table(S.frame(rows), STEP_ONLY)
    assert _curve(res, "t", "token_accuracy")["verdict"] == "emergent"
    assert _curve(res, "t", "exact_match")["verdict"] == "emergent"


@pytest.mark.parametrize("seed", SEEDS)
def test_flat_curve_at_chance_is_not_learned(seed):
    rng = np.random.default_rng(seed)
    rows = S.step_rows("mc", "mc_accuracy", STEPS, 0.25 + rng.normal(0, 0.01, len(T)))
    rows += S.step_rows("gen", "exact_match", STEPS, np.abs(rng.normal(0, 0.005, len(T))))
    rows.append(S.chance_row("mc", "mc_accuracy", 0.25))
    res = explain_table(S.frame(rows), STEP_ONLY)
    for task, metric in (("mc", "mc_accuracy"), ("gen", "exact_match")):
        rec = _curve(res, task, metric)
        assert rec["verdict"] == "not learned", rec["evidence"]
        assert rec["onset"] is None


def test_three_points_are_insufficient_data():
    res = explain_table(S.frame(S.step_rows("t", "exact_match", [10, 100, 1000], [0.0, 0.5, 0.9])), STEP_ONLY)
    rec = _curve(res, "t", "exact_match")
    assert rec["verdict"] == "insufficient data"
    assert rec["fits"] == {} and "only 3 distinct values" in rec["evidence"]


def test_a_five_rung_ladder_is_judged_by_wei_et_al():
    n = [10 ** 6, 3 * 10 ** 6, 10 ** 7, 3 * 10 ** 7, 10 ** 8]
    rows = S.ladder_rows("jump", "mc_accuracy", n, [0.25, 0.26, 0.24, 0.70, 0.85])
    rows += S.ladder_rows("ramp", "mc_accuracy", n, [0.30, 0.42, 0.55, 0.66, 0.78])
    rows += [S.chance_row("jump", "mc_accuracy", 0.25), S.chance_row("ramp", "mc_accuracy", 0.25)]
    res = explain_table(S.frame(rows), ExplainOptions(axes=("params",), n_bootstrap=50))
    jump, ramp = _curve(res, "jump", "mc_accuracy", "params"), _curve(res, "ramp", "mc_accuracy", "params")
    assert (jump["verdict"], jump["route"]) == ("emergent", "wei"), jump["evidence"]
    assert "Wei et al." in jump["evidence"] and "1e+07 params" in jump["evidence"]
    assert (ramp["verdict"], ramp["route"]) == ("smooth", "wei"), ramp["evidence"]
