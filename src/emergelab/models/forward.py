"""Running a Hugging Face model's body for its activations: its device, the body without the vocabulary head,
eval mode for the duration, and batches of rows — shared by the probes and the interventions."""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch

__all__ = ["device_of", "body", "eval_mode", "batches", "run_body"]


def device_of(model: torch.nn.Module) -> torch.device:
    try:
        return next(model.parameters()).device
    except StopIteration:  # a model without parameters: nothing to place
        return torch.device("cpu")


def body(model: torch.nn.Module) -> torch.nn.Module:
    """The transformer body without its LM/MLM head: the head's vocabulary projection is wasted work here."""
    return getattr(model, "base_model", model)


@contextlib.contextmanager
def eval_mode(model: torch.nn.Module) -> Iterator[None]:
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def batches(n: int, batch_size: int) -> Iterator[slice]:
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    for start in range(0, n, batch_size):
        yield slice(start, min(start + batch_size, n))


def run_body(model: torch.nn.Module, input_ids: torch.Tensor, batch_size: int) -> None:
    """Forward ``input_ids`` through the body in eval mode, batch by batch, on the model's device (for hooks)."""
    device, b = device_of(model), body(model)
    with eval_mode(model):
        for sl in batches(len(input_ids), batch_size):
            b(input_ids=input_ids[sl].to(device), use_cache=False)
