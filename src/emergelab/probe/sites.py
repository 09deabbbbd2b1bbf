"""Activation sites: one name per hidden state, shared by the probes' ``layer`` column and activation files.

Site ``layer`` is the index into the model's own ``output_hidden_states``: 0 is the embedding output and
``i`` the residual stream after block ``i`` (for GPT-2 and Llama the last one is after the final layer
norm, as Hugging Face returns it). A probe row with ``layer = 3`` and the tensor ``hidden_states.3`` of
an ``emergelab activations`` file are the same activations.
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Site", "site_name"]

POINT = "hidden_states"


@dataclass(frozen=True, order=True)
class Site:
    """One place activations are read: ``Site(layer=3)`` is ``hidden_states.3``."""

    layer: int

    @property
    def name(self) -> str:
        return site_name(self.layer)


def site_name(layer: int) -> str:
    """``hidden_states.<layer>``: the model's ``output_hidden_states[layer]`` (0 = embeddings)."""
    return f"{POINT}.{int(layer)}"
