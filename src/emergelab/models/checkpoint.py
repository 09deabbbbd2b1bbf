"""Checkpoints: ``save_pretrained`` directories with a manifest, verified by sha256 when loaded."""
from __future__ import annotations

import platform
import re
import shutil
from pathlib import Path

from emergelab.errors import UserError
from emergelab.io import atomic_dir, atomic_write_json, read_json, sha256_file

SCHEMA_VERSION = 1
WEIGHTS = "model.safetensors"
_STEP_DIR = re.compile(r"^step-(\d+)$")


def step_dir(ckpt_root: Path, step: int) -> Path:
    return ckpt_root / f"step-{step:06d}"


def versions() -> dict[str, str]:
    import torch  # imported here: checking checkpoints must stay cheap (no torch import)
    import transformers

    import emergelab

    return {"emergelab": emergelab.__version__, "torch": torch.__version__,
            "transformers": transformers.__version__, "python": platform.python_version()}


def quiet_transformers() -> None:
    """No per-file progress bars from transformers while saving or loading many small checkpoints."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


def save_checkpoint(path: Path, model, tokenizer, manifest: dict) -> dict:
    """Write model + tokenizer + ``checkpoint.json`` atomically; returns the full manifest."""
    quiet_transformers()
    with atomic_dir(path) as tmp:
        model.save_pretrained(str(tmp), safe_serialization=True)
        tokenizer.save_pretrained(str(tmp))
        full = {**manifest, "weights_sha256": sha256_file(tmp / WEIGHTS),
                "schema_version": SCHEMA_VERSION, "versions": versions()}
        atomic_write_json(tmp / "checkpoint.json", full)
    return full


def list_checkpoints(ckpt_root: Path) -> dict[int, Path]:
    """Complete checkpoint directories by step (a directory without its manifest is not complete)."""
    out = {}
    if ckpt_root.is_dir():
        for d in ckpt_root.iterdir():
            m = _STEP_DIR.match(d.name)
            if m and (d / "checkpoint.json").exists():
                out[int(m.group(1))] = d
    return dict(sorted(out.items()))


def read_manifest(path: Path) -> dict:
    try:
        return read_json(path / "checkpoint.json")
    except (OSError, ValueError):
        raise UserError(f"checkpoint {path} has no readable checkpoint.json; delete the directory and re-run `emergelab study` to redo it") from None


def verify_checkpoint(path: Path) -> dict:
    """Return the manifest if the weights match its sha256, else raise a one-line UserError."""
    manifest = read_manifest(path)
    weights = path / WEIGHTS
    if not weights.exists():
        raise UserError(f"checkpoint {path} lacks {WEIGHTS}; re-run `emergelab study` to redo it")
    if sha256_file(weights) != manifest.get("weights_sha256"):
        raise UserError(f"checkpoint {path} is corrupted (weights sha256 differs from checkpoint.json); re-run `emergelab study` to redo it")
    return manifest


def is_valid(path: Path) -> bool:
    try:
        verify_checkpoint(path)
        return True
    except UserError:
        return False


def remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def load_model(path: Path, *, verify: bool = True, eager: bool = False):
    """Load a verified checkpoint with plain ``transformers`` (safetensors only)."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForPreTraining
    quiet_transformers()
    if verify:
        verify_checkpoint(path)
    cfg = AutoConfig.from_pretrained(str(path))
    kw = {"attn_implementation": "eager"} if eager else {}
    cls = AutoModelForCausalLM if cfg.model_type in ("gpt2", "llama") else AutoModelForPreTraining
    model = cls.from_pretrained(str(path), use_safetensors=True, **kw)
    model.eval()
    return model


def load_weights(model, path: Path) -> None:
    """Copy a checkpoint's weights into ``model`` built from the same rung (bit-exact; for resuming).

    Only tied copies (which ``save_pretrained`` stores once) may be absent from the file.
    """
    import torch
    from safetensors.torch import load_file

    with torch.no_grad():
        _load_weights(model, path, load_file(str(path / WEIGHTS)))


def _load_weights(model, path: Path, state: dict) -> None:
    missing, unexpected = model.load_state_dict(state, strict=False)
    params = model.state_dict(keep_vars=True)
    tied = {k for k in missing if any(params[k] is params[k2] for k2 in state if k2 in params)}
    if unexpected or set(missing) - tied:
        raise UserError(f"checkpoint {path} does not fit its rung (missing {sorted(set(missing) - tied)[:3]}, "
                        f"unexpected {unexpected[:3]}); delete {path.parent} and re-run to retrain the rung")
    model.tie_weights()
