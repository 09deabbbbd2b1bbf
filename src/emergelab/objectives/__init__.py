"""Self-supervised objectives: causal LM (GPT), masked LM and next-sentence prediction (BERT).

``make_objective`` imports torch on first use; ``emergelab.objectives.nsp``'s pair building (numpy)
is read by the prepare stage without it.
"""
from __future__ import annotations

import importlib

__all__ = ["Objective", "CausalLM", "make_objective"]


def make_objective(objectives: list[str], *, tokenizer, seed: int, **options):
    """The training objective for a study's ``objectives`` list."""
    from emergelab.objectives.clm import CausalLM  # torch: on first use only (see the module docstring)
    from emergelab.objectives.mlm import MaskedLM

    if objectives == ["clm"]:
        return CausalLM()
    return MaskedLM(tokenizer=tokenizer, seed=seed, nsp="nsp" in objectives, **options)


def __getattr__(name: str):
    where = {"Objective": "emergelab.objectives.base", "CausalLM": "emergelab.objectives.clm"}
    if name in where:
        return getattr(importlib.import_module(where[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
