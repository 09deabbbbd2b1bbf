"""Executors: who runs a stage's groups of units. ``LocalExecutor`` is a pool of spawned processes.

An executor gets the stage's name, the validated spec (pickled to the workers: it is never read
again there), the study root and the groups; each worker imports the stage module and calls its
``run`` on one group. Progress calls travel back to the driver over a queue.
"""
from __future__ import annotations

import ctypes
import importlib
import multiprocessing as mp
import signal
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Callable

from emergelab.layout import Layout
from emergelab.spec import StudySpec


def run_group(stage_name: str, spec: StudySpec, root: str, units: list, progress: Callable | None = None) -> int:
    """Run one group of a stage's units (in this process)."""
    st = importlib.import_module(f"emergelab.stages.{stage_name}").STAGE
    return st.run(spec, Layout(Path(root)), units, progress)


def _die_with_parent() -> None:
    """Workers must never outlive a killed study (they would write after the lock is gone)."""
    try:
        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _run_group_with_queue(stage_name: str, spec: StudySpec, root: str, units: list, queue) -> int:
    return run_group(stage_name, spec, root, units, lambda *args: queue.put(args))


class LocalExecutor:
    """Groups run in up to ``n`` spawned worker processes (started on first use, kept for the study run);
    with ``n`` = 1, or a single group, they run in this process."""

    def __init__(self, n: int):
        self.n = n
        self._pool: ProcessPoolExecutor | None = None
        self._queue = None

    def map(self, stage_name: str, spec: StudySpec, root: Path, groups: list[list], progress=None) -> list[int]:
        if self.n <= 1 or len(groups) <= 1:
            return [run_group(stage_name, spec, str(root), g, progress) for g in groups]
        self._start()
        futures = [self._pool.submit(_run_group_with_queue, stage_name, spec, str(root), g, self._queue) for g in groups]
        pending = set(futures)
        while pending:
            self._drain(progress)
            for f in [f for f in pending if f.done()]:
                pending.discard(f)
                if f.exception() is not None:  # fail at once; close() cancels the rest
                    raise f.exception()
            if pending:
                time.sleep(0.05)
        self._drain(progress)
        return [f.result() for f in futures]

    def _start(self) -> None:
        if self._pool is None:
            ctx = mp.get_context("spawn")
            self._manager = ctx.Manager()
            self._queue = self._manager.Queue()
            self._pool = ProcessPoolExecutor(self.n, mp_context=ctx, initializer=_die_with_parent)

    def _drain(self, progress) -> None:
        while not self._queue.empty():
            args = self._queue.get_nowait()
            if progress is not None:
                progress(*args)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._manager.shutdown()
            self._pool = None
