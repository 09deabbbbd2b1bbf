"""Activations of Hugging Face models: residual-stream hidden states, attention patterns, pooling and a disk cache."""
from __future__ import annotations

import contextlib
from typing import Iterator, Sequence

import numpy as np
import torch

from emergelab.models.forward import batches, body, device_of, eval_mode

__all__ = ["extract_hidden", "extract_attentions", "eager_attention", "pool", "resolve_layers"]


@contextlib.contextmanager
def eager_attention(model: torch.nn.Module) -> Iterator[None]:
    """Run the block with eager attention (the only implementation that returns attention weights), then restore.

    Models loaded with ``sdpa`` or flash attention do not materialise the ``[T, T]`` pattern.
    """
    config = getattr(model, "config", None)
    before = getattr(config, "_attn_implementation", None)
    switch = before is not None and before != "eager"
    if switch:
        model.set_attn_implementation("eager")
    try:
        yield
    finally:
        if switch:
            model.set_attn_implementation(before)


def _forward(model, input_ids, attention_mask, token_type_ids, sl: slice, **flags):
    device = device_of(model)
    kwargs = {"input_ids": input_ids[sl].to(device)}
    if attention_mask is not None:
        kwargs["attention_mask"] = attention_mask[sl].to(device)
    if token_type_ids is not None:  # BERT segment ids; causal models take none
        kwargs["token_type_ids"] = token_type_ids[sl].to(device)
    return body(model)(**kwargs, use_cache=False, return_dict=True, **flags)


def resolve_layers(layers: Sequence[int] | None, n_sites: int) -> list[int]:
    """Site indices 0..n_sites−1 (0 = embeddings; negative counts from the last layer); ValueError if out of range."""
    if layers is None:
        return list(range(n_sites))
    bad = [i for i in layers if not -n_sites <= int(i) < n_sites]
    if bad:
        raise ValueError(f"layer(s) {bad} out of range: this model has hidden states 0..{n_sites - 1}")
    return [int(i) % n_sites for i in layers]


def _as_long(x) -> torch.Tensor | None:
    if x is None:
        return None
    return torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x, dtype=torch.long)


@torch.inference_mode()
def extract_hidden(
    model: torch.nn.Module,
    input_ids,
    attention_mask=None,
    *,
    token_type_ids=None,
    layers: Sequence[int] | None = None,
    batch_size: int = 64,
) -> np.ndarray:
    """Residual-stream hidden states of every layer, as float16 ``[n_layers + 1, B, T, d_model]``.

    Index 0 is the embedding output and index ``i`` the residual stream after block ``i`` — exactly the
    model's own ``output_hidden_states``; for GPT-2 and Llama the last entry is therefore taken after the
    final layer norm (Hugging Face ties it to ``last_hidden_state``). ``layers`` keeps only those indices
    (negative ones count from the end), in the order given. Positions where ``attention_mask`` is 0 hold
    whatever the model computes there; callers select real tokens with the mask.
    """
    input_ids = _as_long(input_ids)  # [B, T]
    attention_mask = _as_long(attention_mask)
    token_type_ids = _as_long(token_type_ids)
    n_seq, n_tok = input_ids.shape
    out: np.ndarray | None = None
    keep: list[int] | None = None
    with eval_mode(model):
        for sl in batches(n_seq, batch_size):
            hidden = _forward(model, input_ids, attention_mask, token_type_ids, sl, output_hidden_states=True).hidden_states
            if out is None:
                n_sites = len(hidden)
                keep = resolve_layers(layers, n_sites)
                d_model = hidden[0].shape[-1]
                out = np.empty((len(keep), n_seq, n_tok, d_model), dtype=np.float16)
            for k, i in enumerate(keep):
                out[k, sl] = hidden[i].to(torch.float16).cpu().numpy()  # [b, T, d_model]
    if out is None:  # no sequences: shape still says how many sites there would be
        raise ValueError("extract_hidden needs at least one sequence")
    return out


@torch.inference_mode()
def extract_attentions(
    model: torch.nn.Module,
    input_ids,
    attention_mask=None,
    *,
    token_type_ids=None,
    batch_size: int = 64,
) -> np.ndarray:
    """Attention patterns of every layer, float32 ``[n_layers, B, n_heads, T, T]`` (rows: queries, columns: keys).

    Switches the model to eager attention for the call (and back), since sdpa returns no weights.
    """
    input_ids = _as_long(input_ids)
    attention_mask = _as_long(attention_mask)
    token_type_ids = _as_long(token_type_ids)
    n_seq, n_tok = input_ids.shape
    out: np.ndarray | None = None
    with eval_mode(model), eager_attention(model):
        for sl in batches(n_seq, batch_size):
            attentions = _forward(model, input_ids, attention_mask, token_type_ids, sl, output_attentions=True).attentions
            if not attentions or attentions[0] is None:
                raise ValueError(f"{type(model).__name__} returned no attention weights; load it with attn_implementation='eager'")
            if out is None:
                n_heads = attentions[0].shape[1]
                out = np.empty((len(attentions), n_seq, n_heads, n_tok, n_tok), dtype=np.float32)
            for layer, a in enumerate(attentions):  # a: [b, n_heads, T, T]
                out[layer, sl] = a.float().cpu().numpy()
    if out is None:
        raise ValueError("extract_attentions needs at least one sequence")
    return out


def pool(hidden: np.ndarray, attention_mask: np.ndarray | None = None, how: str = "mean") -> np.ndarray:
    """Pool ``[..., B, T, d]`` over tokens to ``[..., B, d]`` for sequence-level latents.

    ``mean`` averages the real tokens (mask 1), ``first`` takes position 0 (BERT's [CLS]), ``last`` the last
    real token (what a causal model has read the whole sequence at).
    """
    hidden = np.asarray(hidden)
    n_seq, n_tok = hidden.shape[-3], hidden.shape[-2]
    mask = np.ones((n_seq, n_tok), dtype=np.float32) if attention_mask is None else np.asarray(attention_mask, dtype=np.float32)
    if how == "first":
        return hidden[..., 0, :]
    if how == "last":
        last = np.maximum(mask.sum(-1).astype(np.int64) - 1, 0)  # right padding: real tokens come first
        return hidden[..., np.arange(n_seq), last, :]
    if how == "mean":
        weights = mask / np.maximum(mask.sum(-1, keepdims=True), 1.0)  # [B, T]
        return np.einsum("...btd,bt->...bd", hidden.astype(np.float32), weights)
    raise ValueError(f"unknown pooling {how!r}; expected one of mean, first, last")
