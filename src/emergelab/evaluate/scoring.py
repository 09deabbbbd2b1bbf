"""Batched teacher-forced scoring of target continuations for causal models.

Examples are sorted by length so that a batch wastes little padding, and the vocabulary softmax is
computed only at the target positions (the rest of the logits are never materialised in fp32).
"""
from __future__ import annotations

import numpy as np
import torch


@torch.no_grad()
def score_targets(model, examples: list[dict], *, batch_size: int = 64, pad_id: int = 0, want_probs: bool = True) -> list[dict]:
    """For each {prompt, target}: per-target-token log-prob, correctness, and (optionally) the full
    distribution at each target position (for the Brier score). Returns results in input order."""
    order = sorted(range(len(examples)), key=lambda i: len(examples[i]["prompt"]) + len(examples[i]["target"]))
    out: list[dict | None] = [None] * len(examples)
    body = model.base_model if model.base_model is not model else None
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        seqs = [examples[i]["prompt"] + examples[i]["target"] for i in idx]
        width = max(len(s) - 1 for s in seqs)
        ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for r, s in enumerate(seqs):
            ids[r, :len(s) - 1] = torch.tensor(s[:-1])
            mask[r, :len(s) - 1] = 1
        if body is not None:
            hidden = body(input_ids=ids, attention_mask=mask).last_hidden_state  # [B, T, d]
        else:
            hidden = None
        rows, cols, tgts = [], [], []
        for r, i in enumerate(idx):
            p, tgt = examples[i]["prompt"], examples[i]["target"]
            pos = np.arange(len(p) - 1, len(p) - 1 + len(tgt))
            rows += [r] * len(tgt)
            cols += pos.tolist()
            tgts += list(tgt)
        rows_t, cols_t = torch.tensor(rows), torch.tensor(cols)
        if hidden is not None:
            logits = model.get_output_embeddings()(hidden[rows_t, cols_t])  # [n_targets, V]
        else:
            logits = model(input_ids=ids, attention_mask=mask).logits[rows_t, cols_t]
        logp = torch.log_softmax(logits.float(), dim=-1)
        tg = torch.tensor(tgts)
        tok_logp = logp[torch.arange(len(tgts)), tg].numpy()
        correct = (logp.argmax(-1) == tg).numpy()
        probs = logp.exp().numpy() if want_probs else None
        k = 0
        for r, i in enumerate(idx):
            n = len(examples[i]["target"])
            out[i] = {"logp": tok_logp[k:k + n], "correct": correct[k:k + n],
                      "probs": probs[k:k + n] if probs is not None else None,
                      "target": np.asarray(examples[i]["target"])}
            k += n
    return out  # type: ignore[return-value]


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
