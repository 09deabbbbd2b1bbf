"""Attention-head scores (previous-token, induction, duplicate-token) on repeated random sequences."""
from __future__ import annotations

from typing import Any

import numpy as np

__all__ = [
    "previous_token_score",
    "induction_score",
    "duplicate_token_score",
    "repeated_random_tokens",
    "head_score_rows",
    "HEAD_TASKS",
]

#: The head-score tasks ``head_score_rows`` writes, in table order.
HEAD_TASKS = ("previous_token", "induction", "duplicate_token")


def _check(attn: np.ndarray) -> np.ndarray:
    attn = np.asarray(attn)
    if attn.ndim != 4 or attn.shape[-1] != attn.shape[-2]:
        raise ValueError(f"attention must be [B, n_heads, T, T]; got shape {attn.shape}")
    return attn


def previous_token_score(attn: np.ndarray) -> np.ndarray:
    """Per head: mean over sequences and positions ``i >= 1`` of ``attn[b, h, i, i-1]`` → ``[n_heads]``."""
    attn = _check(attn)  # [B, n_heads, T, T]
    n_tok = attn.shape[-1]
    if n_tok < 2:
        return np.full(attn.shape[1], np.nan)
    q = np.arange(1, n_tok)
    return attn[:, :, q, q - 1].mean(axis=(0, 2))


def induction_score(attn: np.ndarray, period: int, *, start: int = 0) -> np.ndarray:
    """Per head: mean of ``attn[b, h, i, i - period + 1]`` over positions ``i >= start + period`` → ``[n_heads]``.

    On a random block of length ``period`` repeated (beginning at position ``start``, e.g. 1 after a BOS
    token), an induction head attends from a token to the token that *followed* its previous occurrence
    (Olsson et al. 2022, prefix matching). Scores of a perfect induction head are 1, of any other head ~0.
    """
    attn = _check(attn)
    n_tok = attn.shape[-1]
    if period < 1:
        raise ValueError(f"period must be >= 1, got {period}")
    q = np.arange(start + period, n_tok)
    if len(q) == 0:
        return np.full(attn.shape[1], np.nan)
    return attn[:, :, q, q - period + 1].mean(axis=(0, 2))


def _duplicate_mass(attn: np.ndarray, tokens: np.ndarray) -> tuple[np.ndarray, int]:
    """Sum over queries with an earlier copy of their token of the attention on those copies, and their count."""
    attn = _check(attn)
    tokens = np.asarray(tokens)
    if tokens.shape != (attn.shape[0], attn.shape[-1]):
        raise ValueError(f"tokens must be [B, T] = {(attn.shape[0], attn.shape[-1])}; got {tokens.shape}")
    same = tokens[:, :, None] == tokens[:, None, :]  # [B, T(query), T(key)]
    earlier = np.tril(np.ones(same.shape[1:], dtype=bool), k=-1)  # key < query
    dup = same & earlier
    has_dup = dup.any(axis=-1)  # [B, T]
    mass = np.einsum("bhqk,bqk->h", attn, dup.astype(attn.dtype))  # attention on earlier copies
    return mass, int(has_dup.sum())


def duplicate_token_score(attn: np.ndarray, tokens: np.ndarray) -> np.ndarray:
    """Per head: mean, over positions whose token occurred earlier, of the attention on those earlier copies.

    ``tokens [B, T]`` are the sequences the pattern ``attn [B, n_heads, T, T]`` was computed on.
    """
    mass, count = _duplicate_mass(attn, tokens)
    return mass / count if count else np.full(mass.shape, np.nan)


def repeated_random_tokens(
    vocab_size: int,
    *,
    n_seq: int,
    period: int,
    n_repeats: int = 2,
    seed: int = 0,
    bos_token_id: int | None = None,
    token_ids: np.ndarray | None = None,
) -> np.ndarray:
    """Sequences ``[n_seq, (bos) + period * n_repeats]``: a random block of ``period`` tokens, repeated.

    Blocks draw without replacement where the pool allows it (no token repeats inside a block, so every
    repeat is an induction opportunity). ``token_ids`` restricts the pool (e.g. to non-special tokens).
    """
    pool = np.arange(vocab_size) if token_ids is None else np.asarray(token_ids)
    if len(pool) < 1 or period < 1 or n_repeats < 1:
        raise ValueError("need a non-empty token pool, period >= 1 and n_repeats >= 1")
    rng = np.random.default_rng(seed)
    replace = len(pool) < period
    blocks = np.stack([rng.choice(pool, size=period, replace=replace) for _ in range(n_seq)])  # [n_seq, period]
    seqs = np.tile(blocks, (1, n_repeats))
    if bos_token_id is not None:
        seqs = np.concatenate([np.full((n_seq, 1), bos_token_id, dtype=seqs.dtype), seqs], axis=1)
    return seqs.astype(np.int64)


def head_score_rows(
    model,
    vocab_size: int,
    *,
    seed: int = 0,
    n_seq: int = 64,
    period: int = 32,
    n_repeats: int = 2,
    bos_token_id: int | None = None,
    token_ids: np.ndarray | None = None,
    batch_size: int = 32,
    **fields: Any,
) -> list[dict[str, Any]]:
    """Measurement rows (``source="heads"``) scoring every head of ``model`` on repeated random sequences.

    One row per (task, layer, head) with ``metric="head_<h>"``, plus ``metric="max"`` over heads; tasks are
    ``previous_token``, ``induction`` and ``duplicate_token``; ``layer`` is the block index from 0 and ``n``
    the number of sequences. ``fields`` fill the other columns (study, rung, step, tokens, ...).
    """
    from emergelab.probe.activations import extract_attentions  # torch only where a model is scored

    seqs = repeated_random_tokens(vocab_size, n_seq=n_seq, period=period, n_repeats=n_repeats, seed=seed,
                                  bos_token_id=bos_token_id, token_ids=token_ids)  # [n_seq, T]
    start = 0 if bos_token_id is None else 1
    sums: dict[str, np.ndarray] = {}
    dup_count = 0
    for lo in range(0, n_seq, batch_size):
        tokens = seqs[lo:lo + batch_size]
        attn = extract_attentions(model, tokens, batch_size=batch_size)  # [n_layers, b, n_heads, T, T]
        b = len(tokens)
        prev = np.stack([previous_token_score(a) for a in attn]) * b  # [n_layers, n_heads], summed over b
        ind = np.stack([induction_score(a, period, start=start) for a in attn]) * b
        dup_parts = [_duplicate_mass(a, tokens) for a in attn]
        dup = np.stack([m for m, _ in dup_parts])
        dup_count += dup_parts[0][1]
        for key, value in (("previous_token", prev), ("induction", ind), ("duplicate_token", dup)):
            sums[key] = sums.get(key, 0.0) + value
    scores = {
        "previous_token": sums["previous_token"] / n_seq,
        "induction": sums["induction"] / n_seq,
        "duplicate_token": sums["duplicate_token"] / dup_count if dup_count else np.full_like(sums["duplicate_token"], np.nan),
    }
    rows = []
    base = {**fields, "source": "heads", "n": int(n_seq), "seed": int(seed)}
    for task in HEAD_TASKS:
        for layer, per_head in enumerate(scores[task]):  # per_head: [n_heads]
            for h, value in enumerate(per_head):
                rows.append({**base, "task": task, "layer": layer, "metric": f"head_{h}", "value": float(value)})
            rows.append({**base, "task": task, "layer": layer, "metric": "max", "value": float(np.nanmax(per_head))})
    return rows
