"""Options of the study's fine-tuning stage (the study spec's ``finetune:`` section).

The stage fine-tunes chosen checkpoints of chosen rungs — and, with ``random_init``, the same
architecture from random weights — on a labelled task, for every method × label count × seed. The
task is one the world labels itself (``task``, see ``World.labelled_tasks``) or a user file
(``data``). Everything that can be checked without reading data or loading a model is checked here,
so a bad section fails before any training starts; the task is checked against the world by the
finetune stage's ``resolve``. The method names are the spec's vocabulary; ``finetune.methods`` keys
its registry by them (and checks that it covers them).
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

METHOD_NAMES = ("full", "lora", "adalora", "ia3", "adapter")
ADAPTER_KINDS = ("pfeiffer", "houlsby")
Method = Literal[METHOD_NAMES]  # type: ignore[valid-type]


class FinetuneOptions(BaseModel):
    """What the finetune stage runs; absent from a spec (``None``) or ``enabled: false``, it runs nothing."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    enabled: bool = Field(True, description="run the stage (a present section is on unless this is false)")
    task: str | None = Field(None, description="a labelled task of the world (default: its first); see `emergelab worlds show`")
    data: str | None = Field(None, description="a labelled file instead of a world task: CSV/TSV/JSONL (text, label) or tagged text")
    data_task: Literal["classify", "tag"] = Field("classify", description="what the labels of `data` are: one per text, or one per word")
    text_column: str = "text"
    label_column: str = "label"
    n_examples: int = Field(640, ge=10, le=1_000_000, description="labelled examples drawn from the world task (evaluation split included)")
    eval_size: int | None = Field(None, ge=1, le=1_000_000, description="examples held out for evaluation; default 20 % (at most 1000)")
    methods: list[Method] = Field(default_factory=lambda: ["lora"])
    labels: list[Annotated[int, Field(ge=1, le=1_000_000)] | Literal["all"]] = Field(default_factory=lambda: [16, 64],
                                               description="labelled training examples per run ('all' = the whole pool)")
    seeds: list[Annotated[int, Field(ge=0, le=2**32 - 1)]] = Field(default_factory=lambda: [0])
    checkpoints: Literal["last", "all"] | list[Annotated[int, Field(ge=0)]] = Field("last", description="last, all, or a list of checkpoint steps")
    rungs: list[str] | None = Field(None, description="rung names; default: every rung")
    random_init: bool = Field(True, description="also fine-tune the same architecture from random weights")
    epochs: float = Field(3.0, gt=0, le=10_000, description="passes over the labelled examples (at least min_steps steps)")
    steps: int | None = Field(None, ge=1, le=10_000_000, description="optimizer steps per run; overrides epochs")
    min_steps: int = Field(20, ge=1, le=10_000_000)
    lr: float | None = Field(None, gt=0, le=10, description="peak learning rate; default: the method's")
    batch_size: int = Field(16, ge=1, le=65536)

    @field_validator("methods", "seeds")
    @classmethod
    def _nonempty_unique(cls, v: list) -> list:
        if not v:
            raise ValueError("give at least one value")
        if len(set(v)) != len(v):
            raise ValueError(f"values must be unique, got {v}")
        return v

    @field_validator("labels")
    @classmethod
    def _labels(cls, v: list) -> list:
        if not v:
            raise ValueError("give at least one label count (e.g. [16, 64, all])")
        if any(k != "all" and k < 1 for k in v):
            raise ValueError(f"label counts must be positive or 'all', got {v}")
        if len(set(v)) != len(v):
            raise ValueError(f"label counts must be unique, got {v}")
        return v

    @field_validator("checkpoints")
    @classmethod
    def _steps(cls, v: Any) -> Any:
        if isinstance(v, list):
            if not v or any(s < 0 for s in v):
                raise ValueError("checkpoints takes last, all, or a non-empty list of steps ≥ 0")
            return sorted(set(v))
        return v

    @field_validator("data")
    @classmethod
    def _data(cls, v: str | None) -> str | None:
        """A local file is recorded absolute, so the study directory can be run from anywhere."""
        if v is None or not str(v).strip():
            return None
        p = Path(v).expanduser()
        if not p.exists():
            raise ValueError(f"labelled data {p} does not exist; give a CSV/TSV/JSONL file with text and label columns")
        return str(p.resolve())

    def label_counts(self) -> list[int | None]:
        """``labels`` with ``None`` for 'all' (the convention of ``finetune.sampling``)."""
        return [None if k == "all" else int(k) for k in self.labels]
