"""A test hook for fault injection: SIGKILL the whole study at the k-th write of a stage.

Set ``EMERGELAB_FAULT=<stage>:<k>`` (e.g. ``train:3``). Every atomic write calls :func:`point` with
its path; the stage is read off the path (``data/`` → prepare, ``runs/`` → train, ``parts/eval`` →
evaluate, …). At the k-th write of that stage — after the temporary file is complete but before it
is renamed into place — the process group is killed, as a power cut would. Unset, it costs one
environment lookup per write.
"""
from __future__ import annotations

import os
import signal
from pathlib import Path

_counts: dict[str, int] = {}

_PARTS = {"eval": "evaluate", "probe": "probe", "heads": "probe", "mechanism": "mechanism", "train": "train", "finetune": "finetune"}
_EXPLAIN_FILES = {"explanations.json", "measurements.parquet"}


def stage_of(path: str | Path) -> str | None:
    """The stage that writes ``path``, read off the innermost study-layout component."""
    # a directory being written atomically is ".<name>.<random>.tmp": count it as <name>
    parts = tuple(c[1:].split(".")[0] if c.startswith(".") and c.endswith(".tmp") else c for c in Path(path).parts)
    if parts and parts[-1] in _EXPLAIN_FILES:
        return "explain"
    if parts and parts[-1] == "suite_audit.json":
        return "suite"
    if len(parts) > 1 and parts[-2] == ".stamps":  # a whole-study output's stamp: .stamps/<stage>.json
        return parts[-1].removesuffix(".json")
    for i in range(len(parts) - 1, -1, -1):
        if parts[i] == "parts" and i + 1 < len(parts):
            return _PARTS.get(parts[i + 1])
        if parts[i] in ("runs", "data", "report"):
            return {"runs": "train", "data": "prepare", "report": "report"}[parts[i]]
    return None


def point(path: str | Path) -> None:
    spec = os.environ.get("EMERGELAB_FAULT")
    if not spec:
        return
    stage, _, k = spec.partition(":")
    if stage_of(path) != stage:
        return
    _counts[stage] = _counts.get(stage, 0) + 1
    if _counts[stage] == int(k):
        os.killpg(os.getpgid(0), signal.SIGKILL)
