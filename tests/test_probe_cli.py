"""`emergelab probe --model DIR --data FILE`: a tiny saved BERT probed on a word/TAG file, and one-line errors."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

pytest.importorskip("emergelab.corpus.labelled", reason="emergelab.corpus.labelled (load_labelled) is not written yet")

NOUNS = ["cat", "dog", "bird", "fish", "tree", "house", "car", "book"]
VERBS = ["runs", "sees", "eats", "likes", "finds", "makes"]
DETS = ["the", "a", "every", "some"]


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory) -> Path:
    from transformers import BertConfig, BertModel, BertTokenizer

    path = tmp_path_factory.mktemp("models") / "tiny-bert"
    words = DETS + NOUNS + VERBS + ["."]
    vocab = {w: i for i, w in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words, "##s"])}
    tokenizer = BertTokenizer(vocab=vocab)
    torch.manual_seed(0)
    model = BertModel(BertConfig(num_hidden_layers=2, hidden_size=32, num_attention_heads=4, intermediate_size=64,
                                 vocab_size=len(vocab), max_position_embeddings=64))
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def tagged_file(tmp_path_factory) -> Path:
    rng = np.random.default_rng(0)
    lines = []
    for _ in range(60):  # "the cat sees a dog ." in word/TAG form
        s = [f"{rng.choice(DETS)}/DET", f"{rng.choice(NOUNS)}/NOUN", f"{rng.choice(VERBS)}/VERB",
             f"{rng.choice(DETS)}/DET", f"{rng.choice(NOUNS)}/NOUN", "./PUNCT"]
        lines.append(" ".join(s))
    path = tmp_path_factory.mktemp("data") / "toy_pos.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


def _cli(args: list[str], capsys, monkeypatch) -> tuple[int, str]:
    from emergelab.cli import main

    monkeypatch.setattr(sys, "argv", ["emergelab", *args])
    torch.set_num_threads(1)
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_standalone_probe_on_tiny_bert(tiny_bert, tagged_file, tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    code, text = _cli(["probe", "--model", str(tiny_bert), "--data", str(tagged_file), "--task", "tag",
                       "--max-examples", "50", "--out", str(out)], capsys, monkeypatch)
    assert code == 0, text
    assert "selectivity" in text and "control accuracy" in text
    assert "word lookup" in text  # the baselines are printed beside the layers
    rows = pd.read_parquet(out / "measurements.parquet")
    base = rows[rows.source == "baseline"].set_index("metric").value
    # every word of this toy language has one tag: the word lookup is right on every word seen in training
    assert base["word_lookup_baseline"] > 0.95 and base["majority_baseline"] == pytest.approx(
        rows[rows.metric == "majority_baseline"].value.iloc[0])
    df = rows[rows.source == "probe"]
    assert set(df.layer) == {0, 1, 2}
    assert set(df.metric) == {"accuracy", "control_accuracy", "selectivity", "majority_baseline"}
    assert (df.task == "toy_pos").all() and (df.rung == "tiny-bert").all()
    acc = df[df.metric == "accuracy"].set_index("layer").value
    # each word has one tag, so even the embeddings of a random-init BERT separate the tags
    assert acc[0] > 0.95
    majority = df[df.metric == "majority_baseline"].value
    assert majority.between(0.3, 0.45).all()  # DET and NOUN are each 2/6 of the words
    n_words = df[df.metric == "accuracy"].n.iloc[0]
    assert 0 < n_words < 50 * 6


def test_standalone_layers_option(tiny_bert, tagged_file, tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    code, text = _cli(["probe", "--model", str(tiny_bert), "--data", str(tagged_file), "--layers", "0,-1",
                       "--max-examples", "20", "--out", str(out)], capsys, monkeypatch)
    assert code == 0, text
    rows = pd.read_parquet(out / "measurements.parquet")
    assert set(rows[rows.source == "probe"].layer) == {0, 2} and set(rows[rows.source == "baseline"].layer) == {-1}
    code, text = _cli(["probe", "--model", str(tiny_bert), "--data", str(tagged_file), "--layers", "7",
                       "--out", str(out)], capsys, monkeypatch)
    assert code == 2 and "out of range" in text


def test_standalone_probe_rows_do_not_depend_on_the_number_of_workers(tiny_bert, tagged_file, tmp_path, capsys, monkeypatch):
    tables = []
    for workers in (1, 2):
        out = tmp_path / f"w{workers}"
        code, text = _cli(["probe", "--model", str(tiny_bert), "--data", str(tagged_file), "--max-examples", "40",
                           "--workers", str(workers), "--out", str(out)], capsys, monkeypatch)
        assert code == 0, text
        tables.append(pd.read_parquet(out / "measurements.parquet").drop(columns=["created"], errors="ignore"))
    assert len(tables[0]) > 0
    pd.testing.assert_frame_equal(tables[0], tables[1])


def test_standalone_classify(tiny_bert, tmp_path, capsys, monkeypatch):
    rng = np.random.default_rng(0)
    rows = ["text,label"]
    for _ in range(60):
        kind = rng.integers(2)
        words = rng.choice(NOUNS if kind else VERBS, size=4)
        rows.append(f"{' '.join(words)},{'nouns' if kind else 'verbs'}")
    data = tmp_path / "kinds.csv"
    data.write_text("\n".join(rows) + "\n")
    code, text = _cli(["probe", "--model", str(tiny_bert), "--data", str(data), "--task", "classify",
                       "--out", str(tmp_path / "out")], capsys, monkeypatch)
    assert code == 0, text
    df = pd.read_parquet(tmp_path / "out" / "measurements.parquet")
    assert df[(df.metric == "accuracy") & (df.layer == 0)].value.item() > 0.9


@pytest.mark.parametrize("case", ["missing", "no_safetensors", "no_tokenizer", "no_mode"])
def test_standalone_errors_are_one_line(case, tiny_bert, tagged_file, tmp_path, capsys, monkeypatch):
    import shutil

    model = tmp_path / "model"
    if case == "no_safetensors":
        shutil.copytree(tiny_bert, model)
        for f in model.glob("*.safetensors"):
            f.unlink()
    elif case == "no_tokenizer":
        shutil.copytree(tiny_bert, model)
        for f in ("tokenizer.json", "tokenizer_config.json"):
            (model / f).unlink(missing_ok=True)
    args = ["probe", "--model", str(model), "--data", str(tagged_file), "--out", str(tmp_path / "out")]
    if case == "no_mode":
        args = ["probe"]
    code, text = _cli(args, capsys, monkeypatch)
    assert code == 2
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), text
    expected = {"missing": "does not exist", "no_safetensors": "safetensors", "no_tokenizer": "tokenizer",
                "no_mode": "STUDY_DIR"}[case]
    assert expected in lines[0]


def _byte_level_tokenizer(path: Path):
    """A tiny trained byte-level BPE without a pad token, as GPT-2 and Llama tokenizers ship."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    tok.decoder = decoders.ByteLevel()
    corpus = [" ".join(DETS + NOUNS + VERBS + ["."])] * 20
    tok.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=400, special_tokens=["<|endoftext|>"],
                                                        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", bos_token="<|endoftext|>")
    fast.save_pretrained(path)
    return fast


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_probe_labelled_causal_models(family, tmp_path):
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    from emergelab.corpus.labelled import LabelledData
    from emergelab.probe.standalone import probe_labelled

    path = tmp_path / family
    tok = _byte_level_tokenizer(path)
    torch.manual_seed(0)
    if family == "gpt2":
        model = GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=32, n_head=4, vocab_size=len(tok), n_positions=64,
                                           bos_token_id=0, eos_token_id=0))
    else:
        model = LlamaForCausalLM(LlamaConfig(num_hidden_layers=2, hidden_size=32, num_attention_heads=4,
                                             num_key_value_heads=2, intermediate_size=64, vocab_size=len(tok),
                                             max_position_embeddings=64, bos_token_id=0, eos_token_id=0))
    model.save_pretrained(path)
    rng = np.random.default_rng(0)
    n_words = [int(rng.integers(3, 7)) for _ in range(40)]  # unequal lengths: padding is exercised
    words = [[str(rng.choice(NOUNS + VERBS)) for _ in range(n)] for n in n_words]
    tags = [["NOUN" if w in NOUNS else "VERB" for w in ws] for ws in words]
    data = LabelledData.from_tagged(words, tags)
    rows, features = probe_labelled(path, data, task="toy", layers=[0, -1], seed=0)
    assert features.layers == [0, 2] and features.X.shape == (2, sum(n_words), 32)
    assert features.n_dropped == 0 and len(set(features.groups)) == 40
    acc = {r["layer"]: r["value"] for r in rows if r["metric"] == "accuracy"}
    assert acc[0] > 0.95  # the embedding of a word's first sub-token identifies its tag here
    # the rows for a word equal the hidden state of its first sub-token, computed without padding
    enc = tok(words[0], is_split_into_words=True, return_tensors="pt")
    first = [enc.word_ids(0).index(i) for i in range(len(words[0]))]
    model.eval()
    with torch.no_grad():
        ref = model(**{k: v for k, v in enc.items() if k != "token_type_ids"}, output_hidden_states=True).hidden_states[-1][0]
    np.testing.assert_allclose(features.X[1, : len(words[0])].astype(np.float32), ref[first].numpy(), rtol=5e-3, atol=5e-3)
