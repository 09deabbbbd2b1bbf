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


@torch.no_grad()
def score_continuations(model, pairs: list[tuple[list[int], list[int]]], *, batch_size: int = 32,
                        pad_id: int = 0) -> list[TokenScores]:
    """Teacher-forced scores of each ``(context, continuation)`` (token ids, context non-empty), in
    input order. The model reads ``(context + continuation)[:-1]``; the continuation's tokens are
    predicted at positions ``len(context) − 1 …``."""
    order = sorted(range(len(pairs)), key=lambda i: -(len(pairs[i][0]) + len(pairs[i][1])))
    out: list[TokenScores | None] = [None] * len(pairs)
    for idx in _batches(order, lambda i: 1, batch_size):
        seqs = [(pairs[i][0] + pairs[i][1])[:-1] for i in idx]
        ids, mask = _pad(seqs, pad_id)
        states, head, _ = _forward(model, input_ids=ids, attention_mask=mask, use_cache=False)
        rows, cols, tgts, lens = [], [], [], []
        for r, i in enumerate(idx):
            ctx, cont = pairs[i]
            rows += [r] * len(cont)
            cols += range(len(ctx) - 1, len(ctx) - 1 + len(cont))
            tgts += cont
            lens.append(len(cont))
        logits = head(states[torch.tensor(rows), torch.tensor(cols)])  # [n_targets, V]
        for i, s in zip(idx, _split(_scores(logits, torch.tensor(tgts)), lens)):
            out[i] = s
    return out  # type: ignore[return-value]


@torch.no_grad()
def score_choices(model, items: list[tuple[list[int], list[list[int]]]], *, batch_size: int = 32,
                  pad_id: int = 0) -> list[list[TokenScores]]:
    """Scores of every choice of every ``(context, choices)``: one forward pass over the contexts
    (cached), then one over the choices' own tokens on top of their context's cache. Single-token
    choices cost nothing beyond the context pass."""
    order = sorted(range(len(items)), key=lambda i: -len(items[i][0]))
    out: list[list[TokenScores] | None] = [None] * len(items)
    for idx in _batches(order, lambda i: len(items[i][1]), batch_size):
        ctxs = [items[i][0] for i in idx]
        ids, mask = _pad(ctxs, pad_id)
        states, head, cache = _forward(model, input_ids=ids, attention_mask=mask, use_cache=True)
        lens = torch.tensor([len(c) for c in ctxs])
        first_logits = head(states[torch.arange(len(idx)), lens - 1])  # [B, V]: predicts each choice's first token
        # one row per (context, choice); the choice's later tokens are predicted from its own pass
        rows, firsts, multi = [], [], []
        for r, i in enumerate(idx):
            for c, choice in enumerate(items[i][1]):
                rows.append(r)
                firsts.append(choice[0])
                if len(choice) > 1:
                    multi.append((r, i, c))
        f_vals = _scores(first_logits[torch.tensor(rows)], torch.tensor(firsts))
        per = {}
        k = 0
        for i in idx:
            for c in range(len(items[i][1])):
                per[(i, c)] = [(f_vals[0][k], f_vals[1][k], f_vals[2][k])]
                k += 1
        if multi:
            sel = torch.tensor([r for r, _, _ in multi])
            cache.reorder_cache(sel)  # the context cache, one copy per multi-token choice
            tails = [items[i][1][c][:-1] for _, i, c in multi]
            t_ids, t_mask = _pad(tails, pad_id)
            attn = torch.cat([mask[sel], t_mask], dim=1)
            pos = lens[sel][:, None] + torch.arange(t_ids.shape[1])[None, :]
            t_states, _, _ = _forward(model, input_ids=t_ids, attention_mask=attn, position_ids=pos,
                                      cache=cache, use_cache=False)
            r2, c2, tg = [], [], []
            for m, (_, i, c) in enumerate(multi):
                choice = items[i][1][c]
                r2 += [m] * (len(choice) - 1)
                c2 += range(len(choice) - 1)
                tg += choice[1:]
            vals = _scores(head(t_states[torch.tensor(r2), torch.tensor(c2)]), torch.tensor(tg))
            k = 0
            for _, i, c in multi:
                n = len(items[i][1][c]) - 1
                per[(i, c)] += list(zip(vals[0][k:k + n], vals[1][k:k + n], vals[2][k:k + n]))
                k += n
        for i in idx:
            out[i] = [TokenScores(*(np.array(x) for x in zip(*per[(i, c)]))) for c in range(len(items[i][1]))]
    return out  # type: ignore[return-value]


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
