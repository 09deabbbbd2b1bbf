"""The fine-tuning configuration: one typed, validated record of every hyper-parameter of a run."""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

from emergelab.errors import UserError
from emergelab.spec.finetune import ADAPTER_KINDS, METHOD_NAMES

#: each method's peak learning rate, for short runs (tens to hundreds of steps, as in sample-efficiency sweeps)
DEFAULT_LR = {"full": 1e-4, "lora": 1e-3, "adalora": 1e-3, "ia3": 3e-3, "adapter": 1e-3}
#: early stopping: runs with fewer labels train on all of them; the validation split has at least MIN_VAL
MIN_EARLY_STOP, MIN_VAL = 40, 8
#: validations per run when stopping early
N_VALIDATIONS = 10



@dataclass(frozen=True)
class FinetuneConfig:
    """Hyper-parameters of one fine-tuning run (the seed and the label count are per run)."""

    method: str = "lora"
    """full | lora | adalora | ia3 | adapter (bottleneck adapters, see ``adapter_kind``)."""
    epochs: float = 3.0
    """Passes over the labelled training examples (ignored when ``steps`` is set)."""
    steps: int | None = None
    """Optimizer steps; overrides ``epochs``."""
    min_steps: int = 50
    """At least this many steps when counting by epochs, so that 16 labels still train."""
    lr: float | None = None
    """Peak learning rate; None takes the method's default (full 1e-4, lora/adalora 1e-3, ia3 3e-3, adapter 1e-3)."""
    batch_size: int = 16
    eval_batch_size: int = 64
    group_by_length: bool = True
    """Batch examples of similar length together (less padding), as transformers' ``group_by_length``."""
    max_length: int = 128
    """Tokens per example; longer examples are truncated (for tagging, truncated words are not scored)."""
    label_subtoken: str = "auto"
    """Tagging: the sub-token of each word that carries its tag: first, last, or auto (last for causal models)."""
    head_lr: float | None = None
    """Peak learning rate of the new task head (and any new module); None: ``lr``. A fresh head starts far
    from its optimum while the body is near one, so a larger head rate can help full fine-tuning."""
    val_fraction: float = 0.1
    """Early stopping (when counting by epochs): this fraction of the run's labelled examples (at least
    ``MIN_VAL`` of them, taken from the end of the seeded training order, so every class stays in training)
    is held out of training; the weights with the lowest validation loss are kept. 0 turns it off, and a
    run with fewer than ``MIN_EARLY_STOP`` labels trains without it."""
    patience: int = 3
    """Early stopping: stop after this many validations (10 per run) without a lower validation loss."""
    weight_decay: float = 0.0
    warmup_fraction: float = 0.06
    """Linear warm-up over this fraction of the steps, then linear decay to zero."""
    max_grad_norm: float = 1.0
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    adalora_init_r: int = 12
    """AdaLoRA's starting rank per module; the budget shrinks to ``adalora_target_r`` on average."""
    adalora_target_r: int = 4
    adapter_kind: str = "pfeiffer"
    """pfeiffer (one adapter after each feed-forward block) or houlsby (after attention and feed-forward)."""
    adapter_reduction: int = 16
    """Bottleneck width = d_model // adapter_reduction (at least 1)."""
    target_modules: tuple[str, ...] | None = None
    """Module names for LoRA/AdaLoRA/IA3; None takes peft's defaults for the model type."""
    from_scratch: bool = False
    """Same architecture with random weights: what pretraining is worth."""
    trust_remote_code: bool = False
    """Run the model directory's own Python code (``--trust-remote-code``; only for a model you trust)."""

    def __post_init__(self) -> None:
        if self.method not in METHOD_NAMES:
            raise UserError(f"unknown fine-tuning method {self.method!r}; choose from: {', '.join(METHOD_NAMES)}")
        if self.label_subtoken not in ("auto", "first", "last"):
            raise UserError(f"label_subtoken must be auto, first or last, not {self.label_subtoken!r}")
        if self.adapter_kind not in ADAPTER_KINDS:
            raise UserError(f"unknown adapter kind {self.adapter_kind!r}; choose from: {', '.join(ADAPTER_KINDS)}")
        positive = {"batch_size": self.batch_size, "eval_batch_size": self.eval_batch_size,
                    "max_length": self.max_length, "lora_r": self.lora_r, "adapter_reduction": self.adapter_reduction,
                    "adalora_init_r": self.adalora_init_r, "adalora_target_r": self.adalora_target_r}
        for name, value in positive.items():
            if value < 1:
                raise UserError(f"{name} must be at least 1, got {value}")
        if self.steps is not None and self.steps < 1:
            raise UserError(f"steps must be at least 1, got {self.steps}")
        if self.steps is None and self.epochs <= 0:
            raise UserError(f"epochs must be positive, got {self.epochs}")
        if self.lr is not None and not self.lr > 0:
            raise UserError(f"learning rate must be positive, got {self.lr}")
        if not 0 <= self.val_fraction < 0.5:
            raise UserError(f"val_fraction must be in [0, 0.5), got {self.val_fraction}")
        if self.patience < 1:
            raise UserError(f"patience must be at least 1, got {self.patience}")
        if self.head_lr is not None and not self.head_lr > 0:
            raise UserError(f"head learning rate must be positive, got {self.head_lr}")
        if not 0 <= self.warmup_fraction < 1:
            raise UserError(f"warmup_fraction must be in [0, 1), got {self.warmup_fraction}")
        if self.adalora_target_r > self.adalora_init_r:
            raise UserError(f"adalora_target_r ({self.adalora_target_r}) must not exceed adalora_init_r ({self.adalora_init_r})")

    @property
    def learning_rate(self) -> float:
        return self.lr if self.lr is not None else DEFAULT_LR[self.method]

    def n_validation(self, n_labels: int) -> int:
        """Labelled examples held out of training for early stopping (0: no early stopping)."""
        if self.steps is not None or self.val_fraction == 0 or n_labels < MIN_EARLY_STOP:
            return 0
        return max(MIN_VAL, round(self.val_fraction * n_labels))

    def n_steps(self, n_train: int) -> int:
        """Optimizer steps for ``n_train`` labelled examples."""
        if self.steps is not None:
            return self.steps
        per_epoch = -(-n_train // self.batch_size)
        return max(self.min_steps, round(self.epochs * per_epoch))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["target_modules"] = list(self.target_modules) if self.target_modules else None
        d["learning_rate"] = self.learning_rate
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "FinetuneConfig":
        d = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        if d.get("target_modules"):
            d["target_modules"] = tuple(d["target_modules"])
        return cls(**d)

    def digest(self) -> str:
        """A short hash of every setting, for recognising a run already recorded (``lr`` as resolved)."""
        d = self.to_dict()
        d.pop("lr")  # lr=None and an explicit lr equal to the method's default are the same run
        d.pop("trust_remote_code")  # how the model is allowed to load, not what the run computes
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]
