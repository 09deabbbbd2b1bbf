"""The preflight: closed-form sizes against what a study writes, a dry run that writes nothing, refusals
with the numbers, and the calibration cache."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from emergelab.errors import UserError
from emergelab.layout import Layout
from emergelab.models.build import build_model, count_params
from emergelab.preflight import estimate as E
from emergelab.preflight import plan, units_left, world_facts
from emergelab.spec import Rung, checkpoint_steps
from emergelab.spec.schema import n_checkpoints
from emergelab.study import read_spec
from tests.conftest import run_cli


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("n_layer, d_model, n_head, d_ff", [(1, 8, 2, None), (2, 64, 4, 100), (3, 48, 4, None)])
def test_closed_form_parameter_count_equals_the_built_model(causal, n_layer, d_model, n_head, d_ff):
    rung = Rung(name="r", n_layer=n_layer, d_model=d_model, n_head=n_head, d_ff=d_ff)
    model = build_model(rung, vocab_size=61, seq_len=32, causal=causal)
    assert E.approx_params(d_model, n_layer, rung.d_ff, vocab_size=61, seq_len=32, causal=causal) == count_params(model)[0]


def test_checkpoint_count_without_building_the_list():
    for steps, every in [(1, 1), (64, 32), (2000, 250), (1000, 7)]:
        assert n_checkpoints(steps, every) == len(checkpoint_steps(steps, every))
    assert n_checkpoints(10**9, 1) == 10**9  # answered at once, not by building a billion steps


def test_makespan_hands_out_the_largest_first():
    # as the worker pool does: each job to the first free worker, largest first → {5, 3} and {4, 3, 3}
    assert E.makespan([5, 4, 3, 3, 3], 2) == 10
    assert E.makespan([1, 1, 1], 1) == 3 and E.makespan([], 2) == 0


def test_sizes_match_what_the_smoke_study_wrote(smoke_study):
    spec = read_spec(preset="smoke")
    facts = world_facts(spec, Layout(smoke_study))
    train = (smoke_study / "data" / "train.npy").stat().st_size
    t = spec.train
    assert abs(train - t.steps * t.batch_size * t.seq_len * 4) <= 128  # int32 ids and the .npy header
    data = sum(p.stat().st_size for p in (smoke_study / "data").rglob("*") if p.is_file() and "tokenizer" not in p.parts)
    assert 0.7 < E.data_bytes(spec, facts) / data < 1.5
    last = sorted((smoke_study / "runs" / "L2-d64" / "checkpoints").glob("step-*"))[-1]
    size = sum(p.stat().st_size for p in last.iterdir())
    n = json.loads((last / "checkpoint.json").read_text())["n_params"]
    assert 0.7 < E.checkpoint_bytes(n, facts.vocab_size) / size < 1.3


def test_nothing_left_means_no_units(smoke_study):
    spec = read_spec(preset="smoke")
    units = units_left(spec, Layout(smoke_study), ["prepare", "train", "evaluate", "probe", "mechanism", "finetune", "explain",
                                                 "report"])
    assert not any(units.values())


def test_dry_run_prints_the_estimates_and_writes_nothing(tmp_path):
    out = tmp_path / "never"
    res = run_cli("study", "--preset", "smoke", "--dry-run", "--out", str(out))
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert any(line.startswith("preflight: units of work: prepare 1, train 4, evaluate 33, probe 32, mechanism 32, finetune 8") for line in lines)
    assert any("checkpoints" in line and "free" in line for line in lines)
    assert any(line.startswith("preflight: peak memory") for line in lines)
    assert any(line.startswith("preflight: estimated wall time") for line in lines)
    assert not out.exists()


def test_refusals_name_the_numbers_and_the_fix(tmp_path, monkeypatch):
    spec = read_spec(preset="smoke")
    lay = Layout(tmp_path / "s")
    monkeypatch.setattr(E, "free_disk", lambda path: 1000)
    with pytest.raises(UserError, match=r"needs about .* on disk .* has 1.0 kB free; lower train.steps"):
        E.check_fits(spec, lay, need_disk=10**6, need_memory=1, what_memory="x")
    monkeypatch.setattr(E, "free_disk", lambda path: 10**12)
    monkeypatch.setattr(E, "available_memory", lambda: 2 * 10**9)
    with pytest.raises(UserError, match=r"training needs about 3.0 GB of memory but 2.0 GB is available"):
        E.check_fits(spec, lay, need_disk=1, need_memory=3 * 10**9, what_memory="training")


def test_a_second_plan_reads_the_cached_calibration(tmp_path, monkeypatch):
    monkeypatch.setenv("EMERGELAB_CACHE", str(tmp_path / "cache"))
    spec = read_spec(preset="smoke", overrides=["ladder=[{name: a, n_layer: 1, d_model: 8, n_head: 2}]"])
    first = plan(spec, Layout(tmp_path / "s"), ["prepare", "train"])
    assert "calibrated on this machine" in first.calibration and (Path(tmp_path) / "cache" / "calibration.json").exists()
    second = plan(spec, Layout(tmp_path / "s"), ["prepare", "train"])
    assert second.calibration == "from this machine's cached calibration"
    assert second.seconds["train"] == first.seconds["train"] > 0


def test_plan_for_replicate_seeds_without_the_study_seed(tmp_path, monkeypatch):
    """``seeds`` that leave out ``seed`` name every run ``<rung>@seed<k>``: the memory estimate follows the runs."""
    monkeypatch.setenv("EMERGELAB_CACHE", str(tmp_path / "cache"))
    spec = read_spec(preset="smoke", overrides=["ladder=[{name: a, n_layer: 1, d_model: 8, n_head: 2}]", "seeds=[100, 101]"])
    got = plan(spec, Layout(tmp_path / "s"), ["prepare", "train"])
    assert got.seconds["train"] > 0 and got.peak_memory > 0
