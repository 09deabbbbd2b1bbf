"""The method registry: full fine-tuning, LoRA, AdaLoRA, IA3 (peft) and bottleneck adapters.

Every method takes a model with a fresh task head and returns the model to train, with exactly its
own parameters trainable: the head always, plus everything (full), the low-rank matrices (LoRA,
AdaLoRA), the scaling vectors (IA3) or the adapters.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from torch import nn

from emergelab.errors import UserError
from emergelab.finetune.adapters import CONTAINER, add_bottleneck_adapters
from emergelab.finetune.config import DEFAULT_LR, FinetuneConfig
from emergelab.finetune.model_dir import HEAD_NAMES  # top-level names of transformers' classification heads


@dataclass(frozen=True)
class Method:
    name: str
    default_lr: float
    uses_peft: bool
    mergeable: bool
    wrap: Callable[[nn.Module, FinetuneConfig, str, int, list[str]], nn.Module]
    """(model, config, task, total_steps, new_modules) -> model to train; new_modules train with the head."""


def head_modules(model: nn.Module) -> dict[str, nn.Module]:
    """The classification head's top-level modules (``classifier`` / ``score``)."""
    return {n: m for n, m in model.named_children() if n in HEAD_NAMES}


def _peft_task_type(task: str):
    from peft import TaskType

    return TaskType.SEQ_CLS if task == "classify" else TaskType.TOKEN_CLS


def _module_suffixes(model: nn.Module) -> list[str]:
    """Last name component of every Linear-like layer (what ``target_modules`` may name)."""
    out = set()
    for name, m in model.named_modules():
        if isinstance(m, nn.Linear) or type(m).__name__ == "Conv1D":
            if not any(name == h or name.startswith(h + ".") for h in HEAD_NAMES):
                out.add(name.rsplit(".", 1)[-1])
    return sorted(out)


def resolve_targets(model: nn.Module, config: FinetuneConfig, method: str) -> list[str]:
    """``config.target_modules``, or peft's defaults for the model type; checked to exist."""
    from peft.utils import (
        TRANSFORMERS_MODELS_TO_ADALORA_TARGET_MODULES_MAPPING,
        TRANSFORMERS_MODELS_TO_IA3_TARGET_MODULES_MAPPING,
        TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING,
    )

    mapping = {"lora": TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING,
               "adalora": TRANSFORMERS_MODELS_TO_ADALORA_TARGET_MODULES_MAPPING,
               "ia3": TRANSFORMERS_MODELS_TO_IA3_TARGET_MODULES_MAPPING}[method]
    model_type = model.config.model_type
    linear = _module_suffixes(model)
    if config.target_modules:
        targets = list(config.target_modules)
    elif model_type in mapping:
        targets = list(mapping[model_type])
    else:
        raise UserError(
            f"peft has no default {method} target modules for model type {model_type!r}; pass --target-modules "
            f"naming some of its linear layers ({', '.join(linear[:12])})"
        )
    names = [n for n, _ in model.named_modules()]
    missing = [t for t in targets if not any(n == t or n.endswith("." + t) for n in names)]
    if missing:
        raise UserError(
            f"{method}: target module(s) {', '.join(missing)} do not exist in this {model_type} model; "
            f"its linear layers are: {', '.join(linear[:12])}; pass --target-modules"
        )
    return targets


def _full(model, config, task, total_steps, new_modules):
    for p in model.parameters():
        p.requires_grad_(True)
    return model


def _lora(model, config, task, total_steps, new_modules):
    from peft import LoraConfig

    pc = LoraConfig(task_type=_peft_task_type(task), r=config.lora_r, lora_alpha=config.lora_alpha,
                    lora_dropout=config.lora_dropout, target_modules=resolve_targets(model, config, "lora"),
                    modules_to_save=list(new_modules) or None)
    return _get_peft_model(model, pc)


def adalora_schedule(total_steps: int) -> tuple[int, int]:
    """(tinit, tfinal): 10 % warm-up at full rank, 20 % at the final ranks, budget shrinking between."""
    tinit, tfinal = total_steps // 10, total_steps // 5
    if tinit >= total_steps - tfinal:
        tinit, tfinal = 0, 0
    return tinit, tfinal


def _adalora(model, config, task, total_steps, new_modules):
    from peft import AdaLoraConfig

    if total_steps < 2:
        raise UserError("AdaLoRA allocates its rank budget over training and needs at least 2 steps; raise --steps or --epochs")
    tinit, tfinal = adalora_schedule(total_steps)
    pc = AdaLoraConfig(task_type=_peft_task_type(task), init_r=config.adalora_init_r, target_r=config.adalora_target_r,
                       tinit=tinit, tfinal=tfinal, deltaT=1, total_step=total_steps, lora_alpha=config.lora_alpha,
                       lora_dropout=config.lora_dropout, target_modules=resolve_targets(model, config, "adalora"),
                       modules_to_save=list(new_modules) or None)
    return _get_peft_model(model, pc)


def _ia3(model, config, task, total_steps, new_modules):
    from peft import IA3Config
    from peft.utils import TRANSFORMERS_MODELS_TO_IA3_FEEDFORWARD_MODULES_MAPPING as FF

    targets = resolve_targets(model, config, "ia3")
    # (IA)^3 scales the *input* of feed-forward output layers and the output of the others
    ff = [t for t in FF.get(model.config.model_type, []) if t in targets]
    pc = IA3Config(task_type=_peft_task_type(task), target_modules=targets, feedforward_modules=ff,
                   modules_to_save=list(new_modules) or None)
    return _get_peft_model(model, pc)


def _get_peft_model(model, peft_config):
    import warnings

    from peft import get_peft_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # fan_in_fan_out notices for GPT-2's Conv1D
        try:
            return get_peft_model(model, peft_config)
        except ValueError as exc:
            raise UserError(f"peft cannot apply {peft_config.peft_type.value} to this {model.config.model_type} model: {' '.join(str(exc).split())[:200]}") from None


def _adapter(model, config, task, total_steps, new_modules):
    for p in model.parameters():
        p.requires_grad_(False)
    add_bottleneck_adapters(model, kind=config.adapter_kind, reduction=config.adapter_reduction)
    modules = dict(model.named_modules())
    for m in [getattr(model, CONTAINER), *head_modules(model).values(), *(modules[n] for n in new_modules)]:
        for p in m.parameters():
            p.requires_grad_(True)
    return model


METHODS: dict[str, Method] = {
    "full": Method("full", DEFAULT_LR["full"], False, False, _full),
    "lora": Method("lora", DEFAULT_LR["lora"], True, True, _lora),
    "adalora": Method("adalora", DEFAULT_LR["adalora"], True, True, _adalora),
    "ia3": Method("ia3", DEFAULT_LR["ia3"], True, True, _ia3),
    "adapter": Method("adapter", DEFAULT_LR["adapter"], False, False, _adapter),
}


def wrap_model(model: nn.Module, config: FinetuneConfig, *, task: str, total_steps: int,
               new_modules: list[str] = ()) -> nn.Module:
    """Apply ``config.method`` to ``model`` (a model with a task head) and return the model to train.

    ``new_modules``: randomly initialised modules outside the head (see ``load_task_model``), trained with it.
    """
    return METHODS[config.method].wrap(model, config, task, total_steps, list(new_modules))


def adalora_ranks(model) -> dict[str, int]:
    """Current AdaLoRA rank of each adapted module (from its rank pattern, else the initial rank)."""
    cfg = model.peft_config["default"]
    if cfg.rank_pattern:
        return {k.replace(".lora_E", "").replace(".default", "").removeprefix("base_model.model."): int(sum(v))
                for k, v in cfg.rank_pattern.items()}
    return {n.replace(".lora_E.default", "").removeprefix("base_model.model."): int(p.shape[0])
            for n, p in model.named_parameters() if "lora_E.default" in n}
