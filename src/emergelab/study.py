"""Run a study: read and validate its spec once, take the directory lock, and loop over the stages.

The runner knows no stage's internals: each stage module (``emergelab.stages.<name>``) says which units
are left (``todo``) and does them (``run``); the executor hands one group of units (a rung's) to a
worker process. See ``emergelab.stages.base`` for the contract and docs/architecture.md for the layers.
"""
from __future__ import annotations

import contextlib
import importlib
import time
from pathlib import Path

import yaml

from emergelab.errors import UserError
from emergelab.executor import LocalExecutor
from emergelab.io import StudyLock, atomic_write_json, atomic_write_text, clean_stale_temps, read_json
from emergelab.layout import Layout
from emergelab.preflight import Plan, plan
from emergelab.preflight.suite import suite_plan
from emergelab.progress import RungProgress
from emergelab.spec import StudySpec, dump_yaml, parse, spec_data
from emergelab.stages.base import Stage, Unit

STAGES = ("prepare", "train", "suite", "evaluate", "probe", "mechanism", "finetune", "explain", "report")


def stage(name: str) -> Stage:
    """The stage called ``name`` (its module is imported on first use)."""
    if name not in STAGES:
        raise UserError(f"unknown stage {name!r}; allowed: {', '.join(STAGES)}")
    return importlib.import_module(f"emergelab.stages.{name}").STAGE


# ------------------------------------------------------------------ the spec, read once

def validate(data: dict, where: str = "spec") -> StudySpec:
    """The one way to a spec the stages trust: the schema, then every stage's ``resolve`` in order."""
    spec = parse(data, where)
    for name in STAGES:
        try:
            spec = stage(name).resolve(spec)
        except UserError as exc:
            raise UserError(f"{where}: {exc}") from None
    return spec


def read_spec(path: str | Path | None = None, preset: str | None = None, overrides: list[str] | None = None) -> StudySpec:
    """A spec file or preset with ``--set`` overrides, validated."""
    return validate(*spec_data(path, preset, overrides))


def load_resolved(lay: Layout) -> StudySpec:
    """The spec of an existing study directory (its ``study.yaml``), validated."""
    if not lay.spec.exists():
        raise UserError(f"{lay.root} is not a study directory (no study.yaml); create one with `emergelab study --out {lay.root}`")
    try:
        data = yaml.safe_load(lay.spec.read_text())
    except yaml.YAMLError:
        raise UserError(f"{lay.spec} is not valid YAML; restore it or start a new study with another --out") from None
    data = data if isinstance(data, dict) else {}
    try:
        return validate(data, str(lay.spec))
    except UserError as exc:
        if ": explain." not in str(exc) or "explain" not in data:
            raise
        # an explain section of an older engine: explanations are not hashed, so its defaults take over
        return validate({k: v for k, v in data.items() if k != "explain"}, str(lay.spec))


def init_study(spec: StudySpec, root: Path) -> Layout:
    """Create the study directory with its resolved spec, or check that it holds the same spec."""
    lay = Layout(root)
    if lay.spec.exists():
        old = load_resolved(lay)
        started = lay.data_dir.exists() or (root / "runs").exists()
        if (old.hash() != spec.hash() and not started) or (old.hash() == spec.hash() and old != spec):
            atomic_write_text(lay.spec, dump_yaml(spec))  # nothing computed yet, or only how it is run/explained changed
        elif old.hash() != spec.hash():
            raise UserError(
                f"{root} holds a study with a different spec (hash {old.hash()} vs {spec.hash()}); "
                "use another --out, or delete the directory to start over")
        return lay
    _check_new_dir(root)
    atomic_write_text(lay.spec, dump_yaml(spec))
    return lay


def _check_new_dir(root: Path) -> None:
    if root.exists() and not (root / "study.yaml").exists() and any(p for p in root.iterdir() if p.name != ".lock"):
        raise UserError(f"{root} exists and is not an emergelab study; choose an empty or new --out directory")


# ------------------------------------------------------------------ the loop

def make_executor(spec: StudySpec, kind: str | None = None):
    """The executor of ``kind`` (default: the spec's ``executor``): local processes, or Ray tasks."""
    if (kind or spec.executor) == "ray":
        from emergelab.executor_ray import RayExecutor  # Ray is an optional extra: imported only when chosen

        return RayExecutor(spec)
    return LocalExecutor(spec.train.workers)


def _groups(units: list[Unit]) -> list[list[Unit]]:
    """Units grouped by ``group``, groups in the order their first unit appears."""
    out: dict[str, list[Unit]] = {}
    for u in units:
        out.setdefault(u.group, []).append(u)
    return list(out.values())


class Runner:
    """Runs the chosen stages of one study directory, recording what was done and how long it took."""

    def __init__(self, lay: Layout, spec: StudySpec, console=None, executor=None):
        self.lay, self.spec, self.console = lay, spec, console
        self.executor = executor or make_executor(spec)
        self.timings: dict[str, float] = read_json(lay.timings) if lay.timings.exists() else {}

    def run(self, stages: list[str]) -> dict[str, int]:
        chosen = [stage(s) for s in STAGES if s in stages]
        clean_stale_temps(self.lay.root)
        did: dict[str, int] = {}
        try:
            for st in chosen:
                t0 = time.perf_counter()
                did[st.name] = n = self._stage(st)
                if n:
                    self.timings[st.name] = round(time.perf_counter() - t0, 2)
                    atomic_write_json(self.lay.timings, self.timings)
        finally:
            self.executor.close()
        return did

    def _stage(self, st: Stage) -> int:
        units = st.todo(self.spec, self.lay)
        if not units:
            if st.note is not None and (why := st.note(self.spec)) and self.console is not None:
                self.console.print(f"{st.name}: {why}")
            return 0
        groups = _groups(units)
        if st.status is not None:
            with self._status(st.status):
                return sum(self.executor.map(st.name, self.spec, self.lay.root, groups, None))
        names = [g[0].group for g in groups]
        with RungProgress(self.console, st.name, names, st.total(self.spec, groups[0])) as prog:
            return sum(self.executor.map(st.name, self.spec, self.lay.root, groups, prog.update))

    def _status(self, text: str):
        return contextlib.nullcontext() if self.console is None else self.console.status(text)


def has_work(spec: StudySpec, lay: Layout, stages: list[str]) -> bool:
    """Whether any chosen stage has a unit left (cheap: what a finished study's no-op re-run checks)."""
    return any(stage(s).todo(spec, lay) for s in STAGES if s in stages)


def dry_run(spec: StudySpec, root: Path, stages: list[str] | None = None) -> Plan:
    """The preflight of a study, writing nothing to ``root``."""
    root, stages = Path(root), list(stages or STAGES)
    for s in stages:
        stage(s)
    _check_new_dir(root)
    lay = Layout(root)
    if lay.spec.exists() and load_resolved(lay).hash() != spec.hash():
        raise UserError(f"{root} holds a study with a different spec; use another --out, or delete the directory to start over")
    return suite_plan(spec) if spec.is_suite else plan(spec, lay, stages)


def _preflight(spec: StudySpec, lay: Layout, stages: list[str], console, *, estimate: bool = True) -> None:
    """Before anything is written: the stages' input checks (a fine-tuning data file), then the estimates,
    printed, refusing what cannot fit. Nothing at all when no stage has work left."""
    if not has_work(spec, lay, stages):
        return
    if spec.is_suite and estimate:  # the checkpoints' sizes and memory, before any is fetched
        lines = suite_plan(spec).lines()
        for line in lines if console is not None else []:
            console.print(line, markup=False, highlight=False)
    for name in STAGES:
        st = stage(name)
        if name in stages and st.preflight is not None:
            st.preflight(spec, lay)
    if not estimate or spec.is_suite:  # suite: the preflight's cost model is for trained ladders (issue 19)
        return
    if console is not None:
        for line in plan(spec, lay, stages).lines():
            console.print(line, markup=False, highlight=False)


def run_study(spec: StudySpec, root: Path, stages: list[str] | None = None, console=None, executor=None, *,
              preflight: bool = True) -> dict[str, int]:
    """Create or resume the study at ``root`` and run ``stages`` (default: all). The preflight runs first
    and refuses, before anything is written, a study that would not fit on the disk or in memory."""
    root = Path(root)
    stages = list(stages or STAGES)
    for s in stages:
        stage(s)  # an unknown name fails before the directory is touched
    _check_new_dir(root)
    executor = executor or make_executor(spec)  # a missing Ray fails here, before anything is written
    _preflight(spec, Layout(root), stages, console, estimate=preflight)
    with StudyLock(root):
        lay = init_study(spec, root)
        return Runner(lay, spec, console, executor).run(stages)


def run_stages(root: str | Path, stages: list[str], console=None, executor=None, *, preflight: bool = True) -> dict[str, int]:
    """Run stages of an existing study directory (its ``study.yaml`` is the spec)."""
    lay = Layout(Path(root))
    spec = load_resolved(lay)
    executor = executor or make_executor(spec)
    _preflight(spec, lay, stages, console, estimate=preflight)
    with StudyLock(lay.root):
        return Runner(lay, spec, console, executor).run(stages)


def run_launched(root: str | Path, stage_name: str, console=None, *, main: bool) -> int:
    """Run one stage in every process of a launched group (``accelerate launch``): each process does every
    unit, in the same order; only the main process holds the lock (and the units write only there)."""
    lay = Layout(Path(root))
    spec = load_resolved(lay)
    st = stage(stage_name)
    with StudyLock(lay.root) if main else contextlib.nullcontext():
        if main:
            clean_stale_temps(lay.root)
        groups = _groups(st.todo(spec, lay))
        names = [g[0].group for g in groups]
        total = st.total(spec, groups[0]) if groups else 0
        with RungProgress(console if main else None, stage_name, names, total) as prog:
            return sum(st.run(spec, lay, g, prog.update if main else None) for g in groups)
