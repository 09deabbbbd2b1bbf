"""Masked-model scoring: cloze by masked-token probability, pseudo-log-likelihood, choices, MLM loss.

Three scores, all from the model's distribution at ``[MASK]`` positions (vocabulary head applied only
there):

* **cloze** of an answer of L tokens: the input is ``left + [MASK]×L + right`` and token t of the
  answer is scored by log p(answer_t | left, right) at the t-th mask — all L masked *at once*, so
  exact match (every mask's argmax is the answer token) needs no answer token to be revealed.
* **pseudo-log-likelihood** (Salazar et al. 2020, restricted to a filler in its context): for each
  filler token t, the input is ``left + filler + right`` with only token t masked;
  PLL = Σ_t log p(filler_t | everything else). It scores a *given* multi-token candidate.
* **choices**: each candidate filler by its PLL; single-token candidates of one document share the
  one input ``left + [MASK] + right`` and so one forward pass.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from emergelab.evaluate.scoring import TokenScores, _batches, _pad, _scores, _split
from emergelab.evaluate.vocab_head import full_logits, masked_parts


@dataclass
class _Row:
    ids: list[int]
    positions: list[int]
    targets: list[int]


@torch.no_grad()
def _score_rows(model, rows: list[_Row], *, batch_size: int, pad_id: int) -> list[TokenScores]:
    """Scores of each row's targets at its (masked) positions; rows sorted by length into batches."""
    parts = masked_parts(model)
    order = sorted(range(len(rows)), key=lambda i: -len(rows[i].ids))
    out: list[TokenScores | None] = [None] * len(rows)
    for idx in _batches(order, lambda i: 1, batch_size):
        ids, mask = _pad([rows[i].ids for i in idx], pad_id)
        r_idx = torch.tensor([r for r, i in enumerate(idx) for _ in rows[i].positions])
        c_idx = torch.tensor([p for i in idx for p in rows[i].positions])
        if parts is not None:
            body, head = parts
            hidden = body(input_ids=ids, attention_mask=mask).last_hidden_state
            logits = head(hidden[r_idx, c_idx])  # [n_positions, V]
        else:
            logits = full_logits(model, input_ids=ids, attention_mask=mask)[r_idx, c_idx]
        tg = torch.tensor([t for i in idx for t in rows[i].targets])
        for i, s in zip(idx, _split(_scores(logits, tg), [len(rows[i].targets) for i in idx])):
            out[i] = s
    return out  # type: ignore[return-value]


def score_masked(model, items: list[tuple[list[int], list[int], list[int]]], *, mask_id: int,
                 batch_size: int = 32, pad_id: int = 0) -> list[TokenScores]:
    """Cloze scores of each ``(left, answer, right)``: the whole answer masked at once."""
    rows = [_Row(list(l) + [mask_id] * len(a) + list(r), list(range(len(l), len(l) + len(a))), list(a))
            for l, a, r in items]
    return _score_rows(model, rows, batch_size=batch_size, pad_id=pad_id)


def pseudo_loglik(model, items: list[tuple[list[int], list[int], list[int]]], *, mask_id: int,
                  batch_size: int = 32, pad_id: int = 0) -> list[TokenScores]:
    """Per-token PLL scores of each ``(left, filler, right)``: one input per filler token, that token masked."""
    rows, owner = [], []
    for n, (l, f, r) in enumerate(items):
        for t in range(len(f)):
            ids = list(l) + list(f) + list(r)
            ids[len(l) + t] = mask_id
            rows.append(_Row(ids, [len(l) + t], [f[t]]))
            owner.append(n)
    scored = _score_rows(model, rows, batch_size=batch_size, pad_id=pad_id)
    per: list[list[TokenScores]] = [[] for _ in items]
    for n, s in zip(owner, scored):
        per[n].append(s)
    return [TokenScores(*(np.concatenate([getattr(s, a) for s in ss]) for a in ("logp", "greedy", "brier")))
            for ss in per]


def score_masked_choices(model, items: list[tuple[list[int], list[list[int]], list[int]]], *, mask_id: int,
                         batch_size: int = 32, pad_id: int = 0) -> list[list[TokenScores]]:
    """Scores of every candidate filler of every ``(left, choices, right)`` (PLL; single-token
    candidates of a document share one masked input)."""
    rows, where = [], []  # where[n][c] = (row index, slot within the row)
    for l, choices, r in items:
        slots = {}
        singles = [c for c, ch in enumerate(choices) if len(ch) == 1]
        if singles:
            rows.append(_Row(list(l) + [mask_id] + list(r), [len(l)] * len(singles), [choices[c][0] for c in singles]))
            slots.update({c: [(len(rows) - 1, s)] for s, c in enumerate(singles)})
        for c, ch in enumerate(choices):
            if len(ch) > 1:
                slots[c] = []
                for t in range(len(ch)):
                    ids = list(l) + list(ch) + list(r)
                    ids[len(l) + t] = mask_id
                    rows.append(_Row(ids, [len(l) + t], [ch[t]]))
                    slots[c].append((len(rows) - 1, 0))
        where.append([slots[c] for c in range(len(choices))])
    scored = _score_rows(model, rows, batch_size=batch_size, pad_id=pad_id)
    return [[TokenScores(*(np.array([getattr(scored[r], a)[s] for r, s in sl]) for a in ("logp", "greedy", "brier")))
             for sl in doc] for doc in where]


def mlm_corruption(blocks: np.ndarray, *, mask_id: int, vocab_size: int, special_ids: list[int], seed: int,
                   probability: float = 0.15, mask: float = 0.8, random: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """BERT's corruption, seeded: ``probability`` of the non-special tokens of each block (at least one)
    are selected; a ``mask`` fraction of them become [MASK], a ``random`` fraction a random non-special
    token, the rest stay (80/10/10 by default). Returns (inputs, selected positions)."""
    rng = np.random.default_rng(seed)
    blocks = np.asarray(blocks, dtype=np.int64)
    eligible = ~np.isin(blocks, special_ids)
    selected = (rng.random(blocks.shape) < probability) & eligible
    for b in np.flatnonzero(~selected.any(axis=1) & eligible.any(axis=1)):
        selected[b, rng.choice(np.flatnonzero(eligible[b]))] = True
    u = rng.random(blocks.shape)
    inputs = blocks.copy()
    inputs[selected & (u < mask)] = mask_id
    rand = selected & (u >= mask) & (u < mask + random)
    normal = np.setdiff1d(np.arange(vocab_size), special_ids)  # random replacements are never special tokens
    inputs[rand] = normal[rng.integers(0, len(normal), size=int(rand.sum()))]
    return inputs, selected


@torch.no_grad()
def masked_heldout_loss(model, blocks: np.ndarray, *, mask_id: int, vocab_size: int, special_ids: list[int],
                        seed: int = 0, batch_size: int = 64, **corruption) -> float:
    """Held-out MLM loss: mean cross-entropy (nats) at the selected positions of :func:`mlm_corruption`
    (``corruption``: its probability/mask/random fractions)."""
    inputs, selected = mlm_corruption(blocks, mask_id=mask_id, vocab_size=vocab_size, special_ids=special_ids,
                                      seed=seed, **corruption)
    targets = np.asarray(blocks, dtype=np.int64)
    parts = masked_parts(model)
    total, count = 0.0, 0
    for s in range(0, len(inputs), batch_size):
        ids = torch.from_numpy(inputs[s:s + batch_size])
        sel = torch.from_numpy(selected[s:s + batch_size])
        if parts is not None:
            body, head = parts
            logits = head(body(input_ids=ids).last_hidden_state[sel])
        else:
            logits = full_logits(model, input_ids=ids)[sel]
        tg = torch.from_numpy(targets[s:s + batch_size])[sel]
        total += torch.nn.functional.cross_entropy(logits.float(), tg, reduction="sum").item()
        count += int(sel.sum())
    return total / max(count, 1)
