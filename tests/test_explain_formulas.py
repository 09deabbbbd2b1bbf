"""Known values of the curve formulas and of ``evaluate`` (the report's way to draw a fit)."""
import numpy as np
import pytest

from emergelab.explain import formulas as F


def test_sigmoid_in_log_midpoint_asymptotes_and_width():
    x = np.array([1e-3, 1e2, 1e7])
    y = F.sigmoid_in_log(x, floor=0.1, ceiling=0.9, x0=2.0, slope=4.0)
    assert y[1] == pytest.approx(0.5)
    assert y[0] == pytest.approx(0.1, abs=1e-8) and y[2] == pytest.approx(0.9, abs=1e-8)
    w = F.logistic_width(4.0)  # 10 %→90 % width in decades
    lo, hi = F.sigmoid_in_log(10.0 ** np.array([2 - w / 2, 2 + w / 2]), 0.0, 1.0, 2.0, 4.0)
    assert lo == pytest.approx(0.1) and hi == pytest.approx(0.9)


def test_sigmoid_falls_when_ceiling_below_floor():
    y = F.sigmoid(np.array([0.0, 10.0]), floor=5.0, ceiling=1.0, x0=5.0, slope=3.0)
    assert y[0] > 4.9 and y[1] < 1.1


def test_breakpoint_is_continuous_with_two_slopes():
    x = 10.0 ** np.array([0.0, 1.0, 2.0, 3.0])
    y = F.breakpoint_in_log(x, x0=1.0, y0=0.2, slope_before=0.0, slope_after=0.3)
    np.testing.assert_allclose(y, [0.2, 0.2, 0.5, 0.8])


def test_linear_in_log_and_power_law():
    np.testing.assert_allclose(F.linear_in_log(np.array([1.0, 100.0]), 0.5, 0.1), [0.5, 0.7])
    np.testing.assert_allclose(F.power_law(np.array([1.0, 4.0]), 1.0, 2.0, 0.5), [3.0, 5.0])


def test_exact_match_is_p_to_the_L():
    np.testing.assert_allclose(F.exact_match_from_token_accuracy(np.array([0.5, 0.9, 1.2]), 3), [0.125, 0.729, 1.0])


@pytest.mark.parametrize("name", list(F.MODELS))
def test_evaluate_matches_the_formula(name):
    form = F.MODELS[name]
    params = dict(zip(form.params, (0.3, 0.8, 1.5, 2.0)))
    x = np.array([2.0, 30.0, 500.0])
    np.testing.assert_allclose(F.evaluate(name, params, x), form.func(x, *params.values()))


def test_evaluate_rejects_unknown_models():
    with pytest.raises(KeyError, match="known models"):
        F.evaluate("spline", {}, np.ones(2))
