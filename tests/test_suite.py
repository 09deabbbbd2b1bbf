"""External suites: a study over Hub revisions (an offline cache emergelab exported) or local directories
gives the same measurements and verdicts as the same checkpoints analysed as a trained ladder."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml

from emergelab.errors import UserError
from emergelab.layout import Layout
from emergelab.models import checkpoint as ckpt
from emergelab.models.export import add_revision
from emergelab.spec import parse
from emergelab.spec.suite import step_from_name
from tests.conftest import run_cli

RUNGS = ("L1-d8", "L2-d16")
STEPS = (0, 1, 2, 4, 8, 16)
TRAINED = {
    "name": "ladder", "seed": 0, "world": "induction",
    "world_args": {"vocab": 16, "min_period": 4, "max_period": 8, "answer_length": 3}, "objectives": ["clm"],
    "ladder": [{"name": "L1-d8", "n_layer": 1, "d_model": 8, "n_head": 2}, {"name": "L2-d16", "n_layer": 2, "d_model": 16, "n_head": 2}],
    "train": {"steps": 16, "batch_size": 16, "seq_len": 32, "lr": 0.003, "checkpoint_every": 8, "threads": 1, "workers": 1},
    "eval": {"n_examples": 32, "n_bootstrap": 20, "heldout_sequences": 16},
    "probe": {"n_sequences": 16, "max_tokens": 300},
}
KEY = ["source", "rung", "step", "task", "k_shot", "layer", "metric"]


def cli(*args: str, cache: Path | None = None) -> subprocess.CompletedProcess:
    """The CLI offline, with ``cache`` as the Hub cache (a plain subprocess then: the Hub reads it on import)."""
    return run_cli(*args, timeout=600, env={"HF_HUB_OFFLINE": "1", **({"HF_HUB_CACHE": str(cache)} if cache else {})})


def suite_spec(name: str, revisions: dict[str, list[str]], **extra) -> dict:
    ladder = [{"name": r, "model": f"emergelab/{r}", "revisions": revs, "tokens_per_step": 16 * 32}
              for r, revs in revisions.items()]
    return {**TRAINED, "name": name, "ladder": ladder, **extra}


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """Two sizes, six checkpoints each, trained and analysed as a ladder."""
    root = tmp_path_factory.mktemp("suite")
    (root / "trained.yaml").write_text(yaml.safe_dump(TRAINED))
    res = cli("study", str(root / "trained.yaml"), "--out", str(root / "trained"))
    assert res.returncode == 0, res.stderr[-3000:]
    return root / "trained"


@pytest.fixture(scope="module")
def hub_cache(trained) -> Path:
    """The trained checkpoints exported as a Hub cache: ``emergelab/<rung>`` at revisions ``step<N>``."""
    cache = trained.parent / "hf" / "hub"
    res = cli("export-suite", str(trained), "--cache", str(cache))
    assert res.returncode == 0, res.stderr[-3000:]
    return cache


def run_suite(tmp: Path, spec: dict, cache: Path, stages: str | None = None) -> Path:
    (tmp / "suite.yaml").write_text(yaml.safe_dump(spec))
    res = cli("study", str(tmp / "suite.yaml"), "--out", str(tmp / "s"), *(["--stages", stages] if stages else []), cache=cache)
    assert res.returncode == 0, res.stderr[-3000:]
    return tmp / "s"


def analysed(root: Path) -> pd.DataFrame:
    df = pd.read_parquet(root / "measurements.parquet")
    return df[df.source != "train"].drop(columns="study").sort_values(KEY).reset_index(drop=True)


def test_the_cache_has_the_layout_huggingface_hub_writes(hub_cache):
    from huggingface_hub import snapshot_download

    repo = hub_cache / "models--emergelab--L2-d16"
    commit = (repo / "refs" / "step8").read_text()
    assert re.fullmatch(r"[0-9a-f]{40}", commit) and (repo / "refs" / "main").read_text() == (repo / "refs" / "step16").read_text()
    weights = repo / "snapshots" / commit / "model.safetensors"
    assert weights.is_symlink() and weights.resolve().parent == (repo / "blobs").resolve()
    got = snapshot_download("emergelab/L2-d16", revision="step8", cache_dir=str(hub_cache), local_files_only=True)
    assert Path(got) == repo / "snapshots" / commit


def test_suite_study_equals_the_trained_ladder(trained, hub_cache, tmp_path):
    suite = run_suite(tmp_path, suite_spec("suite", {r: [f"step{s}" for s in STEPS] for r in RUNGS}), hub_cache)
    assert not (suite / "runs").exists()  # nothing trained
    a, b = analysed(trained), analysed(suite)
    assert len(a) == len(b) > 0 and set(b.source) == {"eval", "probe", "heads", "mechanism", "baseline"}
    pd.testing.assert_frame_equal(a, b)  # every column but the study's name: values, steps, tokens, FLOPs, n_params
    ea, eb = (json.loads((d / "explanations.json").read_text()) for d in (trained, suite))
    assert ea == eb  # the verdicts, fits, onsets and leads
    page = (suite / "report" / "index.html").read_text()
    assert "Suite integrity" in page and "flags nothing" in page
    verdicts = lambda p: re.search(r"<table class=\"?'?verdicts.*?</table>", p, re.S).group(0)  # noqa: E731
    assert verdicts(page) == verdicts((trained / "report" / "index.html").read_text())
    audit = json.loads((suite / "suite_audit.json").read_text())
    for rec in audit["checkpoints"]:  # the parts record the checkpoint's weights sha256 exactly as trained ladders do
        man = ckpt.read_manifest(Layout(trained).checkpoint(rec["rung"], rec["step"]))
        assert rec["weights_sha256"] == man["weights_sha256"] and rec["n_params"] == man["n_params"]
    before = {p: p.stat().st_mtime_ns for p in (suite / "parts").rglob("*.parquet")}
    again = cli("study", str(tmp_path / "suite.yaml"), "--out", str(suite), cache=hub_cache)
    assert again.returncode == 0, again.stderr[-2000:]
    assert {p: p.stat().st_mtime_ns for p in (suite / "parts").rglob("*.parquet")} == before  # incremental: nothing redone


def test_duplicated_revision_is_flagged_and_analysed_once(trained, hub_cache, tmp_path):
    cache = tmp_path / "hub"
    shutil.copytree(hub_cache, cache, symlinks=True)
    # Pythia #205: a revision that claims step 32 serves step 16's weights
    add_revision(cache, "emergelab/L1-d8", "step32", Layout(trained).checkpoint("L1-d8", 16))
    spec = suite_spec("dup", {"L1-d8": [f"step{s}" for s in STEPS] + ["step32"]}, probe={"heads": False, "n_sequences": 16, "max_tokens": 300})
    root = run_suite(tmp_path, {**spec, "ladder": [{**spec["ladder"][0], "steps": [*STEPS, 32]}]}, cache, "prepare,suite,evaluate")
    audit = json.loads((root / "suite_audit.json").read_text())
    dups = [f for f in audit["flags"] if f["kind"] == "duplicate"]
    assert dups == [{"kind": "duplicate", "rung": "L1-d8", "step": 32, "source": "emergelab/L1-d8@step32",
                     "same_as": "emergelab/L1-d8@step16", "same_as_step": 16}]
    assert sorted(p.name for p in (root / "parts" / "eval" / "L1-d8").iterdir()) == [f"step-{s:06d}.parquet" for s in STEPS]


def test_glob_of_local_directories(trained, tmp_path):
    spec = {**TRAINED, "name": "glob", "ladder": [{"name": "L2-d16", "models": str(trained / "runs" / "L2-d16" / "checkpoints" / "step-*"),
                                                   "tokens_per_step": 512}]}
    root = run_suite(tmp_path, spec, None, "prepare,suite")
    audit = json.loads((root / "suite_audit.json").read_text())
    assert [r["step"] for r in audit["checkpoints"]] == list(STEPS)
    assert all(r["local"] and r["tokens"] == 512 * r["step"] for r in audit["checkpoints"])
    norms = [r["weight_norm"] for r in audit["checkpoints"]]
    assert all(n > 0 for n in norms) and all(0.9 < r["cosine_to_previous"] <= 1 for r in audit["checkpoints"][1:])


def test_suite_without_a_world_scores_task_files_and_probes_labelled_data(tmp_path):
    """Two local checkpoints (``checkpoint-N``) of a word-level GPT-2: lm-eval-style YAML tasks and a labelled CSV."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from emergelab.corpus.tokenizer import symbol_tokenizer

    words = ["good", "bad", "fine", "awful", "movie", "film", "is", "was", "the", "a"]
    tok = symbol_tokenizer(words)
    for step in (10, 20):
        torch.manual_seed(step)
        model = GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_positions=64, n_embd=16, n_layer=1, n_head=2))
        model.save_pretrained(tmp_path / "run" / f"checkpoint-{step}")
        tok.save_pretrained(tmp_path / "run" / f"checkpoint-{step}")
    docs = [{"question": f"the film was {w}", "answer": w} for w in ("good", "bad", "fine")]
    (tmp_path / "docs.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    task = {"task": "words", "dataset_path": "json", "dataset_kwargs": {"data_files": {"test": str(tmp_path / "docs.jsonl")}},
            "test_split": "test", "output_type": "loglikelihood", "doc_to_text": "{{question}}", "doc_to_target": " {{answer}}"}
    (tmp_path / "words.yaml").write_text(yaml.safe_dump(task))
    rows = [("the film was good", "pos"), ("a good movie", "pos"), ("the film was awful", "neg"), ("a bad movie", "neg")] * 6
    (tmp_path / "sentiment.csv").write_text("text,label\n" + "".join(f"{t},{l}\n" for t, l in rows))
    spec = {"name": "noworld", "ladder": [{"name": "gpt", "models": str(tmp_path / "run" / "checkpoint-*")}],
            "eval": {"task_files": [str(tmp_path / "words.yaml")], "n_bootstrap": 10},
            "probe": {"data": str(tmp_path / "sentiment.csv"), "data_task": "classify"}}
    root = run_suite(tmp_path, spec, None)
    df = pd.read_parquet(root / "measurements.parquet")
    assert not (root / "data").exists()
    assert set(df[df.source == "eval"].step) == {-1, 10, 20}
    assert set(df[df.source == "probe"].task) == {"sentiment"} and set(df[df.source == "probe"].step) == {10, 20}
    assert (root / "explanations.json").exists() and (root / "report" / "index.html").exists()


@pytest.mark.parametrize("name, step", [("step1000", 1000), ("checkpoint-250", 250), ("step-000064", 64),
                                        ("global_step12", 12), ("main", None), ("v1.0", None)])
def test_step_from_name(name, step):
    assert step_from_name(name) == step


def test_a_suite_spec_needs_no_world_and_refuses_a_mixed_ladder():
    spec = parse({"name": "p", "ladder": [{"name": "p70m", "model": "EleutherAI/pythia-70m", "revisions": ["step0", "step1000"]}]})
    assert spec.is_suite and spec.world is None
    with pytest.raises(UserError, match="mixes trained rungs"):
        parse({"ladder": [{"name": "a", "n_layer": 1, "d_model": 8, "n_head": 2}, {"name": "b", "model": "x/y"}]})
    with pytest.raises(UserError, match="revisions go with model"):
        parse({"ladder": [{"name": "b", "models": "./x-*", "revisions": ["step1"]}]})
    with pytest.raises(UserError, match="2 steps for 1"):
        parse({"ladder": [{"name": "b", "model": "x/y", "revisions": ["main"], "steps": [1, 2]}]})


def test_dry_run_lists_the_checkpoints_and_their_memory_and_writes_nothing(hub_cache, tmp_path):
    spec = suite_spec("dry", {r: [f"step{s}" for s in STEPS] for r in RUNGS})
    (tmp_path / "suite.yaml").write_text(yaml.safe_dump(spec))
    res = cli("study", str(tmp_path / "suite.yaml"), "--out", str(tmp_path / "s"), "--dry-run", cache=hub_cache)
    assert res.returncode == 0, res.stderr[-2000:]
    out = res.stdout + res.stderr
    for r in RUNGS:
        assert re.search(rf"suite entry {r}: 6 checkpoint\(s\), [\d,]+ parameters: emergelab/{r}@step0 \(step 0\), ", out), out
    assert "emergelab/L2-d16@step16 (step 16)" in out and "peak memory" in out and "emergelab/L2-d16@step0 in float32" in out
    assert "to download" not in out  # every revision is in the cache
    assert not (tmp_path / "s").exists()


def test_params_from_config_match_the_instantiated_models():
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, GPT2Config, GPTNeoXConfig, LlamaConfig

    from emergelab.preflight.suite import params_from_config

    configs = [GPT2Config(n_embd=768, n_layer=12, n_head=12),  # GPT-2 small
               GPTNeoXConfig(hidden_size=512, num_hidden_layers=6, num_attention_heads=8, intermediate_size=2048,
                             vocab_size=50304, tie_word_embeddings=False),  # Pythia-70m's shape
               LlamaConfig(hidden_size=256, intermediate_size=688, num_hidden_layers=4, num_attention_heads=8,
                           num_key_value_heads=2, vocab_size=32000)]
    for cfg in configs:
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(AutoConfig.for_model(**cfg.to_dict()))
        n = sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())
        assert abs(params_from_config(cfg.to_dict()) - n) / n < 0.02, (cfg.model_type, params_from_config(cfg.to_dict()), n)


def test_a_checkpoint_that_cannot_fit_in_memory_is_refused():
    from emergelab.preflight.suite import Checkpoint, suite_plan

    spec = parse({"name": "big", "ladder": [{"name": "huge", "model": "org/huge", "revisions": ["step1"]}]})
    with pytest.raises(UserError, match=r"org/huge@step1 \(10,000,000M parameters\) needs about 40.0 TB of memory in float32 but .* "
                                        r"available; set dtype: bfloat16 in its ladder entry"):
        suite_plan(spec, [Checkpoint("huge", "org/huge@step1", 1, 10**13, 4 * 10**13, True)])
