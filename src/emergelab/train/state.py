"""Training state for exact resume: optimizer and RNG state, saved beside the checkpoint it belongs to.

The optimizer tensors go to ``optimizer-<step>.pt`` (loaded with ``weights_only=True``), then
``state.json`` names that file and step, then older files are removed. A kill at any moment therefore
leaves a ``state.json`` whose file exists and belongs to its step; the data position is the step itself
(every step's rows and masks are a pure function of the step).
"""
from __future__ import annotations

import contextlib
import io
from pathlib import Path

import torch

from emergelab.io import atomic_write_bytes, atomic_write_json, read_json


def save_state(path: Path, *, step: int, optimizer: torch.optim.Optimizer, weights_sha256: str) -> None:
    buf = io.BytesIO()
    torch.save({"optimizer": optimizer.state_dict(), "rng": torch.get_rng_state()}, buf)
    name = f"optimizer-{step:06d}.pt"
    atomic_write_bytes(path / name, buf.getvalue())
    atomic_write_json(path / "state.json", {"step": step, "file": name, "weights_sha256": weights_sha256})
    for old in path.glob("optimizer*.pt"):
        if old.name != name:
            with contextlib.suppress(OSError):
                old.unlink()


def load_state(path: Path) -> dict | None:
    """The saved state, or None if there is none (or it is unreadable: training then restarts)."""
    try:
        meta = read_json(path / "state.json")
        blob = torch.load(path / meta["file"], weights_only=True, map_location="cpu")
    except (OSError, ValueError, KeyError, RuntimeError, EOFError):
        return None
    return {**meta, **blob}
