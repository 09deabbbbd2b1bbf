"""Causal LM for training: the loss of :class:`~emergelab.objectives.clm.CausalLM`, with the fused head.

The transformer runs once; the vocabulary head and the next-token cross-entropy run fused and chunked
(objectives/head_loss.py) over positions 0..T−2, the ones that have a next token. The loss equals the
Hugging Face model's own ``labels=input_ids`` loss (tests/test_objectives_mlm.py).

With ``seen`` (``train.loss_vocab: seen``) the softmax runs over those token ids only: the head's other
rows (tokens that never occur in the training rows, such as a world's unused special tokens) get no
gradient. The loss is then the cross-entropy of the logits restricted to ``seen``.

With ``after`` (``train.loss_after``, a token id) the loss is taken only at the positions whose input token
is ``after``: the token that follows it is the only target (the answer after ``=``).
"""
from __future__ import annotations

import numpy as np
import torch

from emergelab.objectives.clm import CausalLM
from emergelab.objectives.head_loss import linear_cross_entropy


def seen_ids(rows: np.ndarray, vocab_size: int, chunk: int = 1 << 22) -> np.ndarray:
    """The sorted token ids that occur in ``rows`` (counted in chunks: a memmap is never read whole)."""
    flat = rows.reshape(-1)
    counts = np.zeros(vocab_size, dtype=np.int64)
    for s in range(0, flat.shape[0], chunk):
        counts += np.bincount(np.asarray(flat[s:s + chunk], dtype=np.int64), minlength=vocab_size)[:vocab_size]
    return np.flatnonzero(counts)


class FusedCausalLM(CausalLM):
    names = ("loss",)

    def __init__(self, seen: np.ndarray | None = None, vocab_size: int | None = None, after: int | None = None):
        self.after = after
        self.seen = None if seen is None else torch.as_tensor(seen, dtype=torch.long)
        if self.seen is not None:  # token id -> its index among the seen ids (-1: never seen)
            self.index = torch.full((int(vocab_size),), -1, dtype=torch.long)
            self.index[self.seen] = torch.arange(len(self.seen))

    def loss(self, model, batch):
        ids = batch["input_ids"]  # [B, T]
        head = model.get_output_embeddings()
        hidden = model.base_model(input_ids=ids).last_hidden_state[:, :-1]  # [B, T-1, d]
        if self.after is None:
            hidden, target = hidden.reshape(-1, hidden.shape[-1]), ids[:, 1:].reshape(-1)
        else:  # the targets that follow the token ``after`` only
            keep = ids[:, :-1] == self.after
            hidden, target = hidden[keep], ids[:, 1:][keep]  # [n, d], [n]
        n = max(int(target.shape[0]), 1)
        weight, bias = head.weight, head.bias
        if self.seen is not None:
            seen = self.seen.to(weight.device)
            weight = weight.index_select(0, seen)
            bias = None if bias is None else bias.index_select(0, seen)
            target = self.index.to(target.device)[target]
        loss = linear_cross_entropy(hidden, weight, bias, target) / n
        return loss, {"loss": loss.item()}
