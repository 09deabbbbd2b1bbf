"""The task spec: lm-evaluation-harness's task YAML vocabulary, validated, plus emergelab's extensions.

An lm-eval task file over local JSON/JSONL (``dataset_path: json`` with ``dataset_kwargs.data_files``)
loads unchanged. Extensions: ``output_type: cloze`` (masked models) and ``auto``, ``generate`` as an
alias of ``generate_until``, ``k_shot`` (a list of shot counts), ``fewshot_seed``,
``doc_to_suffix`` (cloze text after the blank) and ``dataset_path: world`` (a world's token-id task
from a study's ``data/tasks/<world_task>.jsonl``). Fields that would run Python or change the
semantics in ways emergelab does not reproduce (``process_docs``, ``filter_list``, ...) are refused.
"""
from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from emergelab.errors import UserError

OutputType = Literal["loglikelihood", "multiple_choice", "generate", "cloze", "auto"]
_OUTPUT_ALIASES = {"generate_until": "generate"}
#: lm-eval metric names -> emergelab metric names (every output type computes its paired set anyway)
METRIC_ALIASES = {"acc": "mc_accuracy", "acc_norm": "mc_accuracy_norm", "exact_match": "exact_match",
                  "perplexity": "target_logprob", "brier_score": "brier", "edit_distance": "edit_distance",
                  "token_accuracy": "token_accuracy", "target_logprob": "target_logprob",
                  "target_logprob_per_token": "target_logprob_per_token", "mc_accuracy": "mc_accuracy",
                  "brier": "brier", "target_pll": "target_pll"}
#: lm-eval aggregations accepted; emergelab always reports per-metric means (perplexity = exp(−mean log p))
_AGGREGATIONS = ("mean", "perplexity", "weighted_perplexity", "bits_per_byte")
#: lm-eval fields that need Python or features emergelab does not reproduce: field -> advice
_REFUSED = {
    "process_docs": "precompute the processed columns in the JSONL",
    "process_results": "use the built-in metrics (metric_list)",
    "filter_list": "emergelab scores the raw greedy output (whitespace-trimmed); drop filter_list",
    "custom_dataset": "point dataset_path/data_files at a JSONL file",
    "use_prompt": "write the prompt as doc_to_text",
    "doc_to_image": "emergelab evaluates text and token tasks only",
    "doc_to_audio": "emergelab evaluates text and token tasks only",
    "gen_prefix": "append the prefix to doc_to_text",
}


class MetricEntry(BaseModel):
    """One ``metric_list`` entry (lm-eval's keys; options other than the name are recorded, not used)."""

    model_config = ConfigDict(extra="allow")
    metric: str
    aggregation: str = "mean"
    higher_is_better: bool | None = None
    ignore_case: bool = False
    ignore_punctuation: bool = False
    regexes_to_ignore: list[str] = Field(default_factory=list)

    @field_validator("metric")
    @classmethod
    def _known(cls, v: str) -> str:
        if v not in METRIC_ALIASES:
            raise ValueError(f"unknown metric {v!r}; allowed: {', '.join(sorted(METRIC_ALIASES))}")
        return v

    @field_validator("aggregation")
    @classmethod
    def _mean(cls, v: str) -> str:
        if v not in _AGGREGATIONS:
            raise ValueError(f"aggregation {v!r} is not supported (allowed: {', '.join(_AGGREGATIONS)}); "
                             "emergelab reports means with bootstrap standard errors")
        return v


class GenerationKwargs(BaseModel):
    """lm-eval's ``generation_kwargs``: greedy decoding until a stop string or ``max_gen_toks``."""

    model_config = ConfigDict(extra="forbid")
    until: list[str] | str | None = None
    max_gen_toks: int = Field(256, ge=1)
    do_sample: bool = False
    temperature: float = 0.0

    @model_validator(mode="after")
    def _greedy(self) -> "GenerationKwargs":
        if self.do_sample:
            raise ValueError("do_sample: true is not supported; emergelab decodes greedily")
        if isinstance(self.until, str):
            self.until = [self.until]
        return self


class TaskSpec(BaseModel):
    """A capability task. Field names and defaults are lm-evaluation-harness's where it has them."""

    model_config = ConfigDict(extra="forbid")
    task: str = Field(pattern=r"^[A-Za-z0-9._/-]+$")
    task_alias: str | None = None
    tag: str | list[str] | None = None
    group: str | list[str] | None = None
    dataset_path: str
    dataset_name: str | None = None
    dataset_kwargs: dict[str, Any] | None = None
    training_split: str | None = None
    validation_split: str | None = None
    test_split: str | None = None
    fewshot_split: str | None = None
    fewshot_config: dict[str, Any] | None = None
    doc_to_text: str | int | None = None
    doc_to_target: str | int | list | None = None
    doc_to_choice: str | list | dict | None = None
    doc_to_suffix: str | None = None
    description: str = ""
    target_delimiter: str = " "
    fewshot_delimiter: str = "\n\n"
    num_fewshot: int | None = Field(None, ge=0)
    k_shot: list[int] | None = None
    fewshot_seed: int = 1234
    metric_list: list[MetricEntry] | None = None
    output_type: OutputType = "generate"
    generation_kwargs: GenerationKwargs | None = None
    repeats: int = 1
    should_decontaminate: bool = False
    doc_to_decontamination_query: str | None = None
    metadata: dict[str, Any] | None = None
    unsafe_code: bool = False
    world_task: str | None = None
    #: the YAML file's directory (relative data files are looked up there first, then in the cwd)
    base_dir: str | None = None

    @field_validator("output_type", mode="before")
    @classmethod
    def _alias(cls, v: Any) -> Any:
        if v == "loglikelihood_rolling":
            raise ValueError("output_type loglikelihood_rolling is not supported; use loglikelihood with the text as doc_to_target")
        return _OUTPUT_ALIASES.get(v, v)

    @field_validator("k_shot")
    @classmethod
    def _shots(cls, v: list[int] | None) -> list[int] | None:
        if v is not None and (not v or any(k < 0 for k in v)):
            raise ValueError("k_shot must be a non-empty list of counts ≥ 0, e.g. [0, 1, 4]")
        return None if v is None else sorted(set(v))

    @model_validator(mode="after")
    def _consistent(self) -> "TaskSpec":
        if self.repeats != 1:
            raise ValueError("repeats must be 1 (greedy decoding is deterministic)")
        if self.unsafe_code:
            raise ValueError("unsafe_code: true is not supported; emergelab never runs code from task files")
        if self.dataset_path == "world":  # world_task None: every task of the world named ``task``
            self.doc_to_text = "prompt" if self.doc_to_text is None else self.doc_to_text
            self.doc_to_target = "target" if self.doc_to_target is None else self.doc_to_target
        elif self.world_task is not None:
            raise ValueError("world_task needs dataset_path: world")
        if self.doc_to_text is None:
            raise ValueError("doc_to_text is required (a column name or a Jinja template such as '{{question}}')")
        if self.doc_to_target is None:
            raise ValueError("doc_to_target is required (a column name, a template, or a choice index)")
        if self.output_type == "multiple_choice" and self.doc_to_choice is None and self.dataset_path != "world":
            raise ValueError("output_type multiple_choice needs doc_to_choice")
        return self

    def shots(self, override: list[int] | None = None) -> list[int]:
        """The k-shot list: the CLI's, else ``k_shot``, else ``[num_fewshot]``, else ``[0]``."""
        if override is not None:
            return sorted(set(override))
        if self.k_shot is not None:
            return self.k_shot
        return [self.num_fewshot or 0]

    def until(self) -> list[str]:
        g = self.generation_kwargs
        return list(g.until) if g is not None and g.until is not None else [self.fewshot_delimiter]

    def max_gen_toks(self) -> int:
        return self.generation_kwargs.max_gen_toks if self.generation_kwargs is not None else 256

    def metric_options(self) -> MetricEntry:
        """Options of the exact_match entry (case/punctuation), or the defaults."""
        for m in self.metric_list or []:
            if m.metric == "exact_match":
                return m
        return MetricEntry(metric="exact_match")


# ---------------------------------------------------------------- loading YAML files


class _FunctionTag(str):
    """An lm-eval ``!function module.name`` value: recorded so that it can be refused by name."""


def _yaml_loader():
    class Loader(yaml.SafeLoader):
        pass

    Loader.add_constructor("!function", lambda loader, node: _FunctionTag(loader.construct_scalar(node)))
    return Loader


def _read_yaml(path: Path) -> dict:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read task file {path} ({type(exc).__name__}); pass a UTF-8 YAML file") from None
    try:
        data = yaml.load(text, Loader=_yaml_loader())  # noqa: S506 — a SafeLoader with one inert tag
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        pos = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise UserError(f"task file {path} is not valid YAML{pos}: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(data, dict):
        raise UserError(f"task file {path} must be a YAML mapping of lm-eval task fields (task, dataset_path, doc_to_text, ...)")
    include = data.pop("include", None)
    if include:
        base = _read_yaml((path.parent / str(include)).resolve())
        data = {**base, **data}
    return data


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"]) or "<task>"
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        return f"unknown field {loc!r}; allowed: {', '.join(f for f in TaskSpec.model_fields if f != 'base_dir')}"
    if err["type"] == "missing":
        return f"missing required field {loc!r}"
    if err["type"] == "literal_error":
        return f"{loc}: {msg} (got {err.get('input')!r})"
    return f"{loc}: {msg}"


def task_from_dict(data: dict, where: str, base_dir: Path | None = None) -> TaskSpec:
    """Validate a task mapping; any problem is one line naming ``where`` and the field."""
    for key, advice in _REFUSED.items():
        if data.get(key) is not None:
            raise UserError(f"{where}: field {key!r} is not supported by emergelab; {advice}")
    for key, value in data.items():
        if isinstance(value, _FunctionTag):
            raise UserError(f"{where}: {key} uses `!function {value}`; emergelab never runs code from task files — "
                            "precompute the column in the data and use a template")
    if base_dir is not None:
        data = {**data, "base_dir": str(base_dir)}
    try:
        return TaskSpec.model_validate(data)
    except ValidationError as exc:
        raise UserError(f"{where}: {_first_error(exc)}") from None


def builtin_tasks() -> list[str]:
    """Names of the task YAMLs shipped in ``emergelab/tasks``."""
    return sorted(p.name.removesuffix(".yaml") for p in resources.files("emergelab.tasks").iterdir()
                  if p.name.endswith(".yaml"))


def load_task_file(ref: str | Path) -> TaskSpec:
    """A task from a YAML path, or a built-in task by name (``emergelab/tasks/<name>.yaml``)."""
    path = Path(ref)
    if not path.is_file():
        if str(ref) in builtin_tasks():
            path = Path(str(resources.files("emergelab.tasks").joinpath(f"{ref}.yaml")))
        else:
            raise UserError(f"task file {ref} does not exist; pass a task YAML or a built-in task ({', '.join(builtin_tasks())})")
    return task_from_dict(_read_yaml(path), str(path), base_dir=path.parent.resolve())


def world_task_spec(name: str, world: str | None = None) -> TaskSpec:
    """The spec of world task ``name`` (a task a study's data manifest lists): the built-in YAML of
    that name, else the built-in YAML of its world as a template, else ``output_type: auto`` over the
    token-id JSONL (the few-shot delimiter, in token ids, comes from the manifest)."""
    for ref in (name, world):
        if ref and ref in builtin_tasks():
            spec = load_task_file(ref)
            if spec.dataset_path == "world":
                return spec.model_copy(update={"task": name, "world_task": name})
    return TaskSpec(task=name, dataset_path="world", world_task=name, output_type="auto")


def expand_world_tasks(spec: TaskSpec, manifest: dict) -> list[TaskSpec]:
    """A world-wide spec (``dataset_path: world`` without ``world_task``; ``task`` is the world's name)
    becomes one spec per task of that world in ``manifest``; any other spec is itself."""
    if spec.dataset_path != "world" or spec.world_task is not None:
        return [spec]
    if manifest.get("world") != spec.task:
        raise UserError(f"task {spec.task} evaluates the tasks of the {spec.task} world, but the data holds the "
                        f"{manifest.get('world')} world; pass --data for a study of the {spec.task} world")
    return [spec.model_copy(update={"task": n, "world_task": n}) for n in manifest.get("tasks", {})]
