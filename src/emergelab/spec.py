"""The study spec: validated at the edge, every default filled in, hashed.

A bad spec (unknown key, wrong type, negative count, unknown world/objective/preset) is a UserError
naming the key path and the allowed values. Code past this module trusts its inputs.
"""
from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from emergelab.errors import UserError
from emergelab.explain.options import ExplainOptions
from emergelab.finetune.options import FinetuneOptions, check_against_study

Objective = Literal["clm", "mlm", "nsp"]
InitScheme = Literal["normal", "xavier_uniform", "xavier_normal", "kaiming_uniform", "kaiming_normal"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class Rung(_Strict):
    """One model size of the ladder."""

    name: str = Field(pattern=r"^[A-Za-z0-9._-]+$")
    n_layer: int = Field(ge=1)
    d_model: int = Field(ge=4)
    n_head: int = Field(ge=1)
    d_ff: int | None = Field(default=None, ge=1, description="feed-forward width; default 4·d_model")

    @model_validator(mode="after")
    def _heads_divide(self) -> "Rung":
        if self.d_model % self.n_head:
            raise ValueError(f"d_model {self.d_model} is not divisible by n_head {self.n_head}")
        if self.d_ff is None:
            self.d_ff = 4 * self.d_model
        return self


class TrainSpec(_Strict):
    steps: int = Field(600, ge=1)
    batch_size: int = Field(64, ge=1)
    seq_len: int = Field(64, ge=8)
    lr: float = Field(1e-3, gt=0)
    warmup: int = Field(0, ge=0)
    schedule: Literal["constant", "cosine", "linear"] = "constant"
    weight_decay: float = Field(0.0, ge=0)
    grad_clip: float = Field(1.0, ge=0)
    grad_accum: int = Field(1, ge=1)
    checkpoint_every: int = Field(100, ge=1, description="regular checkpoints after the log-spaced ones")
    log_spaced: bool = True
    log_every: int = Field(10, ge=1)
    bf16: bool | Literal["auto"] = Field("auto", description="bf16 autocast: auto = on where the GPU supports it, off on CPU")
    threads: int = Field(1, ge=1, description="torch threads per training process")
    workers: int = Field(2, ge=1, description="rungs trained in parallel processes")
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

    min_d_model: int = Field(ge=4)
    max_d_model: int = Field(ge=4)
    n_rungs: int = Field(ge=1)
    aspect_ratio: float = Field(gt=0, description="d_model / n_layer, held fixed (Kaplan et al. 2020 use ~64)")
    d_head: int = Field(16, ge=1, description="head width; every d_model is a multiple of it")

    @model_validator(mode="after")
    def _order(self) -> "LadderGrid":
        if self.min_d_model > self.max_d_model:
            raise ValueError(f"min_d_model {self.min_d_model} > max_d_model {self.max_d_model}")
        if self.min_d_model < self.d_head:
            raise ValueError(f"min_d_model {self.min_d_model} < d_head {self.d_head}")
        return self

    def rungs(self) -> list[dict]:
        """Rung dicts ``L{n_layer}-d{d_model}``, smallest first; duplicates from rounding dropped."""
        import math

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
    vocab_size: int = Field(8000, ge=64, description="target vocabulary size (byte-level BPE has at least 263)")
    lowercase: bool = Field(False, description="lower-case the text before tokenising")
    min_frequency: int = Field(2, ge=1, description="a piece must occur this often to be merged")


class EvalSpec(_Strict):
    tasks: list[str] | None = Field(None, description="task names; default: the world's tasks")
    n_examples: int = Field(256, ge=1)
    k_shot: list[int] = Field(default_factory=lambda: [0])
    n_bootstrap: int = Field(200, ge=0)
    heldout_sequences: int = Field(128, ge=1)
    task_files: list[str] = Field(default_factory=list, description="task YAMLs (lm-eval vocabulary) evaluated beside the world's tasks")
    batch_size: int = Field(32, ge=1, description="requests scored per forward pass")

    @field_validator("k_shot")
    @classmethod
    def _nonneg(cls, v: list[int]) -> list[int]:
        if any(k < 0 for k in v):
            raise ValueError("k_shot values must be ≥ 0")
        return sorted(set(v))


class ProbeSpec(_Strict):
    latents: list[str] | None = Field(None, description="latent names; default: the world's latents")
    pool: Literal["last", "mean", "first"] = Field(
        "last", description="how a sequence-level latent reads a sequence: the last position (what a causal model "
                            "has read everything at), the mean over positions (a bag of tokens even at init), or the first")
    n_sequences: int = Field(96, ge=4)
    max_tokens: int = Field(3000, ge=10)
    heads: bool = True


class StudySpec(_Strict):
    """Everything that defines a study. Same spec + same seed = same numbers."""

    name: str = "study"
    seed: int = 0
    world: str = "induction"
    world_args: dict[str, Any] = Field(default_factory=dict)
    corpus: str | None = Field(None, validate_default=True,
                               description="world text: a text file or folder, JSONL/CSV, a datasets directory or name")
    tokenizer: TokenizerSpec = Field(default_factory=TokenizerSpec)
    objectives: list[Objective] = Field(default_factory=lambda: ["clm"])
    init: InitScheme = "normal"
    mlm: MLMSpec = Field(default_factory=MLMSpec)
    ladder: list[Rung]
    train: TrainSpec = Field(default_factory=TrainSpec)
    eval: EvalSpec = Field(default_factory=EvalSpec)
    probe: ProbeSpec = Field(default_factory=ProbeSpec)
    explain: ExplainOptions = Field(default_factory=ExplainOptions)
    finetune: FinetuneOptions | None = Field(None, description="the finetune stage; absent: not run")

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
            raise ValueError(_first_error(exc) + "; a generated ladder takes keys " + ", ".join(LadderGrid.model_fields)) from None

    @field_validator("ladder")
    @classmethod
    def _ladder(cls, v: list[Rung]) -> list[Rung]:
        if not v:
            raise ValueError("the ladder needs at least one rung")
        names = [r.name for r in v]
        if len(set(names)) != len(names):
            raise ValueError(f"rung names must be unique, got {names}")
        return v

    @field_validator("world")
    @classmethod
    def _world(cls, v: str) -> str:
        from emergelab.worlds import WORLDS

        if v not in WORLDS:
            raise ValueError(f"unknown world {v!r}; allowed: {', '.join(sorted(WORLDS))}")
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

    @model_validator(mode="after")
    def _world_args(self) -> "StudySpec":
        from emergelab.worlds import WORLDS

        world_cls = WORLDS[self.world]
        try:
            params = world_cls.Params(**self.world_args)
        except ValidationError as exc:
            raise ValueError("world_args." + _first_error(exc)) from None
        self.__dict__["world_args"] = params.model_dump()
        if self.finetune is not None and self.finetune.enabled:
            try:
                check_against_study(self.finetune, world=self.world, world_args=self.world_args, seed=self.seed,
                                    ladder=self.ladder, checkpoint_steps=self.checkpoint_steps())
            except ValueError as exc:
                raise ValueError(f"finetune.{exc}") from None
        return self

    @property
    def causal(self) -> bool:
        return self.objectives == ["clm"]

    def checkpoint_steps(self) -> list[int]:
        return checkpoint_steps(self.train.steps, self.train.checkpoint_every, self.train.log_spaced)

    def hash(self) -> str:
        return spec_hash(self)


def checkpoint_steps(steps: int, every: int, log_spaced: bool = True) -> list[int]:
    """Steps {0, 1, 2, 4, …, 2^k} ∪ {every, 2·every, …} ∪ {steps}, capped at ``steps``."""
    out = {0, steps}
    if log_spaced:
        s = 1
        while s <= steps:
            out.add(s)
            s *= 2
    out.update(range(every, steps + 1, every))
    return sorted(out)


def _plain(spec: StudySpec) -> dict:
    """The spec as JSON data; an absent finetune section is left out, so specs written before the
    section existed keep their hash (and their study directories stay valid)."""
    data = spec.model_dump(mode="json")
    if data.get("finetune") is None:
        data.pop("finetune", None)
    return data


def spec_hash(spec: StudySpec) -> str:
    blob = json.dumps(_plain(spec), sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


# ---------------------------------------------------------------- loading, presets, overrides

def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"]) or "<spec>"
    msg = err["msg"].removeprefix("Value error, ")
    if not err["loc"] and err["type"] == "value_error":  # a whole-spec check names its own keys
        return msg
    if err["type"] == "extra_forbidden":
        return f"{loc}: unknown key"
    if err["type"] == "literal_error":
        return f"{loc}: {msg} (got {err.get('input')!r})"
    return f"{loc}: {msg}"


def _allowed_keys(exc: ValidationError) -> str:
    err = exc.errors()[0]
    if err["type"] != "extra_forbidden":
        return ""
    model: type[BaseModel] = StudySpec
    for part in err["loc"][:-1]:
        field = model.model_fields.get(str(part))
        ann = getattr(field, "annotation", None) if field else None
        ann = getattr(ann, "__args__", (ann,))[0] if ann is not None and hasattr(ann, "__args__") else ann
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            model = ann
        elif isinstance(part, int):
            continue
        else:
            return ""
    return "; allowed keys: " + ", ".join(model.model_fields)


def presets() -> list[str]:
    return sorted(p.name.removesuffix(".yaml") for p in resources.files("emergelab.presets").iterdir() if p.name.endswith(".yaml"))


def _load_yaml(text: str, where: str) -> dict:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        pos = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise UserError(f"{where} is not valid YAML{pos}: {getattr(exc, 'problem', exc)}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise UserError(f"{where} must be a YAML mapping of keys to values, got {type(data).__name__}")
    return data


def preset_dict(name: str) -> dict:
    if name not in presets():
        raise UserError(f"unknown preset {name!r}; allowed: {', '.join(presets())}")
    text = resources.files("emergelab.presets").joinpath(f"{name}.yaml").read_text()
    return _load_yaml(text, f"preset {name}")


def apply_override(data: dict, assignment: str) -> None:
    """Apply ``a.b.c=<yaml value>`` to the nested dict ``data`` in place."""
    if "=" not in assignment:
        raise UserError(f"--set {assignment!r} must look like key.path=value (e.g. train.steps=200)")
    key, raw = assignment.split("=", 1)
    parts = [p for p in key.strip().split(".")]
    if not all(parts):
        raise UserError(f"--set {assignment!r}: empty key in {key!r}")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        raise UserError(f"--set {key}: {raw!r} is not a valid YAML value") from None
    node = data
    for p in parts[:-1]:
        if isinstance(node, list) and p.isdigit() and int(p) < len(node):
            node = node[int(p)]
            continue
        if not isinstance(node, dict):
            raise UserError(f"--set {key}: {p!r} is not inside a mapping")
        node = node.setdefault(p, {})
        if node is None:
            node = {}
    last = parts[-1]
    if isinstance(node, list) and last.isdigit() and int(last) < len(node):
        node[int(last)] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise UserError(f"--set {key}: cannot set {last!r} here")


def validate(data: dict, where: str = "spec") -> StudySpec:
    try:
        return StudySpec.model_validate(data)
    except ValidationError as exc:
        raise UserError(f"{where}: {_first_error(exc)}{_allowed_keys(exc)}") from None


def load_spec(path: str | Path | None = None, preset: str | None = None, overrides: list[str] | None = None) -> StudySpec:
    """Resolve a spec: a YAML file (its ``preset:`` key, if any, is the base) or a preset, then ``--set``."""
    data: dict = {}
    where = "spec"
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise UserError(f"spec file {p} does not exist; pass a YAML file or use --preset ({', '.join(presets())})")
        try:
            text = p.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UserError(f"cannot read spec {p}: {exc.__class__.__name__}; pass a UTF-8 YAML file") from None
        data = _load_yaml(text, str(p))
        where = str(p)
        base = data.pop("preset", None) or preset
        if base:
            base_data = preset_dict(base)
            if data.get("world", base_data.get("world")) != base_data.get("world"):
                _drop_world_bound(base_data)
            data = _deep_merge(base_data, data)
    else:
        data = preset_dict(preset or "default")
        where = f"preset {preset or 'default'}"
    base_world = data.get("world")
    world_sets = [a for a in overrides or [] if a.split("=", 1)[0].strip() == "world"]
    if world_sets:
        apply_override(data, world_sets[-1])
        if data.get("world") != base_world:
            _drop_world_bound(data)  # --set world=text
    base_rungs = _rung_names(data)
    for a in overrides or []:
        apply_override(data, a)
    _drop_stale_rung_choice(data, base_rungs, overrides or [])
    return validate(data, where)


def _drop_world_bound(data: dict) -> None:
    """A base's ``world_args`` and ``finetune.task`` belong to the base's world; another world uses its own defaults."""
    data.pop("world_args", None)
    if isinstance(data.get("finetune"), dict):
        data["finetune"].pop("task", None)


def _rung_names(data: dict) -> list | None:
    ladder = data.get("ladder")
    return [r.get("name") for r in ladder if isinstance(r, dict)] if isinstance(ladder, list) else None


def _drop_stale_rung_choice(data: dict, base_rungs: list | None, overrides: list[str]) -> None:
    """``--set ladder=…`` replaces the rungs a preset's ``finetune.rungs`` named: the choice falls back to every
    rung (as a changed world drops the base's ``world_args``), unless ``finetune.rungs`` is set too."""
    finetune = data.get("finetune")
    if not isinstance(finetune, dict) or "rungs" not in finetune:
        return
    if any(a.split("=", 1)[0].strip() == "finetune.rungs" for a in overrides):
        return
    if _rung_names(data) != base_rungs:
        finetune.pop("rungs")


def _deep_merge(base: dict, top: dict) -> dict:
    out = dict(base)
    for k, v in top.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def dump_yaml(spec: StudySpec) -> str:
    body = yaml.safe_dump(_plain(spec), sort_keys=False)
    return f"# resolved study spec; spec_hash: {spec.hash()}\n{body}"
