"""The study spec (ground layer): schema, loading, presets and overrides.

``emergelab.study.validate`` / ``read_spec`` are the one way to get a spec the stages trust: they parse
with this package's schema, then run the stages' checks (world, fine-tuning task).
"""
from emergelab.spec.explain import AXES, ExplainOptions
from emergelab.spec.finetune import ADAPTER_KINDS, METHOD_NAMES, FinetuneOptions
from emergelab.spec.load import apply_override, dump_yaml, parse, preset_dict, presets, spec_data
from emergelab.spec.messages import first_error
from emergelab.spec.schema import (
    EvalSpec,
    LadderGrid,
    MechanismLink,
    MLMSpec,
    ProbeSpec,
    Rung,
    StudySpec,
    TokenizerSpec,
    TrainSpec,
    checkpoint_steps,
    spec_hash,
)

__all__ = ["AXES", "ADAPTER_KINDS", "METHOD_NAMES", "EvalSpec", "ExplainOptions", "FinetuneOptions", "LadderGrid",
           "MechanismLink", "MLMSpec", "ProbeSpec", "Rung", "StudySpec", "TokenizerSpec", "TrainSpec", "apply_override",
           "checkpoint_steps", "dump_yaml", "first_error", "parse", "preset_dict", "presets", "spec_data",
           "spec_hash"]
