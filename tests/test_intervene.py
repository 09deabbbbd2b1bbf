"""The intervention library: head ablation drops a copy task to chance only for the head that copies, it
matches editing the weights by hand (GPT-2 and BERT), LEACE makes a planted latent undecodable while a
random subspace of the same rank does not, and no intervention changes a weight."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from transformers import BertConfig, BertModel, GPT2Config, GPT2LMHeadModel

from emergelab.intervene.erase import erase_at, fit_leace, one_hot, random_eraser, record_site
from emergelab.intervene.heads import ablate_heads, control_heads, head_means, top_heads
from emergelab.intervene.sites import head_sites, state_hash
from emergelab.probe.linear import LinearProbe

V, T = 8, 8  # vocabulary and positions of the hand-built copier; d_model = V + T: token and position one-hots


def copier() -> GPT2LMHeadModel:
    """One layer, two heads: head 0 attends to the previous position and writes that token (strongly),
    head 1 attends to its own position and writes the current token (weakly); the MLP is off. Its argmax
    is the previous token: a copy through head 0."""
    d, dh = V + T, (V + T) // 2
    cfg = GPT2Config(vocab_size=V, n_positions=T, n_embd=d, n_layer=1, n_head=2, resid_pdrop=0.0, embd_pdrop=0.0,
                     attn_pdrop=0.0, bos_token_id=None, eos_token_id=None, tie_word_embeddings=True)
    m = GPT2LMHeadModel(cfg).eval()
    with torch.no_grad():
        for p in m.parameters():
            p.zero_()
        tf = m.transformer
        tf.wte.weight[:, :V] = torch.eye(V)
        tf.wpe.weight[:, V:] = torch.eye(T)
        for ln in (tf.h[0].ln_1, tf.h[0].ln_2, tf.ln_f):
            ln.weight.fill_(1.0)
        mu, sigma = 2 / d, math.sqrt(2 / d - 4 / d ** 2 + 1e-5)  # ln_1 of (token + position one-hot): (x − μ)/σ
        W = torch.zeros(d, 3 * d)  # Conv1D: x @ W + b, columns [q | k | v], head h at h·dh within each
        beta = 40.0
        for i in range(1, T):  # head 0: query at i matches key at i − 1
            W[V + i, i - 1] = beta
        for j in range(T):
            W[V + j, d + j] = 1.0  # head 0 key: position
            W[V + j, dh + j] = beta  # head 1 query: own position
            W[V + j, d + dh + j] = 1.0  # head 1 key: position
        for t in range(V):
            W[t, 2 * d + t] = 1.0  # head 0 value: token
            W[t, 2 * d + dh + t] = 1.0  # head 1 value: token
        attn = tf.h[0].attn
        attn.c_attn.weight.copy_(W * sigma)  # undo ln_1's scale ...
        attn.c_attn.bias.copy_(torch.full((d,), mu) @ (W * 1.0))  # ... and its centring
        P = torch.zeros(d, d)
        for t in range(V):
            P[t, t] = 6.0  # head 0 → token dims, strongly
            P[dh + t, t] = 2.0  # head 1 → token dims, weakly
        attn.c_proj.weight.copy_(P)
    return m


def copy_accuracy(model, seqs: torch.Tensor) -> float:
    with torch.no_grad():
        pred = model(input_ids=seqs).logits.argmax(-1)
    return float((pred[:, 1:] == seqs[:, :-1]).float().mean())


@pytest.fixture(scope="module")
def seqs() -> torch.Tensor:
    return torch.as_tensor(np.random.default_rng(0).integers(0, V, size=(400, T)))


def test_the_hand_built_model_copies_through_head_0(seqs):
    assert copy_accuracy(copier(), seqs) == 1.0


@pytest.mark.parametrize("how", ["mean", "zero"])
def test_ablating_the_copy_head_drops_copying_to_chance_and_another_head_does_not(seqs, how):
    m = copier()
    means = head_means(m, seqs[:64])
    before = state_hash(m)
    with ablate_heads(m, {0: [0]}, how=how, means=means):
        ablated = copy_accuracy(m, seqs)
    with ablate_heads(m, {0: [1]}, how=how, means=means):
        other = copy_accuracy(m, seqs)
    assert abs(ablated - 1 / V) < 3 * math.sqrt((1 / V) * (1 - 1 / V) / seqs[:, 1:].numel())  # chance: 1/V
    assert other == 1.0
    assert copy_accuracy(m, seqs) == 1.0  # the hooks are gone
    assert state_hash(m) == before


def test_top_and_control_heads():
    scores = {(0, 0): 0.1, (0, 1): 0.9, (1, 0): 0.8, (1, 1): 0.2}
    assert top_heads(scores, 1) == {0: [1]}
    assert top_heads(scores, 2) == {0: [1], 1: [0]}
    for s in range(20):
        c = control_heads({0: [1]}, n_head=2, n_layer=2, rng=np.random.default_rng(s))
        assert c == {0: [0]}  # the same layer's other head
        c2 = control_heads({0: [0, 1]}, n_head=2, n_layer=2, rng=np.random.default_rng(s))
        assert sum(map(len, c2.values())) == 2 and set(c2) == {1}  # layer 0 is used up: from another layer


def _value_zeroed_gpt2(m, layer: int, head: int):
    site = head_sites(m)[layer]
    d = m.config.n_embd
    sl = slice(2 * d + head * site.d_head, 2 * d + (head + 1) * site.d_head)
    with torch.no_grad():
        m.transformer.h[layer].attn.c_attn.weight[:, sl] = 0
        m.transformer.h[layer].attn.c_attn.bias[sl] = 0
    return m


def _value_zeroed_bert(m, layer: int, head: int):
    dh = m.config.hidden_size // m.config.num_attention_heads
    v = m.encoder.layer[layer].attention.self.value
    with torch.no_grad():
        v.weight[head * dh:(head + 1) * dh] = 0
        v.bias[head * dh:(head + 1) * dh] = 0
    return m


@pytest.mark.parametrize("family", ["gpt2", "bert"])
def test_zero_ablation_equals_zeroing_the_heads_values(family):
    """A head's output is its attention times its values: zeroing the values is zero ablation, by weights."""
    torch.manual_seed(0)
    if family == "gpt2":
        make = lambda: GPT2LMHeadModel(GPT2Config(vocab_size=20, n_positions=12, n_embd=16, n_layer=2, n_head=4)).eval()  # noqa: E731
        edit = _value_zeroed_gpt2
    else:
        make = lambda: BertModel(BertConfig(vocab_size=20, hidden_size=16, num_hidden_layers=2, num_attention_heads=4,  # noqa: E731
                                            intermediate_size=32, max_position_embeddings=12)).eval()
        edit = _value_zeroed_bert
    m = make()
    ref = type(m)(m.config).eval()
    ref.load_state_dict(m.state_dict())
    edit(ref, 1, 2)
    ids = torch.as_tensor(np.random.default_rng(1).integers(0, 20, size=(5, 12)))
    out = lambda model: (model(input_ids=ids).logits if family == "gpt2" else model(input_ids=ids).last_hidden_state)  # noqa: E731
    before = state_hash(m)
    with torch.no_grad():
        plain = out(m)
        with ablate_heads(m, {1: [2]}, how="zero"):
            hooked = out(m)
        expected = out(ref)
    assert torch.allclose(hooked, expected, atol=1e-5)
    assert not torch.allclose(plain, expected, atol=1e-3)
    assert state_hash(m) == before


def _planted(n=1200, d=12, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, size=n)
    means = rng.standard_normal((3, d)) * 2.0  # a 3-class latent in a rank-2 subspace of the means
    return rng.standard_normal((n, d)).astype(np.float32) + means[y].astype(np.float32), y


def _probe_accuracy(X, y) -> float:
    probe = LinearProbe(seed=0).fit(X[:800], y[:800])
    return float(np.mean(probe.predict(X[800:]) == y[800:]))


def test_leace_makes_a_planted_latent_undecodable_and_a_random_subspace_does_not():
    X, y = _planted()
    assert _probe_accuracy(X, y) > 0.9
    e = fit_leace(X, y)
    assert e.rank == 2  # three classes: their centred one-hot spans two dimensions
    erased = e(torch.as_tensor(X)).numpy()
    Z = one_hot(y)
    cross = (erased - erased.mean(0)).T @ (Z - Z.mean(0)) / len(X)  # LEACE's guarantee: no cross-covariance left
    assert np.abs(cross).max() < 1e-4
    assert _probe_accuracy(erased, y) < 1 / 3 + 3 * math.sqrt((1 / 3) * (2 / 3) / 400)  # chance: a third
    control = random_eraser(X, e.rank, np.random.default_rng(0))(torch.as_tensor(X)).numpy()
    assert _probe_accuracy(control, y) > 0.8


def test_erasure_hooks_the_residual_stream_and_leaves_the_weights():
    torch.manual_seed(0)
    m = GPT2LMHeadModel(GPT2Config(vocab_size=20, n_positions=12, n_embd=16, n_layer=2, n_head=4)).eval()
    ids = np.random.default_rng(2).integers(0, 20, size=(40, 12))
    site = record_site(m, 1, ids)  # output of block 0 = hidden_states[1]
    with torch.no_grad():
        hs = m(input_ids=torch.as_tensor(ids), output_hidden_states=True).hidden_states[1]
    assert np.allclose(site, hs.numpy(), atol=1e-5)
    labels = (ids % 2).reshape(-1)
    e = fit_leace(site.reshape(-1, 16), labels)
    before = state_hash(m)
    with erase_at(m, 1, e):
        erased = record_site(m, 1, ids)
        with torch.no_grad():
            logits = m(input_ids=torch.as_tensor(ids)).logits
    assert np.allclose(erased.reshape(-1, 16), e(torch.as_tensor(site.reshape(-1, 16))).numpy(), atol=1e-4)
    with torch.no_grad():
        assert not torch.allclose(logits, m(input_ids=torch.as_tensor(ids)).logits)
    assert state_hash(m) == before


def test_erasure_and_ablation_hook_a_masked_model_too():
    from transformers import BertForPreTraining

    torch.manual_seed(0)
    m = BertForPreTraining(BertConfig(vocab_size=20, hidden_size=16, num_hidden_layers=2, num_attention_heads=4,
                                      intermediate_size=32, max_position_embeddings=12)).eval()
    ids = np.random.default_rng(3).integers(0, 20, size=(30, 12))
    with torch.no_grad():
        hs = m(input_ids=torch.as_tensor(ids), output_hidden_states=True).hidden_states
    for site in (0, 2):
        assert np.allclose(record_site(m, site, ids), hs[site].numpy(), atol=1e-5)
    e = fit_leace(record_site(m, 2, ids).reshape(-1, 16), (ids % 3).reshape(-1))
    before = state_hash(m)
    with erase_at(m, 2, e), torch.no_grad():
        erased = m(input_ids=torch.as_tensor(ids), output_hidden_states=True).hidden_states[2]
    assert np.allclose(erased.reshape(-1, 16).numpy(), e(hs[2].reshape(-1, 16)).numpy(), atol=1e-4)
    means = head_means(m, ids)
    assert means[1].shape == (4, 4)
    with ablate_heads(m, {1: [0, 3]}, means=means), torch.no_grad():
        changed = m(input_ids=torch.as_tensor(ids)).prediction_logits
    with torch.no_grad():
        assert not torch.allclose(changed, m(input_ids=torch.as_tensor(ids)).prediction_logits)
    assert state_hash(m) == before
