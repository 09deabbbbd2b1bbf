"""Fine-tuning: full and parameter-efficient (LoRA, AdaLoRA, IA3, bottleneck adapters), with sample-efficiency sweeps.

The names below are imported on first use: the study spec imports ``emergelab.spec.finetune``
and the study runner checks ``emergelab.stages.finetune`` for missing work, and neither may pay for
importing torch, transformers and peft.
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "FinetuneConfig": "emergelab.finetune.config",
    "export_merged": "emergelab.finetune.export",
    "finetune": "emergelab.finetune.run",
    "Finetuned": "emergelab.finetune.saved",
    "load_finetuned": "emergelab.finetune.saved",
    "finetune_sweep": "emergelab.finetune.sweep",
    "summarize": "emergelab.finetune.sweep",
}

__all__ = ["FinetuneConfig", "Finetuned", "export_merged", "finetune", "finetune_sweep", "load_finetuned", "summarize"]


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
