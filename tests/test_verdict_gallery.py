"""A gallery of known-answer curves, several noise seeds each: every behaviour of docs/verdicts.md."""
import numpy as np
import pytest
from scipy.special import expit

from emergelab.explain import synthetic as S
from emergelab.explain.runner import explain_table

SEEDS = (0, 1, 2)
STEPS = np.unique(np.round(np.logspace(1, 5, 20)).astype(int))   # 20 log-spaced checkpoints, 4 decades
RUNGS = np.round(np.logspace(6, 10, 9)).astype(int)             # 9 rungs, half a decade apart
K90 = 2 * np.log(9.0)
OPTS = {"n_bootstrap": 100}


def logistic(x, mid, width):
    return expit(K90 / width * (np.log10(x) - mid))


def measured(y, n, rng):
    """Binomial measurement of a true curve on n items."""
    return rng.binomial(n, np.clip(y, 0, 1)) / n


def rows_of(task, metric, x, values, n=1000, axis="step", **extra):
    rows = S.step_rows(task, metric, x, values) if axis == "step" else S.ladder_rows(task, metric, x, values)
    for r in rows:
        r.update(n=n, **extra)
    return rows


def judge(rows, axis="step", **opts):
    res = explain_table(S.frame(rows), {**OPTS, "axes": (axis,), **opts})
    return res, {(c["task"], c["metric"]): c for c in res["curves"]}


def one(y, seed, n=1000, axis="step", metric="exact_match", chance=None, **opts):
    rng = np.random.default_rng(seed)
    x = STEPS if axis == "step" else RUNGS
    rows = rows_of("t", metric, x, measured(y, n, rng) if metric != "target_logprob_per_token" else y, n, axis)
    if chance is not None:
        rows.append(S.chance_row("t", metric, chance))
    return judge(rows, axis, **opts)[1][("t", metric)]


T = np.log10(STEPS)
U = (T - T.min()) / np.ptp(T)


# ---- smooth families are not emergent -----------------------------------------------------------------

@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name,y", [
    ("linear in log-x", 0.1 + 0.6 * U),
    ("power law c=0.35", 0.1 + 0.7 * (STEPS ** 0.35 - 10 ** 0.35) / (1e5 ** 0.35 - 10 ** 0.35)),
    ("power law c=-0.3", 0.1 + 0.7 * (STEPS ** -0.3 - 10 ** -0.3) / (1e5 ** -0.3 - 10 ** -0.3)),
    ("saturating exponential", 0.1 + 0.7 * (1 - np.exp(-1.5 * (T - 1))) / (1 - np.exp(-6.0))),
])
def test_smooth_families_are_smooth(seed, name, y):
    rec = one(y, seed)
    assert rec["verdict"] == "smooth", (name, rec["evidence"])
    assert rec["onset"] is None  # no onset band on a smooth curve


@pytest.mark.parametrize("seed", SEEDS)
def test_a_hockey_stick_that_a_power_law_fits_is_emergent_on_the_log_axis(seed):
    y = 0.8 * np.minimum(1.0, (STEPS / 1e4) ** 1.5)  # x^1.5 up to 10⁴, then level: a hockey stick in log-x
    rec = one(y, seed)
    assert rec["verdict"] == "emergent", rec["evidence"]
    assert rec["shape"]["share"] >= 0.8 and rec["shape"]["n_before"] >= 2 and rec["shape"]["n_after"] >= 3


@pytest.mark.parametrize("seed", SEEDS)
def test_a_hockey_stick_still_rising_at_the_last_point_is_flagged_not_emergent(seed):
    rec = one(0.8 * (STEPS / 1e5) ** 1.5, seed)
    assert rec["verdict"] != "emergent", rec["evidence"]
    assert "rise at the end of the range" in rec["flags"]


# ---- sharp transitions ----------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("mid", [2.2, 3.0, 3.8])
def test_a_logistic_step_is_emergent_with_its_midpoint_and_interval(seed, mid):
    rec = one(0.05 + 0.8 * logistic(STEPS, mid, 0.25), seed)
    assert rec["verdict"] == "emergent" and rec["verdict_share"] >= 0.8, rec["evidence"]
    assert rec["label"] == f"emergent ({rec['verdict_share']:.2f})"
    assert rec["onset"]["log10_x"] == pytest.approx(mid, abs=0.15)
    lo, hi = rec["onset"]["ci"]
    assert lo <= 10 ** mid * 1.2 and hi >= 10 ** mid / 1.2 and lo <= rec["onset"]["x"] <= hi
    assert rec["onset"]["inside"] and "onset step" in rec["evidence"]


@pytest.mark.parametrize("seed", range(5))
def test_a_half_decade_wide_step_is_emergent_on_every_noise_draw(seed):
    rec = one(0.05 + 0.8 * logistic(STEPS, 3.0, 0.5), seed, n=500)
    assert rec["verdict"] == "emergent", rec["evidence"]


@pytest.mark.parametrize("seed", SEEDS)
def test_a_step_on_nine_rungs_is_emergent(seed):
    rec = one(0.02 + 0.7 * logistic(RUNGS, 8.2, 0.2), seed, axis="params")
    assert rec["verdict"] == "emergent", rec["evidence"]
    assert 10 ** 7.7 <= rec["onset"]["x"] <= 10 ** 8.7


@pytest.mark.parametrize("seed", SEEDS)
def test_a_five_rung_ladder_can_be_emergent_without_a_chance_row(seed):
    n = [10 ** 6, 3 * 10 ** 6, 10 ** 7, 3 * 10 ** 7, 10 ** 8]
    rng = np.random.default_rng(seed)
    jump = measured(np.array([0.10, 0.10, 0.11, 0.60, 0.62]), 2000, rng)
    ramp = measured(np.array([0.10, 0.22, 0.35, 0.47, 0.60]), 2000, rng)
    rows = rows_of("jump", "token_accuracy", n, jump, 2000, "params") + rows_of("ramp", "token_accuracy", n, ramp, 2000, "params")
    _, by = judge(rows, "params")
    assert by[("jump", "token_accuracy")]["verdict"] == "emergent", by[("jump", "token_accuracy")]["evidence"]
    assert by[("ramp", "token_accuracy")]["verdict"] == "smooth", by[("ramp", "token_accuracy")]["evidence"]


@pytest.mark.parametrize("seed", SEEDS)
def test_a_sharp_drop_in_loss_along_the_loss_axis_is_emergent(seed):
    rng = np.random.default_rng(seed)
    loss = np.linspace(4.0, 2.0, 20)
    steps = STEPS
    y = 0.05 + 0.8 * expit(K90 / 0.2 * (3.0 - loss))
    rows = rows_of("t", "exact_match", steps, measured(y, 1000, rng)) + S.heldout_rows(steps, loss)
    rec = judge(rows, "loss")[1][("t", "exact_match")]
    assert rec["verdict"] == "emergent", rec["evidence"]
    assert rec["onset"]["x"] == pytest.approx(3.0, abs=0.15) and rec["onset"]["unit"] == "nats"


# ---- end of the range -----------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", SEEDS)
def test_one_lucky_last_point_is_not_emergent(seed):
    y = np.full(len(STEPS), 0.02)
    y[-1] = 0.6
    rec = one(y, seed)
    assert rec["verdict"] != "emergent" and rec["onset"] is None, rec["evidence"]
    assert "rise at the end of the range" in rec["flags"] and "too few" in rec["evidence"]


@pytest.mark.parametrize("seed", SEEDS)
def test_a_transition_centred_past_the_range_is_not_emergent(seed):
    rec = one(0.05 + 0.8 * logistic(STEPS, 5.1, 0.3), seed)
    assert rec["verdict"] != "emergent", rec["evidence"]


@pytest.mark.parametrize("seed", SEEDS)
def test_two_rungs_past_the_rise_suffice_one_does_not(seed):
    two = one(0.02 + 0.7 * logistic(RUNGS, 9.0, 0.15), seed, axis="params")
    single = one(0.02 + 0.7 * logistic(RUNGS, 9.6, 0.15), seed, axis="params")
    assert two["verdict"] == "emergent", two["evidence"]
    assert single["verdict"] != "emergent", single["evidence"]


# ---- transient ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("axis", ["step", "params"])
def test_a_rise_that_falls_back_is_transient_with_an_onset(seed, axis):
    x = STEPS if axis == "step" else RUNGS
    t0 = np.log10(x[0])
    y = 0.05 + 0.7 * logistic(x, t0 + 1.2, 0.2) * (1 - 0.9 * logistic(x, t0 + 2.7, 0.2))
    rec = one(y, seed, axis=axis)
    assert rec["verdict"] == "transient", rec["evidence"]
    assert rec["onset"]["log10_x"] == pytest.approx(t0 + 1.2, abs=0.3)
    assert "loses" in rec["evidence"]


@pytest.mark.parametrize("seed", SEEDS)
def test_a_rise_that_keeps_most_of_its_gain_is_not_transient(seed):
    y = 0.05 + 0.7 * logistic(STEPS, 2.2, 0.2) * (1 - 0.25 * logistic(STEPS, 4.0, 0.3))
    rec = one(y, seed)
    assert rec["verdict"] == "emergent", rec["evidence"]


# ---- learned or not -------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("level,chance", [(0.25, None), (0.25, 0.25), (0.6, 0.25), (0.0, None)])
def test_a_flat_line_is_not_learned_whatever_its_level(seed, level, chance):
    rec = one(np.full(len(STEPS), level), seed, metric="mc_accuracy", chance=chance)
    assert rec["verdict"] == "not learned" and rec["onset"] is None, rec["evidence"]


@pytest.mark.parametrize("seed", SEEDS)
def test_a_curve_that_gets_worse_is_not_learned(seed):
    rec = one(0.6 - 0.4 * U, seed, metric="mc_accuracy")
    assert rec["verdict"] == "not learned", rec["evidence"]


@pytest.mark.parametrize("seed", SEEDS)
def test_a_rise_from_below_chance_to_chance_is_not_learned(seed):
    rec = one(0.15 + 0.11 * U, seed, metric="mc_accuracy", chance=0.25)
    assert rec["verdict"] == "not learned", rec["evidence"]
    assert "chance 0.25" in rec["evidence"]


# ---- uncertainty ----------------------------------------------------------------------------------------

def test_a_curve_on_four_items_is_less_certain_than_on_two_thousand():
    y = 0.05 + 0.5 * logistic(STEPS, 3.0, 0.5)
    big = [one(y, s, n=2000) for s in SEEDS]
    small = [one(y, s, n=4) for s in SEEDS]
    assert all(r["verdict"] == "emergent" and r["verdict_share"] >= 0.95 for r in big)
    for b, s in zip(big, small):
        certain = s["verdict"] == "emergent" and s["verdict_share"] >= b["verdict_share"]
        assert not certain, s["evidence"]
        assert s["sigma_source"] == "binomial" and min(s["sigma"]) > 5 * max(b["sigma"]) / 5


@pytest.mark.parametrize("seed", SEEDS)
def test_seeds_are_replicates_disagreeing_seeds_are_uncertain(seed):
    rng = np.random.default_rng(seed)
    sharp = 0.05 + 0.8 * logistic(STEPS, 3.0, 0.25)
    agree = [rows_of("agree", "exact_match", STEPS, measured(sharp, 1000, rng), seed=k) for k in range(3)]
    split = [rows_of("split", "exact_match", STEPS, measured(sharp if k else np.full(len(STEPS), 0.05), 1000, rng),
                     seed=k) for k in range(2)]
    _, by = judge([r for rows in agree + split for r in rows])
    a, s = by[("agree", "exact_match")], by[("split", "exact_match")]
    assert a["verdict"] == "emergent" and a["n_seeds"] == 3, a["evidence"]
    assert s["verdict"] == "uncertain" and s["label"].startswith("uncertain ("), s["evidence"]
    assert "replicates (100)" in s["evidence"] and "needed" in s["evidence"]


@pytest.mark.parametrize("seed", SEEDS)
def test_an_unbounded_metric_without_stderr_has_its_noise_estimated(seed):
    rng = np.random.default_rng(seed)
    lp = -3.0 + 2.0 * U + rng.normal(0, 0.03, len(STEPS))
    rec = one(lp, seed, metric="target_logprob_per_token")
    assert rec["verdict"] == "smooth" and rec["sigma_source"] == "estimated", rec["evidence"]
    assert "noise estimated from the curve" in rec["flags"]


# ---- metric-induced -------------------------------------------------------------------------------------

def mirage_rows(seed, length=20, with_length=True, p=None, task="arith"):
    rng = np.random.default_rng(seed)
    p = np.minimum(0.55 + 0.27 * (T - 1), 0.998) if p is None else p  # smooth: linear in log-x, then saturated
    em = measured(p ** length, 1000, rng)
    tok = rng.binomial(1000 * length, p) / (1000 * length)
    rows = rows_of(task, "exact_match", STEPS, em) + rows_of(task, "token_accuracy", STEPS, tok)
    for r, v in zip(rows[len(STEPS):], tok):
        r["stderr"] = float(np.sqrt(max(v * (1 - v), 1e-4) / (1000 * length)))
    return rows + ([S.answer_length_row(task, length)] if with_length else [])


@pytest.mark.parametrize("seed", SEEDS)
def test_exact_match_as_p_to_the_L_of_a_smooth_p_is_metric_induced(seed):
    _, by = judge(mirage_rows(seed))
    em, p = by[("arith", "exact_match")], by[("arith", "token_accuracy")]
    assert p["verdict"] == "smooth", p["evidence"]
    assert em["verdict"] == "metric-induced" and em["looks_emergent"], em["evidence"]
    assert em["metric_check"]["length"] == 20 and em["metric_check"]["length_source"] == "rows"
    assert em["onset"] is None  # the jump is the metric's: no onset


@pytest.mark.parametrize("seed", SEEDS)
def test_an_unknown_answer_length_is_estimated_in_linear_space(seed):
    _, by = judge(mirage_rows(seed, with_length=False))
    em = by[("arith", "exact_match")]
    assert em["metric_check"]["length_source"] == "estimated"
    assert em["metric_check"]["length"] == pytest.approx(20, rel=0.15)
    assert em["verdict"] == "metric-induced", em["evidence"]


@pytest.mark.parametrize("seed", SEEDS)
def test_p_squared_of_a_gentle_p_never_looked_emergent_and_is_not_metric_induced(seed):
    _, by = judge(mirage_rows(seed, length=2, p=0.3 + 0.15 * (T - 1)))
    em = by[("arith", "exact_match")]
    assert em["verdict"] == "smooth", em["evidence"]


@pytest.mark.parametrize("seed", SEEDS)
def test_a_sharp_partner_keeps_the_exact_match_emergent(seed):
    p = 0.3 + 0.69 * logistic(STEPS, 3.0, 0.25)
    _, by = judge(mirage_rows(seed, length=5, p=p))
    em = by[("arith", "exact_match")]
    assert by[("arith", "token_accuracy")]["verdict"] == "emergent"
    assert em["verdict"] == "emergent", em["evidence"]
    assert "token_accuracy is emergent" in em["evidence"]


@pytest.mark.parametrize("seed", SEEDS)
def test_a_smooth_partner_that_does_not_predict_exact_match_keeps_it_emergent(seed):
    rng = np.random.default_rng(seed)
    rows = rows_of("t", "exact_match", STEPS, measured(0.02 + 0.8 * logistic(STEPS, 3.0, 0.25), 1000, rng))
    rows += rows_of("t", "token_accuracy", STEPS, measured(0.3 + 0.3 * U, 1000, rng)) + [S.answer_length_row("t", 3)]
    em = judge(rows)[1][("t", "exact_match")]
    assert em["verdict"] == "emergent" and not em["metric_check"]["predicts"], em["evidence"]
    assert "(< 0.9)" in em["evidence"]


@pytest.mark.parametrize("seed", SEEDS)
def test_multiple_choice_accuracy_is_never_metric_induced(seed):
    rng = np.random.default_rng(seed)
    rows = rows_of("mc", "mc_accuracy", STEPS, measured(0.25 + 0.6 * logistic(STEPS, 3.0, 0.25), 1000, rng))
    rows += rows_of("mc", "brier", STEPS, 0.75 - 0.4 * U + rng.normal(0, 0.005, len(STEPS)))
    rows.append(S.chance_row("mc", "mc_accuracy", 0.25))
    by = judge(rows)[1]
    assert by[("mc", "mc_accuracy")]["verdict"] == "emergent" and by[("mc", "mc_accuracy")]["metric_check"] is None


@pytest.mark.parametrize("seed", SEEDS)
def test_a_jump_in_the_last_checkpoints_is_uncertain_not_smooth(seed):
    y = np.full(len(STEPS), 0.02)
    y[-2:] = 0.6  # all of the rise between the third- and second-to-last checkpoints
    rec = one(y, seed)
    assert rec["verdict"] == "uncertain" and rec["onset"] is None, rec["evidence"]
    assert "does not decide between emergent and smooth" in rec["evidence"]
