"""Early stopping on a validation split carved from the training labels, and the head's own learning rate."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from emergelab.errors import UserError
from emergelab.finetune.config import FinetuneConfig
from emergelab.finetune.train import _Stopper, param_groups

torch.set_num_threads(1)


def test_validation_split_size():
    cfg = FinetuneConfig()
    assert cfg.n_validation(30) == 0  # too few labels: train on all of them
    assert cfg.n_validation(50) == 8 and cfg.n_validation(1000) == 100
    assert FinetuneConfig(steps=100).n_validation(1000) == 0  # a fixed step budget trains on everything
    assert FinetuneConfig(val_fraction=0).n_validation(1000) == 0
    with pytest.raises(UserError, match="val_fraction"):
        FinetuneConfig(val_fraction=0.7)


def test_stopper_keeps_the_best_weights_and_stops_after_patience():
    model = nn.Linear(2, 1)
    stopper = _Stopper(model, steps=100, patience=2)
    assert stopper.every == 10 and stopper.due(10) and not stopper.due(15) and stopper.due(100)
    weights = []
    for step, loss in [(10, 3.0), (20, 2.0), (30, 2.5), (40, 2.7)]:
        with torch.no_grad():
            model.weight.fill_(float(step))
        weights.append(model.weight.clone())
        stop = stopper.record(step, loss)
        assert stop == (step == 40)  # two validations without a lower loss
    stopper.restore()
    assert stopper.best_step == 20 and torch.equal(model.weight, weights[1])
    assert stopper.history == [(10, 3.0), (20, 2.0), (30, 2.5), (40, 2.7)]


def test_head_learning_rate_groups():
    model = nn.Sequential()
    model.add_module("encoder", nn.Linear(2, 2))
    model.add_module("classifier", nn.Linear(2, 3))
    groups = param_groups(model, FinetuneConfig(method="full", lr=1e-4, head_lr=1e-3), ["classifier"])
    assert [g["lr"] for g in groups] == [1e-4, 1e-3] and [len(g["params"]) for g in groups] == [2, 2]
    assert len(param_groups(model, FinetuneConfig(method="full"), ["classifier"])) == 1


def test_a_run_counted_by_epochs_stops_early_on_held_out_labels(tmp_path):
    from transformers import BertConfig, BertModel, BertTokenizer

    from emergelab.corpus.labelled import LabelledData
    from emergelab.finetune.run import finetune

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "good", "bad", "film", "day"]
    BertTokenizer(vocab={w: i for i, w in enumerate(vocab)}).save_pretrained(tmp_path / "m")
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=32, max_position_embeddings=16)).save_pretrained(tmp_path / "m")
    texts = [f"{w} {n}" for w in ("good", "bad") for n in ("film", "day")] * 40
    data = LabelledData.from_texts(texts, [t.split()[0] for t in texts], source="toy.csv")
    rec = finetune(tmp_path / "m", data, config=FinetuneConfig(method="full", lr=1e-2, epochs=12, min_steps=10),
                   n_labels=100, eval_size=40, baselines=())
    t = rec["train"]
    assert t["validation_examples"] == 10 and t["examples"] == 90 and rec["k_shot"] == 100
    assert t["best_step"] in [s for s, _ in t["validation_losses"]] and t["steps"] <= t["planned_steps"]
    assert rec["eval"]["accuracy"] == 1.0, str(t)  # the word decides the label
