"""External suites: ladder entries that point at models (Hub ids with revisions, local directories, globs)."""
from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

#: a training step in a revision or directory name: ``step1000``, ``step-001000``, ``checkpoint-1000``, ``global_step1000``
_STEP_IN_NAME = re.compile(r"(?:^|[^A-Za-z0-9])(?:global_)?(?:step|checkpoint|ckpt|iter)[-_]?(\d+)$", re.IGNORECASE)


def step_from_name(name: str) -> int | None:
    """The step a revision or directory is named after (``step1000``, ``checkpoint-1000``), else None."""
    m = _STEP_IN_NAME.search(name) or _STEP_IN_NAME.search("/" + name)
    return int(m.group(1)) if m else None


class ExternalModel(BaseModel):
    """A ladder entry the study does not train: ``model`` (a Hub id or a local directory) at ``revisions``,
    or ``models`` (a glob of local checkpoint directories, one checkpoint each)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    name: str = Field(pattern=r"^[A-Za-z0-9._-]+$")
    model: str | None = Field(None, min_length=1, description="a Hub id (org/name) or a local model directory")
    models: str | None = Field(None, min_length=1, description="a glob of local checkpoint directories")
    revisions: list[str] | None = Field(None, description="Hub revisions of `model` (branches, tags, commits)")
    steps: list[int] | None = Field(None, description="the training step of each checkpoint, in order (default: from names)")
    tokens_per_step: int | None = Field(None, ge=1, le=1 << 40, description="tokens per optimizer step: gives tokens and FLOPs")
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    device_map: str | None = Field(None, description="passed to from_pretrained (e.g. auto) for models that need it")
    trust_remote_code: bool = Field(False, description="run the model's own code (only for a model you trust)")

    @model_validator(mode="after")
    def _one_source(self) -> "ExternalModel":
        if (self.model is None) == (self.models is None):
            raise ValueError(f"ladder entry {self.name}: give either model (a Hub id or directory) or models (a glob), not both or neither")
        if self.revisions is not None and self.model is None:
            raise ValueError(f"ladder entry {self.name}: revisions go with model (a Hub id), not with models (a glob)")
        if self.revisions is not None and (not self.revisions or len(set(self.revisions)) != len(self.revisions)):
            raise ValueError(f"ladder entry {self.name}: give one or more distinct revisions, got {self.revisions}")
        if self.steps is not None and any(s < 0 for s in self.steps):
            raise ValueError(f"ladder entry {self.name}: steps must be ≥ 0, got {self.steps}")
        n = len(self.revisions) if self.revisions is not None else (1 if self.model is not None else None)
        if self.steps is not None and n is not None and len(self.steps) != n:
            raise ValueError(f"ladder entry {self.name}: {len(self.steps)} steps for {n} checkpoint(s); give one step per checkpoint")
        return self


def is_external_entry(entry) -> bool:
    """Whether a raw or parsed ladder entry points at models (``model``/``models``) rather than a rung shape."""
    if isinstance(entry, ExternalModel):
        return True
    return isinstance(entry, dict) and ("model" in entry or "models" in entry)
