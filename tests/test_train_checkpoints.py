"""Training a ladder: checkpoints at log-spaced steps that plain `transformers` loads, manifests with
parameter counts, FLOPs and the data order's hash; the same global batch whatever the accumulation."""
from __future__ import annotations

import json

import pytest
import torch

from emergelab.errors import UserError
from emergelab.spec import Rung
from emergelab.study import read_spec

STEPS = 8
LADDER = "ladder=[{name: a, n_layer: 1, d_model: 8, n_head: 2}, {name: b, n_layer: 2, d_model: 16, n_head: 2}]"
SETS = [LADDER, f"train.steps={STEPS}", "train.checkpoint_every=3", "train.batch_size=8", "train.log_every=1",
        "train.workers=1", "objectives=[mlm,nsp]"]


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    from emergelab.study import run_study

    out = tmp_path_factory.mktemp("ckpt") / "study"
    calls = []
    spec = read_spec(preset="smoke", overrides=SETS)
    run_study(spec, out, ["prepare"])
    from emergelab.layout import Layout
    from emergelab.train.loop import train_rung

    for rung in ("a", "b"):
        train_rung(spec, Layout(out), rung, lambda *a: calls.append(a))
    return out, calls


def test_checkpoints_at_log_spaced_and_regular_steps(study):
    out, _ = study
    for rung in ("a", "b"):
        names = sorted(p.name for p in (out / "runs" / rung / "checkpoints").iterdir())
        assert names == [f"step-{s:06d}" for s in (0, 1, 2, 3, 4, 6, 8)]


def test_checkpoint_loads_with_plain_transformers(study):
    from transformers import AutoModelForMaskedLM, AutoModelForPreTraining, AutoTokenizer

    out, _ = study
    path = out / "runs" / "b" / "checkpoints" / f"step-{STEPS:06d}"
    tok = AutoTokenizer.from_pretrained(str(path))
    pre = AutoModelForPreTraining.from_pretrained(str(path)).eval()
    mlm = AutoModelForMaskedLM.from_pretrained(str(path)).eval()
    ids = torch.tensor([tok.convert_tokens_to_ids(["[CLS]", "s1", "[MASK]", "s3", "[SEP]"])])
    with torch.no_grad():
        a = pre(input_ids=ids).prediction_logits
        b = mlm(input_ids=ids).logits
    assert torch.allclose(a, b, atol=1e-6)  # the same trained weights through either head class
    assert tok.mask_token == "[MASK]"


def test_manifest_counts_flops_and_one_data_order(study):
    from emergelab.train.accel import use_bf16

    out, _ = study
    mans = {r: json.loads((out / "runs" / r / "checkpoints" / f"step-{STEPS:06d}" / "checkpoint.json").read_text())
            for r in ("a", "b")}
    data = json.loads((out / "data" / "manifest.json").read_text())
    for rung, man in mans.items():
        assert man["data_order_hash"] == data["train_sha256"]
        assert man["tokens_seen"] == STEPS * 8 * 32 and man["flops"] == man["flops_per_token"] * man["tokens_seen"]
        assert man["flops_per_token"] == 6 * man["n_params_nonembedding"] + 6 * man["n_layer"] * 32 * man["d_model"]
        # train.bf16 auto: bf16 autocast on CPUs with bf16 units (tests/test_precision.py), fp32 elsewhere
        assert man["bf16"] is use_bf16("auto", torch.device("cpu")) and man["bf16_reason"].startswith("train.bf16 auto")
        assert man["objectives"] == ["mlm", "nsp"] and man["global_batch"] == 8
    assert mans["a"]["n_params"] < mans["b"]["n_params"]


def test_gpt2_parameter_counts_known_answer():
    from emergelab.models import build_model, count_params

    d, L, V, T = 32, 3, 100, 64
    total, nonemb = count_params(build_model(Rung(name="x", n_layer=L, d_model=d, n_head=4), vocab_size=V, seq_len=T, causal=True))
    assert nonemb == L * (12 * d * d + 13 * d) + 2 * d  # blocks + final LayerNorm; tied head counted once
    assert total == nonemb + V * d + T * d


def test_train_log_measurements_and_progress(study):
    import pandas as pd

    out, calls = study
    df = pd.read_parquet(out / "parts" / "train" / "b" / "all.parquet")
    assert set(zip(df.task, df.metric)) == {("pretrain", "loss"), ("pretrain/mlm", "loss"), ("pretrain/nsp", "loss"),
                                            ("pretrain/nsp", "accuracy")}
    assert sorted(df.step.unique()) == list(range(STEPS))
    assert list((out / "runs" / "b" / "logs").glob("events.out.tfevents*"))
    done = [c for c in calls if c[0] == "b" and c[3] is not None]
    assert done[-1][1:3] == (STEPS, STEPS) and done[-1][4] > 0  # (step, total) and tokens/s


def test_same_global_batch_whatever_the_accumulation(tmp_path):
    """batch 8 × accumulation 2 trains the same rows with the same masks as batch 16: same weights."""
    from emergelab.models.checkpoint import load_model, step_dir
    from emergelab.study import run_stages, run_study

    weights = []
    for i, (bs, acc) in enumerate([(16, 1), (8, 2)]):
        out = tmp_path / str(i)
        sets = ["ladder=[{name: r, n_layer: 1, d_model: 16, n_head: 2}]", "train.steps=4", f"train.batch_size={bs}",
                f"train.grad_accum={acc}", "objectives=[mlm,nsp]", "train.workers=1",
                "train.bf16=false"]  # fp32: bf16 rounds the two summation orders apart (~3e-3 on a bf16 CPU)
        run_study(read_spec(preset="smoke", overrides=sets), out, ["prepare"])
        run_stages(out, ["train"])
        weights.append(load_model(step_dir(out / "runs" / "r" / "checkpoints", 4)).state_dict())
    assert max((weights[0][k] - weights[1][k]).abs().max().item() for k in weights[0]) < 1e-5


def test_missing_tracker_package_is_one_line_error(study, monkeypatch):
    from emergelab.train import accel

    monkeypatch.setitem(accel.TRACKER_PACKAGES, "wandb", "emergelab_no_such_package")
    with pytest.raises(UserError, match="train.trackers lists 'wandb'.*pip install"):
        accel.check_trackers(["tensorboard", "wandb"])


def test_train_without_prepared_data_is_a_user_error(tmp_path):
    from emergelab.study import init_study
    from emergelab.train.loop import train_rung

    spec = read_spec(preset="smoke", overrides=SETS)
    lay = init_study(spec, tmp_path / "s")
    with pytest.raises(UserError, match="emergelab prepare"):
        train_rung(spec, lay, "a")


def test_generated_ladder_has_fixed_aspect_ratio():
    spec = read_spec(preset="smoke", overrides=["ladder={min_d_model: 32, max_d_model: 256, n_rungs: 4, aspect_ratio: 64, d_head: 16}"])
    assert [(r.n_layer, r.d_model, r.n_head) for r in spec.ladder] == [(1, 32, 2), (1, 64, 4), (2, 128, 8), (4, 256, 16)]
    with pytest.raises(UserError, match="ladder.*max_d_model"):
        read_spec(preset="smoke", overrides=["ladder={min_d_model: 32, n_rungs: 4, aspect_ratio: 64}"])
