"""The report stage: ``report/index.html`` from the measurements and explanations.

One unit, current when its stamp records the sha256 of the measurement table and of the explanations
it was built from.
"""
from __future__ import annotations

from emergelab.io import sha256_file
from emergelab.layout import Layout
from emergelab.spec import StudySpec, dump_yaml
from emergelab.stages.base import Stage, Unit, stamp_is_current, write_stamp


def inputs(lay: Layout) -> dict:
    return {p.name: sha256_file(p) for p in (lay.measurements, lay.explanations, lay.suite_audit) if p.exists()}


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
