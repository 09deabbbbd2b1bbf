"""The suite stage: resolve an external suite's checkpoints and audit them before any analysis.

A study whose ladder points at models (``spec/suite.py``) trains nothing; this stage finds every
checkpoint (Hub revisions through the cache, local directories, globs), reads its step, and writes
``suite_audit.json``: where each checkpoint is, its weights sha256, size, tokens and FLOPs, and the
audit's flags (duplicated weights, continuity outliers, config changes). Evaluate, probe and finetune
take their checkpoints from it (``stages/checkpoints.py``); a duplicate is analysed once. One unit,
current when the audit records the ladder (and the directories its globs match) it was made from.
"""
from __future__ import annotations

import glob
from pathlib import Path

from emergelab.errors import UserError
from emergelab.io import atomic_write_json, read_json
from emergelab.layout import Layout
from emergelab.spec import StudySpec
from emergelab.stages.base import Stage, Unit


def inputs(spec: StudySpec, lay: Layout) -> dict:
    """The ladder, plus what its globs match now (a new checkpoint directory redoes the audit)."""
    out = {"ladder": [e.model_dump(mode="json") for e in spec.ladder]}
    for e in spec.ladder:
        if e.models is not None:
            out[e.name] = sorted(glob.glob(str(Path(e.models).expanduser())))
    return out


def read_audit(lay: Layout) -> dict | None:
    try:
        return read_json(lay.suite_audit) if lay.suite_audit.exists() else None
    except ValueError:  # a torn file: redo
        return None


def todo(spec: StudySpec, lay: Layout) -> list[Unit]:
    if not spec.is_suite:
        return []
    audit = read_audit(lay)
    return [] if audit is not None and audit.get("inputs") == inputs(spec, lay) else [Unit("suite", ("audit",))]


def check_world_tokenizer(spec: StudySpec, lay: Layout, checkpoints: list[dict]) -> None:
    """World tasks and latents are token ids of the world's tokenizer: a suite must share it to be scored on them."""
    from transformers import AutoTokenizer  # the work's imports stay out of ``todo``

    if spec.world is None:
        return
    if not lay.data_dir.exists():
        raise UserError(f"a suite scored on world {spec.world} needs its data: run the prepare stage first (--stages prepare,suite,…)")
    world = AutoTokenizer.from_pretrained(str(lay.data_dir.tokenizer)).get_vocab()
    for rec in {r["rung"]: r for r in checkpoints}.values():
        if AutoTokenizer.from_pretrained(rec["path"]).get_vocab() != world:
            raise UserError(f"{rec['source']} does not share world {spec.world}'s tokenizer, so it cannot be scored on the "
                            "world's tasks and latents; drop world: and give eval.task_files and probe.data")


def run(spec: StudySpec, lay: Layout, units: list[Unit], progress=None) -> int:
    from emergelab.models.suite import audit_suite  # safetensors, huggingface_hub: out of ``todo``

    stamp = inputs(spec, lay)
    audit = audit_suite(spec.ladder, on_entry=lambda name: progress and progress("suite", 1, 1))
    check_world_tokenizer(spec, lay, audit["checkpoints"])
    atomic_write_json(lay.suite_audit, {**audit, "inputs": stamp})
    return 1


def preflight(spec: StudySpec, lay: Layout) -> None:
    """Before anything is written: every entry's checkpoints exist, have safetensors, a step and one architecture."""
    from emergelab.models.suite import resolve_entry

    if todo(spec, lay):
        for entry in spec.ladder:
            resolve_entry(entry)


STAGE = Stage("suite", todo, run, status="auditing the suite", preflight=preflight)
