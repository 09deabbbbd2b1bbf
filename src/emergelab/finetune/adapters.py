"""Bottleneck adapters (Houlsby 2019, Pfeiffer 2020): small residual MLPs hooked after sub-layer outputs.

The ``adapters`` library would do this, but its releases pin transformers 4.x (1.3.0 needs
``transformers~=4.57.6``) and emergelab pins transformers 5; so the few lines live here.

An adapter is ``h + W_up · act(W_down · h)`` applied to the output projection of a sub-layer, before
the residual sum and layer norm (Houlsby et al. 2019, fig. 2). ``W_up`` starts at zero, so the adapted
model starts as the base model. Pfeiffer places one adapter per block (after the feed-forward
output), Houlsby two (after the attention output projection too). The base model is untouched:
adapters are forward hooks, and their weights live in ``model.bottleneck_adapters``.
"""
from __future__ import annotations

import re

import torch
from torch import nn

from emergelab.errors import UserError

#: model_type -> (attention output projection, feed-forward output projection), as module-name regexes
SITES: dict[str, tuple[str, str]] = {
    "bert": (r"\.attention\.output\.dense$", r"\.layer\.\d+\.output\.dense$"),
    "roberta": (r"\.attention\.output\.dense$", r"\.layer\.\d+\.output\.dense$"),
    "xlm-roberta": (r"\.attention\.output\.dense$", r"\.layer\.\d+\.output\.dense$"),
    "electra": (r"\.attention\.output\.dense$", r"\.layer\.\d+\.output\.dense$"),
    "distilbert": (r"\.attention\.out_lin$", r"\.ffn\.lin2$"),
    "gpt2": (r"\.attn\.c_proj$", r"\.mlp\.c_proj$"),
    "gpt_neox": (r"\.attention\.dense$", r"\.mlp\.dense_4h_to_h$"),
    "llama": (r"\.self_attn\.o_proj$", r"\.mlp\.down_proj$"),
    "mistral": (r"\.self_attn\.o_proj$", r"\.mlp\.down_proj$"),
    "qwen2": (r"\.self_attn\.o_proj$", r"\.mlp\.down_proj$"),
    "gemma": (r"\.self_attn\.o_proj$", r"\.mlp\.down_proj$"),
}
CONTAINER = "bottleneck_adapters"


class Bottleneck(nn.Module):
    """``h + up(act(down(h)))`` with ``up`` initialised to zero (identity at the start)."""

    def __init__(self, d_model: int, d_bottleneck: int):
        super().__init__()
        self.down = nn.Linear(d_model, d_bottleneck)
        self.act = nn.GELU()
        self.up = nn.Linear(d_bottleneck, d_model)
        nn.init.normal_(self.down.weight, std=1e-2)
        nn.init.zeros_(self.down.bias)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, h: torch.Tensor) -> torch.Tensor:  # h: (batch, seq, d_model)
        return h + self.up(self.act(self.down(h)))


def _out_features(module: nn.Module) -> int:
    if isinstance(module, nn.Linear):
        return module.out_features
    if hasattr(module, "nf"):  # transformers' Conv1D (GPT-2)
        return int(module.nf)
    raise UserError(f"bottleneck adapters need a Linear output projection, found {type(module).__name__}")


def adapter_sites(model, kind: str) -> list[str]:
    """Names of the modules whose outputs get an adapter."""
    model_type = model.config.model_type
    if model_type not in SITES:
        raise UserError(
            f"bottleneck adapters do not know where to go in model type {model_type!r} (known: {', '.join(sorted(SITES))}); "
            "use --method lora, ia3 or full"
        )
    attn, ffn = SITES[model_type]
    patterns = [re.compile(ffn)] if kind == "pfeiffer" else [re.compile(attn), re.compile(ffn)]
    names = [n for n, _ in model.named_modules() if any(p.search(n) for p in patterns)]
    if not names:
        raise UserError(f"found no adapter sites in this {model_type} model; use --method lora, ia3 or full")
    return names


def add_bottleneck_adapters(model, *, kind: str = "pfeiffer", reduction: int = 16) -> nn.ModuleDict:
    """Insert adapters into ``model`` (in place) and return them; hooks are kept on the container."""
    modules = dict(model.named_modules())
    container = nn.ModuleDict()
    handles = []
    for name in adapter_sites(model, kind):
        site = modules[name]
        d_model = _out_features(site)
        adapter = Bottleneck(d_model, max(1, d_model // reduction))
        container[name.replace(".", "__")] = adapter
        handles.append(site.register_forward_hook(_hook(adapter)))
    container.hook_handles = handles  # plain attribute: not a parameter, not saved
    model.add_module(CONTAINER, container)
    return container


def _hook(adapter: Bottleneck):
    def hook(module, args, output):
        return adapter(output)

    return hook


def remove_bottleneck_adapters(model) -> None:
    """Detach the hooks and the container (the base model is as before)."""
    container = getattr(model, CONTAINER, None)
    if container is not None:
        for h in container.hook_handles:
            h.remove()
        delattr(model, CONTAINER)
