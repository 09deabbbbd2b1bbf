"""Scale-out: `emergelab train` under `accelerate launch` with two CPU processes (DDP over gloo) sees the
same global batches and follows the one-process loss curve."""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

SETS = ["ladder=[{name: r, n_layer: 2, d_model: 16, n_head: 2}]", "train.steps=6", "train.batch_size=8",
        "train.log_every=1", "train.workers=1", "objectives=[mlm,nsp]", "train.grad_accum=2",
        "train.bf16=false"]  # the parity below is fp32's: bf16 autocast (auto, on bf16 CPUs) rounds the shards apart


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _curve(out: Path) -> list[dict]:
    return [json.loads(l) for l in (out / "runs" / "r" / "logs" / "train.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_two_process_accelerate_run_matches_one_process(tmp_path):
    from emergelab.models.checkpoint import load_model, step_dir
    from emergelab.study import read_spec, run_stages, run_study

    one, two = tmp_path / "one", tmp_path / "two"
    run_study(read_spec(preset="smoke", overrides=SETS), one, ["prepare"])
    shutil.copytree(one, two)
    run_stages(one, ["train"])
    accelerate = Path(sys.executable).with_name("accelerate")
    cmd = [str(accelerate), "launch", "--multi_gpu", "--num_processes", "2", "--num_cpu_threads_per_process", "1",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           "--main_process_port", str(_free_port()), "-m", "emergelab", "train", str(two)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert res.returncode == 0, res.stderr[-3000:]
    assert "on 2 processes" in res.stderr
    a, b = _curve(one), _curve(two)
    assert [r["step"] for r in a] == [r["step"] for r in b] == list(range(6))
    for ra, rb in zip(a, b):
        for k in ("loss", "mlm_loss", "nsp_loss", "grad_norm"):
            assert abs(ra[k] - rb[k]) < 1e-3, (ra["step"], k, ra[k], rb[k])
    wa = load_model(step_dir(one / "runs" / "r" / "checkpoints", 6)).state_dict()
    wb = load_model(step_dir(two / "runs" / "r" / "checkpoints", 6)).state_dict()
    assert max((wa[k] - wb[k]).abs().max().item() for k in wa) < 1e-4


@pytest.mark.parametrize("flag,kind", [("ACCELERATE_USE_FSDP", "FSDP"), ("ACCELERATE_USE_DEEPSPEED", "DEEPSPEED"),
                                       ("ACCELERATE_USE_MEGATRON_LM", "MEGATRON_LM")])
def test_sharded_launch_is_refused_before_the_accelerator_exists(tmp_path, monkeypatch, flag, kind):
    """On CPU processes accelerate ignores these launcher flags and silently runs DDP (one process: no
    wrapping at all), so the refusal must come from the flag itself, whatever the Accelerator would say."""
    from emergelab.errors import UserError
    from emergelab.train.accel import make_accelerator

    monkeypatch.setenv(flag, "true")
    with pytest.raises(UserError, match=f"supports data parallelism .*not {kind}; see docs/scaling.md"):
        make_accelerator([], tmp_path)


@pytest.mark.slow
def test_fsdp_launch_on_cpu_is_refused_not_run_as_ddp(tmp_path):
    """`accelerate launch --use_fsdp` on two CPU processes: a one-line error and exit 2, no checkpoint
    written (accelerate 1.15 would otherwise train them with DDP under the FSDP flag)."""
    from emergelab.study import read_spec, run_study

    out = tmp_path / "s"
    run_study(read_spec(preset="smoke", overrides=["train.steps=2", "train.batch_size=8"]), out, ["prepare"])
    accelerate = Path(sys.executable).with_name("accelerate")
    cmd = [str(accelerate), "launch", "--use_fsdp", "--fsdp_version", "2", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           "--main_process_port", str(_free_port()), "-m", "emergelab", "train", str(out)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert res.returncode != 0
    # torchrun stops the other process once one exits, so one or both print the line; its own
    # ChildFailedError traceback follows, but none from emergelab's code
    errors = [l for l in res.stderr.splitlines() if l.startswith("error:")]
    assert errors and all("not FSDP; see docs/scaling.md" in l for l in errors), res.stderr[-3000:]
    assert "exitcode  : 2" in res.stderr and "emergelab/train/" not in res.stderr
    assert not list((out / "runs").glob("*/checkpoints/step-*"))
