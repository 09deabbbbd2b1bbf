"""Fault injection: SIGKILL a study at seeded points in every stage, re-run it, and get exactly the
uninterrupted study's checkpoints (sha256) and measurements. Run with `make test-faults`."""
from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from emergelab.measurements import SORT_KEY
from tests.conftest import run_cli

pytestmark = pytest.mark.faults

# writes per stage in the smoke study (upper bounds for the seeded choice of kill points)
WRITES = {"prepare": 6, "train": 60, "evaluate": 30, "probe": 30, "mechanism": 30, "finetune": 8, "explain": 3, "report": 6}
POINTS = [(stage, k) for stage, n in WRITES.items()
          for k in sorted(random.Random(f"faults/{stage}").sample(range(1, n + 1), 3))]


def _shas(study: Path) -> dict[str, str]:
    return {str(p.parent.relative_to(study)): json.loads(p.read_text())["weights_sha256"]
            for p in sorted(study.glob("runs/*/checkpoints/*/checkpoint.json"))}


def _table(study: Path) -> pd.DataFrame:
    return pd.read_parquet(study / "measurements.parquet").sort_values(SORT_KEY).reset_index(drop=True)


@pytest.mark.parametrize("stage, k", POINTS, ids=[f"{s}-{k}" for s, k in POINTS])
def test_kill_and_rerun_gives_the_uninterrupted_result(stage, k, smoke_study, tmp_path):
    out = tmp_path / "study"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "EMERGELAB_FAULT": f"{stage}:{k}"}
    proc = subprocess.run([sys.executable, "-m", "emergelab", "study", "--preset", "smoke", "--out", str(out)],
                          capture_output=True, text=True, env=env, start_new_session=True, timeout=600)
    assert proc.returncode == -9, f"the fault {stage}:{k} did not fire (rc={proc.returncode})"
    res = run_cli("study", "--preset", "smoke", "--out", str(out))
    assert res.returncode == 0, res.stderr[-3000:]
    assert not list(out.rglob(".*.tmp")), "a temporary file survived the re-run"
    assert _shas(out) == _shas(smoke_study)
    pd.testing.assert_frame_equal(_table(out), _table(smoke_study))
    assert (out / "report" / "index.html").exists()


# an external suite (issue 19): the smoke study's checkpoints as local directories, analysed as a suite
SUITE_POINTS = [("suite", 1), ("evaluate", 3), ("probe", 5)]


def _suite_spec(smoke_study: Path, path: Path) -> Path:
    import yaml

    import emergelab

    spec = yaml.safe_load((Path(emergelab.__file__).parent / "presets" / "smoke.yaml").read_text())
    spec.pop("finetune")
    spec["ladder"] = [{"name": r, "models": str(smoke_study / "runs" / r / "checkpoints" / "step-*"), "tokens_per_step": 512}
                      for r in ("L1-d8", "L2-d16")]
    path.write_text(yaml.safe_dump(spec))
    return path


@pytest.fixture(scope="module")
def suite_reference(smoke_study, tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("suite")
    spec = _suite_spec(smoke_study, root / "suite.yaml")
    res = run_cli("study", str(spec), "--out", str(root / "study"))
    assert res.returncode == 0, res.stderr[-3000:]
    return spec, root / "study"


@pytest.mark.parametrize("stage, k", SUITE_POINTS, ids=[f"suite-study-{s}-{k}" for s, k in SUITE_POINTS])
def test_killed_suite_study_resumes_with_nothing_lost_or_doubled(stage, k, suite_reference, tmp_path):
    spec, ref = suite_reference
    out = tmp_path / "study"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "EMERGELAB_FAULT": f"{stage}:{k}"}
    proc = subprocess.run([sys.executable, "-m", "emergelab", "study", str(spec), "--out", str(out)],
                          capture_output=True, text=True, env=env, start_new_session=True, timeout=600)
    assert proc.returncode == -9, f"the fault {stage}:{k} did not fire (rc={proc.returncode})"
    res = run_cli("study", str(spec), "--out", str(out))
    assert res.returncode == 0, res.stderr[-3000:]
    assert not list(out.rglob(".*.tmp")), "a temporary file survived the re-run"
    audit = lambda d: {k: v for k, v in json.loads((d / "suite_audit.json").read_text()).items() if k != "inputs"}  # noqa: E731
    assert audit(out) == audit(ref)
    table = _table(out)
    assert not table.duplicated(subset=[c for c in SORT_KEY if c in table]).any()
    pd.testing.assert_frame_equal(table, _table(ref))
    assert (out / "report" / "index.html").exists()
