"""Options of the explanation stage (the study spec's ``explain:`` section)."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

#: schema of explanations.json (docs/verdicts.md); a study's explanations are redone when it changes
EXPLANATIONS_SCHEMA = 3

Axis = Literal["params", "step", "flops", "loss"]
AXES: tuple[str, ...] = ("params", "step", "flops", "loss")


class ExplainOptions(BaseModel):
    """How curves are judged (the decision procedure is ``docs/verdicts.md``). Thresholds on a metric's
    value are fractions of 1 for metrics bounded in [0, 1] (accuracies, Brier, selectivity) and of the
    curve's largest |value| for unbounded ones (log-probabilities, losses, edit distances)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    axes: tuple[Axis, ...] = Field(AXES, description="Axes along which curves are extracted and judged.")
    threshold: float = Field(0.1, gt=0, le=1, description="Probe selectivity above which a latent counts as decodable.")
    head_threshold: float = Field(
        0.3, gt=0, le=1, description="Best head score (heads/<score>) above which an attention pattern counts as formed.")
    head_sigma: float = Field(
        0.02, gt=0, le=1, description="Nominal standard error of a head score (one seed; the floor of the across-seed spread).")
    load_bearing_z: float = Field(
        2.0, gt=0, le=100,
        description="A link is load-bearing from the checkpoint after which the intervention's specificity stays "
                    "above this many standard errors (and above min_gain).")
    n_bootstrap: int = Field(
        200, ge=0, le=10_000,
        description="Replicate curves drawn from the measurement uncertainty (and seeds) per curve: the "
                    "verdict's share and every interval come from them (0: the observed curve alone).")
    ci_level: float = Field(0.95, gt=0.5, lt=1, description="Coverage of onset, width and lead intervals.")
    seed: int = Field(0, ge=0, le=2**32 - 1, description="Seed of the replicates.")
    min_points: int = Field(4, ge=3, le=10_000, description="Curves with fewer distinct x values are 'insufficient data'.")
    verdict_share: float = Field(
        0.8, gt=0.5, le=1,
        description="Share of replicates that must agree for a verdict; below it the verdict is 'uncertain'.")
    min_gain: float = Field(
        0.05, gt=0, le=1e6, description="Smallest rise (peak over start, and over chance when known) that counts as learned.")
    noise_z: float = Field(
        3.0, gt=0, le=100, description="A rise or fall counts only when it exceeds this many standard errors.")
    lose_frac: float = Field(
        0.5, gt=0, lt=1, description="Share of its gain a curve must lose after its peak to be 'transient'.")
    sharpness: float = Field(
        0.8, gt=0, le=1,
        description="Share of the rise (start level to end level) that must lie inside one window for 'emergent'.")
    window: float = Field(1.0, gt=0, le=100, description="Width of the steepest window in decades (params, step, flops axes).")
    window_loss: float = Field(0.5, gt=0, le=1000, description="Width of the steepest window in nats (loss axis).")
    min_before: int = Field(2, ge=1, le=10_000, description="Points that must precede a rise for it to be 'emergent'.")
    edge_points: tuple[int, int] = Field(
        (2, 3),
        description="Points that make a level at either end and must lie past a rise: (on curves of fewer "
                    "than long_curve points, on longer ones).")
    long_curve: int = Field(15, ge=4, le=100_000, description="Curves with at least this many points use edge_points[1].")
    delta_aicc: float = Field(
        6.0, ge=0, le=1e6, description="AICc margin by which a sharp model beats every smooth one, quoted as evidence.")
    chance_tolerance: float = Field(
        0.05, gt=0, le=1, description="Band above chance that counts as 'near chance' (Wei et al.; evidence only).")
    nonlinearity_r2: float = Field(
        0.9, gt=0, le=1,
        description="Weighted R² (linear space) of EM ≈ p^L above which the per-token metric predicts exact match.")
    leads: Literal["linked", "all"] = Field(
        "linked",
        description="Latent–capability pairs given a lead: 'linked' (the same world: a mixture's "
                    "'component:' name prefix) or 'all'.")
