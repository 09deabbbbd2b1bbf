"""The model under evaluation: a causal or masked Hugging Face model with its tokenizer and heads.

Outside a study any local ``save_pretrained`` directory loads (safetensors only, never remote code
unless asked); inside a study a verified checkpoint does. The vocabulary head is split from the body
so that scorers compute logits only at the positions they read.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal

import torch

from emergelab.errors import UserError

Kind = Literal["causal", "masked"]
_TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "tokenizer.model", "spiece.model", "sentencepiece.bpe.model")
_MASKED_TYPES = {"bert", "roberta", "xlm-roberta", "distilbert", "albert", "electra", "deberta", "deberta-v2",
                 "mpnet", "camembert", "modernbert", "megatron-bert", "ernie", "xlm", "flaubert"}
#: causal models whose logits are not ``lm_head(last_hidden_state)`` (soft-capping, scaling)
_POSTPROCESSED = ("final_logit_softcapping", "logit_scale", "output_multiplier_scale", "logits_scaling")


@dataclass
class LanguageModel:
    """A loaded model ready for scoring."""

    model: torch.nn.Module
    tokenizer: Any
    kind: Kind
    max_length: int
    name: str = "model"
    manifest: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    #: masked models trained on ``[CLS] A [SEP] B [SEP]`` rows (NSP): world tasks are wrapped the same way
    wrap_world: bool = False

    @property
    def mask_id(self) -> int:
        mid = getattr(self.tokenizer, "mask_token_id", None)
        if mid is None:
            raise UserError(f"the tokenizer of {self.name} has no mask token; a masked model needs one (e.g. [MASK])")
        return int(mid)

    @property
    def pad_id(self) -> int:
        for attr in ("pad_token_id", "eos_token_id", "unk_token_id"):
            v = getattr(self.tokenizer, attr, None)
            if v is not None:
                return int(v)
        return 0

    @property
    def prefix_id(self) -> int | None:
        """The token that stands for an empty context (lm-eval: BOS, else EOS)."""
        for attr in ("bos_token_id", "eos_token_id"):
            v = getattr(self.tokenizer, attr, None)
            if v is not None:
                return int(v)
        return None

    @property
    def vocab_size(self) -> int:
        return int(self.model.get_input_embeddings().weight.shape[0])

    def n_params(self) -> int:
        return sum(p.numel() for p in {id(p): p for p in self.model.parameters()}.values())


def kind_of(config) -> Kind:
    """Causal or masked, from the config's architectures and model type."""
    if getattr(config, "is_encoder_decoder", False):
        raise UserError(f"{config.model_type} is an encoder-decoder model; emergelab evaluates causal (GPT-like) and masked (BERT-like) models")
    archs = list(getattr(config, "architectures", None) or [])
    if any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in archs) or getattr(config, "is_decoder", False):
        return "causal"
    if any(a.endswith(("ForMaskedLM", "ForPreTraining")) for a in archs) or config.model_type in _MASKED_TYPES:
        return "masked"
    return "causal"


def max_length_of(config, tokenizer) -> int:
    vals = [getattr(config, a) for a in ("n_positions", "max_position_embeddings", "n_ctx") if isinstance(getattr(config, a, None), int)]
    tml = getattr(tokenizer, "model_max_length", None)
    if isinstance(tml, int) and tml < 1_000_000:
        vals.append(tml)
    return min(vals) if vals else 2048


def check_model_dir(path: Path) -> None:
    """Config, safetensors weights and a tokenizer must be there; anything else is one line of advice."""
    if not path.is_dir():
        raise UserError(f"model directory {path} does not exist; pass a directory written by save_pretrained")
    if not (path / "config.json").exists():
        raise UserError(f"{path} has no config.json; pass a directory written by save_pretrained")
    if not list(path.glob("*.safetensors")):
        if list(path.glob("pytorch_model*.bin")) or list(path.glob("*.pt")) or list(path.glob("*.pth")):
            raise UserError(f"{path} has only pickle weights (pytorch_model.bin), which emergelab never loads; convert them once, "
                            "in a trusted environment, with AutoModel.from_pretrained(dir).save_pretrained(dir, safe_serialization=True)")
        if list(path.glob("*.gguf")):
            raise UserError(f"{path} has only GGUF weights; load them once with from_pretrained(dir, gguf_file=...) and save_pretrained a safetensors copy")
        raise UserError(f"{path} has no *.safetensors weights; pass a directory written by save_pretrained")
    if not any((path / f).exists() for f in _TOKENIZER_FILES):
        raise UserError(f"{path} has no tokenizer (tokenizer.json or vocab files); save it there with tokenizer.save_pretrained(dir)")


def load_model_dir(path: str | Path, *, trust_remote_code: bool = False, dtype: str = "float32") -> LanguageModel:
    """Load any local Hugging Face model directory for evaluation (safetensors only)."""
    from transformers import (AutoConfig, AutoModelForCausalLM, AutoModelForMaskedLM, AutoModelForPreTraining,
                              AutoTokenizer)

    path = Path(path).expanduser().resolve()
    check_model_dir(path)
    torch_dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}.get(dtype)
    if torch_dtype is None:
        raise UserError(f"--dtype {dtype!r} is not supported; use float32 or bfloat16")
    from emergelab.train.checkpoint import quiet_transformers

    quiet_transformers()
    try:
        config = AutoConfig.from_pretrained(str(path), trust_remote_code=trust_remote_code)
        tokenizer = AutoTokenizer.from_pretrained(str(path), trust_remote_code=trust_remote_code)
    except Exception as exc:  # noqa: BLE001 — unreadable config/tokenizer: one line
        hint = "; pass --trust-remote-code only if you trust its code" if "trust_remote_code" in str(exc) else ""
        raise UserError(f"cannot load {path} ({type(exc).__name__}: {str(exc)[:150]}){hint}") from None
    kind = kind_of(config)
    archs = list(getattr(config, "architectures", None) or [])
    cls = AutoModelForCausalLM if kind == "causal" else (
        AutoModelForPreTraining if any(a.endswith("ForPreTraining") for a in archs) else AutoModelForMaskedLM)
    try:
        model, info = cls.from_pretrained(str(path), use_safetensors=True, trust_remote_code=trust_remote_code,
                                          dtype=torch_dtype, output_loading_info=True)
    except Exception as exc:  # noqa: BLE001
        raise UserError(f"cannot load the model in {path} as {cls.__name__} ({type(exc).__name__}: {str(exc)[:150]})") from None
    model.eval()
    warnings = []
    missing = [k for k in info.get("missing_keys", []) if "position_ids" not in k]
    if missing:
        warnings.append(f"{len(missing)} weight(s) of {path.name} were not in its files and start random "
                        f"(e.g. {missing[0]}); scores that use them are meaningless")
    manifest = {}
    if (path / "checkpoint.json").exists():
        manifest = json.loads((path / "checkpoint.json").read_text(encoding="utf-8"))
    generic = {"model", "models", "checkpoint", "final", "hf", "weights"}  # .../minilm/model -> minilm
    name = path.parent.name if path.name.lower() in generic and path.parent.name else path.name
    return LanguageModel(model, tokenizer, kind, max_length_of(config, tokenizer), name=name,
                         manifest=manifest, warnings=warnings)


def causal_parts(model) -> tuple[Callable, Callable] | None:
    """(body, head) with ``head(body(ids).last_hidden_state) == model(ids).logits``, or None when the
    model post-processes its logits (then scorers fall back to the full forward)."""
    cfg = model.config
    if any(getattr(cfg, a, None) not in (None, 1, 1.0) for a in _POSTPROCESSED):
        return None
    head = model.get_output_embeddings()
    body = getattr(model, "base_model", None)
    if not isinstance(head, torch.nn.Linear) or body is None or body is model:
        return None
    return body, head


def masked_parts(model) -> tuple[Callable, Callable] | None:
    """(body, vocabulary head) of a masked LM (BERT-style ``cls.predictions`` or RoBERTa-style
    ``lm_head``), or None (scorers then use the full forward's logits)."""
    body = getattr(model, "base_model", None)
    if body is None or body is model:
        return None
    cls = getattr(model, "cls", None)
    if cls is not None and hasattr(cls, "predictions"):
        return body, cls.predictions
    if hasattr(model, "lm_head") and model.config.model_type in ("roberta", "xlm-roberta", "camembert"):
        return body, model.lm_head
    return None


def full_logits(model, **inputs) -> torch.Tensor:
    """Vocabulary logits of a forward pass, whatever the output class calls them."""
    out = model(**inputs)
    logits = getattr(out, "logits", None)
    return out.prediction_logits if logits is None else logits
