"""The bad-input catalogue: every case exits with code 2, one `error:` line naming the problem and
the fix, no traceback — and nothing that already existed is changed."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import run_cli

# (case id, argv with {A} = assets folder and {T} = a fresh temp dir, fragment the message must contain)
CASES = [
    # specs
    ("spec-unknown-key", ["study", "--preset", "smoke", "--set", "train.stepz=3", "--out", "{T}/s"], "train.stepz: unknown key"),
    ("spec-negative-steps", ["study", "--preset", "smoke", "--set", "train.steps=-5", "--out", "{T}/s"], "train.steps"),
    ("spec-wrong-type", ["study", "--preset", "smoke", "--set", "train.lr=fast", "--out", "{T}/s"], "train.lr"),
    ("spec-unknown-world", ["study", "--set", "world=galaxy", "--out", "{T}/s"], "unknown world 'galaxy'"),
    ("spec-unknown-objective", ["study", "--preset", "smoke", "--set", "objectives=[gpt]", "--out", "{T}/s"], "objectives"),
    ("spec-nsp-alone", ["study", "--preset", "smoke", "--set", "objectives=[nsp]", "--out", "{T}/s"], "nsp needs mlm"),
    ("spec-unknown-init", ["study", "--preset", "smoke", "--set", "init=zeros", "--out", "{T}/s"], "init"),
    ("spec-heads-divide", ["study", "--preset", "smoke", "--set", "ladder.0.n_head=3", "--out", "{T}/s"], "divisible"),
    ("spec-unknown-preset", ["study", "--preset", "huge"], "unknown preset 'huge'"),
    ("spec-malformed-yaml", ["study", "{A}/not_yaml.yaml", "--out", "{T}/s"], "not valid YAML"),
    ("spec-missing-file", ["study", "{A}/nope.yaml"], "does not exist"),
    ("spec-not-a-mapping", ["study", "{A}/spec_list.yaml", "--out", "{T}/s"], "must be a YAML mapping"),
    ("spec-duplicate-rungs", ["study", "{A}/spec_dup.yaml", "--out", "{T}/s"], "rung names must be unique"),
    ("spec-set-syntax", ["study", "--preset", "smoke", "--set", "trainsteps", "--out", "{T}/s"], "key.path=value"),
    ("spec-bad-world-arg", ["study", "--preset", "smoke", "--set", "world_args.vocab=1", "--out", "{T}/s"], "world_args.vocab"),
    ("spec-finetune-unknown-method", ["study", "--preset", "smoke", "--set", "finetune.methods=[prefix]", "--out", "{T}/s"], "finetune.methods"),
    ("spec-finetune-too-many-labels", ["study", "--preset", "smoke", "--set", "finetune.labels=[16,5000]", "--out", "{T}/s"], "5000 is more than"),
    ("spec-finetune-one-class-data", ["study", "--preset", "smoke", "--set", "finetune.task=", "--set", "finetune.data={A}/one_class.csv", "--out", "{T}/s"], "one class"),
    # ranges and resources (the preflight): refused before anything is written
    ("spec-negative-seed", ["study", "--preset", "smoke", "--set", "seed=-3", "--out", "{T}/s"], "seed: -3 is out of range; allowed: 0 ≤ seed"),
    ("spec-steps-beyond-range", ["study", "--preset", "smoke", "--set", "train.steps=100000000000000", "--out", "{T}/s"], "train.steps: 100000000000000 is out of range"),
    ("spec-seed-too-large", ["study", "--preset", "smoke", "--set", "seed=99999999999", "--out", "{T}/s"], "≤ 4,294,967,295"),
    ("spec-finetune-negative-seed", ["study", "--preset", "smoke", "--set", "finetune.seeds=[-1]", "--out", "{T}/s"], "finetune.seeds.0: -1 is out of range"),
    ("spec-negative-k-shot", ["study", "--preset", "smoke", "--set", "eval.k_shot=[-2]", "--out", "{T}/s"], "eval.k_shot.0"),
    ("spec-lr-too-large", ["study", "--preset", "smoke", "--set", "train.lr=100", "--out", "{T}/s"], "0 < lr ≤ 10"),
    ("spec-mlm-fraction", ["study", "--preset", "smoke", "--set", "mlm.probability=1.5", "--out", "{T}/s"], "0 < probability < 1"),
    ("spec-warmup-past-steps", ["study", "--preset", "smoke", "--set", "train.warmup=1000", "--out", "{T}/s"], "train.warmup: 1000 is more than train.steps"),
    ("spec-too-many-checkpoints", ["study", "--preset", "smoke", "--set", "train.steps=1000000000", "--set", "train.checkpoint_every=1", "--out", "{T}/s"], "raise checkpoint_every"),
    ("spec-zero-threads", ["study", "--preset", "smoke", "--set", "train.threads=0", "--out", "{T}/s"], "1 ≤ threads"),
    ("spec-parity-answer-tokens-not-bool", ["study", "--preset", "smoke", "--set", "world=parity", "--set", "world_args.answer_tokens=maybe", "--out", "{T}/s"], "world_args.answer_tokens"),
    ("spec-world-arg-range", ["study", "--preset", "smoke", "--set", "world=modular", "--set", "world_args.p=100000", "--out", "{T}/s"], "world_args.p: 100000 is out of range; allowed: 3 ≤ p ≤ 4,096"),
    ("spec-lookup-zero-length", ["study", "--preset", "mirage-lookup", "--set", "world_args.length=0", "--out", "{T}/s"], "world_args.length: 0 is out of range; allowed: 1 ≤ length ≤ 256"),
    ("spec-lookup-too-many-entries", ["study", "--preset", "mirage-lookup", "--set", "world_args.n_keys=2048", "--out", "{T}/s"], "world_args.n_keys^key_tokens = 2048^2 entries is more than 1,048,576"),
    ("spec-lookup-context-too-short", ["study", "--preset", "mirage-lookup", "--set", "train.seq_len=16", "--out", "{T}/s"], "raise train.seq_len to at least 20"),
    ("spec-probe-too-few-sequences", ["study", "--preset", "smoke", "--set", "probe.n_sequences=2", "--out", "{T}/s"], "probe.n_sequences"),
    ("spec-eval-zero-batch", ["study", "--preset", "smoke", "--set", "eval.batch_size=0", "--out", "{T}/s"], "eval.batch_size"),
    ("spec-unknown-executor", ["study", "--preset", "smoke", "--executor", "slurm", "--out", "{T}/s"], "executor: Input should be 'local' or 'ray'"),
    ("spec-mechanism-unknown-ablation", ["study", "--preset", "smoke", "--set", "mechanism.ablation=shuffle", "--out", "{T}/s"], "mechanism.ablation: Input should be 'mean' or 'zero'"),
    ("spec-mechanism-no-control-heads", ["study", "--preset", "smoke", "--set", "mechanism.k_heads=2", "--out", "{T}/s"], "mechanism.k_heads: 2 leaves no heads for the random control"),
    ("spec-loss-vocab-seen-with-mlm", ["study", "--preset", "smoke", "--set", "objectives=[mlm]", "--set", "train.loss_vocab=seen", "--out", "{T}/s"], "train.loss_vocab: seen restricts the causal LM's softmax"),
    ("spec-loss-after-unknown-symbol", ["study", "--preset", "smoke", "--set", "train.loss_after=zz", "--out", "{T}/s"], "train.loss_after: 'zz' is not a symbol of world induction"),
    ("spec-loss-after-with-mlm", ["study", "--preset", "smoke", "--set", "objectives=[mlm]", "--set", "train.loss_after=a", "--out", "{T}/s"], "train.loss_after restricts the causal LM's loss"),
    ("spec-loss-vocab-unknown", ["study", "--preset", "smoke", "--set", "train.loss_vocab=some", "--out", "{T}/s"], "train.loss_vocab: Input should be 'all' or 'seen'"),
    ("spec-explain-negative-seed", ["study", "--preset", "smoke", "--set", "explain.seed=-1", "--out", "{T}/s"], "explain.seed"),
    ("resource-data-beyond-disk", ["study", "--preset", "smoke", "--set", "train.steps=1000000000", "--set", "train.checkpoint_every=1000000", "--out", "{T}/s"], "on disk"),
    ("resource-data-beyond-memory", ["study", "--preset", "smoke", "--set", "train.steps=300000", "--set", "train.batch_size=1024", "--set", "train.checkpoint_every=100000", "--out", "{T}/s"], "needs about"),
    ("resource-giant-rung", ["study", "--preset", "smoke", "--set", "ladder.0.d_model=16384", "--set", "ladder.0.n_layer=1024", "--set", "ladder.0.n_head=16", "--out", "{T}/s"], "needs about"),
    ("resource-dry-run-refuses-too", ["study", "--preset", "smoke", "--dry-run", "--set", "train.steps=1000000000", "--set", "train.checkpoint_every=1000000", "--out", "{T}/s"], "on disk"),
    # external suites: refused before anything is written
    ("spec-suite-glob-matches-nothing", ["study", "{A}/suite_glob_empty.yaml", "--out", "{T}/s"], "matches no directory"),
    ("spec-suite-mixed-architectures", ["study", "{A}/suite_mixed_arch.yaml", "--out", "{T}/s"], "one entry is one architecture"),
    ("spec-suite-no-safetensors", ["study", "{A}/suite_pickle.yaml", "--out", "{T}/s"], "pickle"),
    ("spec-suite-unknown-step", ["study", "{A}/suite_no_step.yaml", "--out", "{T}/s"], "cannot tell the training step"),
    ("spec-suite-missing-revision", ["study", "{A}/suite_missing_revision.yaml", "--out", "{T}/s"], "revision 'step9'"),
    ("spec-suite-mixed-ladder", ["study", "{A}/suite_mixed_ladder.yaml", "--out", "{T}/s"], "mixes trained rungs"),
    # corpora
    ("corpus-empty", ["study", "--preset", "smoke", "--set", "world=text", "--set", "corpus={A}/empty.txt", "--out", "{T}/s"], "no text"),
    ("corpus-binary", ["study", "--preset", "smoke", "--set", "world=text", "--set", "corpus={A}/binary.bin", "--out", "{T}/s"], "binary"),
    ("corpus-missing", ["study", "--preset", "smoke", "--set", "world=text", "--set", "corpus={A}/nowhere", "--out", "{T}/s"], "does not exist"),
    ("corpus-no-text-column", ["study", "--preset", "smoke", "--set", "world=text", "--set", "corpus={A}/no_text_col.csv", "--out", "{T}/s"], "column"),
    ("corpus-not-given", ["study", "--preset", "smoke", "--set", "world=text", "--out", "{T}/s"], "corpus"),
    # task files
    ("task-missing", ["evaluate", "--model", "{A}/gpt", "--task", "{A}/nope.yaml", "--out", "{T}/e"], "does not exist"),
    ("task-unknown-field", ["evaluate", "--model", "{A}/gpt", "--task", "{A}/unknown_field.yaml", "--out", "{T}/e"], "colour"),
    ("task-missing-field", ["evaluate", "--model", "{A}/gpt", "--task", "{A}/missing_field.yaml", "--out", "{T}/e"], "doc_to_text"),
    ("task-bad-template", ["evaluate", "--model", "{A}/gpt", "--task", "{A}/bad_template.yaml", "--out", "{T}/e"], "no_such_column"),
    ("task-kshot-too-large", ["evaluate", "--model", "{A}/gpt", "--task", "{A}/ok.yaml", "--k-shot", "50", "--out", "{T}/e"], "shot"),
    ("task-cloze-on-causal", ["evaluate", "--model", "{A}/gpt", "--task", "{A}/cloze.yaml", "--out", "{T}/e"], "cloze"),
    # labelled data
    ("labels-one-class", ["finetune", "--model", "{A}/bert", "--data", "{A}/one_class.csv", "--out", "{T}/f"], "one class"),
    ("labels-missing-column", ["finetune", "--model", "{A}/bert", "--data", "{A}/no_label.csv", "--out", "{T}/f"], "label"),
    ("labels-empty-file", ["finetune", "--model", "{A}/bert", "--data", "{A}/empty.csv", "--out", "{T}/f"], "empty"),
    ("labels-too-many-requested", ["finetune", "--model", "{A}/bert", "--data", "{A}/ok.csv", "--labels", "5000", "--out", "{T}/f"], "5000"),
    ("labels-wrong-label-column", ["finetune", "--model", "{A}/bert", "--data", "{A}/ok.csv", "--label-column", "stars", "--out", "{T}/f"], "stars"),
    ("labels-untagged-token", ["probe", "--model", "{A}/bert", "--data", "{A}/tags_missing.txt", "--task", "tag", "--out", "{T}/p"], "TAG"),
    # model directories
    ("model-missing", ["finetune", "--model", "{A}/nowhere", "--data", "{A}/ok.csv", "--out", "{T}/f"], "does not exist"),
    ("model-empty-dir", ["evaluate", "--model", "{A}/empty_dir", "--task", "{A}/ok.yaml", "--out", "{T}/e"], "empty_dir"),
    ("model-no-tokenizer", ["evaluate", "--model", "{A}/no_tokenizer", "--task", "{A}/ok.yaml", "--out", "{T}/e"], "tokenizer"),
    ("model-pickle-only", ["evaluate", "--model", "{A}/pickle_only", "--task", "{A}/ok.yaml", "--out", "{T}/e"], "pickle"),
    ("model-corrupt-weights", ["evaluate", "--model", "{A}/corrupt", "--task", "{A}/ok.yaml", "--out", "{T}/e"], "corrupt"),
    ("model-pickle-probe", ["probe", "--model", "{A}/pickle_only", "--data", "{A}/tags.txt", "--task", "tag", "--out", "{T}/p"], "pickle"),
    # activation files
    ("activations-bad-out-suffix", ["activations", "--model", "{A}/bert", "--data", "{A}/ok.csv", "--out", "{T}/a.npy"], ".safetensors or .parquet"),
    ("activations-layer-out-of-range", ["activations", "--model", "{A}/bert", "--data", "{A}/ok.csv", "--layers", "99", "--out", "{T}/a.safetensors"], "out of range"),
    ("activations-missing-data", ["activations", "--model", "{A}/bert", "--data", "{A}/nowhere.txt", "--out", "{T}/a.safetensors"], "no text data"),
    # CLI arguments and directories
    ("cli-explain-no-table", ["explain", "{T}"], "measurements"),
    ("cli-report-no-study", ["report", "{T}"], "measurements.parquet"),
    ("cli-train-not-a-study", ["train", "{A}/not_a_study"], "not a study directory"),
    ("cli-study-foreign-dir", ["study", "--preset", "smoke", "--out", "{A}/not_a_study"], "not an emergelab study"),
    ("cli-unknown-stage", ["study", "--preset", "smoke", "--stages", "prepare,fly", "--out", "{T}/s"], "unknown stage 'fly'"),
    ("cli-unknown-world-show", ["worlds", "show", "galaxy"], "unknown world"),
    ("cli-unknown-option", ["study", "--frobnicate"], "--frobnicate"),
]


@pytest.mark.parametrize("case, argv, fragment", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_clear_line(case, argv, fragment, assets: Path, tmp_path: Path):
    before = {p: p.read_bytes() for p in assets.rglob("*") if p.is_file()}
    args = [a.replace("{A}", str(assets)).replace("{T}", str(tmp_path)) for a in argv]
    res = run_cli(*args, timeout=120)
    errors = [l for l in res.stderr.splitlines() if l.startswith("error:")]
    assert res.returncode == 2, f"{case}: rc={res.returncode}\n{res.stderr[-2000:]}"
    assert "Traceback" not in res.stderr and "Traceback" not in res.stdout, res.stderr[-2000:]
    assert len(errors) == 1, res.stderr
    assert fragment.lower() in errors[0].lower(), errors[0]
    after = {p: p.read_bytes() for p in assets.rglob("*") if p.is_file()}
    assert after == before  # nothing that existed was changed
    if case.startswith(("spec-", "resource-")):  # refused at the edge: no study directory was created
        assert not (tmp_path / "s").exists()


def test_catalogue_has_at_least_30_cases():
    assert len(CASES) >= 30
    kinds = {c[0].split("-")[0] for c in CASES}
    assert {"spec", "corpus", "task", "labels", "model", "cli"} <= kinds


def test_missing_ray_is_one_line_naming_the_extra(tmp_path: Path):
    """`--executor ray` without the ray package (hidden here, installed or not): exit 2, one line naming the
    extra, and nothing written. Its own test: the case needs a PYTHONPATH that hides the module."""
    hide = tmp_path / "hide" / "ray"
    hide.mkdir(parents=True)
    (hide / "__init__.py").write_text("raise ImportError(\"No module named 'ray'\")\n")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(hide.parent), os.environ.get("PYTHONPATH", "")])}
    res = subprocess.run([sys.executable, "-m", "emergelab", "study", "--preset", "smoke", "--executor", "ray",
                          "--out", str(tmp_path / "s")], capture_output=True, text=True, env=env, timeout=120)
    errors = [l for l in res.stderr.splitlines() if l.startswith("error:")]
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr[-2000:]
    assert len(errors) == 1 and "`pip install emergelab[ray]`" in errors[0], res.stderr
    assert not (tmp_path / "s").exists()
