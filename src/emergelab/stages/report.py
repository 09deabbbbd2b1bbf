"""The report stage: ``report/index.html`` from the measurements and explanations.

One unit, current when its stamp records the sha256 of the measurement table and of the explanations
it was built from, and of the report package's own code (a new emergelab redraws an old study's report).
"""
from __future__ import annotations

from emergelab.io import sha256_file
from emergelab.layout import Layout
from emergelab.spec import StudySpec, dump_yaml
from emergelab.stages.base import Stage, Unit, code_sha, stamp_is_current, write_stamp


def report_code_sha() -> str:
    """sha256 over the source files of ``emergelab.report``."""
    return code_sha("report")


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
