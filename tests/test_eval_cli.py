"""`emergelab evaluate --model DIR --task TASK.yaml`: runs on causal and masked models; bad input is one line, exit 2."""
from __future__ import annotations

import json
import sys

import pandas as pd
import pytest
import torch

from emergelab.corpus.tokenizer import symbol_tokenizer

WORDS = ["Q:", "A:", "is", "the", "cat", "dog", "red", "blue", "yes", "no", "very"] + [f"w{i}" for i in range(20)]


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    """A tiny GPT-2 and a tiny BERT (save_pretrained, word-level tokenizer) and text tasks over JSONL."""
    from transformers import BertConfig, BertForMaskedLM, GPT2Config, GPT2LMHeadModel

    root = tmp_path_factory.mktemp("eval_cli")
    tok = symbol_tokenizer(WORDS)
    torch.manual_seed(0)
    gpt = GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_positions=64, n_embd=16, n_layer=1, n_head=2,
                                     bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id))
    gpt.save_pretrained(root / "gpt2")
    tok.save_pretrained(root / "gpt2")
    bert = BertForMaskedLM(BertConfig(vocab_size=len(tok), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                      intermediate_size=32, max_position_embeddings=64))
    bert.save_pretrained(root / "bert")
    tok.save_pretrained(root / "bert")
    docs = [{"q": f"the cat is w{i}", "a": "very red" if i % 2 else "blue", "choices": ["yes", "no", "very red"],
             "label": i % 3} for i in range(6)]
    (root / "d.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    head = "dataset_path: json\ndataset_kwargs: {data_files: {test: d.jsonl}}\ntest_split: test\ndoc_to_text: \"Q: {{q}}\"\n"
    (root / "mc.yaml").write_text("task: mc\n" + head + "output_type: multiple_choice\ndoc_to_choice: \"{{choices}}\"\n"
                                  "doc_to_target: \"{{label}}\"\nmetric_list: [{metric: acc}, {metric: acc_norm}]\n")
    (root / "gen.yaml").write_text("task: gen\n" + head + "output_type: generate_until\ndoc_to_target: \"{{a}}\"\n"
                                   "target_delimiter: \" A: \"\ngeneration_kwargs: {until: [\"\\n\"], max_gen_toks: 4}\n")
    (root / "cloze.yaml").write_text("task: cloze\n" + head + "output_type: cloze\ndoc_to_target: \"{{a}}\"\n")
    return root


def cli(monkeypatch, capsys, *args) -> tuple[int, str]:
    from emergelab.cli import main

    monkeypatch.setattr(sys, "argv", ["emergelab", *map(str, args)])
    code = 0
    try:
        main()
    except SystemExit as e:
        code = e.code
    cap = capsys.readouterr()
    return code, cap.out + cap.err


def test_causal_model_with_lm_eval_tasks(assets, tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    code, text = cli(monkeypatch, capsys, "evaluate", "--model", assets / "gpt2", "--task", assets / "mc.yaml",
                     "--task", assets / "gen.yaml", "--k-shot", "0,2", "--limit", "4", "--out", out, "--threads", "1")
    assert code == 0, text
    df = pd.read_parquet(out / "measurements.parquet")
    got = set(zip(df.task, df.k_shot, df.metric))
    for k in (0, 2):
        assert {("mc", k, m) for m in ("mc_accuracy", "mc_accuracy_norm", "brier", "target_logprob", "exact_match")} <= got
        assert {("gen", k, m) for m in ("exact_match", "edit_distance", "token_accuracy", "target_logprob_per_token")} <= got
    assert df[(df.task == "mc") & (df.metric == "mc_accuracy")].n.tolist() == [4, 4]
    chance = df[df.metric == "chance/mc_accuracy"].value.tolist()
    assert chance == pytest.approx([1 / 3])
    assert "mc_accuracy" in text and "causal model" in text


def test_masked_model_cloze_and_multiple_choice(assets, tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    code, text = cli(monkeypatch, capsys, "evaluate", "--model", assets / "bert", "--task", assets / "cloze.yaml",
                     "--task", assets / "mc.yaml", "--out", out)
    assert code == 0, text
    df = pd.read_parquet(out / "measurements.parquet")
    metrics = set(df[df.task == "cloze"].metric)
    assert {"exact_match", "token_accuracy", "target_logprob", "brier", "target_pll"} <= metrics
    assert "mc_accuracy" in set(df[df.task == "mc"].metric)
    assert "masked model" in text


def _bad(assets, tmp_path, body: str):
    p = tmp_path / "bad.yaml"
    p.write_text(body.replace("DATA", str(assets / "d.jsonl")))
    return p


@pytest.mark.parametrize("case, fragment", [
    ("missing", "missing required field 'dataset_path'"),
    ("unknown", "unknown field 'prompt'"),
    ("column", "refers to column 'question', which the data lacks"),
    ("kshot", "7-shot needs 7 demonstrations but only 5 examples are available"),
    ("cloze_causal", "needs a masked model"),
    ("no_tokenizer", "has no tokenizer"),
    ("pickle", "only pickle weights"),
    ("no_out", "--model needs --out"),
])
def test_bad_input_is_one_line_exit_2(assets, tmp_path, monkeypatch, capsys, case, fragment):
    task = assets / "gen.yaml"
    model = assets / "gpt2"
    extra = []
    if case == "missing":
        task = _bad(assets, tmp_path, "task: t\ndoc_to_text: q\ndoc_to_target: a\n")
    elif case == "unknown":
        task = _bad(assets, tmp_path, "task: t\ndataset_path: json\ndataset_kwargs: {data_files: DATA}\ndoc_to_text: q\ndoc_to_target: a\nprompt: x\n")
    elif case == "column":
        task = _bad(assets, tmp_path, "task: t\ndataset_path: json\ndataset_kwargs: {data_files: DATA}\ndoc_to_text: \"{{question}}\"\ndoc_to_target: a\n")
    elif case == "kshot":
        extra = ["--k-shot", "0,7"]
    elif case == "cloze_causal":
        task = assets / "cloze.yaml"
    elif case in ("no_tokenizer", "pickle"):
        model = tmp_path / "m"
        model.mkdir()
        (model / "config.json").write_text((assets / "gpt2" / "config.json").read_text())
        if case == "pickle":
            (model / "pytorch_model.bin").write_bytes(b"not loaded")
        else:
            (model / "model.safetensors").write_bytes((assets / "gpt2" / "model.safetensors").read_bytes())
    out = [] if case == "no_out" else ["--out", tmp_path / "out"]
    code, text = cli(monkeypatch, capsys, "evaluate", "--model", model, "--task", task, *out, *extra)
    assert code == 2
    lines = [ln for ln in text.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and fragment in lines[0], text
    assert "Traceback" not in text
    assert not (tmp_path / "out" / "measurements.parquet").exists()
