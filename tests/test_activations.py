"""`emergelab activations`: the files hold the model's own hidden states per real token, with ids and offsets."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from emergelab.probe.activation_file import read_activations
from emergelab.probe.sites import Site, site_name
from tests.test_probe_cli import _cli  # the in-process CLI runner the probe tests use

WORDS = ["the", "cat", "dog", "sees", "runs", "a", "."]


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory) -> Path:
    from transformers import BertConfig, BertModel, BertTokenizer

    path = tmp_path_factory.mktemp("models") / "tiny-bert"
    vocab = {w: i for i, w in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS])}
    torch.manual_seed(0)
    model = BertModel(BertConfig(num_hidden_layers=2, hidden_size=16, num_attention_heads=2, intermediate_size=32,
                                 vocab_size=len(vocab), max_position_embeddings=32))
    model.save_pretrained(path)
    BertTokenizer(vocab=vocab).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def texts_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "texts.txt"
    path.write_text("the cat sees a dog .\na dog runs\nthe cat\n")
    return path


@pytest.mark.parametrize("suffix", ["safetensors", "parquet"])
def test_activation_file_holds_the_models_hidden_states(tiny_bert, texts_file, tmp_path, capsys, monkeypatch, suffix):
    from transformers import AutoModel, AutoTokenizer

    out = tmp_path / f"acts.{suffix}"
    code, text = _cli(["activations", "--model", str(tiny_bert), "--data", str(texts_file), "--layers", "0,-1",
                       "--out", str(out), "--batch-size", "2"], capsys, monkeypatch)
    assert code == 0, text
    acts = read_activations(out)
    assert acts.layers == [0, 2] and acts.metadata["sites"] == '["hidden_states.0", "hidden_states.2"]'
    model, tok = AutoModel.from_pretrained(tiny_bert).eval(), AutoTokenizer.from_pretrained(tiny_bert)
    texts = texts_file.read_text().splitlines()
    assert len(acts.input_ids) == sum(len(tok(t)["input_ids"]) for t in texts) == 8 + 5 + 4  # [CLS] … [SEP], no padding
    for s, t in enumerate(texts):
        enc = tok(t, return_tensors="pt", return_offsets_mapping=True)
        rows = acts.sequence == s
        assert (acts.input_ids[rows] == enc["input_ids"][0].numpy()).all()
        assert (acts.position[rows] == np.arange(rows.sum())).all()
        with torch.no_grad():
            hidden = model(input_ids=enc["input_ids"], output_hidden_states=True).hidden_states
        for layer in (0, 2):
            np.testing.assert_allclose(acts.site(layer)[rows], hidden[layer][0].numpy(), atol=2e-3)  # float16 in safetensors
        spans = [t[a:b] for a, b in acts.offsets[rows][1:-1]]  # the words, between [CLS] and [SEP]
        assert spans == t.split()


def test_site_names_are_the_probes_layer_numbers():
    assert site_name(3) == Site(3).name == "hidden_states.3" and Site(0) < Site(2)


def test_bad_activations_inputs_are_one_line_errors(tiny_bert, texts_file, tmp_path, capsys, monkeypatch):
    code, text = _cli(["activations", "--model", str(tiny_bert), "--data", str(texts_file), "--out", str(tmp_path / "a.npy")],
                      capsys, monkeypatch)
    assert code == 2 and "give a .safetensors or .parquet file name" in text and "Traceback" not in text
    code, text = _cli(["activations", "--model", str(tiny_bert), "--data", str(texts_file), "--layers", "7",
                       "--out", str(tmp_path / "a.safetensors")], capsys, monkeypatch)
    assert code == 2 and "out of range" in text and not (tmp_path / "a.safetensors").exists()
    bogus = tmp_path / "bogus.safetensors"
    bogus.write_bytes(b"not a safetensors file")
    from emergelab.errors import UserError

    with pytest.raises(UserError, match="not an emergelab activations file"):
        read_activations(bogus)
