"""The pieces of the decision procedure: noise per point, shape statistics, shares and the verdict."""
import numpy as np
import pytest

from emergelab.explain import synthetic as S
from emergelab.explain.curves import extract_curves
from emergelab.explain.noise import binomial_stderr, point_sigma, roughness_sigma
from emergelab.explain.shape import (
    EMERGENT,
    NOT_LEARNED,
    SMOOTH,
    ShapeRules,
    classify,
    monotone_fit,
    shape_stats,
)
from emergelab.explain.verdict import decide, fmt_verdict, verdict_shares
from emergelab.spec.explain import ExplainOptions


def test_binomial_stderr_by_hand_and_never_zero():
    assert binomial_stderr(np.array([0.5]), np.array([100]))[0] == pytest.approx(np.sqrt(0.5 * 0.5 / 100), rel=1e-3)
    small, big = binomial_stderr(np.array([0.0, 0.0]), np.array([4, 2000]))
    assert small > 0.1 and 0 < big < 0.01
    assert np.isnan(binomial_stderr(np.array([0.3]), np.array([0]))[0])


def test_roughness_ignores_a_line_and_sees_noise():
    assert roughness_sigma(np.linspace(0, 1, 20)) == pytest.approx(0.0, abs=1e-12)
    noise = np.random.default_rng(0).normal(0, 0.05, 2000)
    assert roughness_sigma(noise) == pytest.approx(0.05, rel=0.1)


def test_point_sigma_prefers_stderr_then_binomial_and_averages_seeds():
    rows = S.step_rows("t", "exact_match", [1, 10, 100, 1000], [0.5] * 4)
    for r in rows:
        r["n"] = 100
    seeds = [{**r, "seed": 1} for r in rows]
    (c1,) = extract_curves(S.frame(rows), ("step",))
    (c2,) = extract_curves(S.frame(rows + seeds), ("step",))
    s1, src1 = point_sigma(c1)
    s2, _ = point_sigma(c2)
    assert src1 == "binomial" and s1[0] == pytest.approx(0.05, rel=0.02)
    np.testing.assert_allclose(s2, s1 / np.sqrt(2), rtol=1e-6)
    given = [{**r, "stderr": 0.2} for r in rows]
    s3, src3 = point_sigma(extract_curves(S.frame(given), ("step",))[0])
    assert src3 == "stderr" and s3[0] == pytest.approx(0.2)


def test_monotone_fit_pools_violators():
    M = monotone_fit(np.array([[1.0, 3.0, 2.0, 4.0]]), np.ones(4))
    np.testing.assert_allclose(M[0], [1.0, 2.5, 2.5, 4.0])


def test_shape_codes_on_clean_curves():
    t = np.linspace(0, 4, 20)
    G = np.vstack([np.full(20, 0.3), 0.1 + 0.2 * t, np.where(t > 2, 0.9, 0.1)])
    st = shape_stats(t, G, np.full(20, 0.01), None, 1.0, ShapeRules())
    assert list(classify(st)) == [NOT_LEARNED, SMOOTH, EMERGENT]
    assert st["share"][2] == pytest.approx(1.0) and st["share"][1] == pytest.approx(0.25, abs=0.05)


def test_shares_and_the_uncertain_verdict():
    opts = ExplainOptions()
    shares = verdict_shares(np.array([EMERGENT] * 9 + [SMOOTH]))
    assert shares == {"smooth": 0.1, "emergent": 0.9} and decide(shares, opts) == ("emergent", 0.9)
    assert decide({"emergent": 0.6, "smooth": 0.4}, opts) == ("uncertain", 0.6)
    assert fmt_verdict("emergent", 0.966) == "emergent (0.97)" and fmt_verdict("insufficient data", None) == "insufficient data"
