"""The explain stage: combine the parts into ``measurements.parquet``, then fit, score and judge every curve.

One unit. Its output is current when the stamp records the parts' digest (names, sizes, mtimes), the
spec's ``explain`` options, the mechanism map it was made from and the explain package's code, so a new part (``emergelab evaluate
DIR``) or another option makes it stale. Leads follow the world's mechanism map (``leads: linked``).
"""
from __future__ import annotations

import emergelab
from emergelab.layout import Layout
from emergelab.spec import StudySpec
from emergelab.spec.explain import EXPLANATIONS_SCHEMA
from emergelab.stages.base import Stage, Unit, code_sha, stamp_is_current, write_stamp


def links(lay: Layout) -> list[list[str]] | None:
    """The study's mechanism map (``(signal, task)`` pairs from the data manifest), if it has one."""
    if not lay.data_dir.exists():
        return None
    mech = lay.data_dir.manifest().get("mechanisms")
    return None if mech is None else [[m["signal"], m["task"]] for m in mech]  # lists: the stamp is JSON


def inputs(spec: StudySpec, lay: Layout) -> dict:
    return {"parts": lay.parts_digest(), "options": spec.explain.model_dump(mode="json"), "links": links(lay),
            "engine": f"{emergelab.__version__}/schema-{EXPLANATIONS_SCHEMA}", "explain_code": code_sha("explain")}


def todo(spec: StudySpec, lay: Layout) -> list[Unit]:
    current = stamp_is_current(lay, "explain", [lay.measurements, lay.explanations], inputs(spec, lay))
    return [] if current else [Unit("explain", ("explanations",))]


def run(spec: StudySpec, lay: Layout, units: list[Unit], progress=None) -> int:
    from emergelab.explain.runner import run_explain  # pandas, scipy: out of the no-op path
    from emergelab.measurements import combine_parts

    stamp = inputs(spec, lay)
    combine_parts(lay.parts, lay.measurements)
    run_explain(lay.measurements, lay.explanations, options=spec.explain, links=stamp["links"])
    write_stamp(lay, "explain", stamp)
    return 1


STAGE = Stage("explain", todo, run, status="explaining curves")
