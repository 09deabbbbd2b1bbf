"""Seeds as replicates: every rung trained once per seed (initialisation and data order), the tasks, latents
and held-out blocks shared, the study's own seed laid out and computed exactly as a single-seed study."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from emergelab.measurements import SORT_KEY
from emergelab.study import read_spec, run_study
from emergelab.worlds import WORLDS

ONE_RUNG = ["ladder=[{name: a, n_layer: 1, d_model: 16, n_head: 2}]", "train.steps=16", "train.checkpoint_every=8",
            "train.workers=1", "eval.n_bootstrap=10", "finetune=null"]


@pytest.mark.parametrize("name", sorted(set(WORLDS) - {"text"}))
def test_a_replicate_draws_its_own_training_stream_and_nothing_else(name):
    world = WORLDS[name]({}, 0, context=64)
    same, other = world.with_replica(None), world.with_replica(1)
    np.testing.assert_array_equal(world.train_blocks(6, 32), same.train_blocks(6, 32))
    assert (world.train_blocks(6, 32) != other.train_blocks(6, 32)).any()
    np.testing.assert_array_equal(world.heldout_world().train_blocks(4, 32), other.heldout_world().train_blocks(4, 32))
    assert [e.prompt for e in world.tasks(4)[0].examples] == [e.prompt for e in other.tasks(4)[0].examples]
    for a, b in zip(world.latents(4, 32), other.latents(4, 32)):
        np.testing.assert_array_equal(a.input_ids, b.input_ids)


def _table(root) -> pd.DataFrame:
    df = pd.read_parquet(root / "measurements.parquet")
    return df.sort_values(SORT_KEY).reset_index(drop=True)


def test_seeds_train_one_run_per_rung_and_seed_and_the_study_seed_is_the_single_seed_study(tmp_path):
    single, multi = tmp_path / "single", tmp_path / "multi"
    run_study(read_spec(preset="smoke", overrides=ONE_RUNG), single, preflight=False)
    run_study(read_spec(preset="smoke", overrides=ONE_RUNG + ["seeds=[0, 3]"]), multi, preflight=False)
    assert sorted(p.name for p in (multi / "runs").iterdir()) == ["a", "a@seed3"]
    assert (multi / "data" / "train@seed3.npy").exists()
    df = _table(multi)
    for source in ("train", "eval", "probe", "heads"):
        assert set(df[df.source == source].seed) == {0, 3}, source
    keep = [c for c in df.columns if c != "study"]
    seed0 = df[(df.seed == 0) | (df.step < 0)][keep].reset_index(drop=True)
    pd.testing.assert_frame_equal(seed0, _table(single)[keep].reset_index(drop=True))  # bit for bit
    trained = df[(df.source == "train") & (df.metric == "loss")].pivot_table(index="step", columns="seed", values="value")
    assert (trained[0] != trained[3]).any()  # another initialisation and data order


def test_seeds_must_be_distinct():
    from emergelab.errors import UserError

    with pytest.raises(UserError, match="distinct seeds"):
        read_spec(preset="smoke", overrides=["seeds=[1, 1]"])
