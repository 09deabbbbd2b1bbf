"""Latent-variable analysis: activations, linear probes with control tasks, and attention-head scores."""
from emergelab.probe.activations import eager_attention, extract_attentions, extract_hidden, pool, resolve_layers
from emergelab.probe.control import control_labels
from emergelab.probe.heads import (
    HEAD_TASKS,
    duplicate_token_score,
    head_score_rows,
    induction_score,
    previous_token_score,
    repeated_random_tokens,
)
from emergelab.probe.linear import PROBE_METRICS, LinearProbe, probe_layer, probe_rows, split_by_sequence

__all__ = [
    "extract_hidden", "extract_attentions", "eager_attention", "pool", "resolve_layers",
    "LinearProbe", "control_labels", "probe_layer", "probe_rows", "split_by_sequence", "PROBE_METRICS",
    "previous_token_score", "induction_score", "duplicate_token_score", "repeated_random_tokens",
    "head_score_rows", "HEAD_TASKS",
]
