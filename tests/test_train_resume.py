"""Exact resume: `emergelab train` killed with SIGKILL at seeded-random moments and re-run finishes with
weights whose sha256 equals an uninterrupted run's (same machine, same thread count)."""
from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from emergelab.io import sha256_file
from tests.conftest import run_cli

STEPS = 24
SETS = ["ladder=[{name: r, n_layer: 2, d_model: 16, n_head: 2}]", f"train.steps={STEPS}", "train.checkpoint_every=6",
        "train.batch_size=8", "train.log_every=1", "train.workers=1", "train.warmup=4", "train.schedule=cosine",
        "train.weight_decay=0.1"]
CASES = {"mlm_nsp": ["objectives=[mlm,nsp]", "train.grad_accum=2", "mlm.whole_word=true"], "clm": []}


def _prepare_and_train_reference(tmp_path: Path, extra: list[str]) -> tuple[Path, Path]:
    """A prepared study copied twice; the reference copy is trained in this process (same thread count)."""
    from emergelab.study import read_spec, run_stages, run_study

    ref, killed = tmp_path / "ref", tmp_path / "killed"
    run_study(read_spec(preset="smoke", overrides=SETS + extra), ref, ["prepare"])
    shutil.copytree(ref, killed)
    run_stages(ref, ["train"])
    return ref, killed


def _weights(out: Path) -> dict[str, str]:
    ck = out / "runs" / "r" / "checkpoints"
    return {d.name: sha256_file(d / "model.safetensors") for d in sorted(ck.iterdir()) if d.name.startswith("step-")}


def _losses(out: Path) -> list[tuple]:
    import json

    lines = (out / "runs" / "r" / "logs" / "train.jsonl").read_text().splitlines()
    return [tuple(v for k, v in sorted(json.loads(l).items()) if k != "tokens_per_s") for l in lines]


def _kill_during_training(out: Path, rng: random.Random) -> int:
    """Start `emergelab train`, wait for a seeded-random number of logged steps plus a random fraction
    of a step, SIGKILL it; returns the number of steps logged when it was killed."""
    import json

    log = out / "runs" / "r" / "logs" / "train.jsonl"
    state = out / "runs" / "r" / "state" / "state.json"
    resume_step = json.loads(state.read_text())["step"] if state.exists() else 0
    old_inode = log.stat().st_ino if log.exists() else None  # a resumed run first rewrites the log
    if resume_step + 1 > STEPS - 2:  # the last kill came after the final state was saved: nothing left to cut
        return len(log.read_text().splitlines())
    target = rng.randint(resume_step + 1, STEPS - 2)
    proc = subprocess.Popen([sys.executable, "-m", "emergelab", "train", str(out)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:
            if log.exists() and log.stat().st_ino != old_inode and len(log.read_text().splitlines()) >= target:
                break
            time.sleep(0.005)
        time.sleep(rng.uniform(0.0, 0.05))
        assert proc.poll() is None, "training finished before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
    return len(log.read_text().splitlines())


def _check(ref: Path, killed: Path) -> None:
    assert _weights(killed) == _weights(ref)
    assert f"step-{STEPS:06d}" in _weights(ref)
    assert _losses(killed) == _losses(ref)
    assert not list(killed.rglob(".*.tmp"))


def test_sigkill_during_mlm_nsp_training_and_resume_gives_identical_weights(tmp_path):
    ref, killed = _prepare_and_train_reference(tmp_path, CASES["mlm_nsp"])
    _kill_during_training(killed, random.Random("resume"))
    res = run_cli("train", str(killed))
    assert res.returncode == 0, res.stderr[-2000:]
    _check(ref, killed)


@pytest.mark.faults
@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("seed", range(3))
def test_sigkill_matrix(tmp_path, case, seed):
    """make test-faults: both objectives, killed twice at later and later seeded-random moments."""
    ref, killed = _prepare_and_train_reference(tmp_path, CASES[case])
    rng = random.Random(f"resume-{case}-{seed}")
    for _ in range(2):
        _kill_during_training(killed, rng)
    res = run_cli("train", str(killed))
    assert res.returncode == 0, res.stderr[-2000:]
    _check(ref, killed)
