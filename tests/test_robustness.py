"""Integrity, concurrency and disk faults: corrupted weights are caught and redone, a second study on
the same directory is refused, a full or read-only disk is one clear line and corrupts nothing."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pandas as pd
import pytest

from emergelab.measurements import SORT_KEY
from tests.conftest import run_cli


def _shas(study: Path) -> dict[str, str]:
    return {str(p.parent.relative_to(study)): json.loads(p.read_text())["weights_sha256"]
            for p in sorted(study.glob("runs/*/checkpoints/*/checkpoint.json"))}


def test_corrupted_checkpoint_is_reported_and_redone(smoke_copy):
    ref = _shas(smoke_copy)
    table = pd.read_parquet(smoke_copy / "measurements.parquet").sort_values(SORT_KEY).reset_index(drop=True)
    ckpt = smoke_copy / "runs" / "L2-d32" / "checkpoints" / "step-000016"
    weights = ckpt / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])  # truncated
    # loading it for analysis is refused in one line
    (smoke_copy / "parts" / "eval" / "L2-d32" / "step-000016.parquet").unlink()
    from emergelab.errors import UserError
    from emergelab.models.checkpoint import verify_checkpoint

    with pytest.raises(UserError, match="corrupted"):
        verify_checkpoint(ckpt)
    # the next study run retrains exactly that checkpoint and re-measures it
    res = run_cli("study", "--preset", "smoke", "--out", str(smoke_copy))
    assert res.returncode == 0, res.stderr[-2000:]
    assert _shas(smoke_copy) == ref
    after = pd.read_parquet(smoke_copy / "measurements.parquet").sort_values(SORT_KEY).reset_index(drop=True)
    pd.testing.assert_frame_equal(after, table)


def test_second_study_on_the_same_directory_is_refused(tmp_path):
    out = tmp_path / "s"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    first = subprocess.Popen([sys.executable, "-m", "emergelab", "study", "--preset", "smoke", "--out", str(out)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True)
    try:
        deadline = time.time() + 60
        while time.time() < deadline and not (out / "study.yaml").exists():
            time.sleep(0.05)
        second = run_cli("study", "--preset", "smoke", "--out", str(out))
        assert second.returncode == 2
        assert "another emergelab process is working on" in second.stderr
        assert "Traceback" not in second.stderr
    finally:
        os.killpg(first.pid, 9)
        first.wait()
    # a crashed holder does not leave the lock stuck: a new run proceeds
    res = run_cli("study", "--preset", "smoke", "--out", str(out), "--stages", "prepare")
    assert res.returncode == 0, res.stderr[-2000:]


def _mount_tmpfs(path: Path, size: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    if shutil.which("mount") is None or os.geteuid() != 0:
        return False
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True).returncode == 0


@pytest.fixture
def small_disk(tmp_path):
    mnt = tmp_path / f"disk-{uuid.uuid4().hex[:6]}"
    if not _mount_tmpfs(mnt, "600k"):
        pytest.skip("cannot mount a small tmpfs here (needs root and mount)")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_disk_full_is_one_clear_line_and_keeps_finished_work(small_disk):
    out = small_disk / "study"
    res = run_cli("study", "--preset", "smoke", "--out", str(out))  # the preflight sees it coming
    assert res.returncode == 2 and "on disk" in res.stderr and "free" in res.stderr, res.stderr[-2000:]
    assert not out.exists()  # refused before anything was written
    res = run_cli("study", "--preset", "smoke", "--no-preflight", "--out", str(out))  # the disk fills while running
    assert res.returncode == 2, res.stderr[-2000:]
    errors = [l for l in res.stderr.splitlines() if l.startswith("error:")]
    assert len(errors) == 1 and "no space left" in errors[0], res.stderr[-2000:]
    assert "Traceback" not in res.stderr
    assert not list(out.rglob(".*.tmp"))  # no torn temporary files left behind
    from emergelab.models.checkpoint import is_valid, list_checkpoints

    for ck in out.glob("runs/*/checkpoints"):
        assert all(is_valid(p) for p in list_checkpoints(ck).values())  # what exists is whole


def test_read_only_output_is_one_clear_line(small_disk):
    (small_disk / "ro").mkdir()
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True, capture_output=True)
    res = run_cli("study", "--preset", "smoke", "--out", str(small_disk / "ro" / "study"))
    assert res.returncode == 2
    errors = [l for l in res.stderr.splitlines() if l.startswith("error:")]
    assert len(errors) == 1 and "read-only" in errors[0], res.stderr[-2000:]
    res = run_cli("study", "--preset", "smoke", "--no-preflight", "--out", str(small_disk / "ro" / "study"))
    errors = [l for l in res.stderr.splitlines() if l.startswith("error:")]
    assert res.returncode == 2 and len(errors) == 1 and "read-only" in errors[0], res.stderr[-2000:]
    assert "Traceback" not in res.stderr
