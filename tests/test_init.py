"""Initialisation schemes: each weight's empirical std matches its scheme's formula (± 5 %), uniform
schemes stay inside their bound, biases are zero, LayerNorm weights one, and the result is seeded."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from emergelab.models import build_model, initialise
from emergelab.spec import Rung

torch.set_num_threads(1)
RUNG = Rung(name="r", n_layer=2, d_model=128, n_head=4)


def expected_std(scheme: str, fan_in: int, fan_out: int) -> float:
    """Written out independently of models/init.py: N(0, 0.02); Glorot: √(2/(in+out)); He: √(2/in)."""
    return {"normal": 0.02, "xavier_uniform": math.sqrt(2 / (fan_in + fan_out)),
            "xavier_normal": math.sqrt(2 / (fan_in + fan_out)), "kaiming_uniform": math.sqrt(2 / fan_in),
            "kaiming_normal": math.sqrt(2 / fan_in)}[scheme]


def _weights(model):
    """(name, weight, fan_in, fan_out) of every matrix, in each layer type's own convention."""
    from transformers.pytorch_utils import Conv1D

    for name, m in model.named_modules():
        if isinstance(m, nn.Linear):
            yield name, m.weight, m.in_features, m.out_features
        elif isinstance(m, Conv1D):  # [in, out]
            yield name, m.weight, m.weight.shape[0], m.weight.shape[1]
        elif isinstance(m, nn.Embedding):  # [vocab, d]: fan_in = d (the tied output layer's input)
            w = m.weight if m.padding_idx is None else torch.cat([m.weight[:m.padding_idx], m.weight[m.padding_idx + 1:]])
            yield name, w, m.weight.shape[1], m.weight.shape[0]


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("scheme", ["normal", "xavier_uniform", "xavier_normal", "kaiming_uniform", "kaiming_normal"])
def test_empirical_std_matches_formula(scheme, causal):
    model = build_model(RUNG, vocab_size=1024, seq_len=64, causal=causal)
    initialise(model, scheme, seed=0)
    checked = 0
    for name, w, fan_in, fan_out in _weights(model):
        if w.numel() < 4096:  # too few draws for a 5 % test
            continue
        std = expected_std(scheme, fan_in, fan_out)
        assert abs(w.std().item() / std - 1) < 0.05, (name, w.std().item(), std)
        assert abs(w.mean().item()) < 0.1 * std, name
        if scheme.endswith("uniform"):
            assert w.abs().max().item() <= std * math.sqrt(3) + 1e-7, name
        checked += 1
    assert checked >= 8


def test_torch_reference_agrees_for_linear_layers():
    """Our formulas are torch.nn.init's (Xavier gain 1; Kaiming gain √2, fan_in)."""
    ref = torch.empty(512, 256)  # [out, in]
    for scheme, fill in [("xavier_uniform", nn.init.xavier_uniform_), ("xavier_normal", nn.init.xavier_normal_),
                         ("kaiming_uniform", lambda t: nn.init.kaiming_uniform_(t, nonlinearity="relu")),
                         ("kaiming_normal", lambda t: nn.init.kaiming_normal_(t, nonlinearity="relu"))]:
        torch.manual_seed(0)
        fill(ref)
        assert abs(ref.std().item() / expected_std(scheme, 256, 512) - 1) < 0.02, scheme


@pytest.mark.parametrize("causal", [True, False])
def test_biases_zero_norms_one_padding_row_zero(causal):
    model = build_model(RUNG, vocab_size=512, seq_len=64, causal=causal, pad_token_id=0)
    initialise(model, "xavier_normal", seed=1)
    for name, p in model.named_parameters():
        if name.endswith("bias"):
            assert (p == 0).all(), name
    norms = [m for m in model.modules() if isinstance(m, nn.LayerNorm)]
    assert norms and all((m.weight == 1).all() and (m.bias == 0).all() for m in norms)
    if not causal:
        assert (model.bert.embeddings.word_embeddings.weight[0] == 0).all()


def test_seeded_and_independent_of_global_rng():
    states = []
    for global_seed in (1, 2):
        torch.manual_seed(global_seed)
        model = build_model(RUNG, vocab_size=256, seq_len=32, causal=False)
        initialise(model, "kaiming_uniform", seed=7)
        states.append(model.state_dict())
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
    other = initialise(build_model(RUNG, vocab_size=256, seq_len=32, causal=False), "kaiming_uniform", seed=8)
    assert not torch.equal(other.state_dict()["bert.encoder.layer.0.attention.self.query.weight"],
                           states[0]["bert.encoder.layer.0.attention.self.query.weight"])
