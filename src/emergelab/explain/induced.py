"""``metric-induced``: a discontinuous metric whose jump is the metric's, not the model's.

All three must hold, replicate by replicate (Schaeffer et al. 2023):

1. the exact-match curve looks emergent (its own shape code is ``emergent``);
2. it is predicted from the per-token metric through the task's answer length: EM ≈ p^L with weighted
   R² ≥ ``nonlinearity_r2`` in linear space (``explain.nonlinearity``), p = token accuracy, or
   exp(per-token target log-probability);
3. the continuous partner is itself judged smooth (its own shape code is ``smooth``).

Otherwise the exact-match curve keeps its own verdict, and the evidence says which condition failed.
Discontinuous metrics without a per-token partner (multiple-choice accuracy) are never metric-induced.
"""
from __future__ import annotations

import numpy as np

from emergelab.explain.curves import Curve
from emergelab.explain.nonlinearity import predict_exact_match
from emergelab.explain.shape import EMERGENT, SMOOTH
from emergelab.explain.verdict import METRIC_INDUCED, fmt_num

#: Per-token partners of exact match, in order of preference, and p from their values.
PER_TOKEN = {"token_accuracy": lambda v: v, "target_logprob_per_token": np.exp}


def partner_of(curve: Curve, by_key: dict) -> Curve | None:
    """The per-token curve paired with an exact-match curve (same task, k-shot, axis, rung)."""
    if curve.metric != "exact_match":
        return None
    for m in PER_TOKEN:
        p = by_key.get((curve.task, m, curve.k_shot, curve.axis, curve.rung))
        if p is not None:
            return p
    return None


def metric_check(em: Curve, em_sigma: np.ndarray, partner: Curve, length: float | None,
                 r2_min: float, min_gain: float) -> dict:
    """EM ≈ p^L on the points both curves share: {partner, length, length_source, r2, n_points, predicts}."""
    _, ie, ip = np.intersect1d(em.x, partner.x, return_indices=True)
    p = np.clip(PER_TOKEN[partner.metric](partner.y[ip]), 0.0, 1.0)
    rec = predict_exact_match(em.y[ie], p, 1.0 / em_sigma[ie] ** 2, length, min_gain)
    rec["partner"] = partner.metric
    rec["predicts"] = bool(rec["r2"] is not None and rec["r2"] >= r2_min)
    return rec


def induce(em_codes: np.ndarray, partner_codes: np.ndarray, predicts: bool) -> np.ndarray:
    """Replicate codes of the exact-match curve once the partner is read: emergent → metric-induced where
    the partner is smooth and p^L predicts EM."""
    out = em_codes.copy()
    if predicts:
        n = min(len(em_codes), len(partner_codes))
        hit = (em_codes[:n] == EMERGENT) & (partner_codes[:n] == SMOOTH)
        out[:n][hit] = METRIC_INDUCED
    return out


def check_sentence(check: dict, partner_verdict: str, partner_share: float, r2_min: float) -> str:
    src = "given" if check["length_source"] == "rows" else "estimated"
    r2 = check["r2"]
    head = (f"exact_match ≈ {check['partner']}^L with L={fmt_num(check['length'])} ({src}) "
            + ("cannot be tested" if r2 is None else f"has weighted R²={r2:.2f}"
               + (" " if check["predicts"] else f" (< {r2_min:g}) ")))
    return f"{head.rstrip()}; {check['partner']} is {partner_verdict} ({partner_share:.2f})"
