"""The train stage: one unit per rung × replicate seed, trained (or resumed) until every scheduled checkpoint is valid.

A rung is done when each checkpoint of the schedule verifies against its manifest's sha256 and the
rung's training rows are written. Later stages record the weights sha256 of the checkpoint they read,
so a checkpoint redone with the same weights (the exact resume) leaves their work valid, and one with
other weights makes it stale; training deletes nothing of theirs.
"""
from __future__ import annotations

from emergelab.layout import Layout
from emergelab.models import checkpoint as ckpt
from emergelab.spec import StudySpec
from emergelab.stages.base import Stage, Unit


def rung_trained(spec: StudySpec, lay: Layout, run: str) -> bool:
    """Whether the run (a rung × seed, by its directory name) has every scheduled checkpoint and its rows."""
    have = ckpt.list_checkpoints(lay.checkpoints(run))
    need = spec.checkpoint_steps()
    return lay.part("train", run).exists() and all(s in have and ckpt.is_valid(have[s]) for s in need)


def todo(spec: StudySpec, lay: Layout) -> list[Unit]:
    """One unit per rung × replicate seed, largest rung first; none for an external suite (nothing to train)."""
    if spec.is_suite:
        return []
    return [Unit("train", (r.name, s), spec.run_name(r.name, s)) for r, s in spec.runs()
            if not rung_trained(spec, lay, spec.run_name(r.name, s))]


def run(spec: StudySpec, lay: Layout, units: list[Unit], progress=None) -> int:
    from emergelab.train.loop import train_rung  # torch: kept out of the cheap ``todo`` path

    done = 0
    for u in units:
        rung, seed = u.key
        done += train_rung(spec, lay, rung, progress, seed=seed)["status"] != "done"
    return done


def total(spec: StudySpec, units: list[Unit]) -> int:
    return spec.train.steps


def preflight(spec: StudySpec, lay: Layout) -> None:
    """``train.device: cuda`` without a visible GPU fails before anything runs (under Ray, the tasks'
    machines decide, so only the cluster's GPU count is checked, by the executor)."""
    if spec.train.device == "cuda" and spec.executor == "local":
        from emergelab.train.accel import check_device  # torch: only for a CUDA study

        check_device("cuda")


STAGE = Stage("train", todo, run, total=total, preflight=preflight)
