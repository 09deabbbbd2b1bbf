"""Head-score onsets: attention-head scores as signals ``heads/<score>`` with an onset like a latent's.

The probe stage scores every head on repeated random sequences (rows ``source="heads"``,
``task=<score>`` such as ``induction`` or ``previous_token``, ``metric="max"`` per layer: the layer's
best head). A head score's value at a checkpoint is its best layer's: the maximum over layers of that
per-layer maximum, averaged over seeds. Its onset is the latent rule (``explain.latent``): the first
checkpoint from which the running median of three stays above ``head_threshold`` to the end, for at
least two checkpoints, reported when ``verdict_share`` of the replicates agree. Replicates resample
each layer's value at the across-seed standard error (σ/√k over k seeds, at least ``head_sigma``/√k) or,
with one seed, at the nominal ``head_sigma``. So ``heads/induction`` leads ``induction`` along the
mechanism map's links exactly as a probed latent does.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from emergelab.explain.latent import table_onsets
from emergelab.measurements import HEADS_PREFIX

HEADS_OF = "the best layer's highest attention-head score (probe.heads: mean attention on the pattern's target)"
_COLUMNS = ["latent", "rung", "step", "layer", "n_params", "value", "sigma"]


def head_table(df: pd.DataFrame, nominal_sigma: float) -> pd.DataFrame:
    """(latent = heads/<score>, rung, step, layer, n_params, value, sigma): each layer's best head, over seeds."""
    d = df[(df.source == "heads") & (df.metric == "max") & (df.step >= 0) & np.isfinite(df.value)]
    if d.empty:
        return pd.DataFrame(columns=_COLUMNS)
    g = d.groupby(["task", "rung", "step", "layer"], as_index=False).agg(
        value=("value", "mean"), sd=("value", "std"), k=("seed", "nunique"), n_params=("n_params", "max"))
    k = g["k"].to_numpy(float)
    spread = np.where(k >= 2, np.nan_to_num(g["sd"].to_numpy(float)), 0.0)
    g["sigma"] = np.maximum(spread, nominal_sigma) / np.sqrt(k)
    g["latent"] = HEADS_PREFIX + g["task"].astype(str)
    return g[_COLUMNS]


def head_onsets(df: pd.DataFrame, threshold: float, nominal_sigma: float, n_rep: int = 0, share: float = 0.8,
                level: float = 0.95, seed: int = 0) -> list[dict]:
    """Onset records (as ``latent_onsets`` writes them) of every head score, per rung and over rungs."""
    return table_onsets(head_table(df, nominal_sigma), threshold, n_rep, share, level, seed, of=HEADS_OF, salt=3)
