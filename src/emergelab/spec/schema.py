"""The study spec's schema: every section typed, ranged and defaulted; derived facts as methods.

The schema checks what it can without the libraries (types, ranges, cross-field rules). What needs a
library — the world's name and parameters, the fine-tuning task — is checked by the stages'
``resolve`` hooks, which ``emergelab.study.validate`` runs right after this schema, so one function
reads and validates a spec at the edge and code past it trusts its inputs.
"""
from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationError, ValidationInfo, field_validator, model_validator

from emergelab.spec.checkpoints import MAX_CHECKPOINTS, checkpoint_steps, n_checkpoints  # noqa: F401 (re-exported)
from emergelab.spec.explain import ExplainOptions
from emergelab.spec.finetune import FinetuneOptions
from emergelab.spec.mechanism import MechanismOptions
from emergelab.spec.messages import first_error
from emergelab.spec.suite import ExternalModel, is_external_entry

#: numpy's and torch's seeds are unsigned 32/64-bit: a seed is in [0, 2^32 − 1]
MAX_SEED = 2**32 - 1
#: a billion optimizer steps: beyond any study this tool is for; the preflight checks what a spec costs
MAX_STEPS = 10**9
#: checkpoints per rung (log-spaced ones and every ``checkpoint_every`` steps)

Objective = Literal["clm", "mlm", "nsp"]
InitScheme = Literal["normal", "xavier_uniform", "xavier_normal", "kaiming_uniform", "kaiming_normal"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class Rung(_Strict):
    """One model size of the ladder."""

    name: str = Field(pattern=r"^[A-Za-z0-9._-]+$")
    n_layer: int = Field(ge=1, le=1024)
    d_model: int = Field(ge=4, le=65536)
    n_head: int = Field(ge=1, le=4096)
    d_ff: int | None = Field(default=None, ge=1, le=262144, description="feed-forward width; default 4·d_model")

    @model_validator(mode="after")
    def _heads_divide(self) -> "Rung":
        if self.d_model % self.n_head:
            raise ValueError(f"d_model {self.d_model} is not divisible by n_head {self.n_head}")
        if self.d_ff is None:
            self.d_ff = 4 * self.d_model
        return self


class TrainSpec(_Strict):
    steps: int = Field(600, ge=1, le=MAX_STEPS)
    batch_size: int = Field(64, ge=1, le=65536)
    seq_len: int = Field(64, ge=8, le=1 << 20)
    lr: float = Field(1e-3, gt=0, le=10)
    warmup: int = Field(0, ge=0, le=MAX_STEPS)
    schedule: Literal["constant", "cosine", "linear"] = "constant"
    weight_decay: float = Field(0.0, ge=0, le=10)
    grad_clip: float = Field(1.0, ge=0, le=1e6)
    grad_accum: int = Field(1, ge=1, le=65536)
    loss_vocab: Literal["all", "seen"] = Field(
        "all", description="causal LM: the next-token softmax over the whole vocabulary, or only over the tokens that "
                           "occur in the training rows (never-seen ones, e.g. unused special tokens, get no gradient; "
                           "docs/phenomena.md: 7 of them hold induction heads back for 1,000+ steps)")
    loss_after: str | None = Field(
        None, min_length=1, description="causal LM: the loss only on the token that follows each occurrence of this "
                                        "symbol (e.g. '=': the answer of `a + b = c`, as Nanda et al. 2023 train); "
                                        "default: every next token (docs/phenomena.md: predicting b from a is a "
                                        "second table to memorise, and it holds grokking back)")
    checkpoint_every: int = Field(100, ge=1, le=MAX_STEPS, description="regular checkpoints after the log-spaced ones")
    log_spaced: bool = True
    log_every: int = Field(10, ge=1, le=MAX_STEPS)
    bf16: bool | Literal["auto"] = Field("auto", description="bf16 autocast: auto = on where the device computes bf16 "
                                                            "natively (CUDA with bf16, a CPU with AVX512-BF16/AMX), else fp32")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="training device: auto = CUDA when visible, else CPU")
    threads: int = Field(1, ge=1, le=1024, description="torch threads per training process")
    workers: int = Field(2, ge=1, le=1024, description="rungs trained in parallel processes")
    compile: bool = Field(False, description="torch.compile the model (slow first step per shape; cached on disk)")
    trackers: list[Literal["tensorboard", "wandb", "mlflow", "comet_ml", "aim", "clearml", "dvclive"]] = Field(
        default_factory=lambda: ["tensorboard"], description="experiment trackers; train.jsonl is always written")


class MLMSpec(_Strict):
    """Masked language modelling: which tokens are selected and what they become (BERT: 15 %, 80/10/10)."""

    probability: float = Field(0.15, gt=0, lt=1, description="fraction of non-special tokens selected")
    mask: float = Field(0.8, ge=0, le=1, description="selected tokens replaced by [MASK]")
    random: float = Field(0.1, ge=0, le=1, description="selected tokens replaced by a random token")
    keep: float = Field(0.1, ge=0, le=1, description="selected tokens left unchanged")
    whole_word: bool = Field(False, description="select whole words (all their sub-word pieces) at once")

    @model_validator(mode="after")
    def _sums_to_one(self) -> "MLMSpec":
        if abs(self.mask + self.random + self.keep - 1.0) > 1e-6:
            raise ValueError(f"mask + random + keep must be 1, got {self.mask} + {self.random} + {self.keep}")
        return self


class LadderGrid(_Strict):
    """A generated ladder: widths log-spaced from ``min_d_model`` to ``max_d_model`` at a fixed aspect ratio."""

    min_d_model: int = Field(ge=4, le=65536)
    max_d_model: int = Field(ge=4, le=65536)
    n_rungs: int = Field(ge=1, le=256)
    aspect_ratio: float = Field(gt=0, le=65536, description="d_model / n_layer, held fixed (Kaplan et al. 2020 use ~64)")
    d_head: int = Field(16, ge=1, le=4096, description="head width; every d_model is a multiple of it")

    @model_validator(mode="after")
    def _order(self) -> "LadderGrid":
        if self.min_d_model > self.max_d_model:
            raise ValueError(f"min_d_model {self.min_d_model} > max_d_model {self.max_d_model}")
        if self.min_d_model < self.d_head:
            raise ValueError(f"min_d_model {self.min_d_model} < d_head {self.d_head}")
        return self

    def rungs(self) -> list[dict]:
        """Rung dicts ``L{n_layer}-d{d_model}``, smallest first; duplicates from rounding dropped."""
        out: dict[str, dict] = {}
        for i in range(self.n_rungs):
            frac = i / (self.n_rungs - 1) if self.n_rungs > 1 else 0.0
            d = math.exp(math.log(self.min_d_model) + frac * (math.log(self.max_d_model) - math.log(self.min_d_model)))
            d_model = max(self.d_head, int(round(d / self.d_head)) * self.d_head)
            n_layer = max(1, int(round(d_model / self.aspect_ratio)))
            name = f"L{n_layer}-d{d_model}"
            out.setdefault(name, {"name": name, "n_layer": n_layer, "d_model": d_model, "n_head": d_model // self.d_head})
        return list(out.values())


class TokenizerSpec(_Strict):
    """The tokenizer the text world trains on its corpus (symbol worlds use one token per symbol)."""

    kind: Literal["auto", "wordpiece", "bpe"] = Field(
        "auto", description="auto: WordPiece for mlm/nsp (BERT), byte-level BPE for clm (GPT)")
    vocab_size: int = Field(8000, ge=64, le=1 << 22, description="target vocabulary size (byte-level BPE has at least 263)")
    lowercase: bool = Field(False, description="lower-case the text before tokenising")
    min_frequency: int = Field(2, ge=1, le=1 << 30, description="a piece must occur this often to be merged")


class EvalSpec(_Strict):
    tasks: list[str] | None = Field(None, description="task names; default: the world's tasks")
    n_examples: int = Field(256, ge=1, le=1_000_000)
    k_shot: list[Annotated[int, Field(ge=0, le=4096)]] = Field(default_factory=lambda: [0])
    n_bootstrap: int = Field(200, ge=0, le=100_000)
    heldout_sequences: int = Field(128, ge=1, le=1_000_000)
    task_files: list[str] = Field(default_factory=list, description="task YAMLs (lm-eval vocabulary) evaluated beside the world's tasks")
    batch_size: int = Field(32, ge=1, le=65536, description="requests scored per forward pass")

    @field_validator("k_shot")
    @classmethod
    def _sorted(cls, v: list[int]) -> list[int]:
        if not v:
            raise ValueError("give at least one shot count (e.g. [0] or [0, 4])")
        return sorted(set(v))


class ProbeSpec(_Strict):
    latents: list[str] | None = Field(None, description="latent names; default: the world's latents")
    pool: Literal["last", "mean", "first"] = Field(
        "last", description="how a sequence-level latent reads a sequence: the last position (what a causal model "
                            "has read everything at), the mean over positions (a bag of tokens even at init), or the first")
    n_sequences: int = Field(96, ge=4, le=1_000_000)
    max_tokens: int = Field(3000, ge=10, le=100_000_000)
    heads: bool = True
    data: str | None = Field(None, description="a labelled file probed at every layer (word/TAG lines or CSV/JSONL texts), "
                                               "as `emergelab probe --model` takes; a suite without a world probes this")
    data_task: Literal["tag", "classify"] = Field("tag", description="what the labels of `data` are: one per word, or one per text")
    text_column: str = "text"
    label_column: str = "label"


class MechanismLink(_Strict):
    """A link of the mechanism map the spec adds to the world's: ``signal`` (a latent, or ``heads/<score>``)
    bears on capability ``task``. A text world declares its links here."""

    task: str = Field(min_length=1)
    signal: str = Field(min_length=1)
    why: str = ""


# ---- external suites (issue 19): a ladder entry is a rung shape (trained) or a model (analysed, not trained).
# The tags are not identifiers, so error key paths stay ``ladder.0.d_model`` (``_key_path`` drops them).
LadderEntry = Annotated[Annotated[Rung, Tag("-rung")] | Annotated[ExternalModel, Tag("-model")],
                        Discriminator(lambda v: "-model" if is_external_entry(v) else "-rung")]


class RaySpec(_Strict):
    """Where ``executor: ray`` sends the units (how a study runs, not what it computes: not in the spec hash)."""

    address: str | None = Field(None, description="a running cluster (host:port or ray://…); default: RAY_ADDRESS, "
                                                  "else a local Ray instance started for the study")


class StudySpec(_Strict):
    """Everything that defines a study. Same spec + same seed = same numbers."""

    name: str = "study"
    seed: int = Field(0, ge=0, le=MAX_SEED, description="seeds the data, the initialisation and every sampler")
    seeds: list[Annotated[int, Field(ge=0, le=MAX_SEED)]] | None = Field(
        None, description="replicates: every rung is trained once per seed (its initialisation and data order); the "
                          "tasks, latents and held-out blocks stay those of `seed`. Default: [seed]")
    world: str | None = Field("induction", description="the synthetic world; a suite of external models needs none")
    world_args: dict[str, Any] = Field(default_factory=dict)
    corpus: str | None = Field(None, validate_default=True,
                               description="world text: a text file or folder, JSONL/CSV, a datasets directory or name")
    tokenizer: TokenizerSpec = Field(default_factory=TokenizerSpec)
    objectives: list[Objective] = Field(default_factory=lambda: ["clm"])
    init: InitScheme = "normal"
    mlm: MLMSpec = Field(default_factory=MLMSpec)
    ladder: list[LadderEntry]
    train: TrainSpec = Field(default_factory=TrainSpec)
    eval: EvalSpec = Field(default_factory=EvalSpec)
    probe: ProbeSpec = Field(default_factory=ProbeSpec)
    explain: ExplainOptions = Field(default_factory=ExplainOptions)
    finetune: FinetuneOptions | None = Field(None, description="the finetune stage; absent: not run")
    mechanisms: list[MechanismLink] | None = Field(
        None, description="links of the mechanism map beside the world's own (which latents bear on which capability)")
    mechanism: MechanismOptions = Field(default_factory=MechanismOptions, description="the mechanism stage's interventions")
    executor: Literal["local", "ray"] = Field("local", description="who runs the units: local processes, or Ray tasks")
    ray: RaySpec | None = Field(None, description="the Ray cluster (executor: ray)")

    @field_validator("objectives")
    @classmethod
    def _objectives(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("choose at least one objective: [clm], [mlm] or [mlm, nsp]")
        if "clm" in v and len(v) > 1:
            raise ValueError("clm cannot be combined with mlm/nsp; use [clm], [mlm] or [mlm, nsp]")
        if v == ["nsp"]:
            raise ValueError("nsp needs mlm: use [mlm, nsp]")
        return v

    @field_validator("ladder", mode="before")
    @classmethod
    def _generate_ladder(cls, v: Any) -> Any:
        """``ladder: {min_d_model, max_d_model, n_rungs, aspect_ratio, d_head}`` expands to explicit rungs."""
        if not isinstance(v, dict):
            return v
        try:
            return LadderGrid(**v).rungs()
        except ValidationError as exc:
            raise ValueError(first_error(exc, StudySpec) + "; a generated ladder takes keys " + ", ".join(LadderGrid.model_fields)) from None

    @model_validator(mode="before")
    @classmethod
    def _suite_needs_no_world(cls, data: Any) -> Any:
        """A ladder of external models analyses them on task files and labelled data: no world unless asked."""
        if isinstance(data, dict) and "world" not in data and isinstance(data.get("ladder"), list) \
                and data["ladder"] and all(is_external_entry(e) for e in data["ladder"]):
            return {**data, "world": None}
        return data

    @field_validator("ladder")
    @classmethod
    def _ladder(cls, v: list) -> list:
        if not v:
            raise ValueError("the ladder needs at least one rung")
        external = [isinstance(r, ExternalModel) for r in v]
        if any(external) and not all(external):
            raise ValueError("mixes trained rungs (n_layer, d_model, …) and external models (model/models); "
                             "a study analyses one kind: put them in two studies")
        names = [r.name for r in v]
        if len(set(names)) != len(names):
            raise ValueError(f"rung names must be unique, got {names}")
        return v

    @field_validator("corpus")
    @classmethod
    def _corpus(cls, v: str | None, info: ValidationInfo) -> str | None:
        """World text needs a corpus, other worlds none; a local path is recorded absolute."""
        v = None if v is None or not str(v).strip() else str(v)
        world = info.data.get("world")
        if world == "text" and v is None:
            raise ValueError("world text needs a corpus: --set corpus=PATH (a text file or folder, JSONL/CSV, or a datasets directory)")
        if v is not None and world is not None and world != "text":
            raise ValueError(f"corpus is read by world text only (world is {world!r}); add --set world=text")
        p = Path(v).expanduser() if v else None
        return str(p.resolve()) if p is not None and p.exists() else v

    @field_validator("seeds")
    @classmethod
    def _replicates(cls, v: list[int] | None) -> list[int] | None:
        if v is not None and (not v or len(set(v)) != len(v)):
            raise ValueError(f"give one or more distinct seeds, e.g. [0, 1, 2]; got {v}")
        return v

    @model_validator(mode="after")
    def _world_for_training(self) -> "StudySpec":
        if self.world is None and not self.is_suite:
            raise ValueError("world: a trained ladder needs a world (e.g. induction); only a suite of external models goes without")
        return self

    @model_validator(mode="after")
    def _schedule_fits(self) -> "StudySpec":
        t = self.train
        if t.warmup > t.steps:
            raise ValueError(f"train.warmup: {t.warmup} is more than train.steps {t.steps}; allowed 0 ≤ warmup ≤ steps")
        if t.loss_vocab == "seen" and not self.causal:
            raise ValueError("train.loss_vocab: seen restricts the causal LM's softmax; with objectives "
                             f"{self.objectives} use loss_vocab: all (the default)")
        if t.loss_after is not None and not self.causal:
            raise ValueError(f"train.loss_after restricts the causal LM's loss; with objectives {self.objectives} "
                             "leave it out (the default: every token)")
        n = n_checkpoints(t.steps, t.checkpoint_every, t.log_spaced)
        if n > MAX_CHECKPOINTS:
            least = -(-t.steps // (MAX_CHECKPOINTS - 64))
            raise ValueError(f"train.checkpoint_every: {t.checkpoint_every} gives {n:,} checkpoints per rung for "
                             f"{t.steps:,} steps; at most {MAX_CHECKPOINTS:,}: raise checkpoint_every to at least {least:,}")
        return self

    @model_validator(mode="after")
    def _finetune_rungs_and_steps(self) -> "StudySpec":
        """The fine-tuning section's cross-checks that need only the spec (its task is the finetune stage's)."""
        opts = self.finetune
        if opts is None or not opts.enabled:
            return self
        names = [r.name for r in self.ladder]
        unknown = [r for r in opts.rungs or [] if r not in names]
        if unknown:
            raise ValueError(f"finetune.rungs: unknown rung {unknown[0]!r}; the ladder has {', '.join(names)}")
        if self.is_suite:  # a suite's steps are known once its checkpoints are resolved (the suite stage checks them)
            return self
        steps = self.checkpoint_steps()
        missing = [s for s in opts.checkpoints if s not in steps] if isinstance(opts.checkpoints, list) else []
        if missing:
            shown = steps if len(steps) <= 12 else [*steps[:8], "…", *steps[-3:]]
            raise ValueError(f"finetune.checkpoints: step {missing[0]} is not a checkpoint step; checkpoint steps are "
                             f"{', '.join(map(str, shown))} ({len(steps)} in all; or use last / all)")
        if opts.data is not None and opts.task is not None:
            raise ValueError("finetune: give either task (a labelled task of the world) or data (a labelled file), not both")
        return self

    @model_validator(mode="after")
    def _control_heads_left(self) -> "StudySpec":
        """A head-ablation control draws k other heads: a ``k_heads`` the user sets needs more than k heads on
        every trained rung (at the default, a rung with too few heads has its head links skipped by the stage)."""
        k = self.mechanism.k_heads
        few = [r for r in self.ladder if isinstance(r, Rung) and r.n_layer * r.n_head <= k]
        if self.mechanism.enabled and few and "k_heads" in self.mechanism.model_fields_set:
            r = few[0]
            raise ValueError(f"mechanism.k_heads: {k} leaves no heads for the random control on rung {r.name} "
                             f"({r.n_layer} layer(s) × {r.n_head} heads); choose k_heads < {r.n_layer * r.n_head}")
        return self

    @property
    def causal(self) -> bool:
        return self.objectives == ["clm"]

    @property
    def is_suite(self) -> bool:
        """Whether the ladder is external models (analysed, not trained): see ``spec/suite.py``."""
        return bool(self.ladder) and isinstance(self.ladder[0], ExternalModel)

    def checkpoint_steps(self) -> list[int]:
        return checkpoint_steps(self.train.steps, self.train.checkpoint_every, self.train.log_spaced)

    def hash(self) -> str:
        return spec_hash(self)

    def rungs_by_size(self) -> list[Rung]:
        """The rungs, largest first (n_layer · d_model², the body's compute): the order every per-rung
        stage hands work out in, so the longest unit starts first."""
        if self.is_suite:  # external models: in the spec's order (their sizes are known once loaded)
            return list(self.ladder)
        return sorted(self.ladder, key=lambda r: -r.n_layer * r.d_model ** 2)

    def rung(self, name: str) -> Rung:
        return next(r for r in self.ladder if r.name == name)

    def replicate_seeds(self) -> list[int]:
        """The seeds every rung is trained with (``seeds``, or the study's ``seed`` alone)."""
        return list(self.seeds) if self.seeds else [self.seed]

    def run_name(self, rung: str, seed: int) -> str:
        """Where a rung × seed lives (``runs/<run>``, ``parts/*/<run>``): the rung's name for the study's own
        seed (so a single-seed study's layout is unchanged), ``<rung>@seed<k>`` for the other replicates."""
        return rung if seed == self.seed else f"{rung}@seed{seed}"

    def runs(self) -> list[tuple[Rung, int]]:
        """(rung, seed) of every training run, largest rung first, seeds in order."""
        return [(r, s) for r in self.rungs_by_size() for s in self.replicate_seeds()]

    def tokens_per_step(self) -> int:
        return self.train.batch_size * self.train.grad_accum * self.train.seq_len


#: keys that say how a study runs or is explained, not what it computes: never hashed (a study started
#: locally continues on Ray)
RUNTIME_KEYS = ("executor", "ray", "explain")
# ``explain``: its options change only the explanations, which the explain stage redoes when they change
# (its stamp records them); the hash names what the checkpoints and measurements were computed from
#: keys added after studies existed, left out at their default so that those studies keep their hash
_DROPPED_AT_DEFAULT = {("finetune",): None, ("seeds",): None, ("mechanisms",): None, ("executor",): "local",
                       ("mechanism",): MechanismOptions().model_dump(mode="json"),
                       ("ray",): None, ("train", "device"): "auto",
                       ("train", "loss_vocab"): "all", ("train", "loss_after"): None}


def plain(spec: StudySpec) -> dict:
    """The spec as JSON data; sections and keys added later (finetune, executor, ray, train.device) are
    left out at their default, so specs written before they existed keep their hash (and their study
    directories stay valid)."""
    data = spec.model_dump(mode="json")
    for path, default in _DROPPED_AT_DEFAULT.items():
        *parents, key = path
        holder = data
        for p in parents:
            holder = holder[p]
        if holder.get(key, default) == default:
            holder.pop(key, None)
    if data["probe"].get("data") is None:  # probe.data (suites) absent: its options leave older hashes alone
        for key in ("data", "data_task", "text_column", "label_column"):
            data["probe"].pop(key, None)
    return data


def spec_hash(spec: StudySpec) -> str:
    data = {k: v for k, v in plain(spec).items() if k not in RUNTIME_KEYS}
    blob = json.dumps(data, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]
