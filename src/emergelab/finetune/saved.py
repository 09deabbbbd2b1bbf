"""A fine-tuned run on disk: its weights (adapter + head, or the whole model) and ``load_finetuned``.

Layout of a run directory::

    finetune.json             the record: method, config, base model (path + sha256), labels, scores
    measurements.parquet      its measurement rows
    tokenizer/                the tokenizer (with the pad token it was trained with)
    adapter/                  lora | adalora | ia3: peft's save_pretrained (adapter + classification head)
    model/                    full: the whole model, save_pretrained (safetensors)
    bottleneck.safetensors    adapter: the bottleneck adapters and the classification head (+ new_modules)
    base/                     only for --from-scratch peft/adapter runs: the random base they started from
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch

from emergelab.corpus.labelled import LabelledData
from emergelab.errors import UserError
from emergelab.finetune.adapters import CONTAINER, add_bottleneck_adapters
from emergelab.finetune.config import FinetuneConfig
from emergelab.finetune.encode import IGNORE, encode
from emergelab.finetune.evaluate import predict_logits
from emergelab.finetune.methods import METHODS, head_modules
from emergelab.finetune.model_dir import auto_class, load_task_model, quiet_transformers, weights_digest
from emergelab.io import atomic_dir, atomic_write_bytes, read_json

RECORD = "finetune.json"
SCHEMA_VERSION = 1


def save_weights(model, tokenizer, run_dir: Path, *, method: str, new_modules: list[str] = ()) -> str:
    """Write what ``load_finetuned`` needs besides the base model; returns the weights' relative path."""
    with quiet_transformers():
        with atomic_dir(run_dir / "tokenizer") as tmp:
            tokenizer.save_pretrained(str(tmp))
        if METHODS[method].uses_peft:
            with atomic_dir(run_dir / "adapter") as tmp:
                model.save_pretrained(str(tmp))  # adapter + modules_to_save (the head), safetensors
            return "adapter"
        if method == "full":
            with atomic_dir(run_dir / "model") as tmp:
                model.save_pretrained(str(tmp), safe_serialization=True)
            return "model"
    from safetensors.torch import save

    keep = (CONTAINER + ".",) + tuple(n + "." for n in [*head_modules(model), *new_modules])
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items() if k.startswith(keep)}
    atomic_write_bytes(run_dir / "bottleneck.safetensors", save(state))
    return "bottleneck.safetensors"


def save_base(model, run_dir: Path) -> None:
    """Save the (random) base a from-scratch run starts from, before any method wraps it."""
    with quiet_transformers(), atomic_dir(run_dir / "base") as tmp:
        model.save_pretrained(str(tmp), safe_serialization=True)


@dataclass
class Finetuned:
    """A reloaded fine-tuned classifier: ``predict`` texts (classify) or token lists (tag)."""

    model: torch.nn.Module
    tokenizer: object
    record: dict

    @property
    def task(self) -> str:
        return self.record["task"]

    @property
    def label_names(self) -> list[str]:
        return list(self.record["label_names"])

    def _encoded(self, inputs: Sequence):
        if self.task == "classify":
            data = LabelledData("classify", list(inputs), None, [0] * len(inputs), self.label_names, 0, "<predict>")
        else:
            data = LabelledData("tag", None, [list(ws) for ws in inputs], [[0] * len(ws) for ws in inputs], self.label_names, 0, "<predict>")
        return encode(self.tokenizer, data, max_length=self.record["config"]["max_length"],
                      subtoken=self.record.get("label_subtoken") or "first")

    def logits(self, inputs: Sequence, *, batch_size: int = 64) -> list[torch.Tensor]:
        """Per text ``(n_labels,)``; per sentence ``(n_words, n_labels)`` (words cut by max_length are absent)."""
        enc = self._encoded(inputs)
        out = predict_logits(self.model, enc, pad_token_id=self.tokenizer.pad_token_id, batch_size=batch_size,
                             device=next(self.model.parameters()).device.type)
        if self.task == "classify":
            return out
        return [l[torch.tensor(y) != IGNORE] for l, y in zip(out, enc.labels)]

    def predict(self, inputs: Sequence, *, batch_size: int = 64) -> list:
        """Label names: one per text, or one per word of each sentence."""
        names = self.label_names
        out = self.logits(inputs, batch_size=batch_size)
        if self.task == "classify":
            return [names[int(l.argmax())] for l in out]
        return [[names[int(i)] for i in l.argmax(-1)] for l in out]


def read_record(run_dir: str | Path) -> dict:
    run_dir = Path(run_dir)
    if not (run_dir / RECORD).exists():
        raise UserError(f"{run_dir} is not a fine-tuning run (no {RECORD}); pass the --out directory of `emergelab finetune`")
    rec = read_json(run_dir / RECORD)
    if rec.get("schema_version") != SCHEMA_VERSION:
        raise UserError(f"{run_dir}/{RECORD} has schema version {rec.get('schema_version')}, this emergelab reads {SCHEMA_VERSION}; re-run the fine-tuning")
    return rec


def load_finetuned(run_dir: str | Path, *, base_model: str | Path | None = None, device: str = "cpu") -> Finetuned:
    """Reload a run saved by ``emergelab finetune`` (``base_model`` overrides a moved base directory)."""
    from transformers import AutoTokenizer

    run_dir = Path(run_dir)
    rec = read_record(run_dir)
    if not rec.get("weights"):
        raise UserError(f"{run_dir} holds scores but no weights (sweeps save none unless --save-weights); re-run with --save-weights")
    with quiet_transformers():
        tokenizer = AutoTokenizer.from_pretrained(str(run_dir / "tokenizer"), trust_remote_code=False)
    method, task, names = rec["method"], rec["task"], rec["label_names"]
    if method == "full":
        with quiet_transformers():
            model = auto_class(task).from_pretrained(str(run_dir / "model"), use_safetensors=True, trust_remote_code=False)
        return Finetuned(model.to(device).eval(), tokenizer, rec)
    base = _base_dir(run_dir, rec, base_model)
    model, _ = load_task_model(base, task=task, label_names=names, pad_token_id=tokenizer.pad_token_id)
    if METHODS[method].uses_peft:
        from peft import PeftModel

        with quiet_transformers(), warnings.catch_warnings():
            # AdaLoRA's saved rank pattern names lora_E tensors, not modules: peft warns, then resizes correctly
            warnings.simplefilter("ignore")
            model = PeftModel.from_pretrained(model, str(run_dir / "adapter"), is_trainable=False)
    else:
        from safetensors.torch import load_file

        config = FinetuneConfig.from_dict(rec["config"])
        add_bottleneck_adapters(model, kind=config.adapter_kind, reduction=config.adapter_reduction)
        state = load_file(str(run_dir / "bottleneck.safetensors"))
        missing = set(k for k in model.state_dict() if k.startswith(CONTAINER + ".")) - set(state)
        result = model.load_state_dict(state, strict=False)
        if missing or result.unexpected_keys:
            raise UserError(f"{run_dir}/bottleneck.safetensors does not match the adapters of this model; re-run the fine-tuning")
    return Finetuned(model.to(device).eval(), tokenizer, rec)


def _base_dir(run_dir: Path, rec: dict, override) -> Path:
    if rec.get("from_scratch"):
        return run_dir / "base"
    base = Path(override) if override else Path(rec["base"]["path"])
    if not base.is_dir():
        raise UserError(f"the base model {base} of {run_dir} is gone; pass its new location (load_finetuned(..., base_model=DIR))")
    if weights_digest(base) != rec["base"]["weights_sha256"]:
        raise UserError(f"the base model {base} has different weights from the ones {run_dir} was fine-tuned from (sha256 differs); pass the original base model")
    return base
