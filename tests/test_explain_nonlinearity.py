"""The metric-nonlinearity test: EM ≈ p^L with L given or estimated."""
import numpy as np
import pytest

from emergelab.explain import synthetic as S
from emergelab.explain.curves import answer_lengths, capability_points
from emergelab.explain.nonlinearity import (
    estimate_length,
    nonlinearity_tests,
    r_squared,
)

STEPS = [10, 20, 50, 100, 200, 500, 1000]
P = np.array([0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99])


def _tests(em, p=P, length_row=None, min_gain=0.05):
    rows = S.step_rows("arith", "token_accuracy", STEPS, p) + S.step_rows("arith", "exact_match", STEPS, em)
    if length_row is not None:
        rows.append(S.answer_length_row("arith", length_row))
    df = S.frame(rows)
    return nonlinearity_tests(capability_points(df), answer_lengths(df), min_gain)


def test_the_length_is_estimated_exactly_on_noiseless_data():
    assert estimate_length(P ** 7, P) == pytest.approx(7.0)
    (rec,) = _tests(P ** 7)
    assert rec["length_source"] == "estimated" and rec["length"] == pytest.approx(7.0)
    assert rec["r2"] == pytest.approx(1.0) and rec["n_points"] == 7


def test_a_given_length_is_used_and_a_wrong_one_scores_badly():
    (good,) = _tests(P ** 7, length_row=7)
    (bad,) = _tests(P ** 7, length_row=1)
    assert good["length_source"] == "rows" and good["r2"] == pytest.approx(1.0)
    assert bad["r2"] < 0.5


def test_r_squared_by_hand():
    y, pred = np.array([0.0, 0.5, 1.0]), np.array([0.1, 0.5, 0.9])
    assert r_squared(y, pred) == pytest.approx(1 - 0.02 / 0.5)
    assert r_squared(np.ones(3), pred) is None


def test_flat_exact_match_is_not_tested():
    (rec,) = _tests(np.full(7, 0.01))
    assert rec["r2"] is None


def test_tasks_without_both_metrics_are_skipped():
    df = S.frame(S.step_rows("arith", "exact_match", STEPS, P ** 3))
    assert nonlinearity_tests(capability_points(df), answer_lengths(df), 0.05) == []
