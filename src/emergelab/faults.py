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

_STAGE_OF = [("parts/eval", "evaluate"), ("parts/probe", "probe"), ("parts/heads", "probe"),
             ("parts/train", "train"), ("/runs/", "train"), ("/data/", "prepare"), ("/report/", "report"),
             ("explanations.json", "explain"), ("measurements.parquet", "explain"), (".parts_digest", "explain"), ("finetune", "finetune")]


def stage_of(path: str | Path) -> str | None:
    p = str(path)
    for needle, stage in _STAGE_OF:
        if needle in p:
            return stage
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
