"""`emergelab train` under ``accelerate launch`` (or torchrun): every process trains every rung in turn.

Only the main process holds the study lock and writes (checkpoints, state, logs, measurements); all
processes step through the same rungs in the same order, each on its shard of every global batch.
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path

from emergelab.io import StudyLock, clean_stale_temps
from emergelab.layout import Layout


def launched_processes() -> int:
    """How many processes a launcher started (1 when run directly)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def train_launched(root: str | Path, console=None) -> int:
    """Train every rung of the study at ``root`` in this process group; returns how many were trained."""
    from emergelab.progress import RungProgress
    from emergelab.study import load_resolved_spec
    from emergelab.train.loop import train_rung

    lay = Layout(Path(root))
    spec = load_resolved_spec(lay)
    main = is_main_process()
    rungs = [r.name for r in sorted(spec.ladder, key=lambda r: -r.n_layer * r.d_model ** 2)]
    done = 0
    with StudyLock(lay.root) if main else contextlib.nullcontext():
        if main:
            clean_stale_temps(lay.root)
        with RungProgress(console if main else None, "train", rungs, spec.train.steps) as prog:
            for rung in rungs:
                res = train_rung(str(lay.root), rung, prog.update if main else None)
                done += res["status"] != "done"
    return done
