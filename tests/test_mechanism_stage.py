"""The mechanism stage on the smoke study: a part per checkpoint with every link's rows, the baseline is the
evaluate stage's score, weights stay as trained, and a study killed inside the stage resumes to the same
rows with none twice."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from emergelab.layout import Layout
from emergelab.measurements import SORT_KEY, parse_mechanism_metric
from emergelab.study import load_resolved
from tests.conftest import run_cli

LINKS = {"heads/induction", "heads/previous_token", "in_repeat"}  # the induction world's map


def _mech(study: Path) -> pd.DataFrame:
    parts = sorted((study / "parts" / "mechanism").rglob("*.parquet"))
    return pd.concat([pd.read_parquet(p) for p in parts]).sort_values(SORT_KEY).reset_index(drop=True)


def test_every_checkpoint_has_every_links_rows(smoke_study):
    df = _mech(smoke_study)
    n_ck = len(list(smoke_study.glob("runs/*/checkpoints/step-*")))
    assert len(list((smoke_study / "parts" / "mechanism").rglob("*.parquet"))) == n_ck
    parsed = df.metric.map(parse_mechanism_metric)
    assert parsed.notna().all() and set(df.source) == {"mechanism"} and set(df.task) == {"induction"}
    assert {p[2] for p in parsed} == LINKS and {p[0] for p in parsed} == {"drop", "control_drop", "specificity"}
    key = ["rung", "seed", "step", "task", "k_shot", "metric"]
    assert not df.duplicated(key).any()
    wide = df.assign(q=[p[0] for p in parsed], m=[p[1] + "|" + p[2] for p in parsed]).pivot_table(
        index=["rung", "step", "m"], columns="q", values="value")
    assert np.allclose(wide["drop"] - wide["control_drop"], wide["specificity"], atol=1e-9)
    assert df.stderr.notna().all() and (df.n == 16).all()  # the smoke preset's mechanism.n_examples


def test_the_unablated_score_is_the_evaluate_stages(smoke_study):
    """The stage re-scores with the evaluate stage's code: its baseline equals the eval rows exactly."""
    from emergelab.evaluate.runner import plan_task
    from emergelab.stages.checkpoints import load_model, local_path, study_checkpoints
    from emergelab.stages.evaluate import _study_model, study_tasks, study_tokenizer
    from emergelab.stages.mechanism import _score

    lay = Layout(smoke_study)
    spec = load_resolved(lay)
    ck = [c for c in study_checkpoints(spec, lay) if c.rung == "L2-d32"][-1]
    path = local_path(ck, lay)
    lm = _study_model(load_model(ck, spec, path), study_tokenizer(spec, lay, path), spec, "x")
    ((ts, data, shots),) = [t for t in study_tasks(spec, lay) if t[0].task == "induction"]
    per = _score(lm, {"induction": (ts, plan_task(lm, ts, data, shots))}, "induction", spec.eval.batch_size)[0]
    ev = pd.read_parquet(lay.part("eval", ck.run, ck.step))
    ev = ev[(ev.task == "induction") & (ev.k_shot == 0)].set_index("metric").value
    for metric in per[0]:
        assert np.mean([p[metric] for p in per]) == pytest.approx(ev[metric], abs=1e-12)


def test_disabled_or_linkless_studies_have_no_mechanism_units(smoke_study):
    from emergelab.stages import mechanism

    lay = Layout(smoke_study)
    spec = load_resolved(lay)
    assert mechanism.todo(spec, lay) == []  # finished
    off = spec.model_copy(update={"mechanism": spec.mechanism.model_copy(update={"enabled": False})})
    assert mechanism.study_links(off, lay) == []


def _shas(study: Path) -> dict[str, str]:
    return {str(p.parent.relative_to(study)): json.loads(p.read_text())["weights_sha256"]
            for p in sorted(study.glob("runs/*/checkpoints/*/checkpoint.json"))}


def test_killed_inside_the_stage_a_rerun_gives_the_same_rows_once(smoke_copy, smoke_study):
    ref = _mech(smoke_study)
    victims = sorted((smoke_copy / "parts" / "mechanism").rglob("*.parquet"))[::3]
    for p in victims:
        p.unlink()
    (smoke_copy / "measurements.parquet").unlink()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "EMERGELAB_FAULT": "mechanism:2"}
    proc = subprocess.run([sys.executable, "-m", "emergelab", "study", "--preset", "smoke", "--out", str(smoke_copy)],
                          capture_output=True, text=True, env=env, start_new_session=True, timeout=600)
    assert proc.returncode == -9, proc.stderr[-2000:]
    assert sum(p.exists() for p in victims) == 1  # one part written, the second killed before its rename
    res = run_cli("study", "--preset", "smoke", "--out", str(smoke_copy))
    assert res.returncode == 0, res.stderr[-3000:]
    pd.testing.assert_frame_equal(_mech(smoke_copy), ref)
    table = pd.read_parquet(smoke_copy / "measurements.parquet")
    mech = table[table.source == "mechanism"]
    assert len(mech) == len(ref) and not mech.duplicated(["rung", "seed", "step", "task", "k_shot", "metric"]).any()
    assert _shas(smoke_copy) == _shas(smoke_study)  # the interventions left every checkpoint as trained
    shutil.rmtree(smoke_copy / "report", ignore_errors=True)
