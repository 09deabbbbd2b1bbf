"""Spec validation: every bad spec is one line naming the key path and the allowed values, exit 2."""
from __future__ import annotations

import pytest

from emergelab.errors import UserError
from emergelab.spec import apply_override, checkpoint_steps, presets
from emergelab.study import read_spec
from tests.conftest import run_cli


def test_presets_load_and_hash_is_stable():
    assert {"default", "smoke"} <= set(presets())
    a, b = read_spec(preset="smoke"), read_spec(preset="smoke")
    assert a.hash() == b.hash()
    assert read_spec(preset="smoke", overrides=["train.steps=10"]).hash() != a.hash()


def test_mirage_preset_trains_on_whole_problems_at_the_task_positions():
    """The mirage preset's rows are one problem each (``abc+def=wxyz;``), where the add-3 prompts sit: packed at
    random offsets no rung learned the hard digits in budget (docs/phenomena.md)."""
    from emergelab.worlds import make_world
    from emergelab.worlds.arithmetic import EQUALS, SEMI

    spec = read_spec(preset="mirage")
    assert spec.replicate_seeds() == [0, 1, 2] and spec.train.loss_vocab == "seen" and spec.explain == type(spec.explain)()
    world = make_world(spec.world, spec.world_args, spec.seed)
    rows = world.train_blocks(8, spec.train.seq_len)
    assert (rows[:, 7] == EQUALS).all() and (rows[:, -1] == SEMI).all()
    (task,) = world.tasks(4)
    assert task.name == "add-3" and all(len(e.prompt) == 8 and len(e.target) == 4 for e in task.examples)


def test_mirage_lookup_preset_trains_on_whole_examples_at_the_task_positions():
    """One example per row (``a1 b1 … a6 b6 = v1 … v6 ;``, 20 tokens): the task prompt is the row's first 13 tokens."""
    from emergelab.worlds import make_world
    from emergelab.worlds.lookup import EQUALS, SEMI

    spec = read_spec(preset="mirage-lookup")
    assert spec.replicate_seeds() == [0, 1, 2] and spec.train.loss_vocab == "seen" and spec.explain == type(spec.explain)()
    world = make_world(spec.world, spec.world_args, spec.seed, context=spec.train.seq_len)
    rows = world.train_blocks(8, spec.train.seq_len)
    assert (rows[:, 12] == EQUALS).all() and (rows[:, -1] == SEMI).all()
    (task,) = world.tasks(4)
    assert task.name == "lookup" and all(len(e.prompt) == 13 and len(e.target) == 6 for e in task.examples)

def test_grokking_preset_rows_align_problems_and_train_on_the_answer():
    """The grokking preset's rows are two whole problems ``a + b = c ;`` each, its loss is on the token after
    '=', and every frequency of Z_31 is a latent (the key frequencies depend on the seed)."""
    from emergelab.worlds import make_world

    spec = read_spec(preset="grokking")
    assert spec.replicate_seeds() == [0, 1, 2] and spec.train.loss_after == "=" and spec.train.weight_decay == 1.0
    world = make_world(spec.world, spec.world_args, spec.seed)
    rows = world.train_blocks(4, spec.train.seq_len)
    eq = world.symbols.index("=")
    assert (rows[:, [3, 9]] == eq).all() and ((rows[:, 0] + rows[:, 2]) % 31 == rows[:, 4]).all()
    assert world.params.fourier_k == list(range(1, 16))
    assert set(spec.probe.latents) == {f"answer_{f}_k{k}" for f in ("cos", "sin") for k in range(1, 16)}


def test_loss_after_is_hashed_only_when_set():
    from emergelab.spec.schema import plain

    base = read_spec(preset="smoke")
    assert base.train.loss_after is None and "loss_after" not in plain(base)["train"]
    assert read_spec(preset="smoke", overrides=["train.loss_after=s0"]).hash() != base.hash()


def test_set_overrides_nested_and_yaml_values():
    spec = read_spec(preset="smoke", overrides=["train.steps=200", "objectives=[mlm,nsp]", "ladder.0.d_model=16"])
    assert spec.train.steps == 200
    assert spec.objectives == ["mlm", "nsp"]
    assert spec.ladder[0].d_model == 16


def test_checkpoint_steps_are_log_spaced_then_regular():
    assert checkpoint_steps(600, 100) == [0, 1, 2, 4, 8, 16, 32, 64, 100, 128, 200, 256, 300, 400, 500, 512, 600]
    assert checkpoint_steps(5, 100, log_spaced=False) == [0, 5]


@pytest.mark.parametrize(
    "overrides, fragment",
    [
        (["train.stepz=3"], "train.stepz: unknown key; allowed keys: steps"),
        (["train.steps=-5"], "train.steps"),
        (["train.steps=many"], "train.steps"),
        (["world=galaxy"], "unknown world 'galaxy'; allowed: arithmetic, concepts, induction"),
        (["objectives=[clm,xyz]"], "objectives.1"),
        (["objectives=[nsp]"], "nsp needs mlm"),
        (["init=zeros"], "init"),
        (["ladder.0.n_head=3"], "not divisible by n_head"),
        (["world_args.vocab=1"], "world_args.vocab"),
        (["world_args.colour=red"], "world_args.colour: unknown key"),
        (["ladder=[]"], "at least one rung"),
    ],
)
def test_bad_specs_are_one_clear_error(overrides, fragment):
    with pytest.raises(UserError) as e:
        read_spec(preset="smoke", overrides=overrides)
    msg = str(e.value)
    assert fragment in msg
    assert "\n" not in msg


def test_bad_override_syntax():
    with pytest.raises(UserError, match="key.path=value"):
        apply_override({}, "no-equals-sign")


def test_unknown_preset_names_the_allowed_ones():
    with pytest.raises(UserError, match="allowed: default, grokking, induction, mirage, mirage-lookup, quanta, smoke"):
        read_spec(preset="huge")


def test_cli_bad_spec_exit_code_2_one_line_no_traceback(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("preset: smoke\ntrain: {steps: -1}\n")
    res = run_cli("study", str(bad), "--out", str(tmp_path / "s"))
    assert res.returncode == 2
    assert "Traceback" not in res.stderr
    lines = [l for l in res.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "train.steps" in lines[0]
    assert not (tmp_path / "s").exists()


def test_cli_malformed_yaml(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: {steps: [1, 2\n")
    res = run_cli("study", str(bad), "--out", str(tmp_path / "s"))
    assert res.returncode == 2 and "not valid YAML at line" in res.stderr and "Traceback" not in res.stderr


def test_cli_missing_spec_file(tmp_path):
    res = run_cli("study", str(tmp_path / "nope.yaml"))
    assert res.returncode == 2 and "does not exist" in res.stderr


def test_replacing_the_ladder_drops_the_presets_finetune_rung_choice():
    # smoke's finetune stage names two of its rungs; a --set ladder=… without them falls back to every rung
    spec = read_spec(preset="smoke", overrides=["ladder=[{name: r, n_layer: 1, d_model: 8, n_head: 2}]"])
    assert spec.finetune.rungs is None
    assert read_spec(preset="smoke").finetune.rungs == ["L2-d16", "L2-d64"]
    with pytest.raises(UserError, match="finetune.rungs"):  # set explicitly, a wrong name is still an error
        read_spec(preset="smoke", overrides=["ladder=[{name: r, n_layer: 1, d_model: 8, n_head: 2}]",
                                             "finetune.rungs=[L2-d16]"])


def test_changing_the_world_drops_the_presets_world_bound_finetune_task():
    spec = read_spec(preset="smoke", overrides=["world=modular"])
    assert spec.finetune.task is None  # the modular world's first labelled task is used
    with pytest.raises(UserError, match="no labelled task 'in_repeat'"):
        read_spec(preset="smoke", overrides=["world=modular", "finetune.task=in_repeat"])
