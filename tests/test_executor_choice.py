"""The executor is chosen in the spec or on the CLI; how a study runs is not what it computes, so
neither the executor nor the Ray address is in the spec hash, and new keys at their default leave the
hash of existing studies unchanged."""
from __future__ import annotations

import importlib.util

import pytest

from emergelab.executor import LocalExecutor
from emergelab.spec import dump_yaml
from emergelab.study import make_executor, read_spec

SMOKE_HASH = "b79f1eca054e0316"  # the smoke preset's hash: executor, ray, explain never hashed; train.device at its default dropped


def test_new_keys_at_their_default_keep_the_hash_and_the_yaml():
    spec = read_spec(preset="smoke")
    assert spec.executor == "local" and spec.ray is None and spec.train.device == "auto"
    assert spec.hash() == SMOKE_HASH
    text = dump_yaml(spec)
    assert "executor" not in text and "ray:" not in text and "device" not in text


def test_executor_and_address_are_not_hashed_but_recorded():
    spec = read_spec(preset="smoke", overrides=["executor=ray", "ray.address=10.0.0.1:6379"])
    assert spec.hash() == SMOKE_HASH  # a study started locally continues on Ray, and back
    text = dump_yaml(spec)
    assert "executor: ray" in text and "address: 10.0.0.1:6379" in text


def test_a_training_device_is_hashed():
    assert read_spec(preset="smoke", overrides=["train.device=cpu"]).hash() != SMOKE_HASH


def test_make_executor_follows_the_spec_and_the_override():
    spec = read_spec(preset="smoke")
    assert isinstance(make_executor(spec), LocalExecutor)
    if importlib.util.find_spec("ray") is None:
        pytest.skip("the ray extra is not installed")
    from emergelab.executor_ray import RayExecutor

    assert isinstance(make_executor(spec, "ray"), RayExecutor)  # lazy: nothing is started until map()
    assert isinstance(make_executor(spec.model_copy(update={"executor": "ray"})), RayExecutor)


def test_cuda_without_a_gpu_stops_before_anything_is_written(tmp_path):
    import torch

    from tests.conftest import run_cli

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    res = run_cli("study", "--preset", "smoke", "--set", "train.device=cuda", "--out", str(tmp_path / "s"))
    errors = [l for l in res.stderr.splitlines() if l.startswith("error:")]
    assert res.returncode == 2 and len(errors) == 1 and "no CUDA device is visible" in errors[0], res.stderr
    assert not (tmp_path / "s").exists()
