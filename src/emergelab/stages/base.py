"""The stage contract: what a stage's units of work are, which are left to do, and how they run.

A stage is a module with a ``STAGE = Stage(...)`` of four functions:

- ``todo(spec, lay) -> list[Unit]`` — the units whose output is missing or stale; cheap (paths, manifests
  and Parquet footers, never torch), so that a finished study's no-op re-run takes well under a second;
- ``run(spec, lay, units, progress) -> int`` — do the units (all of one ``group``, e.g. one rung, in one
  worker process) and return how many were done; ``progress(group, done, total, *extra)``;
- ``resolve(spec) -> spec`` (optional) — checks and defaults that need the stage's library, run when the
  spec is validated at the edge (a bad fine-tuning task fails before anything trains);
- ``total(spec, units) -> int`` (optional) — the progress bar's length per group (default: the units);
- ``preflight(spec, lay)`` and ``note(spec)`` (optional) — input checks run before any stage, and why
  a stage that was asked for has nothing to do.

Invalidation follows from declarations: a unit's output records the digests of its ``inputs`` (a
checkpoint's weights sha256, the parts an explanation was made from), and ``todo`` compares them with
the current ones. No stage deletes another's files.
"""
from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from emergelab.io import atomic_write_json, part_inputs, read_json
from emergelab.layout import Layout
from emergelab.spec import StudySpec

Progress = Callable[..., None]


@dataclass(frozen=True)
class Unit:
    """One unit of work of a stage: ``key`` names it (e.g. ``(rung, step)``); units of one ``group`` run
    in one worker call, in order; ``inputs`` are the digests its output is valid for."""

    stage: str
    key: tuple
    group: str = ""
    inputs: dict[str, str] = field(default_factory=dict, compare=False, hash=False)


def _identity(spec: StudySpec) -> StudySpec:
    return spec


def _count(spec: StudySpec, units: list[Unit]) -> int:
    return len(units)


@dataclass(frozen=True)
class Stage:
    name: str
    todo: Callable[[StudySpec, Layout], list[Unit]]
    run: Callable[[StudySpec, Layout, list[Unit], Progress | None], int]
    resolve: Callable[[StudySpec], StudySpec] = _identity
    total: Callable[[StudySpec, list[Unit]], int] = _count
    #: a short phrase for the spinner of a one-unit stage (None: a per-group progress bar)
    status: str | None = None
    #: checks of the stage's inputs (its data files) run before any stage runs, so bad input fails in seconds
    preflight: Callable[[StudySpec, Layout], None] | None = None
    #: why a stage that is asked for runs nothing (printed once), if it says so
    note: Callable[[StudySpec], str | None] | None = None


def part_is_current(path: Path, inputs: dict[str, str]) -> bool:
    """A part exists and was computed from exactly ``inputs`` (read from its Parquet footer)."""
    return path.exists() and part_inputs(path) == inputs


def stamp_is_current(lay: Layout, name: str, outputs: list[Path], inputs: dict[str, Any]) -> bool:
    """A whole-study output (``outputs``) exists and its stamp records ``inputs``."""
    stamp = lay.stamp(name)
    if not stamp.exists() or not all(p.exists() for p in outputs):
        return False
    try:
        return read_json(stamp) == inputs
    except ValueError:  # a torn stamp: redo
        return False


def write_stamp(lay: Layout, name: str, inputs: dict[str, Any]) -> None:
    atomic_write_json(lay.stamp(name), inputs)


@functools.cache
def code_sha(package: str) -> str:
    """sha256 over the source files of ``emergelab.<package>`` (names and contents, in name order): in a
    stamp, it makes a stage's output stale when a new emergelab computes it differently."""
    root = Path(__file__).resolve().parent.parent / package
    h = hashlib.sha256()
    for f in sorted(root.rglob("*.py")):
        h.update(f.relative_to(root).as_posix().encode() + b"\0" + f.read_bytes())
    return h.hexdigest()
