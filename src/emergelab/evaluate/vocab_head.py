"""The vocabulary head split from the body, so that scorers compute logits only at the positions they read."""
from __future__ import annotations

from typing import Callable

import torch

#: causal models whose logits are not ``lm_head(last_hidden_state)`` (soft-capping, scaling)
_POSTPROCESSED = ("final_logit_softcapping", "logit_scale", "output_multiplier_scale", "logits_scaling")


def causal_parts(model) -> tuple[Callable, Callable] | None:
    """(body, head) with ``head(body(ids).last_hidden_state) == model(ids).logits``, or None when the
    model post-processes its logits (then scorers fall back to the full forward)."""
    cfg = model.config
    if any(getattr(cfg, a, None) not in (None, 1, 1.0) for a in _POSTPROCESSED):
        return None
    head = model.get_output_embeddings()
    body = getattr(model, "base_model", None)
    if not isinstance(head, torch.nn.Linear) or body is None or body is model:
        return None
    return body, head


def masked_parts(model) -> tuple[Callable, Callable] | None:
    """(body, vocabulary head) of a masked LM (BERT-style ``cls.predictions`` or RoBERTa-style
    ``lm_head``), or None (scorers then use the full forward's logits)."""
    body = getattr(model, "base_model", None)
    if body is None or body is model:
        return None
    cls = getattr(model, "cls", None)
    if cls is not None and hasattr(cls, "predictions"):
        return body, cls.predictions
    if hasattr(model, "lm_head") and model.config.model_type in ("roberta", "xlm-roberta", "camembert"):
        return body, model.lm_head
    return None


def full_logits(model, **inputs) -> torch.Tensor:
    """Vocabulary logits of a forward pass, whatever the output class calls them."""
    out = model(**inputs)
    logits = getattr(out, "logits", None)
    return out.prediction_logits if logits is None else logits
