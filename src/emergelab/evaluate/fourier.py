"""Nanda et al.'s (2023) progress measures of modular addition: the logits' key Fourier frequencies,
the restricted loss (only those frequencies kept) and the excluded loss (those frequencies removed).

The logits are the model's at the answer position of every prompt ``a + b =``, over the p answers:
an array ``[p, p, p]`` indexed ``[a, b, c]``. A frequency k (1 ≤ k ≤ (p−1)/2) of the *sum* is the
two-dimensional span of cos(2πk(a+b)/p) and sin(2πk(a+b)/p) as functions of the input (a, b); these
directions are orthogonal to each other, across k and to the constant. For each answer c the logits
over the p² inputs are centred (their mean over inputs kept aside) and projected on those spans:

- ``frequency_shares``: the share of the centred logits' squared norm in each frequency's span;
- ``restricted_logits``: the mean plus the projection on the key frequencies only;
- ``excluded_logits``: the logits minus that projection.

A model that adds with the key frequencies has a low restricted loss (the key frequencies alone
compute the answer) and a high excluded loss on its training pairs (without them it cannot); a model
that memorises has neither. The loss is the cross-entropy of the answer (a + b) mod p.
"""
from __future__ import annotations

import numpy as np

__all__ = ["frequencies", "sum_basis", "frequency_shares", "key_frequencies", "restricted_logits",
           "excluded_logits", "answer_loss", "progress_measures"]


def frequencies(p: int) -> list[int]:
    """The non-constant frequencies of Z_p up to their mirror images: 1 … (p−1)//2."""
    return list(range(1, (p - 1) // 2 + 1))


def sum_basis(p: int, ks) -> np.ndarray:
    """Orthonormal columns [p², 2·len(ks)]: cos and sin of 2πk(a+b)/p over the inputs (a, b), a-major."""
    s = np.add.outer(np.arange(p), np.arange(p)).reshape(-1)  # a + b, index a·p + b
    cols = [f(2 * np.pi * k * s / p) for k in ks for f in (np.cos, np.sin)]
    basis = np.stack(cols, axis=1) if cols else np.zeros((p * p, 0))
    return basis / np.linalg.norm(basis, axis=0, keepdims=True)


def _centred(logits: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """(logits [p², C] minus their mean over inputs, that mean [1, C], p)."""
    p = logits.shape[0]
    flat = np.asarray(logits, dtype=np.float64).reshape(p * p, -1)
    mean = flat.mean(axis=0, keepdims=True)
    return flat - mean, mean, p


def frequency_shares(logits: np.ndarray) -> dict[int, float]:
    """k -> share of the centred logits' squared norm in frequency k's span (0 for constant logits)."""
    centred, _, p = _centred(logits)
    total = float((centred ** 2).sum())
    out = {}
    for k in frequencies(p):
        coef = sum_basis(p, [k]).T @ centred  # [2, C]
        out[k] = float((coef ** 2).sum()) / total if total > 0 else 0.0
    return out


def key_frequencies(shares: dict[int, float], ratio: float = 2.0) -> list[int]:
    """The frequencies whose share is at least ``ratio`` times the mean share of all frequencies (sorted):
    the few that stand out of the spectrum. A grokked model's logits put most of their norm on a handful
    of frequencies (Nanda et al.: 5 of 56); a memorising model's spectrum is flat, and few or none stand
    out. None when no frequency carries any share."""
    mean = sum(shares.values()) / max(len(shares), 1)
    if mean <= 0:
        return []
    return sorted(k for k, v in shares.items() if v >= ratio * mean)


def _projection(centred: np.ndarray, p: int, ks) -> np.ndarray:
    basis = sum_basis(p, ks)
    return basis @ (basis.T @ centred)


def restricted_logits(logits: np.ndarray, ks) -> np.ndarray:
    """[p, p, C]: the mean over inputs plus the centred logits' projection on frequencies ``ks``."""
    centred, mean, p = _centred(logits)
    return (mean + _projection(centred, p, ks)).reshape(np.shape(logits))


def excluded_logits(logits: np.ndarray, ks) -> np.ndarray:
    """[p, p, C]: the logits minus their projection on frequencies ``ks``."""
    centred, mean, p = _centred(logits)
    return (mean + centred - _projection(centred, p, ks)).reshape(np.shape(logits))


def answer_loss(logits: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean cross-entropy (nats) of the answer (a + b) mod p over the inputs where ``mask [p, p]`` is true."""
    p = logits.shape[0]
    flat = np.asarray(logits, dtype=np.float64).reshape(p * p, -1)
    target = (np.add.outer(np.arange(p), np.arange(p)) % p).reshape(-1)
    top = flat.max(axis=1, keepdims=True)
    logz = np.log(np.exp(flat - top).sum(axis=1)) + top[:, 0]
    nll = logz - flat[np.arange(p * p), target]
    keep = np.ones(p * p, bool) if mask is None else np.asarray(mask, bool).reshape(-1)
    return float(nll[keep].mean())


def progress_measures(logits: np.ndarray, ks, train_mask: np.ndarray) -> dict[str, float]:
    """``restricted_loss`` (key frequencies only, on every pair), ``excluded_loss`` (key frequencies removed,
    on the training pairs, as Nanda et al.), ``key_share`` (the key frequencies' share of the centred
    logits) and, for reference, ``full_loss`` (every pair) — of one checkpoint's logits ``[p, p, p]``."""
    shares = frequency_shares(logits)
    return {"restricted_loss": answer_loss(restricted_logits(logits, ks)),
            "excluded_loss": answer_loss(excluded_logits(logits, ks), train_mask),
            "key_share": float(sum(shares[k] for k in ks)),
            "full_loss": answer_loss(logits)}
