"""Self-supervised objectives: causal LM (GPT), masked LM and next-sentence prediction (BERT)."""
from __future__ import annotations

from emergelab.objectives.base import Objective
from emergelab.objectives.clm import CausalLM


def make_objective(objectives: list[str], *, tokenizer, seed: int, **options) -> Objective:
    """The training objective for a study's ``objectives`` list."""
    if objectives == ["clm"]:
        return CausalLM()
    from emergelab.objectives.mlm import MaskedLM  # noqa: PLC0415

    return MaskedLM(tokenizer=tokenizer, seed=seed, nsp="nsp" in objectives, **options)


__all__ = ["Objective", "CausalLM", "make_objective"]
