"""Local model directories (``save_pretrained`` output): one check and one loader for evaluate, probe and finetune.

Safetensors weights only — pickle (``pytorch_model.bin``, ``*.pt``) is never loaded — and the model's own
code runs only when the user passes ``--trust-remote-code``. Anything missing is one line naming the fix.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from emergelab.errors import UserError
from emergelab.io import sha256_file

TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "tokenizer.model", "spiece.model", "sentencepiece.bpe.model")
_GENERIC_NAMES = {"model", "models", "checkpoint", "final", "hf", "weights"}


def check_model_dir(path: str | Path) -> Path:
    """The resolved directory, if it holds a config, safetensors weights and a tokenizer."""
    path = Path(path).expanduser().resolve()
    if not path.is_dir():
        raise UserError(f"model directory {path} does not exist; pass a directory made by save_pretrained (or an emergelab checkpoint)")
    if not (path / "config.json").is_file():
        raise UserError(f"{path} has no config.json, so it is not a Hugging Face model directory; save one with model.save_pretrained(dir)")
    if not list(path.glob("*.safetensors")):
        if list(path.glob("pytorch_model*.bin")) or list(path.glob("*.pt")) or list(path.glob("*.pth")):
            raise UserError(f"{path} has only pickle weights (pytorch_model.bin), which emergelab never loads; convert them once, "
                            "in a trusted environment, with AutoModel.from_pretrained(dir).save_pretrained(dir, safe_serialization=True)")
        if list(path.glob("*.gguf")):
            raise UserError(f"{path} has only GGUF weights; load them once with from_pretrained(dir, gguf_file=...) and "
                            "save_pretrained a safetensors copy")
        raise UserError(f"{path} has no *.safetensors weights; pass a directory written by save_pretrained")
    if not any((path / f).is_file() for f in TOKENIZER_FILES):
        raise UserError(f"{path} has no tokenizer (tokenizer.json or vocab files); save it there with tokenizer.save_pretrained(dir)")
    return path


def weights_sha256(path: Path) -> str:
    """sha256 of ``model.safetensors`` (as an emergelab checkpoint records it), or of the shards' hashes in name order."""
    files = sorted(Path(path).glob("*.safetensors"))
    if len(files) == 1:
        return sha256_file(files[0])
    h = hashlib.sha256()
    for f in files:
        h.update(f.name.encode() + sha256_file(f).encode())
    return h.hexdigest()


def model_name(path: Path) -> str:
    """The directory's name, or its parent's when the name is generic (``.../minilm/model`` → minilm)."""
    return path.parent.name if path.name.lower() in _GENERIC_NAMES and path.parent.name else path.name


def _remote_code_hint(exc: Exception) -> str:
    return "; pass --trust-remote-code only if you trust its code" if "trust_remote_code" in str(exc) else ""


def load_pretrained(cls: Any, path: Path, *, trust_remote_code: bool = False, what: str = "the model", **kwargs):
    """``cls.from_pretrained(path, use_safetensors=True, ...)`` with any failure as one line."""
    try:
        return cls.from_pretrained(str(path), use_safetensors=True, trust_remote_code=trust_remote_code, **kwargs)
    except Exception as exc:  # noqa: BLE001 — transformers raises many types here; the user needs one line
        raise UserError(f"cannot load {what} in {path} as {getattr(cls, '__name__', cls)} "
                        f"({type(exc).__name__}: {str(exc)[:150]}){_remote_code_hint(exc)}") from None


def load_config_and_tokenizer(path: Path, *, trust_remote_code: bool = False, **tokenizer_kwargs):
    """(config, tokenizer) of a checked directory."""
    from transformers import AutoConfig, AutoTokenizer  # transformers: on first use only

    try:
        config = AutoConfig.from_pretrained(str(path), trust_remote_code=trust_remote_code)
        tokenizer = AutoTokenizer.from_pretrained(str(path), trust_remote_code=trust_remote_code, **tokenizer_kwargs)
    except Exception as exc:  # noqa: BLE001 — an unreadable config or tokenizer: one line
        raise UserError(f"cannot load {path} ({type(exc).__name__}: {str(exc)[:150]}){_remote_code_hint(exc)}") from None
    return config, tokenizer
