"""The estimators recover the parameters they were generated with, match scipy's curve_fit, and
never crash on degenerate curves."""
import numpy as np
import pytest
from scipy.optimize import curve_fit

from emergelab.explain import formulas as F
from emergelab.explain.fit import (
    BreakpointFit,
    LinearFit,
    PowerLawFit,
    SigmoidFit,
    breakpoint_profile,
    fit_models,
    information_criteria,
    select,
)

SEEDS = range(5)
X = np.logspace(0, 4, 17)  # steps 1 … 10⁴, 4 decades


@pytest.mark.parametrize("seed", SEEDS)
def test_sigmoid_recovers_its_parameters(seed):
    rng = np.random.default_rng(seed)
    y = F.sigmoid_in_log(X, 0.05, 0.85, 2.4, 9.0) + rng.normal(0, 0.02, len(X))
    p = SigmoidFit().fit(X, y).params_
    assert p["x0"] == pytest.approx(2.4, abs=0.05)  # midpoint within 0.05 decade
    assert p["floor"] == pytest.approx(0.05, abs=0.03) and p["ceiling"] == pytest.approx(0.85, abs=0.03)
    assert p["slope"] == pytest.approx(9.0, rel=0.35)


@pytest.mark.parametrize("seed", SEEDS)
def test_power_law_recovers_its_parameters(seed):
    rng = np.random.default_rng(seed)
    y = F.power_law(X, 0.9, -0.8, -0.35) + rng.normal(0, 0.005, len(X))
    p = PowerLawFit().fit(X, y).params_
    assert p["a"] == pytest.approx(0.9, abs=0.03)
    assert p["b"] == pytest.approx(-0.8, abs=0.05)
    assert p["c"] == pytest.approx(-0.35, abs=0.05)


@pytest.mark.parametrize("seed", SEEDS)
def test_breakpoint_recovers_its_parameters(seed):
    rng = np.random.default_rng(seed)
    y = F.breakpoint_in_log(X, 2.2, 0.1, 0.0, 0.35) + rng.normal(0, 0.01, len(X))
    p = BreakpointFit().fit(X, y).params_
    assert p["x0"] == pytest.approx(2.2, abs=0.1)
    assert p["slope_after"] == pytest.approx(0.35, abs=0.05)
    assert p["slope_before"] == pytest.approx(0.0, abs=0.05)


@pytest.mark.parametrize("seed", SEEDS)
def test_breakpoint_finds_the_global_optimum(seed):
    """Parity with brute force: the breakpoint equals the argmin of the profile RSS on a fine grid."""
    rng = np.random.default_rng(seed)
    y = F.breakpoint_in_log(X, 2.2, 0.1, 0.0, 0.35) + rng.normal(0, 0.02, len(X))
    fit = BreakpointFit().fit(X, y)
    bps = np.linspace(0.25, 3.75, 35_001)  # between the 2nd and the 2nd-to-last point
    rss, _ = breakpoint_profile(np.log10(X), y[None, :], bps)
    assert fit.params_["x0"] == pytest.approx(bps[np.argmin(rss[:, 0])], abs=2e-4)
    assert fit.rss_ <= rss.min() * (1 + 1e-6)


def test_linear_is_exact_on_a_line():
    p = LinearFit().fit(X, 0.3 + 0.12 * np.log10(X))
    assert p.params_["intercept"] == pytest.approx(0.3) and p.params_["slope"] == pytest.approx(0.12)
    assert p.r2_ == pytest.approx(1.0)


@pytest.mark.parametrize("seed", SEEDS)
def test_sigmoid_parity_with_curve_fit(seed):
    """Our fit reaches the least-squares optimum that curve_fit finds from a good start."""
    rng = np.random.default_rng(seed)
    y = F.sigmoid_in_log(X, 0.1, 0.7, 1.8, 5.0) + rng.normal(0, 0.03, len(X))
    ours = SigmoidFit().fit(X, y)
    ref, _ = curve_fit(F.sigmoid_in_log, X, y, p0=[0.1, 0.7, 1.8, 5.0], maxfev=10_000)
    ref_rss = float(np.sum((F.sigmoid_in_log(X, *ref) - y) ** 2))
    assert ours.rss_ <= ref_rss * (1 + 1e-6)
    ours_p = [ours.params_[k] for k in ("floor", "ceiling", "x0", "slope")]
    np.testing.assert_allclose(ours_p, ref, rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("seed", SEEDS)
def test_power_law_parity_with_curve_fit(seed):
    rng = np.random.default_rng(seed)
    y = F.power_law(X, 2.0, 3.0, -0.4) + rng.normal(0, 0.02, len(X))
    ours = PowerLawFit().fit(X, y)
    ref, _ = curve_fit(F.power_law, X, y, p0=[2.0, 3.0, -0.4], maxfev=10_000)
    ref_rss = float(np.sum((F.power_law(X, *ref) - y) ** 2))
    assert ours.rss_ <= ref_rss * (1 + 1e-6)
    np.testing.assert_allclose([ours.params_[k] for k in "abc"], ref, rtol=1e-3, atol=1e-4)


def test_fits_on_the_loss_axis_work_in_x():
    loss = np.linspace(4.0, 2.0, 15)
    y = F.sigmoid(loss, 0.9, 0.02, 2.8, 12.0)  # high accuracy at low loss
    fit = SigmoidFit(log_x=False).fit(loss, y)
    assert fit.name == "sigmoid"
    assert fit.params_["x0"] == pytest.approx(2.8, abs=1e-3)


def test_information_criteria_by_hand():
    rss, n, p = 0.5, 10, 2
    k = p + 1
    aic = n * np.log(rss / n) + 2 * k
    aicc, bic = information_criteria(rss, n, p)
    assert aicc == pytest.approx(aic + 2 * k * (k + 1) / (n - k - 1))
    assert bic == pytest.approx(n * np.log(rss / n) + k * np.log(n))
    assert information_criteria(rss, 4, 2)[0] is None  # n ≤ k + 1: AICc undefined


@pytest.mark.parametrize("y", [np.full(9, 0.25), np.zeros(9), np.r_[np.zeros(8), 1.0], np.full(9, 1e-12)])
def test_degenerate_curves_do_not_crash(y):
    fits = fit_models(X[:9], y)
    assert set(fits) == {"linear_log", "power_law", "sigmoid_log", "breakpoint_log"}
    for f in fits.values():
        assert np.all(np.isfinite(list(f.params_.values())))
    best, smooth, sharp = select(fits)
    assert best is not None


def test_nan_points_are_ignored_and_tiny_curves_give_no_fit():
    y = np.r_[np.nan, 0.1, 0.2, np.inf, 0.4, 0.5, 0.6]
    fits = fit_models(X[:7], y)
    assert fits["linear_log"].n_ == 5
    assert fit_models(X[:2], [0.1, 0.2]) == {}


def test_select_falls_back_to_the_simplest_model_when_no_aicc_is_defined():
    fits = fit_models(X[:4], np.array([0.1, 0.2, 0.5, 0.9]))
    assert all(f.aicc_ is None for f in fits.values())
    assert select(fits)[0] == "linear_log"
