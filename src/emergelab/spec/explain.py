"""Options of the explanation stage (the study spec's ``explain:`` section)."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Axis = Literal["params", "step", "flops", "loss"]
AXES: tuple[str, ...] = ("params", "step", "flops", "loss")


class ExplainOptions(BaseModel):
    """How curves are fitted, scored and judged. Thresholds on a metric's value are fractions of 1 for
    metrics bounded in [0, 1] (accuracies, Brier, selectivity) and of the curve's largest |value| for
    unbounded ones (log-probabilities, losses, edit distances). The rules are in ``explain.verdict``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    axes: tuple[Axis, ...] = Field(AXES, description="Axes along which curves are extracted and judged.")
    threshold: float = Field(0.1, gt=0, description="Probe selectivity above which a latent counts as decodable.")
    n_bootstrap: int = Field(
        200, ge=0, le=10_000, description="Residual-bootstrap resamples for onset intervals (0: none).")
    ci_level: float = Field(0.95, gt=0.5, lt=1, description="Coverage of the onset confidence intervals.")
    seed: int = Field(0, ge=0, le=2**32 - 1, description="Seed of the bootstrap.")
    min_points: int = Field(4, ge=3, description="Curves with fewer distinct x values are 'insufficient data'.")
    min_points_fit: int = Field(
        8, ge=7,
        description="Below this many points the 4-parameter sharp models cannot win an AICc comparison, so "
                    "Wei et al.'s criterion decides whether a curve looks emergent.")
    delta_aicc: float = Field(6.0, ge=0, description="AICc margin by which a sharp model must beat every smooth one.")
    sharp_width: float = Field(
        0.5, gt=0,
        description="Largest 10%→90% rise width that counts as sharp: decades of x on the params, step and "
                    "flops axes, nats on the loss axis.")
    min_gain: float = Field(
        0.05, gt=0, description="Smallest improvement over chance (or the start) that counts as learned.")
    min_rise: float = Field(0.1, gt=0, description="Smallest rise of a sharp transition for a verdict of 'emergent'.")
    chance_tolerance: float = Field(
        0.05, gt=0, description="Band above chance that counts as 'near chance' (Wei et al.).")
    nonlinearity_r2: float = Field(
        0.9, gt=0, le=1, description="R² of EM ≈ p^L above which the metric explains the curve.")
    smooth_r2: float = Field(
        0.9, gt=0, le=1,
        description="R² that a paired continuous metric's best model must reach for it to count as smoothly "
                    "described when judging a discontinuous metric 'metric-induced'.")
