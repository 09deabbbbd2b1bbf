"""Models: built from a rung spec, initialised by a named scheme, counted (parameters, FLOPs)."""
from emergelab.models.build import build_model, count_params, flops_per_token
from emergelab.models.init import initialise

__all__ = ["build_model", "count_params", "flops_per_token", "initialise"]
