"""The report stage: ``report/index.html`` from the measurements and explanations.

One unit, current when its stamp records the sha256 of the measurement table and of the explanations
it was built from, and of the report package's own code (a new emergelab redraws an old study's report).
"""
from __future__ import annotations

import functools
import hashlib
from pathlib import Path

from emergelab.io import sha256_file
from emergelab.layout import Layout
from emergelab.spec import StudySpec, dump_yaml
from emergelab.stages.base import Stage, Unit, stamp_is_current, write_stamp


@functools.cache
def report_code_sha() -> str:
    """sha256 over the source files of ``emergelab.report`` (names and contents, in name order)."""
    root = Path(__file__).resolve().parent.parent / "report"
    h = hashlib.sha256()
    for f in sorted(root.rglob("*.py")):
        h.update(f.relative_to(root).as_posix().encode() + b"\0" + f.read_bytes())
    return h.hexdigest()


def inputs(lay: Layout) -> dict:
    files = {p.name: sha256_file(p) for p in (lay.measurements, lay.explanations, lay.suite_audit) if p.exists()}
    return {**files, "report_code": report_code_sha()}


def todo(spec: StudySpec, lay: Layout) -> list[Unit]:
    if not lay.measurements.exists():
        return [Unit("report", ("index",))]  # run() says what is missing
    return [] if stamp_is_current(lay, "report", [lay.report], inputs(lay)) else [Unit("report", ("index",))]


def run(spec: StudySpec, lay: Layout, units: list[Unit], progress=None) -> int:
    from emergelab.report.build import build_report, require_study  # pandas and plotly: out of the no-op path

    require_study(lay.root)
    stamp = inputs(lay)
    build_report(lay.root, dump_yaml(spec))
    write_stamp(lay, "report", stamp)
    return 1


STAGE = Stage("report", todo, run, status="writing the report")
