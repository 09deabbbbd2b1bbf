"""Where interventions hook in: each block's attention output projection and the residual stream.

GPT-2 (causal) and BERT (masked) are the families emergelab trains and loads; other models that use
the same module names (``transformer.h[i].attn.c_proj``, ``encoder.layer[i].attention.output.dense``)
work alike. The input of the output projection is the heads' outputs concatenated head by head
(``[..., n_head · d_head]``), so head ``h`` is the slice ``h·d_head : (h+1)·d_head``.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch

from emergelab.models.forward import body as body_of

__all__ = ["HeadSite", "head_sites", "residual_site", "state_hash"]


@dataclass(frozen=True)
class HeadSite:
    """One block's attention output projection (its input holds the heads' outputs)."""

    layer: int
    module: torch.nn.Module
    n_head: int
    d_head: int


def _blocks(model: torch.nn.Module) -> list[torch.nn.Module]:
    body = body_of(model)
    if hasattr(body, "h"):  # GPT-2
        return list(body.h)
    if hasattr(body, "encoder") and hasattr(body.encoder, "layer"):  # BERT
        return list(body.encoder.layer)
    raise ValueError(f"{type(model).__name__}: interventions know GPT-2 (transformer.h) and BERT (encoder.layer) blocks")


def head_sites(model: torch.nn.Module) -> list[HeadSite]:
    """Every block's attention output projection, with its head count and width."""
    cfg = model.config
    n_head = int(getattr(cfg, "n_head", None) or cfg.num_attention_heads)
    out = []
    for i, block in enumerate(_blocks(model)):
        proj = block.attn.c_proj if hasattr(block, "attn") else block.attention.output.dense
        width = int(proj.weight.shape[0] if hasattr(block, "attn") else proj.weight.shape[1])  # Conv1D: [in, out]
        out.append(HeadSite(i, proj, n_head, width // n_head))
    return out


def residual_site(model: torch.nn.Module, index: int) -> torch.nn.Module:
    """The module whose output is the residual stream at site ``index`` (0: embeddings; i: block i − 1).

    For GPT-2 the last site is taken before the final layer norm, where the blocks write; the probe's
    last hidden state is after it (a per-token affine map of the same vector)."""
    blocks = _blocks(model)
    if not 0 <= index <= len(blocks):
        raise ValueError(f"residual site {index} out of range 0..{len(blocks)}")
    if index > 0:
        return blocks[index - 1]
    body = body_of(model)
    return body.drop if hasattr(body, "drop") else body.embeddings  # GPT-2's wte + wpe after dropout; BERT's embeddings


def state_hash(model: torch.nn.Module) -> str:
    """sha256 of every parameter and buffer (names, dtypes, bytes): the weights an intervention must leave alone."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode() + str(t.dtype).encode())
        h.update(t.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()
