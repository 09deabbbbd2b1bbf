"""bf16 where it pays: ``train.bf16: auto`` turns bf16 autocast on where the device computes bf16 natively
(CUDA with bf16, a CPU with AVX512-BF16/AMX-BF16) and keeps fp32 elsewhere; the capability stubbed both ways."""
from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch

from emergelab.models import precision
from emergelab.train import accel

CPU = torch.device("cpu")
FLAGS = "processor : 0\nflags : fpu sse2 avx2 avx512f avx512bw {extra}\n"


@pytest.mark.parametrize("extra, units", [("avx512_bf16 amx_tile amx_bf16", ["avx512_bf16", "amx_bf16"]),
                                          ("amx_bf16", ["amx_bf16"]), ("avx512_vnni", [])])
def test_cpu_units_are_read_from_cpuinfo_flags(tmp_path, extra, units):
    info = tmp_path / "cpuinfo"
    info.write_text(FLAGS.format(extra=extra))
    assert precision.cpu_bf16_units(info) == units


@pytest.mark.parametrize("probe", [True, False])
def test_without_cpuinfo_torch_probe_decides(tmp_path, monkeypatch, probe):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: probe, raising=False)
    assert precision.cpu_bf16_units(tmp_path / "absent") == (["avx512_bf16"] if probe else [])


def test_auto_is_bf16_on_a_cpu_with_bf16_units(monkeypatch):
    monkeypatch.setattr(precision, "cpu_bf16_units", lambda: ["avx512_bf16", "amx_bf16"])
    on, why = accel.bf16_choice("auto", CPU)
    assert on is True and "natively (avx512_bf16, amx_bf16)" in why
    assert accel.training_precision("auto", "cpu").startswith("bf16 autocast on cpu")


def test_auto_is_fp32_on_a_cpu_without_bf16_units(monkeypatch):
    monkeypatch.setattr(precision, "cpu_bf16_units", lambda: [])
    on, why = accel.bf16_choice("auto", CPU)
    assert on is False and "no bf16 units" in why
    assert accel.training_precision("auto", "cpu").startswith("fp32 on cpu")


@pytest.mark.parametrize("supported", [True, False])
def test_auto_on_cuda_follows_the_device(monkeypatch, supported):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: supported)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a, **k: "Fake GPU")
    on, why = accel.bf16_choice("auto", torch.device("cuda"))
    assert on is supported and "Fake GPU" in why


@pytest.mark.parametrize("units", [[], ["amx_bf16"]])
@pytest.mark.parametrize("setting", [True, False])
def test_an_explicit_setting_wins_over_the_capability(monkeypatch, units, setting):
    monkeypatch.setattr(precision, "cpu_bf16_units", lambda: units)
    assert accel.bf16_choice(setting, CPU) == (setting, f"train.bf16 is {str(setting).lower()}")


def test_a_resumed_rung_keeps_the_precision_of_its_checkpoints(tmp_path, monkeypatch):
    """A rung trained in fp32 (e.g. before auto meant bf16 on this CPU) resumes in fp32, for an exact resume."""
    from emergelab.layout import Layout
    from emergelab.train.loop import _precision

    lay = Layout(tmp_path)
    path = lay.checkpoint("r", 2)
    path.mkdir(parents=True)
    (path / "checkpoint.json").write_text(json.dumps({"bf16": False, "bf16_reason": "train.bf16 auto: old"}))
    monkeypatch.setattr(precision, "cpu_bf16_units", lambda: ["amx_bf16"])
    run = SimpleNamespace(start=2, lay=lay, name="r", rung=SimpleNamespace(name="r"), acc=SimpleNamespace(device=CPU))
    assert _precision(run, "auto") == (False, "train.bf16 auto: old")
    run.start = 0  # a fresh rung decides anew
    assert _precision(run, "auto")[0] is True
    run.start = 2  # an explicit setting is what the user asked for
    assert _precision(run, True) == (True, "train.bf16 is true")


@pytest.mark.parametrize("units", [[], ["amx_bf16"]])
def test_the_choice_and_reason_are_in_the_manifest(tmp_path, monkeypatch, units):
    from emergelab.study import read_spec, run_study

    monkeypatch.setattr(precision, "cpu_bf16_units", lambda: units)
    spec = read_spec(preset="smoke", overrides=["ladder=[{name: r, n_layer: 1, d_model: 8, n_head: 2}]", "train.steps=2",
                                                "train.batch_size=4", "train.workers=1", "train.trackers=[]"])
    run_study(spec, tmp_path / "s", ["prepare", "train"], preflight=False)  # in this process: the stub holds
    man = json.loads((tmp_path / "s" / "runs" / "r" / "checkpoints" / "step-000002" / "checkpoint.json").read_text())
    assert man["bf16"] is bool(units) and man["device"] == "cpu"
    assert ("natively (amx_bf16)" if units else "no bf16 units") in man["bf16_reason"]
