"""Options of the mechanism stage (the study spec's ``mechanism:`` section): interventions along the
mechanism map's links at every checkpoint (``docs/interventions.md``)."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class MechanismOptions(BaseModel):
    """How the links are tested. The stage runs when the study has links and checkpoints and ``enabled``."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    enabled: bool = Field(True, description="run the mechanism stage (it runs only when the study has mechanism links)")
    k_heads: int = Field(1, ge=1, le=4096, description="heads ablated per head-score link: the top k by that score at each checkpoint")
    ablation: Literal["mean", "zero"] = Field(
        "mean", description="what an ablated head outputs: its mean over the reference sequences, or zero")
    n_examples: int = Field(
        64, ge=2, le=1_000_000,
        description="the capability's first examples re-scored under each intervention (at most eval.n_examples): "
                    "every condition costs a full evaluation of them")
    n_reference: int = Field(32, ge=2, le=100_000, description="held-out sequences the heads' means are taken over")
    n_tokens: int = Field(3000, ge=10, le=100_000_000, description="labelled tokens a latent's LEACE eraser is fitted on")
