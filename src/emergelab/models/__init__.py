"""Models: built from a rung spec, initialised by a named scheme, counted (parameters, FLOPs), checkpointed.

The names below are imported on first use, so that ``emergelab.models.checkpoint`` (manifests, paths)
can be read by a stage's cheap ``todo`` without importing torch.
"""
from __future__ import annotations

import importlib

_EXPORTS = {"build_model": "emergelab.models.build", "count_params": "emergelab.models.build",
            "flops_per_token": "emergelab.models.build", "initialise": "emergelab.models.init"}

__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
