"""Causal language modelling: next-token cross-entropy on packed blocks (no padding, no loss on it)."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from emergelab.objectives.base import Objective


class CausalLM(Objective):
    names = ("loss",)

    def batch(self, blocks: np.ndarray, step: int) -> dict[str, torch.Tensor]:
        return {"input_ids": torch.from_numpy(np.asarray(blocks, dtype=np.int64))}

    def loss(self, model, batch):
        ids = batch["input_ids"]
        logits = model(input_ids=ids).logits  # [B, T, V]
        loss = F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), ids[:, 1:].flatten())
        return loss, {"loss": loss.item()}
