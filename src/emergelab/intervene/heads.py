"""Head ablation: replace chosen heads' outputs by their mean over a reference batch (or by zero).

A forward pre-hook on each block's attention output projection rewrites the slice of each chosen head
before the projection mixes the heads, so the model's own code runs unchanged. Mean ablation keeps the
head's average contribution (what the rest of the model is used to) and removes what depends on the
input; zero ablation removes the head outright.
"""
from __future__ import annotations

import contextlib
from typing import Iterator, Literal, Mapping

import numpy as np
import torch

from emergelab.intervene.sites import head_sites
from emergelab.models.forward import run_body

__all__ = ["Heads", "head_means", "ablate_heads", "top_heads", "control_heads"]

#: chosen heads: layer -> head indices
Heads = Mapping[int, list[int]]


@torch.inference_mode()
def head_means(model: torch.nn.Module, input_ids, *, batch_size: int = 32) -> dict[int, torch.Tensor]:
    """Per layer, every head's mean output ``[n_head, d_head]`` over the reference batch's tokens."""
    sites = head_sites(model)
    sums = {s.layer: torch.zeros(s.n_head * s.d_head, dtype=torch.float64) for s in sites}
    count = [0]

    def hook(layer):
        def record(module, args):
            x = args[0]
            sums[layer] += x.reshape(-1, x.shape[-1]).double().sum(0).cpu()
            if layer == 0:
                count[0] += x.shape[0] * x.shape[1]
        return record

    handles = [s.module.register_forward_pre_hook(hook(s.layer)) for s in sites]
    try:
        run_body(model, torch.as_tensor(np.array(input_ids, dtype=np.int64)), batch_size)  # a copy: memmaps are read-only
    finally:
        for h in handles:
            h.remove()
    return {s.layer: (sums[s.layer] / max(count[0], 1)).float().reshape(s.n_head, s.d_head) for s in sites}


@contextlib.contextmanager
def ablate_heads(model: torch.nn.Module, heads: Heads, *, how: Literal["mean", "zero"] = "mean",
                 means: Mapping[int, torch.Tensor] | None = None) -> Iterator[None]:
    """Within the block, the chosen heads' outputs are their reference means (``how="mean"``, ``means`` from
    :func:`head_means`) or zero; the hooks are removed on exit, whatever happens."""
    if how == "mean" and means is None:
        raise ValueError("mean ablation needs the heads' reference means (head_means)")
    sites = {s.layer: s for s in head_sites(model)}
    bad = [(layer, h) for layer, hs in heads.items() for h in hs if layer not in sites or not 0 <= h < sites[layer].n_head]
    if bad:
        raise ValueError(f"no head(s) {bad} in this model ({len(sites)} layers × {next(iter(sites.values())).n_head} heads)")

    def hook(site, chosen):
        def rewrite(module, args):
            x = args[0].clone()
            for h in chosen:
                sl = slice(h * site.d_head, (h + 1) * site.d_head)
                x[..., sl] = 0.0 if how == "zero" else means[site.layer][h].to(x.dtype).to(x.device)
            return (x, *args[1:])
        return rewrite

    handles = [sites[layer].module.register_forward_pre_hook(hook(sites[layer], list(hs)))
               for layer, hs in heads.items() if hs]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def top_heads(scores: Mapping[tuple[int, int], float], k: int) -> dict[int, list[int]]:
    """The ``k`` heads ``(layer, head)`` of highest score (ties: the lower layer, then head)."""
    ranked = sorted(scores, key=lambda lh: (-scores[lh], lh))[:k]
    out: dict[int, list[int]] = {}
    for layer, h in sorted(ranked):
        out.setdefault(layer, []).append(h)
    return out


def control_heads(chosen: Heads, n_head: int, n_layer: int, rng: np.random.Generator) -> dict[int, list[int]]:
    """As many random heads as ``chosen``, none of them chosen, each in the layer of a chosen head where that
    layer has one left (else in any layer): the control that a drop is specific to the heads, not to the count."""
    taken = {(layer, h) for layer, hs in chosen.items() for h in hs}
    picked: set[tuple[int, int]] = set()
    for layer, hs in sorted(chosen.items()):
        for _ in hs:
            free = [(layer, h) for h in range(n_head) if (layer, h) not in taken | picked]
            if not free:
                free = [(la, h) for la in range(n_layer) for h in range(n_head) if (la, h) not in taken | picked]
            if not free:
                raise ValueError(f"no heads left for a control of {len(taken)} heads among {n_layer * n_head}")
            picked.add(free[int(rng.integers(len(free)))])
    out: dict[int, list[int]] = {}
    for layer, h in sorted(picked):
        out.setdefault(layer, []).append(h)
    return out
