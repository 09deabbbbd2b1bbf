"""The base model directory: checked, described, and loaded with a task head (safetensors only)."""
from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from emergelab.errors import UserError
from emergelab.models.local import check_model_dir as check_local_dir
from emergelab.models.local import model_name
from emergelab.models.local import weights_sha256 as weights_digest

#: model types whose sequence head reads the last token: they need a pad token to find it
CAUSAL_TYPES = ("gpt2", "llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "gpt_neox", "phi", "phi3", "opt", "gptj", "olmo", "smollm3")


@dataclass(frozen=True)
class BaseModel:
    """What a fine-tuning run records about the model it started from."""

    path: str
    model_type: str
    weights_sha256: str
    rung: str
    step: int
    tokens: int
    flops: float
    n_params: int  # 0 until counted on the loaded model


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence load reports and per-file progress bars (a new head is expected to be 'missing')."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


def check_model_dir(path: str | Path) -> BaseModel:
    """Validate a model directory (config, safetensors weights, tokenizer) and describe it."""
    path = check_local_dir(path)
    try:
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise UserError(f"{path}/config.json is not readable JSON; re-save the model with save_pretrained") from None
    manifest = {}
    if (path / "checkpoint.json").exists():
        with contextlib.suppress(OSError, ValueError):
            manifest = json.loads((path / "checkpoint.json").read_text(encoding="utf-8"))
    digest = weights_digest(path)
    if manifest.get("weights_sha256") and manifest["weights_sha256"] != digest:
        raise UserError(f"checkpoint {path} is corrupted (weights sha256 differs from checkpoint.json); re-run `emergelab study` to redo it")
    return BaseModel(
        path=str(path), model_type=str(config.get("model_type", "")), weights_sha256=digest,
        rung=str(manifest.get("rung") or model_name(path)), step=int(manifest.get("step", 0)),
        tokens=int(manifest.get("tokens_seen", 0)), flops=float(manifest.get("flops", 0.0)),
        n_params=int(manifest.get("n_params", 0)),
    )


def load_tokenizer(path: str | Path, *, task: str, trust_remote_code: bool = False):
    """A fast tokenizer with a pad token (causal models reuse EOS as padding)."""
    from transformers import AutoTokenizer

    with quiet_transformers():
        try:
            tok = AutoTokenizer.from_pretrained(str(path), trust_remote_code=trust_remote_code)
        except Exception as exc:  # noqa: BLE001 - any failure here is a bad tokenizer directory
            raise UserError(f"cannot load the tokenizer in {path} ({type(exc).__name__}: {str(exc)[:120]}); re-save it with tokenizer.save_pretrained(dir)") from None
        if task == "tag" and getattr(tok, "add_prefix_space", None) is False:
            # byte-level BPE: pre-split words need their leading space to be tokenized as in running text
            tok = AutoTokenizer.from_pretrained(str(path), trust_remote_code=trust_remote_code, add_prefix_space=True)
    if not getattr(tok, "is_fast", False):
        raise UserError(f"the tokenizer in {path} is not a fast (tokenizers) tokenizer; word alignment needs tokenizer.json")
    if tok.pad_token is None:
        if tok.eos_token is None:
            raise UserError(f"the tokenizer in {path} has neither a pad nor an EOS token; add a pad token and re-save it")
        tok.pad_token = tok.eos_token
    tok.padding_side = "right"
    return tok


def is_causal(config) -> bool:
    """Whether the model reads left to right (its sequence head uses the last token)."""
    return config.model_type in CAUSAL_TYPES or bool(getattr(config, "is_decoder", False))


def auto_class(task: str):
    from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification

    return AutoModelForSequenceClassification if task == "classify" else AutoModelForTokenClassification


HEAD_NAMES = ("classifier", "score", "pre_classifier")


def load_task_model(path: str | Path, *, task: str, label_names: list[str], pad_token_id: int,
                    from_scratch: bool = False, seed: int = 0, trust_remote_code: bool = False):
    """The base model with a fresh classification head (``from_scratch``: every weight random).

    Returns ``(model, new_modules)``: ``new_modules`` are the modules outside the head that the
    checkpoint lacked and that therefore start random (e.g. ``bert.pooler.dense`` of an MLM-only
    BERT); fine-tuning methods train and save them with the head.
    """
    import torch
    from transformers import AutoConfig

    kw = dict(num_labels=len(label_names), id2label=dict(enumerate(label_names)),
              label2id={n: i for i, n in enumerate(label_names)}, pad_token_id=pad_token_id)
    cls = auto_class(task)
    torch.manual_seed(seed)  # the head's (and, from scratch, every) initial weight
    with quiet_transformers():
        try:
            new: list[str] = []
            if from_scratch:
                config = AutoConfig.from_pretrained(str(path), trust_remote_code=trust_remote_code, **kw)
                model = cls.from_config(config)
            else:
                model, info = cls.from_pretrained(str(path), use_safetensors=True, trust_remote_code=trust_remote_code,
                                                  output_loading_info=True, **kw)
                params = dict(model.named_parameters())  # missing buffers (position ids) are rebuilt, not learned
                new = sorted({k.rsplit(".", 1)[0] for k in info["missing_keys"]
                              if k in params and k.split(".", 1)[0] not in HEAD_NAMES})
        except ValueError as exc:
            if "Unrecognized configuration class" in str(exc):
                kind = "sequence" if task == "classify" else "token"
                raise UserError(f"transformers has no {kind}-classification head for the model type in {path}; fine-tune a BERT-, GPT-2- or Llama-style model") from None
            raise
    model.config.pad_token_id = pad_token_id
    return model, new


def count_parameters(model) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total
