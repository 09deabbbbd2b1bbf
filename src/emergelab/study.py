"""Run a study: the stages in order, each computing only what is missing, under a directory lock."""
from __future__ import annotations

import ctypes
import hashlib
import json
import multiprocessing as mp
import signal
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Callable

import yaml

from emergelab.errors import UserError
from emergelab.io import StudyLock, atomic_write_json, atomic_write_text, clean_stale_temps, read_json
from emergelab.layout import Layout
from emergelab.spec import StudySpec, dump_yaml, validate

STAGES = ("prepare", "train", "evaluate", "probe", "finetune", "explain", "report")


def load_resolved_spec(lay: Layout) -> StudySpec:
    if not lay.spec.exists():
        raise UserError(f"{lay.root} is not a study directory (no study.yaml); create one with `emergelab study --out {lay.root}`")
    try:
        data = yaml.safe_load(lay.spec.read_text())
    except yaml.YAMLError:
        raise UserError(f"{lay.spec} is not valid YAML; restore it or start a new study with another --out") from None
    return validate(data, str(lay.spec))


def init_study(spec: StudySpec, root: Path) -> Layout:
    """Create the study directory with its resolved spec, or check that it holds the same spec."""
    lay = Layout(root)
    if lay.spec.exists():
        old = load_resolved_spec(lay)
        started = (lay.data / "manifest.json").exists() or (root / "runs").exists()
        if old.hash() != spec.hash() and not started:  # nothing was computed yet: take the new spec
            atomic_write_text(lay.spec, dump_yaml(spec))
        elif old.hash() != spec.hash():
            raise UserError(
                f"{root} holds a study with a different spec (hash {old.hash()} vs {spec.hash()}); "
                "use another --out, or delete the directory to start over")
        return lay
    if root.exists() and any(p for p in root.iterdir() if p.name != ".lock"):
        raise UserError(f"{root} exists and is not an emergelab study; choose an empty or new --out directory")
    atomic_write_text(lay.spec, dump_yaml(spec))
    return lay


# ------------------------------------------------------------------ worker processes

def _die_with_parent() -> None:
    """Workers must never outlive a killed study (they would write after the lock is gone)."""
    try:
        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class Workers:
    """A pool of single-purpose processes (spawned once per study run) for per-rung work."""

    def __init__(self, n: int):
        self.n = n
        self._pool: ProcessPoolExecutor | None = None
        self._queue = None

    def map_rungs(self, fn: Callable, root: Path, rungs: list[str], label: str, progress=None) -> list:
        if self.n <= 1 or len(rungs) <= 1:
            return [fn(str(root), r, progress) for r in rungs]
        if self._pool is None:
            ctx = mp.get_context("spawn")
            self._manager = ctx.Manager()
            self._queue = self._manager.Queue()
            self._pool = ProcessPoolExecutor(self.n, mp_context=ctx, initializer=_die_with_parent)
        futures = [self._pool.submit(_call_with_queue, fn, str(root), r, self._queue) for r in rungs]
        results, pending = [], set(futures)
        while pending:
            while not self._queue.empty():
                if progress is not None:
                    progress(*self._queue.get_nowait())
                else:
                    self._queue.get_nowait()
            done = {f for f in pending if f.done()}
            for f in done:
                results.append(f.result())
            pending -= done
            if pending:
                time.sleep(0.05)
        while not self._queue.empty() and progress is not None:
            progress(*self._queue.get_nowait())
        return results

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._manager.shutdown()
            self._pool = None


def _call_with_queue(fn: Callable, root: str, rung: str, queue):
    def progress(*args):
        queue.put(args)

    return fn(root, rung, progress)


# ------------------------------------------------------------------ stages

def _parts_digest(lay: Layout) -> str:
    h = hashlib.sha256()
    for p in sorted(lay.parts.rglob("*.parquet")):
        st = p.stat()
        h.update(f"{p.relative_to(lay.parts)}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


class Runner:
    """Runs the stages of one study directory, recording what was done and how long it took."""

    def __init__(self, lay: Layout, spec: StudySpec, console=None):
        self.lay, self.spec, self.console = lay, spec, console
        self.workers = Workers(spec.train.workers)
        self.did: dict[str, int] = {}
        self.timings: dict[str, float] = read_json(lay.timings) if lay.timings.exists() else {}

    def run(self, stages: list[str]) -> dict[str, int]:
        unknown = [s for s in stages if s not in STAGES]
        if unknown:
            raise UserError(f"unknown stage {unknown[0]!r}; allowed: {', '.join(STAGES)}")
        clean_stale_temps(self.lay.root)
        if "finetune" in stages:
            self._finetune_preflight()
        try:
            for stage in STAGES:
                if stage in stages:
                    t0 = time.perf_counter()
                    n = getattr(self, f"_{stage}")()
                    self.did[stage] = n
                    if n:
                        self.timings[stage] = round(time.perf_counter() - t0, 2)
                        atomic_write_json(self.lay.timings, self.timings)
        finally:
            self.workers.close()
        return self.did

    def _progress(self, label: str, total_per_rung: int):
        from emergelab.progress import RungProgress

        return RungProgress(self.console, label, [r.name for r in self.spec.ladder], total_per_rung)

    def _prepare(self) -> int:
        from emergelab.corpus.prepare import is_prepared, prepare

        if is_prepared(self.lay.data, self.spec):
            return 0
        with self._status("preparing data"):
            prepare(self.spec, self.lay.data)
        return 1

    def _rung_stage(self, fn, label: str, total: int) -> int:
        rungs = [r.name for r in sorted(self.spec.ladder, key=lambda r: -r.n_layer * r.d_model ** 2)]
        with self._progress(label, total) as prog:
            res = self.workers.map_rungs(fn, self.lay.root, rungs, label, prog.update)
        return sum(res)

    def _train(self) -> int:
        rungs = [r.name for r in sorted(self.spec.ladder, key=lambda r: -r.n_layer * r.d_model ** 2)]
        if all(self._rung_trained(r) for r in rungs):
            return 0
        from emergelab.train.loop import train_rung

        with self._progress("train", self.spec.train.steps) as prog:
            res = self.workers.map_rungs(train_rung, self.lay.root, rungs, "train", prog.update)
        return sum(1 for r in res if r["status"] != "done")

    def _rung_trained(self, rung: str) -> bool:
        from emergelab.train import checkpoint as ckpt

        have = ckpt.list_checkpoints(self.lay.checkpoints(rung))
        need = self.spec.checkpoint_steps()
        return self.lay.part("train", rung).exists() and all(s in have for s in need) and all(
            ckpt.is_valid(have[s]) for s in need)

    def _missing_parts(self, source: str) -> bool:
        steps = self.spec.checkpoint_steps()
        return any(not self.lay.part(source, r.name, s).exists() for r in self.spec.ladder for s in steps)

    def _evaluate(self) -> int:
        chance = self.lay.part("eval", "_task")
        if chance.exists() and not self._missing_parts("eval"):
            return 0
        from emergelab.evaluate.stage import chance_rows, evaluate_rung
        from emergelab.measurements import write_part

        if not chance.exists():
            write_part(chance, chance_rows(self.spec, self.lay))
        if not self._missing_parts("eval"):
            return 0
        return self._rung_stage(evaluate_rung, "evaluate", len(self.spec.checkpoint_steps()))

    def _probe(self) -> int:
        if not self._missing_parts("probe"):
            return 0
        from emergelab.probe.stage import probe_rung

        return self._rung_stage(probe_rung, "probe", len(self.spec.checkpoint_steps()))

    def _finetune_preflight(self) -> None:
        """A bad fine-tuning task (one class, too few examples) fails before training, not after it."""
        from emergelab.finetune import stage as ft

        if ft.missing(self.spec, self.lay):
            ft.preflight(self.spec)

    def _finetune(self) -> int:
        from emergelab.finetune import stage as ft

        todo = ft.missing(self.spec, self.lay)
        if not todo:
            if (why := ft.skipped_because(self.spec)) and self.console is not None:
                self.console.print(f"finetune: {why}")
            return 0
        from emergelab.progress import RungProgress

        rungs = [r for r in ft.rungs(self.spec) if any(u.rung == r for u in todo)]
        with RungProgress(self.console, "finetune", rungs, len(ft.units(self.spec, rungs[0]))) as prog:
            res = self.workers.map_rungs(ft.finetune_rung, self.lay.root, rungs, "finetune", prog.update)
        return sum(res)

    def _combine(self) -> bool:
        digest = _parts_digest(self.lay)
        marker = self.lay.root / ".parts_digest"
        if self.lay.measurements.exists() and marker.exists() and marker.read_text() == digest:
            return False
        from emergelab.measurements import combine_parts

        combine_parts(self.lay.parts, self.lay.measurements)
        atomic_write_text(marker, digest)
        return True

    def _explain(self) -> int:
        changed = self._combine()
        if not changed and self.lay.explanations.exists():
            return 0
        from emergelab.explain.runner import run_explain

        with self._status("explaining curves"):
            run_explain(self.lay.measurements, self.lay.explanations, options=self.spec.explain)
        return 1

    def _report(self) -> int:
        src = [self.lay.measurements, self.lay.explanations]
        if self.lay.report.exists() and all(p.exists() and p.stat().st_mtime_ns <= self.lay.report.stat().st_mtime_ns for p in src):
            return 0
        from emergelab.report.build import build_report

        with self._status("writing the report"):
            build_report(self.lay.root)
        return 1

    def _status(self, text: str):
        import contextlib

        if self.console is None:
            return contextlib.nullcontext()
        return self.console.status(text)


def run_study(spec: StudySpec, root: Path, stages: list[str] | None = None, console=None) -> dict[str, int]:
    """Create or resume the study at ``root`` and run ``stages`` (default: all)."""
    root = Path(root)
    stages = list(stages or STAGES)
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        raise UserError(f"unknown stage {unknown[0]!r}; allowed: {', '.join(STAGES)}")
    if not (root / "study.yaml").exists() and root.exists() and any(p for p in root.iterdir() if p.name != ".lock"):
        raise UserError(f"{root} exists and is not an emergelab study; choose an empty or new --out directory")
    with StudyLock(root):
        lay = init_study(spec, root)
        return Runner(lay, spec, console).run(stages)


def run_stages(root: str | Path, stages: list[str], console=None) -> dict[str, int]:
    """Run stages of an existing study directory (its ``study.yaml`` is the spec)."""
    lay = Layout(Path(root))
    spec = load_resolved_spec(lay)
    with StudyLock(lay.root):
        return Runner(lay, spec, console).run(stages)


def summary(did: dict[str, int]) -> str:
    return json.dumps(did)
