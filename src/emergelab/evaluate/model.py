"""The model under evaluation: a causal or masked Hugging Face model with its tokenizer and heads.

Outside a study any local ``save_pretrained`` directory loads (safetensors only, never remote code
unless asked); inside a study a verified checkpoint does.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch

from emergelab.errors import UserError
from emergelab.evaluate import masked, scoring
from emergelab.models.checkpoint import quiet_transformers
from emergelab.models.local import check_model_dir, load_config_and_tokenizer, load_pretrained, model_name
from emergelab.models.precision import native_bf16

Kind = Literal["causal", "masked"]
_MASKED_TYPES = {"bert", "roberta", "xlm-roberta", "distilbert", "albert", "electra", "deberta", "deberta-v2",
                 "mpnet", "camembert", "modernbert", "megatron-bert", "ernie", "xlm", "flaubert"}


@dataclass
class LanguageModel:
    """A loaded model ready for scoring: the interface evaluation talks to (lm-evaluation-harness's ``LM``).

    ``CausalLM`` and ``MaskedLM`` implement what differs — which output types they serve, how text is
    encoded, how a request is wrapped and cut to the context — so no scorer asks which kind it holds.
    """

    model: torch.nn.Module
    tokenizer: Any
    max_length: int
    name: str = "model"
    manifest: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    #: masked models trained on ``[CLS] A [SEP] B [SEP]`` rows (NSP): world tasks are wrapped the same way
    wrap_world: bool = False
    kind: ClassVar[Kind]

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

    # ---- what differs between the families

    def default_output_type(self, has_choices: bool) -> str:
        raise NotImplementedError

    def check_output_type(self, output_type: str, task: str) -> None:
        """Raise a one-line UserError for an output type this family cannot serve."""
        raise NotImplementedError

    def encode(self, text: str) -> list[int]:
        raise NotImplementedError

    def empty_context(self) -> list[int]:
        """What an empty prompt becomes."""
        raise NotImplementedError

    @property
    def wraps(self) -> bool:
        """Whether requests are wrapped as ``[CLS] … [SEP]``."""
        return False

    def around(self, left: list[int], right: list[int]) -> tuple[list[int], list[int]]:
        if not self.wraps:
            return left, right
        return [self.tokenizer.cls_token_id] + left, right + [self.tokenizer.sep_token_id]

    def fit(self, item, *, longest: int, gen_room: int | None) -> bool:
        """Cut ``item``'s context (oldest tokens first) to fit the model; whether anything was cut."""
        raise NotImplementedError

    def score_choices(self, items, *, batch_size: int) -> list:
        """TokenScores of every choice of every multiple-choice item."""
        raise NotImplementedError


class CausalLM(LanguageModel):
    """A left-to-right model: log-likelihoods, greedy generation and multiple choice."""

    kind: ClassVar[Kind] = "causal"

    def default_output_type(self, has_choices: bool) -> str:
        return "multiple_choice" if has_choices else "generate"

    def check_output_type(self, output_type: str, task: str) -> None:
        if output_type == "cloze":
            raise UserError(f"task {task} is a cloze task, which needs a masked model (BERT-like), but {self.name} is causal; "
                            "use output_type loglikelihood, generate or multiple_choice")

    def encode(self, text: str) -> list[int]:
        # as lm-evaluation-harness encodes for causal models: no BOS/EOS around the text (an empty
        # context is the prefix token, see ``empty_context``)
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    def empty_context(self) -> list[int]:
        if self.prefix_id is None:
            raise UserError(f"{self.name}'s tokenizer has neither BOS nor EOS to stand for an empty prompt; give the task a doc_to_text")
        return [self.prefix_id]

    def fit(self, item, *, longest: int, gen_room: int | None) -> bool:
        item.context, c1 = fit_left(item.context, self.max_length + 1 - longest)
        c2 = False
        if gen_room is not None:  # generation: room for the answer, as lm-eval keeps max_length − max_gen_toks
            item.gen_context, c2 = fit_left(item.gen_context, gen_room)
        return c1 or c2

    def score_choices(self, items, *, batch_size: int) -> list:
        return scoring.score_choices(self.model, [(it.context, it.choices) for it in items], batch_size=batch_size,
                                     pad_id=self.pad_id)


class MaskedLM(LanguageModel):
    """A bidirectional model: cloze (targets masked) and multiple choice by pseudo-log-likelihood."""

    kind: ClassVar[Kind] = "masked"

    def default_output_type(self, has_choices: bool) -> str:
        return "multiple_choice" if has_choices else "cloze"

    def check_output_type(self, output_type: str, task: str) -> None:
        if output_type in ("loglikelihood", "generate"):
            raise UserError(f"task {task} has output_type {output_type}, which needs a causal model, but {self.name} is masked; "
                            "use output_type cloze or multiple_choice")

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    def empty_context(self) -> list[int]:
        return []

    @property
    def wraps(self) -> bool:
        return self.tokenizer.cls_token_id is not None and self.tokenizer.sep_token_id is not None

    def fit(self, item, *, longest: int, gen_room: int | None) -> bool:
        keep = 1 if self.wraps and item.left[:1] == [self.tokenizer.cls_token_id] else 0
        item.left, cut = fit_left(item.left, self.max_length - longest - len(item.right), keep)
        return cut

    def score_choices(self, items, *, batch_size: int) -> list:
        return masked.score_masked_choices(self.model, [(it.left, it.choices, it.right) for it in items],
                                           mask_id=self.mask_id, batch_size=batch_size, pad_id=self.pad_id)


def fit_left(ctx: list[int], room: int, keep_first: int = 0) -> tuple[list[int], bool]:
    """Drop the oldest context tokens so that at most ``room`` remain (keeping ``keep_first``, e.g. [CLS])."""
    if len(ctx) <= room:
        return ctx, False
    if room <= keep_first:
        raise UserError(f"an answer leaves no room for the prompt within the model's context ({room} tokens); shorten the task's answers")
    return ctx[:keep_first] + ctx[len(ctx) - (room - keep_first):], True


FAMILIES: dict[str, type[LanguageModel]] = {"causal": CausalLM, "masked": MaskedLM}


def language_model(model, tokenizer, *, causal: bool, **kwargs) -> LanguageModel:
    """A study checkpoint (or any loaded model) behind the evaluation interface."""
    return (CausalLM if causal else MaskedLM)(model, tokenizer, **kwargs)


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


def load_model_dir(path: str | Path, *, trust_remote_code: bool = False, dtype: str = "float32") -> LanguageModel:
    """Load any local Hugging Face model directory for evaluation (safetensors only)."""
    from transformers import AutoModelForCausalLM, AutoModelForMaskedLM, AutoModelForPreTraining

    path = check_model_dir(path)
    torch_dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "auto": None}.get(dtype, ...)
    if torch_dtype is ...:
        raise UserError(f"--dtype {dtype!r} is not supported; use float32, bfloat16 or auto")
    if torch_dtype is None:  # auto: bf16 where this CPU computes it natively (models are scored on the CPU)
        torch_dtype = torch.bfloat16 if native_bf16(torch.device("cpu"))[0] else torch.float32
    quiet_transformers()
    config, tokenizer = load_config_and_tokenizer(path, trust_remote_code=trust_remote_code)
    kind = kind_of(config)
    archs = list(getattr(config, "architectures", None) or [])
    cls = AutoModelForCausalLM if kind == "causal" else (
        AutoModelForPreTraining if any(a.endswith("ForPreTraining") for a in archs) else AutoModelForMaskedLM)
    model, info = load_pretrained(cls, path, trust_remote_code=trust_remote_code, dtype=torch_dtype, output_loading_info=True)
    model.eval()
    warnings = []
    missing = [k for k in info.get("missing_keys", []) if "position_ids" not in k]
    if missing:
        warnings.append(f"{len(missing)} weight(s) of {path.name} were not in its files and start random "
                        f"(e.g. {missing[0]}); scores that use them are meaningless")
    manifest = {}
    if (path / "checkpoint.json").exists():
        manifest = json.loads((path / "checkpoint.json").read_text(encoding="utf-8"))
    return FAMILIES[kind](model, tokenizer, max_length_of(config, tokenizer), name=model_name(path),
                          manifest=manifest, warnings=warnings)
