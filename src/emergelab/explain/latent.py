"""Latent onsets from probe rows, persistent under resampling, and the lead of a latent over a capability.

A latent's decodability at a checkpoint is its *best layer's* selectivity there: the maximum over
layers of probe accuracy minus control accuracy (rows ``source="probe", task=<latent>,
metric="selectivity"``, averaged over seeds). For token-level latents the control is Hewitt & Liang's
(2019) control task (a random label per token type); for sequence-level latents it is the accuracy a
memorising probe reaches on held-out sequences, so their "selectivity" is *accuracy minus memorisation
chance* (``probe.stage``) — the records say ``selectivity_of`` for what it is.

Onset: the first checkpoint from which the running median of three (so that one dip below the
threshold, or one spike above it, does not move it) of the best-layer selectivity stays above
``threshold`` to the last checkpoint, for at least two checkpoints. Each layer's selectivity is resampled at its binomial standard
error, σ² = a(1 − a)/n + c(1 − c)/n from the accuracy a and control accuracy c of n test items (0.5/n
without them), and the best layer re-taken in each replicate — the maximum over layers of pure noise is
not zero, and the replicates carry that. The onset is reported when at least ``verdict_share`` of the
replicates have one (``persistence``), with the central ``ci_level`` interval of their onsets. On the
params axis the same rule runs over the rungs' final checkpoints ordered by n_params.

Leads (capability onset − latent onset, in steps or parameters, and in decades) are given only for
capability curves judged emergent or transient, and only for pairs that ``allowed(latent, task)``
admits; ``linked`` (the default) admits a pair when both names carry the same world: a mixture
prefixes a clashing name ``component:name``, and unprefixed names belong to the study's world. The
interval comes from replicate onsets of both, paired. ``relation`` is ``lead`` when the whole interval
is positive, ``lag`` when it is negative, ``simultaneous`` otherwise.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

Allowed = Callable[[str, str], bool]
SELECTIVITY_OF = "probe accuracy minus control accuracy (sequence-level latents: minus memorisation chance)"


def world_of(name: str) -> str:
    """The world a task or latent name belongs to: a mixture's ``component:`` prefix, else ''."""
    return name.split(":", 1)[0] if ":" in name else ""


def linked(latent: str, task: str) -> bool:
    """Same world (until a mechanism map gives explicit links)."""
    return world_of(latent) == world_of(task)


def any_pair(latent: str, task: str) -> bool:
    return True


def from_links(links: list[tuple[str, str]]) -> Allowed:
    """Leads only along a mechanism map's links: ``(signal, task)`` pairs (a world's ``mechanisms()``)."""
    pairs = {(str(signal), str(task)) for signal, task in links}

    def allowed(latent: str, task: str) -> bool:
        return (latent, task) in pairs

    return allowed


def probe_table(df: pd.DataFrame) -> pd.DataFrame:
    """(latent, rung, step, layer, n_params, value, sigma): selectivity per layer, averaged over seeds."""
    cols = ["task", "rung", "step", "layer", "seed"]
    d = df[(df.source == "probe") & (df.step >= 0) & np.isfinite(df.value)]
    wide = d.pivot_table(index=cols, columns="metric", values="value", aggfunc="mean")
    if "selectivity" not in wide:
        return pd.DataFrame(columns=["latent", "rung", "step", "layer", "n_params", "value", "sigma"])
    n = d[d.metric == "selectivity"].groupby(cols).agg(n=("n", "mean"), n_params=("n_params", "max"))
    wide = wide.join(n, how="inner").reset_index()
    wide = wide[np.isfinite(wide.selectivity)]
    nn = wide.n.to_numpy(float)
    a = wide.get("accuracy", pd.Series(np.nan, index=wide.index)).to_numpy(float)
    c = wide.get("control_accuracy", pd.Series(np.nan, index=wide.index)).to_numpy(float)
    var = np.where(np.isfinite(a) & np.isfinite(c), a * (1 - a) + c * (1 - c), 0.5) / np.maximum(nn, 1)
    wide["var"] = np.where(nn > 0, var, 0.02 ** 2)  # no item count: a nominal 0.02
    g = wide.groupby(["task", "rung", "step", "layer"], as_index=False).agg(
        value=("selectivity", "mean"), var=("var", "mean"), k=("seed", "nunique"), n_params=("n_params", "max"))
    g["sigma"] = np.sqrt(g["var"] / g["k"])
    return g.rename(columns={"task": "latent"})[["latent", "rung", "step", "layer", "n_params", "value", "sigma"]]


def median3(V: np.ndarray) -> np.ndarray:
    """Running median of three along the last axis (the end points kept)."""
    if V.shape[-1] < 3:
        return V
    out = V.copy()
    out[..., 1:-1] = np.median(np.stack([V[..., :-2], V[..., 1:-1], V[..., 2:]]), axis=0)
    return out


def stays_above(v: np.ndarray, threshold: float, min_run: int = 2) -> np.ndarray:
    """Per row, the index of the first point from which every later value is above ``threshold``
    (−1 when fewer than ``min_run`` points at the end are above it: one last checkpoint is no onset)."""
    v = np.atleast_2d(v)
    above = v > threshold
    below_after = np.flip(np.logical_or.accumulate(np.flip(~above, axis=-1), axis=-1), axis=-1)
    first = np.argmin(below_after, axis=-1)  # first index with no point below from there on
    held = above[..., -1] & (v.shape[-1] - first >= min(min_run, v.shape[-1]))
    return np.where(held, first, -1)


def _onset(lat: str, axis: str, rung, xs, S, sig, n_params, threshold, n_rep, share, level, rng, of: str = SELECTIVITY_OF) -> dict:
    """One latent onset from the (layers × checkpoints) selectivity S with its σ (``of``: what S measures)."""
    best = median3(S.max(axis=0))
    i = int(stays_above(best, threshold)[0])
    rec = {"latent": lat, "axis": axis, "rung": rung, "selectivity_of": of, "threshold": threshold,
           "n_checkpoints": len(xs), "final_selectivity": float(S.max(axis=0)[-1]),
           "onset": None, "onset_ci": None, "persistence": None, "layer": None, "selectivity_at_onset": None,
           "first_checkpoint": False, "replicate_onsets": []}
    if n_rep > 0:
        reps = S[None] + rng.normal(0, 1, (n_rep, *S.shape)) * sig[None]
        ir = stays_above(median3(reps.max(axis=1)), threshold)
        rec["persistence"] = float(np.mean(ir >= 0))
        found = xs[ir[ir >= 0]].astype(float)
        rec["replicate_onsets"] = found
        if len(found) >= 2:
            a = (1 - level) / 2
            rec["onset_ci"] = [float(np.quantile(found, a)), float(np.quantile(found, 1 - a))]
    if i >= 0 and (rec["persistence"] is None or rec["persistence"] >= share):
        rec.update(onset=float(xs[i]), layer=int(np.argmax(S[:, i])), selectivity_at_onset=float(S[:, i].max()),
                   first_checkpoint=i == 0)
    return rec


def latent_onsets(df: pd.DataFrame, threshold: float, n_rep: int = 0, share: float = 0.8,
                  level: float = 0.95, seed: int = 0) -> list[dict]:
    """Onset of each latent on the step axis of each rung, and on the params axis (final checkpoints)."""
    return table_onsets(probe_table(df), threshold, n_rep, share, level, seed)


def table_onsets(pt: pd.DataFrame, threshold: float, n_rep: int = 0, share: float = 0.8, level: float = 0.95,
                 seed: int = 0, of: str = SELECTIVITY_OF, salt: int = 0) -> list[dict]:
    """Onsets of every signal of a (latent, rung, step, layer, n_params, value, sigma) table: per rung on the
    step axis, and over the rungs' final checkpoints on the params axis. ``salt`` separates the replicate
    streams of two tables (probe latents and head scores)."""
    out = []
    for k, ((lat, rung), g) in enumerate(pt.groupby(["latent", "rung"], sort=True)):
        S = g.pivot_table(index="layer", columns="step", values="value").sort_index(axis=1)
        sig = g.pivot_table(index="layer", columns="step", values="sigma").reindex_like(S)
        S, sig = S.fillna(-np.inf).to_numpy(), sig.fillna(0.0).to_numpy()
        xs = np.array(sorted(g.step.unique()), dtype=float)
        out.append(_onset(lat, "step", str(rung), xs, S, sig, None, threshold, n_rep, share, level,
                          np.random.default_rng([seed, 1, k] + ([salt] if salt else [])), of))
    for k, (lat, g) in enumerate(pt.groupby("latent", sort=True)):
        last = g[(g.step == g.groupby("rung").step.transform("max")) & (g.n_params > 0)]
        if last.rung.nunique() < 2:
            continue
        S = last.pivot_table(index="layer", columns="n_params", values="value").sort_index(axis=1)
        sig = last.pivot_table(index="layer", columns="n_params", values="sigma").reindex_like(S)
        xs = S.columns.to_numpy(float)
        out.append(_onset(lat, "params", None, xs, S.fillna(-np.inf).to_numpy(), sig.fillna(0.0).to_numpy(),
                          None, threshold, n_rep, share, level, np.random.default_rng([seed, 2, k] + ([salt] if salt else [])), of))
    return out


def _decades(a: float, b: float) -> float | None:
    return float(np.log10(a) - np.log10(b)) if a > 0 and b > 0 else None


def _lead_ci(cap_reps: np.ndarray, lat_reps: np.ndarray, level: float) -> list[float] | None:
    n = min(len(cap_reps), len(lat_reps))
    if n < 2:
        return None
    d = np.asarray(cap_reps[:n], dtype=float) - np.asarray(lat_reps[:n], dtype=float)
    a = (1 - level) / 2
    return [float(np.quantile(d, a)), float(np.quantile(d, 1 - a))]


def latent_leads(onsets: list[dict], capabilities: list[dict], allowed: Allowed = linked,
                 level: float = 0.95) -> list[dict]:
    """Lead of each admitted latent over each capability onset on the same axis (and rung).

    ``capabilities`` are curve records with ``onset = {"x", "ci", "replicates"}``."""
    out = []
    for lat in onsets:
        if lat["onset"] is None:
            continue
        L = float(lat["onset"])
        for cap in capabilities:
            o = cap.get("onset")
            if cap["axis"] != lat["axis"] or cap["rung"] != lat["rung"] or not o or not allowed(lat["latent"], cap["task"]):
                continue
            c = float(o["x"])
            reps = o.get("replicates")
            ci = _lead_ci(np.asarray([] if reps is None else reps), np.asarray(lat["replicate_onsets"]), level)
            lo, hi = ci if ci is not None else (c - L, c - L)
            out.append({"latent": lat["latent"], "task": cap["task"], "metric": cap["metric"], "k_shot": cap["k_shot"],
                        "axis": lat["axis"], "rung": lat["rung"], "verdict": cap["verdict"], "latent_onset": L,
                        "latent_onset_ci": lat["onset_ci"], "capability_onset": c, "capability_ci": o.get("ci"),
                        "lead": c - L, "lead_ci": ci, "lead_decades": _decades(c, L),
                        "relation": "lead" if lo > 0 else "lag" if hi < 0 else "simultaneous"})
    return out
