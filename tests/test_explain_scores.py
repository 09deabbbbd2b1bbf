"""BIG-bench linearity and breakthroughness against hand-computed values; Wei et al.'s criterion."""
import numpy as np
import pytest

from emergelab.explain.curves import Curve
from emergelab.explain.scores import (
    breakthroughness,
    linearity,
    total_improvement,
    wei_criterion,
)


def test_scores_by_hand():
    y = [0.0, 0.0, 0.1, 0.5, 0.9]
    # Δy = (0, .1, .4, .4); I = +0.9; RMS = sqrt(.33/4); RootMedianSquare = sqrt((.01 + .16)/2)
    assert total_improvement(y) == pytest.approx(0.9)
    assert linearity(y) == pytest.approx(0.9 / np.sqrt(0.33 / 4))  # 3.1334
    assert breakthroughness(y) == pytest.approx(0.9 / np.sqrt(0.085))  # 3.0870


def test_steady_steps_give_n_minus_one_and_one_jump_gives_a_large_breakthroughness():
    steady = np.linspace(0, 1, 6)
    assert linearity(steady) == pytest.approx(5) and breakthroughness(steady) == pytest.approx(5)
    jump = [0.0, 0.01, 0.0, 0.01, 0.9, 0.91]
    assert breakthroughness(jump) > 50 > linearity(jump)


def test_falling_curves_score_negative_and_flat_curves_zero():
    y = [1.0, 0.5, 0.2]  # argmax before argmin: I < 0
    assert total_improvement(y) == pytest.approx(-0.8)
    assert linearity(y) == pytest.approx(-0.8 / np.sqrt((0.25 + 0.09) / 2))
    assert linearity([0.3] * 4) == 0 and breakthroughness([0.3] * 4) == 0
    assert breakthroughness([0.0, 0.0, 0.0, 1.0]) == np.inf  # median step exactly 0


def _curve(y, chance=0.25, source="rows", metric="mc_accuracy"):
    y = np.asarray(y, dtype=float)
    x = np.logspace(6, 8, len(y))
    return Curve("t", metric, 0, "params", None, x, y, True, "discontinuous", chance, source, 1.0)


def test_wei_criterion_near_chance_then_clearly_above():
    w = wei_criterion(_curve([0.25, 0.27, 0.24, 0.6, 0.8]), chance_tolerance=0.05, min_rise=0.1)
    assert w.emergent and w.n_near == 3
    assert w.first_above_x == pytest.approx(10 ** 7.5)


@pytest.mark.parametrize("y", [
    [0.25, 0.6, 0.7, 0.8, 0.85],      # only one point near chance
    [0.25, 0.26, 0.27, 0.28, 0.29],   # never clearly above
    [0.25, 0.25, 0.5, 0.27, 0.6],     # falls back into the near-chance band
    [0.4, 0.5, 0.6, 0.7, 0.8],        # never near chance
    [0.25, 0.28, 0.31, 0.34, 0.37],   # a ramp out of the band, not a jump
])
def test_wei_criterion_rejects(y):
    assert not wei_criterion(_curve(y), chance_tolerance=0.05, min_rise=0.1).emergent


def test_wei_criterion_needs_a_chance_level():
    # no metric's chance is assumed any more (exact match used to default to 0): no chance row, no criterion
    y = [0.25, 0.27, 0.24, 0.6, 0.8]
    assert wei_criterion(_curve(y, source="rows", chance=0.25), 0.05, 0.1).emergent
    assert not wei_criterion(_curve(y, source="start", chance=None), 0.05, 0.1).emergent
