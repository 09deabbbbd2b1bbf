"""The smoke study end to end: outputs, no-op re-runs, redoing exactly what a deleted checkpoint needs,
and a killed study that a re-run finishes with identical results."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from emergelab.measurements import SORT_KEY
from tests.conftest import drop_rungs, run_cli


def _table(study: Path) -> pd.DataFrame:
    return pd.read_parquet(study / "measurements.parquet").sort_values(SORT_KEY).reset_index(drop=True)


def _shas(study: Path) -> dict[str, str]:
    return {str(p.parent.relative_to(study)): json.loads(p.read_text())["weights_sha256"]
            for p in sorted(study.glob("runs/*/checkpoints/*/checkpoint.json"))}


def test_smoke_study_outputs(smoke_study):
    df = _table(smoke_study)
    assert {"train", "eval", "probe"} <= set(df.source)
    expl = json.loads((smoke_study / "explanations.json").read_text())
    verdicts = {(c["task"], c["metric"]) for c in expl["curves"] if c["verdict"]}
    assert ("induction", "exact_match") in verdicts and ("induction", "target_logprob") in verdicts
    html = (smoke_study / "report" / "index.html").read_text()
    assert "class='verdicts grid'" in html and "<script src" not in html and "<link" not in html
    man = json.loads(next(smoke_study.glob("runs/*/checkpoints/step-000000/checkpoint.json")).read_text())
    for key in ("rung", "step", "tokens_seen", "flops", "n_params", "weights_sha256", "spec_hash", "schema_version"):
        assert key in man
    assert (smoke_study / "study.yaml").read_text().startswith("# resolved study spec; spec_hash:")


def test_rerun_of_finished_study_is_a_fast_noop(smoke_copy):
    before = {p: p.stat().st_mtime_ns for p in smoke_copy.rglob("*") if p.is_file() and p.name != ".lock"}
    t0 = time.perf_counter()
    res = run_cli("study", "--preset", "smoke", "--out", str(smoke_copy))
    elapsed = time.perf_counter() - t0
    assert res.returncode == 0, res.stderr
    assert "Nothing to do" in res.stderr
    assert elapsed < 10
    after = {p: p.stat().st_mtime_ns for p in smoke_copy.rglob("*") if p.is_file() and p.name != ".lock"}
    assert before == after


def test_deleted_checkpoint_redoes_only_what_depends_on_it(smoke_copy):
    ref_table, ref_shas = _table(smoke_copy), _shas(smoke_copy)
    victim = next(smoke_copy.glob("runs/L2-d16/checkpoints/step-000008"))
    shutil.rmtree(victim)
    untouched = smoke_copy / "parts" / "eval" / "L2-d32" / "step-000008.parquet"
    mtime = untouched.stat().st_mtime_ns
    res = run_cli("study", "--preset", "smoke", "--out", str(smoke_copy))
    assert res.returncode == 0, res.stderr
    assert victim.exists()
    assert untouched.stat().st_mtime_ns == mtime  # other rungs' work was not redone
    assert _shas(smoke_copy) == ref_shas  # the same weights, bit for bit
    pd.testing.assert_frame_equal(_table(smoke_copy), ref_table)


def _finetune_parts(study: Path, rung: str, base: str) -> list[Path]:
    return sorted((study / "parts" / "finetune" / rung / base).rglob("*.parquet"))


def test_a_checkpoint_retrained_bit_identically_keeps_the_work_made_from_it(smoke_copy):
    ref_table = _table(smoke_copy)
    last = sorted(smoke_copy.glob("runs/L2-d16/checkpoints/step-*"))[-1]
    made_from_it = _finetune_parts(smoke_copy, "L2-d16", last.name) + [smoke_copy / "parts" / "eval" / "L2-d16" / f"{last.name}.parquet"]
    before = {p: p.stat().st_mtime_ns for p in made_from_it}
    shutil.rmtree(last)
    res = run_cli("study", "--preset", "smoke", "--out", str(smoke_copy))
    assert res.returncode == 0, res.stderr
    assert last.exists()
    # the parts record the checkpoint's sha256, which exact resume reproduces: nothing made from it is redone
    assert all(p.stat().st_mtime_ns == before[p] for p in made_from_it)
    pd.testing.assert_frame_equal(_table(smoke_copy), ref_table)


def test_a_checkpoint_with_other_weights_redoes_exactly_the_work_made_from_it(smoke_copy):
    import torch
    from transformers import AutoTokenizer

    from emergelab.models import checkpoint as ckpt

    last = sorted(smoke_copy.glob("runs/L2-d16/checkpoints/step-*"))[-1]
    tuned, scratch = _finetune_parts(smoke_copy, "L2-d16", last.name), _finetune_parts(smoke_copy, "L2-d16", "scratch")
    other = sorted((smoke_copy / "parts" / "finetune" / "L2-d64").rglob("*.parquet"))
    evals = {s: smoke_copy / "parts" / "eval" / "L2-d16" / f"{s}.parquet" for s in (last.name, "step-000008")}
    probe = smoke_copy / "parts" / "probe" / "L2-d16" / f"{last.name}.parquet"
    assert tuned and scratch and other
    before = {p: p.stat().st_mtime_ns for p in tuned + scratch + other + list(evals.values()) + [probe]}
    # a user puts other (valid) weights in place of the checkpoint: its manifest names their sha256
    model, man = ckpt.load_model(last), ckpt.read_manifest(last)
    with torch.no_grad():
        for prm in model.parameters():
            prm.mul_(0.5)
    ckpt.save_checkpoint(last, model, AutoTokenizer.from_pretrained(str(last)),
                         {k: v for k, v in man.items() if k not in ("weights_sha256", "schema_version", "versions")})
    res = run_cli("study", "--preset", "smoke", "--out", str(smoke_copy))
    assert res.returncode == 0, res.stderr
    redone = tuned + [evals[last.name], probe]
    assert all(p.stat().st_mtime_ns != before[p] for p in redone)  # made from the replaced checkpoint
    kept = scratch + other + [evals["step-000008"]]
    assert all(p.stat().st_mtime_ns == before[p] for p in kept)  # independent of it


def test_killed_study_rerun_finishes_identically(smoke_copy, smoke_study):
    """Killed while training (the largest rung, from prepare on: the others' work is the session study's)."""
    out = drop_rungs(smoke_copy, ("L2-d64",))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "emergelab", "study", "--preset", "smoke", "--out", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and not list(out.glob("runs/L2-d64/checkpoints/step-000016")):
        time.sleep(0.05)
    assert proc.poll() is None, "the study ended before it was killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "runs" / "L2-d64" / "checkpoints" / "step-000064").exists()  # killed mid-training
    res = run_cli("study", "--preset", "smoke", "--out", str(out))
    assert res.returncode == 0, res.stderr
    assert _shas(out) == _shas(smoke_study)
    pd.testing.assert_frame_equal(_table(out).drop(columns=[]), _table(smoke_study))
