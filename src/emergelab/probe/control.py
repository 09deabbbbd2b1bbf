"""Control tasks (Hewitt & Liang 2019): a random but fixed label per token type, to measure what a probe memorises."""
from __future__ import annotations

import numpy as np

__all__ = ["control_labels"]


def control_labels(token_types: np.ndarray, labels: np.ndarray, seed: int = 0) -> np.ndarray:
    """Control labels ``[N]``: every token type gets one label drawn from the empirical distribution of ``labels``.

    The control task has the real task's label set and marginal (per type), but its labels follow the token
    identity only, so a probe can score on it solely by memorising types. Selectivity = accuracy on the real
    task − accuracy on the control task (same probe, same split) then measures what the representation
    adds beyond word identity. Same ``seed`` and inputs → same labels.
    """
    token_types = np.asarray(token_types)
    labels = np.asarray(labels)
    if token_types.shape != labels.shape or labels.ndim != 1:
        raise ValueError(f"token_types and labels must both be [N]; got {token_types.shape} and {labels.shape}")
    if len(labels) == 0:
        return labels.copy()
    values, counts = np.unique(labels, return_counts=True)
    types, type_index = np.unique(token_types, return_inverse=True)
    rng = np.random.default_rng(seed)
    per_type = rng.choice(len(values), size=len(types), p=counts / counts.sum())  # one draw per type
    return values[per_type[type_index]]
