"""Named initialisation schemes: normal(0.02), Xavier/Glorot and He/Kaiming, uniform or normal."""
from __future__ import annotations

import math

import torch
from torch import nn

STD = 0.02  # BERT / GPT-2 default


def _fans(weight: torch.Tensor, transposed: bool) -> tuple[int, int]:
    if weight.dim() < 2:
        raise ValueError("fan computation needs a matrix")
    fan_out, fan_in = weight.shape[0], weight.shape[1]
    return (fan_out, fan_in) if transposed else (fan_in, fan_out)


def init_std(scheme: str, fan_in: int, fan_out: int) -> float:
    """The standard deviation each scheme targets (uniform schemes: bound = std·√3)."""
    if scheme == "normal":
        return STD
    if scheme.startswith("xavier"):
        return math.sqrt(2.0 / (fan_in + fan_out))
    if scheme.startswith("kaiming"):
        return math.sqrt(2.0 / fan_in)  # gain √2 (ReLU), fan_in mode
    raise ValueError(f"unknown init scheme {scheme!r}")


@torch.no_grad()
def _fill(weight: torch.Tensor, scheme: str, fan_in: int, fan_out: int, g: torch.Generator) -> None:
    std = init_std(scheme, fan_in, fan_out)
    if scheme.endswith("uniform"):
        bound = std * math.sqrt(3.0)
        weight.uniform_(-bound, bound, generator=g)
    else:
        weight.normal_(0.0, std, generator=g)


@torch.no_grad()
def initialise(model: nn.Module, scheme: str = "normal", seed: int = 0) -> nn.Module:
    """Re-initialise in place: linear/conv1d and embedding weights per ``scheme``, biases 0, norms 1.

    Embeddings use fan_in = d_model, fan_out = vocabulary (for Xavier) — the transposed convention of
    an output projection — so that tied input/output embeddings get the output layer's scale.
    """
    from transformers.pytorch_utils import Conv1D

    g = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, nn.Linear):
            fan_in, fan_out = module.in_features, module.out_features
            _fill(module.weight, scheme, fan_in, fan_out, g)
            if module.bias is not None:
                module.bias.zero_()
        elif isinstance(module, Conv1D):  # GPT-2 stores weight as [in, out]
            fan_in, fan_out = module.weight.shape
            _fill(module.weight, scheme, fan_in, fan_out, g)
            module.bias.zero_()
        elif isinstance(module, nn.Embedding):
            n, d = module.weight.shape
            _fill(module.weight, scheme, d, n, g)
        elif isinstance(module, nn.LayerNorm) or type(module).__name__.endswith("RMSNorm"):
            if getattr(module, "weight", None) is not None:
                module.weight.fill_(1.0)
            if getattr(module, "bias", None) is not None:
                module.bias.zero_()
    for name, p in model.named_parameters():  # remaining biases (e.g. BERT's MLM head bias)
        if name.endswith("bias"):
            p.zero_()
    for module in model.modules():  # last: a tied output layer may have refilled the embedding
        if isinstance(module, nn.Embedding) and module.padding_idx is not None:
            module.weight[module.padding_idx].zero_()
    return model
