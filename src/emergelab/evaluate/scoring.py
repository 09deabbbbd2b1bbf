"""Causal-model scoring: teacher-forced continuations, choices sharing one context, greedy decoding.

Requests are sorted by length so that a batch wastes little padding; the body runs once per batch
and the vocabulary head is applied only at the positions that are read (the continuation's), never
to the whole [B, T, V] tensor. Choices that share a context reuse its key/value cache: the context
runs once, each choice runs only its own tokens.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from emergelab.evaluate.vocab_head import causal_parts


@dataclass
class TokenScores:
    """Per-token scores of one continuation: log p(token | prefix), whether the token is the argmax,
    and the Brier score Σ_v (p_v − 1[v = token])² of the distribution at its position."""

    logp: np.ndarray  # [L] float64
    greedy: np.ndarray  # [L] bool
    brier: np.ndarray  # [L] float64


def _scores(logits: torch.Tensor, targets: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """logits [N, V] at N positions, targets [N] -> (log p, is argmax, Brier) per position, in fp32."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    tok = logp.gather(1, targets[:, None])[:, 0]
    greedy = logp.argmax(-1) == targets
    brier = torch.exp(2 * logp).sum(-1) - 2 * tok.exp() + 1.0  # Σ p² − 2 p_y + 1
    return tok.double().numpy(), greedy.numpy(), brier.double().numpy()


def _split(vals: tuple[np.ndarray, ...], lengths: list[int]) -> list[TokenScores]:
    out, k = [], 0
    for n in lengths:
        out.append(TokenScores(vals[0][k:k + n], vals[1][k:k + n], vals[2][k:k + n]))
        k += n
    return out


def _pad(seqs: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for r, s in enumerate(seqs):
        ids[r, :len(s)] = torch.as_tensor(s, dtype=torch.long)
        mask[r, :len(s)] = 1
    return ids, mask


def _forward(model, **inputs) -> tuple[torch.Tensor, Callable[[torch.Tensor], torch.Tensor], object]:
    """(states [B, T, ·], states -> logits, cache): hidden states and the head where the model splits,
    else the full logits and the identity."""
    parts = causal_parts(model)
    if parts is not None:
        body, head = parts
        out = body(**inputs)
        return out.last_hidden_state, head, getattr(out, "cache", None)
    out = model(**inputs)
    return out.logits, (lambda x: x), getattr(out, "cache", None)


def _batches(order: list[int], cost: Callable[[int], int], budget: int) -> list[list[int]]:
    """Consecutive groups of ``order`` whose summed cost stays within ``budget`` (at least one each)."""
    out, cur, used = [], [], 0
    for i in order:
        if cur and used + cost(i) > budget:
            out.append(cur)
            cur, used = [], 0
        cur.append(i)
        used += cost(i)
    if cur:
        out.append(cur)
    return out


#: a shared prefix shorter than this (tokens) is run with each request rather than cached once
MIN_SHARED = 4


def _common(a: list[int], b: list[int]) -> int:
    """Length of the common prefix of ``a`` and ``b``."""
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def prefix_groups(seqs: list[list[int]]) -> list[tuple[int, list[int]]]:
    """(trunk length, members): requests grouped so that a group's members share their first ``trunk``
    tokens, which then run once. Sequences are sorted, so those sharing prefixes are neighbours; a group
    grows while the tokens it saves, (members − 1) × trunk, do not shrink. A group of one is the whole
    sequence (no sharing)."""
    if not seqs:
        return []
    order = sorted(range(len(seqs)), key=lambda i: seqs[i])
    groups, cur, trunk = [], [order[0]], len(seqs[order[0]])
    for i in order[1:]:
        p = min(trunk, _common(seqs[cur[-1]], seqs[i]))
        if p >= MIN_SHARED and len(cur) * p >= (len(cur) - 1) * trunk:
            cur.append(i)
            trunk = p
        else:
            groups.append((trunk, cur))
            cur, trunk = [i], len(seqs[i])
    groups.append((trunk, cur))
    return groups


def _branch_states(model, cache, mask: torch.Tensor, chunk: list[tuple[int, list[int], int]], pad_id: int) -> torch.Tensor:
    """States of each ``(trunk row, tail tokens, trunk length)`` run on top of its trunk's cached keys/values."""
    sel = torch.tensor([r for r, _, _ in chunk])
    cache.batch_select_indices(sel)
    t_ids, t_mask = _pad([t for _, t, _ in chunk], pad_id)
    pos = torch.tensor([p for _, _, p in chunk])[:, None] + torch.arange(t_ids.shape[1])[None, :]
    pos = torch.where(t_mask.bool(), pos, 0)  # padding past a short tail could run beyond the model's positions
    states, _, _ = _forward(model, input_ids=t_ids, attention_mask=torch.cat([mask[sel], t_mask], dim=1),
                            position_ids=pos, cache=cache, use_cache=False)
    return states


def _score_group_batch(model, pairs, seqs, groups, pad_id: int, batch_size: int) -> dict[int, TokenScores]:
    """One pass over the trunks of ``groups`` (cached when a member goes on past its trunk), then the
    members' tails in chunks of ``batch_size`` rows on top of a copy of their trunk's cache; the head
    at the read positions only."""
    ids, mask = _pad([seqs[m[0]][:trunk] for trunk, m in groups], pad_id)
    tails = [(r, i, trunk) for r, (trunk, m) in enumerate(groups) for i in m if len(seqs[i]) > trunk]
    states, head, cache = _forward(model, input_ids=ids, attention_mask=mask, use_cache=bool(tails))
    if tails and not hasattr(cache, "layers"):  # a model without a layered key/value cache: no sharing
        singles = [(len(seqs[i]), [i]) for _, m in groups for i in m]
        return {i: s for b in range(0, len(singles), batch_size)
                for i, s in _score_group_batch(model, pairs, seqs, singles[b:b + batch_size], pad_id, batch_size).items()}
    reads = {i: range(len(pairs[i][0]) - 1, len(seqs[i])) for _, m in groups for i in m}
    picked: dict[int, list[torch.Tensor]] = {}
    for r, (trunk, m) in enumerate(groups):
        for i in m:
            picked[i] = [states[r, [j for j in reads[i] if j < trunk]]]
    if tails:
        saved = [dict(layer.__dict__) for layer in cache.layers]
        for s in range(0, len(tails), batch_size):
            for layer, st in zip(cache.layers, saved):  # each chunk starts from the trunks' cache
                layer.__dict__.update(st)
            chunk = tails[s:s + batch_size]
            t_states = _branch_states(model, cache, mask, [(r, seqs[i][trunk:], trunk) for r, i, trunk in chunk], pad_id)
            for m, (_, i, trunk) in enumerate(chunk):
                picked[i].append(t_states[m, [j - trunk for j in reads[i] if j >= trunk]])
    members = list(reads)
    vals = _scores(head(torch.cat([x for i in members for x in picked[i]])),
                   torch.tensor([t for i in members for t in pairs[i][1]]))
    return dict(zip(members, _split(vals, [len(pairs[i][1]) for i in members])))


@torch.no_grad()
def score_continuations(model, pairs: list[tuple[list[int], list[int]]], *, batch_size: int = 32,
                        pad_id: int = 0, share_prefixes: bool = True) -> list[TokenScores]:
    """Teacher-forced scores of each ``(context, continuation)`` (token ids, context non-empty), in
    input order. The model reads ``(context + continuation)[:-1]``; the continuation's tokens are
    predicted at positions ``len(context) − 1 …``. Requests that share a prefix (the choices of one
    question, a common few-shot prompt or description, the same document) run it once
    (:func:`prefix_groups`) unless ``share_prefixes`` is off; the scores are the same either way."""
    seqs = [(c + t)[:-1] for c, t in pairs]
    groups = prefix_groups(seqs) if share_prefixes else [(len(s), [i]) for i, s in enumerate(seqs)]
    # groups whose members go past their trunk need its keys/values cached; batched apart from the rest,
    # requests that share nothing run as plain forward passes (no cache to build, copy or extend)
    branching = [g for g in groups if any(len(seqs[i]) > g[0] for i in g[1])]
    plain = [g for g in groups if all(len(seqs[i]) <= g[0] for i in g[1])]
    out: dict[int, TokenScores] = {}
    for part in (plain, branching):
        part.sort(key=lambda g: -g[0])  # longest trunks first: a batch carries little padding
        for b in _batches(list(range(len(part))), lambda g: 1, batch_size):
            out.update(_score_group_batch(model, pairs, seqs, [part[g] for g in b], pad_id, batch_size))
    return [out[i] for i in range(len(pairs))]


@torch.no_grad()
def score_choices(model, items: list[tuple[list[int], list[list[int]]]], *, batch_size: int = 32,
                  pad_id: int = 0) -> list[list[TokenScores]]:
    """Scores of every choice of every ``(context, choices)``: the pairs of :func:`score_continuations`,
    so a context runs once for all its choices (and a prefix shared across questions once for them
    all); single-token choices cost nothing beyond the context pass."""
    flat = score_continuations(model, [(ctx, ch) for ctx, chs in items for ch in chs], batch_size=batch_size, pad_id=pad_id)
    out, k = [], 0
    for _, chs in items:
        out.append(flat[k:k + len(chs)])
        k += len(chs)
    return out


@torch.no_grad()
def greedy_generate(model, contexts: list[list[int]], max_new: list[int], *, batch_size: int = 32, pad_id: int = 0,
                    eos_id: int | None = None, stop: Callable[[int, list[int]], bool] | None = None) -> list[list[int]]:
    """Greedy continuations (argmax each step, key/value cached), at most ``max_new[i]`` tokens, ending
    early at EOS or when ``stop(i, tokens_so_far)`` says so. The EOS token itself is not returned."""
    order = sorted(range(len(contexts)), key=lambda i: -len(contexts[i]))
    out: list[list[int]] = [[] for _ in contexts]
    for idx in _batches(order, lambda i: 1, batch_size):
        ids, mask = _pad([contexts[i] for i in idx], pad_id)
        lens = torch.tensor([len(contexts[i]) for i in idx])
        states, head, cache = _forward(model, input_ids=ids, attention_mask=mask, use_cache=True)
        nxt = head(states[torch.arange(len(idx)), lens - 1]).argmax(-1)
        done = [max_new[i] == 0 for i in idx]
        for t in range(max(max_new[i] for i in idx)):
            for r, i in enumerate(idx):
                if done[r]:
                    continue
                tok = int(nxt[r])
                if eos_id is not None and tok == eos_id:
                    done[r] = True
                    continue
                out[i].append(tok)
                if len(out[i]) >= max_new[i] or (stop is not None and stop(i, out[i])):
                    done[r] = True
            if all(done):
                break
            mask = torch.cat([mask, torch.ones((len(idx), 1), dtype=mask.dtype)], dim=1)
            states, head, cache = _forward(model, input_ids=nxt[:, None], attention_mask=mask,
                                           position_ids=(lens + t)[:, None], cache=cache, use_cache=True)
            nxt = head(states[:, -1]).argmax(-1)
    return out


@torch.no_grad()
def heldout_loss(model, blocks: np.ndarray, batch_size: int = 64) -> float:
    """Mean next-token cross-entropy on held-out blocks (nats per token)."""
    total, count = 0.0, 0
    for s in range(0, len(blocks), batch_size):
        ids = torch.from_numpy(np.asarray(blocks[s:s + batch_size], dtype=np.int64))
        logits = model(input_ids=ids).logits
        loss = torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1).float(), ids[:, 1:].flatten(), reduction="sum")
        total += loss.item()
        count += ids[:, 1:].numel()
    return total / count
