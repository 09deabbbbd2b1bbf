"""The study's evaluate stage: causal and masked checkpoints, exact scoring, incremental resume."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch

from emergelab.corpus.tokenizer import load_tokenizer
from emergelab.layout import Layout
from emergelab.measurements import make_frame
from emergelab.models import checkpoint as ckpt
from emergelab.stages import evaluate as stage
from emergelab.study import read_spec, run_stages, run_study

TINY = ["ladder=[{name: a, n_layer: 1, d_model: 16, n_head: 2}]", "train.steps=4", "train.checkpoint_every=4",
        "train.batch_size=4", "train.seq_len=16", "train.workers=1", "eval.n_examples=12", "eval.heldout_sequences=4",
        "eval.n_bootstrap=10", "probe.n_sequences=4"]


@pytest.fixture(scope="module")
def causal_study(tmp_path_factory):
    root = tmp_path_factory.mktemp("ev") / "causal"
    run_study(read_spec(preset="smoke", overrides=TINY), root, ["prepare", "train"])
    return root


@pytest.fixture(scope="module")
def masked_study(tmp_path_factory):
    """A prepared study with objectives [mlm, nsp] and two BertForPreTraining checkpoints saved by hand."""
    from emergelab.models import build_model

    root = tmp_path_factory.mktemp("ev") / "masked"
    spec = read_spec(preset="smoke", overrides=TINY + ["objectives=[mlm, nsp]"])
    run_study(spec, root, ["prepare"])
    lay = Layout(root)
    tok = load_tokenizer(lay.data / "tokenizer")
    vocab = json.loads((lay.data / "manifest.json").read_text())["vocab_size"]
    for step in (0, 4):
        torch.manual_seed(step)
        model = build_model(spec.ladder[0], vocab_size=vocab, seq_len=spec.train.seq_len, causal=False, pad_token_id=tok.pad_token_id)
        ckpt.save_checkpoint(lay.checkpoint("a", step), model, tok,
                             {"run": "a", "rung": "a", "step": step, "tokens_seen": step * 64, "flops": 1.0, "n_params": 1})
    return root


def _rows(root) -> pd.DataFrame:
    return pd.concat([pd.read_parquet(p) for p in sorted((Layout(root).parts / "eval" / "a").glob("step-*.parquet"))])


def test_causal_scores_equal_direct_computation(causal_study, tmp_path):
    root = tmp_path / "s"
    shutil.copytree(causal_study, root)
    # one unit per checkpoint, and one for the tasks' chance levels and answer lengths
    assert run_stages(root, ["evaluate"])["evaluate"] == len(ckpt.list_checkpoints(Layout(root).checkpoints("a"))) + 1
    df = _rows(root)
    lay = Layout(root)
    model = ckpt.load_model(lay.checkpoint("a", 4))
    ex = lay.data_dir.task("induction")
    lp, em = [], []
    for e in ex:
        ids = torch.tensor([e["prompt"] + e["target"]])
        with torch.no_grad():
            logp = torch.log_softmax(model(ids).logits[0], -1)
        pos = range(len(e["prompt"]) - 1, len(e["prompt"]) - 1 + len(e["target"]))
        lp.append(sum(logp[p, t].item() for p, t in zip(pos, e["target"])))
        em.append(all(int(logp[p].argmax()) == t for p, t in zip(pos, e["target"])))
    at4 = df[(df.step == 4) & (df.task == "induction")].set_index("metric").value
    assert at4["target_logprob"] == pytest.approx(np.mean(lp), abs=1e-5)
    assert at4["exact_match"] == pytest.approx(np.mean(em))  # greedy generation = every target token the argmax
    assert {"token_accuracy", "target_logprob_per_token", "brier", "edit_distance"} <= set(at4.index)
    chance = pd.read_parquet(lay.part("eval", "_task"))
    assert {"chance/exact_match", "chance/token_accuracy", "chance/brier", "answer_length"} <= set(chance.metric)
    assert (df[df.task == "heldout"].metric == "loss").all()


def test_masked_induction_is_scored_by_masking_the_targets(masked_study, tmp_path):
    root = tmp_path / "s"
    shutil.copytree(masked_study, root)
    assert run_stages(root, ["evaluate"])["evaluate"] == 2 + 1
    df = _rows(root)
    lay = Layout(root)
    tok = load_tokenizer(lay.data / "tokenizer")
    model = ckpt.load_model(lay.checkpoint("a", 4))
    em, acc, lp = [], [], []
    for e in lay.data_dir.task("induction"):
        # an NSP study's rows are [CLS] A [SEP] B [SEP]: the prompt is wrapped alike, the targets all masked
        ids = [tok.cls_token_id] + e["prompt"] + [tok.mask_token_id] * len(e["target"]) + [tok.sep_token_id]
        with torch.no_grad():
            logp = torch.log_softmax(model(torch.tensor([ids])).prediction_logits[0], -1)
        pos = range(1 + len(e["prompt"]), len(ids) - 1)
        hits = [int(logp[p].argmax()) == t for p, t in zip(pos, e["target"])]
        em.append(all(hits))
        acc.append(np.mean(hits))
        lp.append(sum(logp[p, t].item() for p, t in zip(pos, e["target"])))
    at4 = df[(df.step == 4) & (df.task == "induction")].set_index("metric").value
    assert at4["exact_match"] == pytest.approx(np.mean(em))
    assert at4["token_accuracy"] == pytest.approx(np.mean(acc))
    assert at4["target_logprob"] == pytest.approx(np.mean(lp), abs=1e-5)
    assert "target_pll" in at4.index and "edit_distance" not in at4.index
    loss = df[(df.step == 4) & (df.task == "heldout")].value.iloc[0]
    assert 0.5 * np.log(len(tok)) < loss < 2 * np.log(len(tok))  # an untrained MLM: about log V


def test_killed_evaluation_resumes_without_duplicates(causal_study, tmp_path, monkeypatch):
    root = tmp_path / "s"
    shutil.copytree(causal_study, root)
    steps = list(ckpt.list_checkpoints(Layout(root).checkpoints("a")))
    real, calls = stage.evaluate_checkpoint, []

    def dies_on_third(*a, **kw):
        calls.append(a[0].step)
        if len(calls) == 3:
            raise KeyboardInterrupt  # killed while evaluating the third checkpoint
        return real(*a, **kw)

    monkeypatch.setattr(stage, "evaluate_checkpoint", dies_on_third)
    with pytest.raises(KeyboardInterrupt):
        run_stages(root, ["evaluate"])  # train.workers=1: in this process, so the patch applies
    assert len(list((Layout(root).parts / "eval" / "a").glob("step-*.parquet"))) == 2
    monkeypatch.setattr(stage, "evaluate_checkpoint", real)
    assert run_stages(root, ["evaluate"])["evaluate"] == len(steps) - 2
    assert run_stages(root, ["evaluate"])["evaluate"] == 0
    df = make_frame(_rows(root).to_dict("records"))
    key = ["rung", "step", "task", "k_shot", "metric"]
    assert not df.duplicated(key).any()
    assert sorted(df.step.unique()) == steps


def test_text_task_file_in_a_study_and_k_too_large(causal_study, tmp_path):
    from emergelab.errors import UserError

    root = tmp_path / "s"
    shutil.copytree(causal_study, root)
    (tmp_path / "d.jsonl").write_text("".join(json.dumps({"q": f"s{i} s{i + 1}", "a": f"s{i + 2}"}) + "\n" for i in range(5)))
    task = tmp_path / "text.yaml"
    task.write_text("task: text\ndataset_path: json\ndataset_kwargs: {data_files: d.jsonl}\ndoc_to_text: q\ndoc_to_target: a\n")
    spec_text = (root / "study.yaml").read_text().replace("task_files: []", f"task_files: [{task}]")
    (root / "study.yaml").write_text(spec_text.replace("  - 0\n  n_bootstrap", "  - 0\n  - 40\n  n_bootstrap"))
    with pytest.raises(UserError, match="40-shot needs 40 demonstrations but only 4 examples"):
        run_stages(root, ["evaluate"])
    assert not (Layout(root).parts / "eval" / "a").exists()
    (root / "study.yaml").write_text(spec_text.replace("  - 0\n  n_bootstrap", "  - 0\n  - 2\n  n_bootstrap"))
    run_stages(root, ["evaluate"])
    df = _rows(root)
    assert set(df[df.task == "text"].k_shot) == {0, 2} and set(df[df.task == "induction"].k_shot) == {0}
