"""The study's finetune stage: rows from the smoke study (random init included), no-op re-runs that
never import torch, one missing run redone exactly, a user's labelled file, and spec checks."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from emergelab.errors import UserError
from emergelab.measurements import SORT_KEY
from emergelab.spec import dump_yaml, preset_dict
from emergelab.study import validate
from emergelab.worlds import make_world


def _finetune_rows(study: Path) -> pd.DataFrame:
    df = pd.read_parquet(study / "measurements.parquet")
    return df[df.source == "finetune"].sort_values(SORT_KEY).reset_index(drop=True)


def _run_stages(study: Path, stages: str) -> subprocess.CompletedProcess:
    """Run stages in a fresh interpreter; it prints what each stage did and whether torch was imported."""
    code = ("import sys; from emergelab.study import run_stages; "
            f"did = run_stages({str(study)!r}, {stages.split(',')!r}); "
            "print(did); print('torch imported' if 'torch' in sys.modules else 'torch not imported')")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)


def test_smoke_study_has_finetune_rows_with_random_init(smoke_study):
    ft = _finetune_rows(smoke_study)
    assert set(ft.task) == {"finetune/in_repeat/lora", "finetune/in_repeat/lora-scratch"}
    assert set(ft.rung) == {"L2-d16", "L2-d64"} and set(ft.k_shot) == {16, 64} and set(ft.seed) == {0}
    assert set(ft.metric) == {"accuracy", "macro_f1", "majority_baseline"}
    assert len(ft) == 2 * 2 * 2 * 3  # rungs x (last checkpoint, random init) x label counts x metrics
    pre, scratch = ft[~ft.task.str.endswith("-scratch")], ft[ft.task.str.endswith("-scratch")]
    assert set(pre.step) == {64} and (pre.tokens > 0).all()
    assert set(scratch.step) == {0} and (scratch.tokens == 0).all() and (scratch.flops == 0).all()
    assert ft.value.between(0, 1).all() and (ft.n > 0).all()
    parts = sorted(p.relative_to(smoke_study / "parts" / "finetune").as_posix()
                   for p in (smoke_study / "parts" / "finetune").rglob("*.parquet"))
    assert "L2-d16/scratch/lora/n16/seed0.parquet" in parts and "L2-d64/step-000064/lora/n64/seed0.parquet" in parts
    assert len(parts) == 8
    html = (smoke_study / "report" / "index.html").read_text()
    assert "<h2>Fine-tuning</h2>" in html and "what pretraining is worth" in html and "random init" in html


def test_rerun_does_nothing_and_never_imports_torch(smoke_copy):
    res = _run_stages(smoke_copy, "prepare,train,evaluate,probe,finetune,explain,report")
    assert res.returncode == 0, res.stderr[-2000:]
    did, torch_line = res.stdout.strip().splitlines()[-2:]
    assert not any(eval(did).values()), did  # noqa: S307 - our own dict literal
    assert torch_line == "torch not imported"


def test_a_deleted_run_is_redone_exactly(smoke_copy):
    before = _finetune_rows(smoke_copy)
    victim = smoke_copy / "parts" / "finetune" / "L2-d16" / "scratch" / "lora" / "n64" / "seed0.parquet"
    other = smoke_copy / "parts" / "finetune" / "L2-d64" / "step-000064" / "lora" / "n16" / "seed0.parquet"
    mtime = other.stat().st_mtime_ns
    victim.unlink()
    res = _run_stages(smoke_copy, "finetune,explain")
    assert res.returncode == 0, res.stderr[-2000:]
    assert "'finetune': 1" in res.stdout
    assert victim.exists() and other.stat().st_mtime_ns == mtime
    pd.testing.assert_frame_equal(_finetune_rows(smoke_copy), before)


def test_a_labelled_file_instead_of_a_world_task(smoke_copy, tmp_path):
    """Sequence classification from a user's CSV: does the first symbol of a sequence repeat later?"""
    import numpy as np

    rng = np.random.default_rng(0)
    rows = []
    for _ in range(80):
        seq = list(rng.integers(0, 16, size=12))
        rows.append((" ".join(f"s{x}" for x in seq), "yes" if seq[0] in seq[1:] else "no"))
    data = tmp_path / "repeats.csv"
    data.write_text("text,label\n" + "".join(f"{t},{y}\n" for t, y in rows))
    spec = yaml.safe_load((smoke_copy / "study.yaml").read_text())
    spec["finetune"].update(task=None, data=str(data), labels=[16], rungs=["L2-d16"], random_init=False)
    (smoke_copy / "study.yaml").write_text(dump_yaml(validate(spec)))
    for p in (smoke_copy / "parts" / "finetune").rglob("*.parquet"):
        p.unlink()
    res = _run_stages(smoke_copy, "finetune,explain")
    assert res.returncode == 0, res.stderr[-2000:]
    ft = _finetune_rows(smoke_copy)
    assert set(ft.task) == {"finetune/repeats/lora"} and set(ft.k_shot) == {16} and set(ft.rung) == {"L2-d16"}
    assert set(ft.n) == {16}  # 20 % of 80 examples held out and scored


# ------------------------------------------------------------------ the spec section (fast)

def _smoke(**finetune) -> dict:
    data = preset_dict("smoke")
    data["finetune"] = {**data["finetune"], **finetune}
    return data


@pytest.mark.parametrize("change, fragment", [
    ({"methods": ["prefix"]}, "finetune.methods.0"),
    ({"labels": [16, 500]}, "500 is more than the 128 examples"),
    ({"labels": [0]}, "finetune.labels.0: 0 is out of range; allowed: 1 ≤"),
    ({"rungs": ["L9-d9"]}, "unknown rung 'L9-d9'"),
    ({"checkpoints": [50]}, "step 50 is not a checkpoint step"),
    ({"task": "concept"}, "no labelled task 'concept'; allowed: in_repeat"),
    ({"data": "/no/such/file.csv", "task": None}, "does not exist"),
    ({"seeds": []}, "at least one"),
])
def test_bad_finetune_sections_name_the_key(change, fragment):
    with pytest.raises(UserError, match="finetune") as exc:
        validate(_smoke(**change))
    assert fragment in str(exc.value)


def test_a_world_without_labelled_tasks_skips_the_stage_unless_a_task_is_named():
    from emergelab.layout import Layout
    from emergelab.stages.finetune import missing, skipped_because

    data = _smoke(task=None)
    data.update(world="parity")
    data.pop("world_args")
    spec = validate(data)  # a preset's section on a world that labels nothing: valid, and skipped
    assert missing(spec, Layout(Path("/nonexistent"))) == []
    assert "world parity labels no task" in skipped_because(spec)
    data["finetune"]["task"] = "subtask"
    with pytest.raises(UserError, match="labels no fine-tuning task .*give finetune.data"):
        validate(data)


def test_absent_or_disabled_section_runs_nothing_and_absent_keeps_the_hash():
    from emergelab.layout import Layout
    from emergelab.stages.finetune import missing

    data = preset_dict("smoke")
    data.pop("finetune")
    spec = validate(data)
    text = dump_yaml(spec)
    assert "finetune" not in text  # specs written before the section existed keep their hash
    assert validate(yaml.safe_load(text)).hash() == spec.hash()
    assert missing(spec, Layout(Path("/nonexistent"))) == []
    off = validate(_smoke(enabled=False))
    assert missing(off, Layout(Path("/nonexistent"))) == [] and off.hash() != spec.hash()


def test_world_labelled_faces():
    concepts = make_world("concepts", {"n_concepts": 3, "n_hmms": 4}, seed=0)
    assert next(iter(concepts.labelled_tasks())) == "concept"
    d = concepts.labelled("concept", 30, 16)
    assert d.task == "classify" and len(d) == 30 and d.label_names == ["c0", "c1", "c2"]
    assert all(len(t.split()) == 16 for t in d.texts)
    tags = make_world("induction", {"vocab": 16, "min_period": 4, "max_period": 8}).labelled("in_repeat", 10, 24)
    assert tags.task == "tag" and tags.label_names == ["first", "repeat"]
    assert [len(t) for t in tags.tokens] == [24] * 10 and tags.tokens[0][0].startswith("s")
    mod = make_world("modular", {"p": 11, "train_fraction": 0.5, "fourier_k": [1]})
    d = mod.labelled("sum_cos_k1", 1000, 60)  # capped at the held-out pairs, never the trained ones
    trained = {" ".join(map(str, (a, "+", b, "="))) for a, b in mod.split[0]}
    assert len(d) == len(mod.split[1]) and not trained & set(d.texts) and d.n_labels == 4
    with pytest.raises(UserError, match="no labelled task 'slot'"):
        make_world("induction").labelled("slot", 4, 8)


@pytest.mark.parametrize("checkpoints, steps", [("last", [64, None]), ("all", None), ([32, 64], [32, 64, None])])
def test_checkpoint_choices_give_the_runs_base_steps(checkpoints, steps):
    from emergelab.stages.finetune import base_steps, runs
    from emergelab.study import read_spec

    spec = read_spec(preset="smoke", overrides=[f"finetune.checkpoints={checkpoints}"])
    want = steps if steps is not None else spec.checkpoint_steps() + [None]
    assert base_steps(spec) == want
    assert len(runs(spec, "L2-d64")) == len(want) * 2  # two label counts, one method, one seed
