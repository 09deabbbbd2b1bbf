"""`emergelab finetune`: a single run with export, a sweep with its summary, and one-line errors (exit 2)."""
from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    """A random tiny BERT with a WordPiece vocabulary of the toy words (errors and plumbing need no skill)."""
    from transformers import BertConfig, BertModel, BertTokenizer

    d = tmp_path_factory.mktemp("bert")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(20)]
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=64, max_position_embeddings=32)).save_pretrained(d)
    BertTokenizer(vocab={w: i for i, w in enumerate(vocab)}).save_pretrained(d)
    return d


def csv_file(path: Path, n: int = 120, labels=("neg", "pos"), seed: int = 0) -> Path:
    rng = random.Random(seed)
    lines = ["text,label"]
    for _ in range(n):
        y = rng.randrange(len(labels))
        lines.append(" ".join(f"w{10 * (y % 2) + rng.randrange(10)}" for _ in range(5)) + f",{labels[y]}")
    path.write_text("\n".join(lines) + "\n")
    return path


def run_cli(monkeypatch, capsys, *args) -> tuple[int, str]:
    from emergelab.cli import main

    monkeypatch.setenv("TRANSFORMERS_VERBOSITY", "error")
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")
    monkeypatch.setattr(sys, "argv", ["emergelab", "finetune", *map(str, args)])
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code
    cap = capsys.readouterr()
    return code, cap.err + cap.out  # messages on stderr, the result tables on stdout


def test_single_run_saves_a_reloadable_run_and_exports(model_dir, tmp_path, monkeypatch, capsys):
    from transformers import AutoModelForSequenceClassification

    from emergelab.finetune import load_finetuned
    from emergelab.measurements import read_table

    data = csv_file(tmp_path / "toy.csv")
    code, err = run_cli(monkeypatch, capsys, "--model", model_dir, "--data", data, "--method", "lora", "--steps", 3,
                        "--labels", 32, "--out", tmp_path / "run", "--export", tmp_path / "plain")
    assert code == 0, err
    assert "finetune/toy/lora" in err and "trainable" in err
    rec = json.loads((tmp_path / "run" / "finetune.json").read_text())
    assert rec["k_shot"] == 32 and rec["eval"]["n"] == 24 and 0 < rec["trainable_fraction"] < 1
    table = read_table(tmp_path / "run")
    assert set(table["metric"]) == {"accuracy", "macro_f1", "majority_baseline"} and (table["k_shot"] == 32).all()
    texts = ["w1 w2 w3", "w15 w12 w11"]
    plain = AutoModelForSequenceClassification.from_pretrained(tmp_path / "plain", use_safetensors=True)
    assert plain.config.id2label == {0: "neg", 1: "pos"}
    assert load_finetuned(tmp_path / "run").predict(texts)  # reloadable
    code, err = run_cli(monkeypatch, capsys, "--model", model_dir, "--data", data, "--method", "lora", "--steps", 3,
                        "--labels", 32, "--out", tmp_path / "run")
    assert code == 0 and "recorded earlier" in err  # same settings: skipped, not redone


def test_sweep_prints_mean_and_std(model_dir, tmp_path, monkeypatch, capsys):
    from emergelab.measurements import read_table

    data = csv_file(tmp_path / "toy.csv")
    code, err = run_cli(monkeypatch, capsys, "--model", model_dir, "--data", data, "--method", "lora,ia3",
                        "--labels", "4,all", "--seeds", 2, "--steps", 2, "--eval-size", 20, "--out", tmp_path / "sweep")
    assert code == 0, err
    assert "sample efficiency" in err and "±" in err and "trainable parameters" in err
    assert "tfidf-logreg (baseline)" in err and "frozen-logreg (baseline)" in err  # beside the runs
    table = read_table(tmp_path / "sweep")
    runs, baselines = table[table.source == "finetune"], table[table.source == "baseline"]
    assert len(runs) == 2 * 2 * 2 * 3 and len(baselines) == 2 * 2 * 3 * 2  # baselines once per label count and seed
    assert set(runs["task"]) == {"finetune/toy/lora", "finetune/toy/ia3"} and set(table["k_shot"]) == {4, 100}
    assert (tmp_path / "sweep" / "summary.csv").exists()


def _pickle_only(tmp: Path) -> Path:
    d = tmp / "bin"
    d.mkdir()
    (d / "config.json").write_text('{"model_type": "bert"}')
    (d / "pytorch_model.bin").write_bytes(b"\x80\x02pickle")
    return d


def _no_tokenizer(tmp: Path, model_dir: Path) -> Path:
    d = tmp / "notok"
    d.mkdir()
    for f in ("config.json", "model.safetensors"):
        (d / f).write_bytes((model_dir / f).read_bytes())
    return d


@pytest.mark.parametrize(
    "case, match",
    [
        ("one_class", "only one class"),
        ("unseen_eval_label", "'meh' that never occur"),
        ("too_many_labels", "--labels 500 is more than the 96 labelled examples"),
        ("bad_targets", "target module(s) nope do not exist"),
        ("missing_model", "does not exist"),
        ("no_tokenizer", "has no tokenizer"),
        ("pickle_weights", "only pickle weights"),
        ("unknown_method", "unknown fine-tuning method 'prefix'"),
        ("export_sweep", "--export needs a single run"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(model_dir, tmp_path, monkeypatch, capsys, case, match):
    data = csv_file(tmp_path / "toy.csv")
    args = {"--model": model_dir, "--data": data, "--out": tmp_path / "o", "--steps": 1}
    extra: list = []
    if case == "one_class":
        args["--data"] = csv_file(tmp_path / "one.csv", labels=("pos",))
    elif case == "unseen_eval_label":
        extra = ["--eval-data", csv_file(tmp_path / "ev.csv", n=10, labels=("neg", "meh"))]
    elif case == "too_many_labels":
        extra = ["--labels", "16,500"]
    elif case == "bad_targets":
        extra = ["--target-modules", "nope"]
    elif case == "missing_model":
        args["--model"] = tmp_path / "nowhere"
    elif case == "no_tokenizer":
        args["--model"] = _no_tokenizer(tmp_path, model_dir)
    elif case == "pickle_weights":
        args["--model"] = _pickle_only(tmp_path)
    elif case == "unknown_method":
        extra = ["--method", "lora,prefix"]
    elif case == "export_sweep":
        extra = ["--seeds", "2", "--export", tmp_path / "e"]
    flat = [x for kv in args.items() for x in kv] + extra
    code, err = run_cli(monkeypatch, capsys, *flat)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert lines[-1].startswith("error: ") and match in lines[-1], err
    assert "Traceback" not in err
