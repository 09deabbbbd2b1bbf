"""Causal LM for training: the loss of :class:`~emergelab.objectives.clm.CausalLM`, with the fused head.

The transformer runs once; the vocabulary head and the next-token cross-entropy run fused and chunked
(objectives/head_loss.py) over positions 0..T−2, the ones that have a next token. The loss equals the
Hugging Face model's own ``labels=input_ids`` loss (tests/test_objectives_mlm.py).
"""
from __future__ import annotations

from emergelab.objectives.clm import CausalLM
from emergelab.objectives.head_loss import linear_cross_entropy


class FusedCausalLM(CausalLM):
    names = ("loss",)

    def loss(self, model, batch):
        ids = batch["input_ids"]  # [B, T]
        head = model.get_output_embeddings()
        hidden = model.base_model(input_ids=ids).last_hidden_state[:, :-1]  # [B, T-1, d]
        n = hidden.shape[0] * hidden.shape[1]
        loss = linear_cross_entropy(hidden.reshape(n, -1), head.weight, head.bias, ids[:, 1:].reshape(n)) / n
        return loss, {"loss": loss.item()}
