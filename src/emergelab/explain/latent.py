"""Latent onsets from probe rows, and the lead (or lag) of a latent over a capability.

A latent's decodability at a checkpoint is its *best layer's* selectivity there (the maximum over
layers of probe accuracy minus control accuracy; rows ``source="probe", task=<latent>,
metric="selectivity"``, averaged over seeds). Its onset on the step axis of a rung is the first
checkpoint step from which that selectivity stays above ``threshold`` at every later checkpoint
(``None`` if the last checkpoint is not above it). On the params axis the same rule runs over the
rungs' final checkpoints ordered by n_params.

The lead of a latent over a capability on the same rung is capability onset − latent onset, in steps
(and in decades where both are positive), with the interval taken from the capability onset's
bootstrap CI. ``relation`` is ``lead`` when the whole interval lies after the latent onset, ``lag``
when it lies before, ``simultaneous`` otherwise.
"""
from __future__ import annotations

import numpy as np
import pandas as pd


def best_layer(df: pd.DataFrame) -> pd.DataFrame:
    """(latent, rung, step, n_params, value, layer): best layer's selectivity per checkpoint."""
    d = df[(df.source == "probe") & (df.metric == "selectivity") & (df.step >= 0) & np.isfinite(df.value)]
    if d.empty:
        return pd.DataFrame(columns=["latent", "rung", "step", "n_params", "value", "layer"])
    d = d.groupby(["task", "rung", "step", "layer"], as_index=False).agg(value=("value", "mean"),
                                                                         n_params=("n_params", "max"))
    idx = d.groupby(["task", "rung", "step"]).value.idxmax()
    return d.loc[idx].rename(columns={"task": "latent"}).reset_index(drop=True)


def stays_above(x: np.ndarray, v: np.ndarray, threshold: float) -> int | None:
    """Index of the first point from which every later value is above ``threshold`` (None if none)."""
    above = v > threshold
    if len(v) == 0 or not above[-1]:
        return None
    below = np.flatnonzero(~above)
    return int(below[-1] + 1) if len(below) else 0


def latent_onsets(df: pd.DataFrame, threshold: float) -> list[dict]:
    """Onset of each latent on the step axis of each rung, and on the params axis."""
    bl = best_layer(df)
    out = []
    for (latent, rung), g in bl.groupby(["latent", "rung"], sort=True):
        g = g.sort_values("step")
        i = stays_above(g.step.to_numpy(), g.value.to_numpy(), threshold)
        out.append({"latent": latent, "axis": "step", "rung": str(rung),
                    "onset": None if i is None else int(g.step.iloc[i]),
                    "layer": None if i is None else int(g.layer.iloc[i]),
                    "selectivity_at_onset": None if i is None else float(g.value.iloc[i]),
                    "first_checkpoint": i == 0, "final_selectivity": float(g.value.iloc[-1]),
                    "n_checkpoints": int(len(g)), "threshold": threshold})
    for latent, g in bl.groupby("latent", sort=True):
        last = g[g.step == g.groupby("rung").step.transform("max")]
        last = last[last.n_params > 0].sort_values("n_params")
        if len(last) < 2:
            continue
        i = stays_above(last.n_params.to_numpy(), last.value.to_numpy(), threshold)
        out.append({"latent": latent, "axis": "params", "rung": None,
                    "onset": None if i is None else int(last.n_params.iloc[i]),
                    "layer": None if i is None else int(last.layer.iloc[i]),
                    "selectivity_at_onset": None if i is None else float(last.value.iloc[i]),
                    "first_checkpoint": i == 0, "final_selectivity": float(last.value.iloc[-1]),
                    "n_checkpoints": int(len(last)), "threshold": threshold})
    return out


def _decades(a: float, b: float) -> float | None:
    return float(np.log10(a) - np.log10(b)) if a > 0 and b > 0 else None


def latent_leads(onsets: list[dict], capabilities: list[dict]) -> list[dict]:
    """Lead of every latent over every capability onset on the same axis (and rung).

    ``capabilities`` are curve records with ``onset = {"x": …, "ci": [lo, hi] | None}``.
    """
    out = []
    for lat in onsets:
        if lat["onset"] is None:
            continue
        L = float(lat["onset"])
        for cap in capabilities:
            if cap["axis"] != lat["axis"] or cap["rung"] != lat["rung"] or not cap.get("onset"):
                continue
            c = float(cap["onset"]["x"])
            ci = cap["onset"]["ci"]
            rec = {"latent": lat["latent"], "task": cap["task"], "metric": cap["metric"], "k_shot": cap["k_shot"],
                   "axis": lat["axis"], "rung": lat["rung"], "verdict": cap["verdict"],
                   "latent_onset": L, "capability_onset": c, "capability_ci": ci,
                   "lead": c - L, "lead_ci": None if ci is None else [ci[0] - L, ci[1] - L],
                   "lead_decades": _decades(c, L),
                   "lead_decades_ci": None if ci is None else [_decades(ci[0], L), _decades(ci[1], L)]}
            lo, hi = (ci if ci is not None else (c, c))
            rec["relation"] = "lead" if lo > L else "lag" if hi < L else "simultaneous"
            out.append(rec)
    return out
