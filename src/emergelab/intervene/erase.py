"""Erasing a latent's linear subspace from the residual stream: LEACE and its random-subspace control.

LEACE (Belrose et al. 2023, through the ``concept-erasure`` package) is the least-squares edit of the
activations after which no linear classifier predicts the latent better than a constant: the
cross-covariance of the erased activations with the one-hot latent is zero. The control removes a
random subspace of the same rank (an orthogonal projection around the mean), so a drop that the
control shares is the cost of editing the stream, not of losing the latent.

``record_site`` collects activations at a residual site (``sites.residual_site``) through a forward hook;
``erase_at`` applies an eraser to that site's output for every token while a block runs.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import torch

from emergelab.intervene.sites import residual_site
from emergelab.models.forward import run_body

__all__ = ["Eraser", "fit_leace", "random_eraser", "record_site", "erase_at", "one_hot"]


@dataclass(frozen=True)
class Eraser:
    """An affine erasure ``x ↦ x − (x − bias) R Lᵀ`` of a rank-``rank`` subspace (``left``, ``right``: [d, r])."""

    left: torch.Tensor
    right: torch.Tensor
    bias: torch.Tensor
    rank: int

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        delta = x.float() - self.bias.to(x.device)
        return (x.float() - (delta @ self.right.to(x.device)) @ self.left.to(x.device).T).to(x.dtype)


def one_hot(labels: np.ndarray) -> np.ndarray:
    """Labels [N] → one-hot [N, n_classes] float32 (classes in sorted order)."""
    _, idx = np.unique(np.asarray(labels), return_inverse=True)
    return np.eye(int(idx.max()) + 1, dtype=np.float32)[idx]


def fit_leace(x: np.ndarray, labels: np.ndarray) -> Eraser:
    """The LEACE eraser of ``labels [N]`` from activations ``x [N, d]``."""
    from concept_erasure import LeaceEraser

    X = torch.as_tensor(np.asarray(x, dtype=np.float32))
    Z = torch.as_tensor(one_hot(labels))
    e = LeaceEraser.fit(X, Z)
    right = e.proj_right.T.contiguous()  # the package's proj_right is [r, d]
    rank = int(torch.linalg.matrix_rank(e.proj_left @ e.proj_right, rtol=1e-4))
    return Eraser(e.proj_left, right, e.bias if e.bias is not None else X.mean(0), rank)


def random_eraser(x: np.ndarray, rank: int, rng: np.random.Generator) -> Eraser:
    """Removes a uniformly random ``rank``-dimensional subspace around the mean of ``x [N, d]``."""
    X = np.asarray(x, dtype=np.float32)
    d = X.shape[1]
    q, _ = np.linalg.qr(rng.standard_normal((d, max(int(rank), 1))))
    Q = torch.as_tensor(q[:, :rank].astype(np.float32))
    return Eraser(Q, Q, torch.as_tensor(X.mean(0)), int(rank))


def _patch(output, fn: Callable[[torch.Tensor], torch.Tensor]):
    """A block's output is a tensor or a tuple whose first element is the residual stream."""
    if isinstance(output, tuple):
        return (fn(output[0]), *output[1:])
    return fn(output)


def _first(output) -> torch.Tensor:
    return output[0] if isinstance(output, tuple) else output


@torch.inference_mode()
def record_site(model: torch.nn.Module, index: int, input_ids, *, batch_size: int = 32) -> np.ndarray:
    """The residual stream at site ``index`` for every token, float32 ``[B, T, d]``."""
    ids = torch.as_tensor(np.array(input_ids, dtype=np.int64))
    got: list[torch.Tensor] = []
    handle = residual_site(model, index).register_forward_hook(lambda m, a, out: got.append(_first(out).float().cpu()))
    try:
        run_body(model, ids, batch_size)
    finally:
        handle.remove()
    return torch.cat(got).numpy()


@contextlib.contextmanager
def erase_at(model: torch.nn.Module, index: int, eraser: Eraser) -> Iterator[None]:
    """Within the block, the residual stream at site ``index`` passes through ``eraser`` at every token."""
    handle = residual_site(model, index).register_forward_hook(lambda m, a, out: _patch(out, eraser))
    try:
        yield
    finally:
        handle.remove()
