"""Training state for exact resume: optimizer, RNG and data position, saved with the last checkpoint."""
from __future__ import annotations

import io
from pathlib import Path

import torch

from emergelab.io import atomic_write_bytes, atomic_write_json, read_json


def save_state(path: Path, *, step: int, optimizer: torch.optim.Optimizer, weights_sha256: str) -> None:
    """Optimizer tensors go to ``optimizer.pt`` (loaded with ``weights_only=True``), the rest to JSON.

    ``state.json`` is written last: it names the checkpoint whose weights the state belongs to, so
    a state whose JSON exists is complete.
    """
    buf = io.BytesIO()
    torch.save({"optimizer": optimizer.state_dict(), "rng": torch.get_rng_state()}, buf)
    atomic_write_bytes(path / "optimizer.pt", buf.getvalue())
    atomic_write_json(path / "state.json", {"step": step, "weights_sha256": weights_sha256})


def load_state(path: Path) -> dict | None:
    """The saved state, or None if there is none (or it is unreadable: training then restarts)."""
    try:
        meta = read_json(path / "state.json")
        blob = torch.load(path / "optimizer.pt", weights_only=True, map_location="cpu")
    except (OSError, ValueError, RuntimeError, EOFError):
        return None
    return {**meta, **blob}
