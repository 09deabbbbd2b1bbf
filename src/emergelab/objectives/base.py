"""The objective contract: turn a step's token blocks into a batch, and a batch into a loss."""
from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np
import torch


class Objective(ABC):
    """A pretraining objective. ``batch`` must be a pure function of (blocks, step) for exact resume."""

    names: tuple[str, ...] = ("loss",)

    @abstractmethod
    def batch(self, blocks: np.ndarray, step: int) -> dict[str, torch.Tensor]:
        """Tensors for one step from its [B, T] token blocks."""

    @abstractmethod
    def loss(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """(total loss to back-propagate, per-objective detached losses)."""
