"""Activation extraction equals the models' own outputs (GPT-2, BERT, Llama); pooling and the disk cache."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import BertConfig, BertForMaskedLM, GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

from emergelab.probe import extract_attentions, extract_hidden, pool

VOCAB = 50


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def _gpt2():
    torch.manual_seed(0)
    return GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=32, n_head=4, vocab_size=VOCAB, n_positions=32,
                                      bos_token_id=0, eos_token_id=0))


def _bert():
    torch.manual_seed(0)
    return BertForMaskedLM(BertConfig(num_hidden_layers=2, hidden_size=32, num_attention_heads=4, intermediate_size=64,
                                      vocab_size=VOCAB, max_position_embeddings=32, type_vocab_size=2))


def _llama():
    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(num_hidden_layers=2, hidden_size=32, num_attention_heads=4, num_key_value_heads=2,
                                        intermediate_size=64, vocab_size=VOCAB, max_position_embeddings=32,
                                        bos_token_id=0, eos_token_id=0, pad_token_id=0))


MODELS = {"gpt2": _gpt2, "bert": _bert, "llama": _llama}


def _inputs(seed=0, n_seq=5, n_tok=12):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, VOCAB, (n_seq, n_tok), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 8:] = 0  # right padding on one sequence
    return ids, mask


@pytest.mark.parametrize("family", list(MODELS))
def test_extract_hidden_equals_model_hidden_states(family):
    model = MODELS[family]()
    model.train()  # dropout on: extraction must still be deterministic (eval mode inside, restored after)
    ids, mask = _inputs()
    kwargs = {}
    if family == "bert":
        kwargs["token_type_ids"] = torch.zeros_like(ids)
        kwargs["token_type_ids"][:, 6:] = 1
    hidden = extract_hidden(model, ids, mask, batch_size=2, **kwargs)
    assert model.training
    n_layers = 2
    assert hidden.shape == (n_layers + 1, 5, 12, 32) and hidden.dtype == np.float16
    model.eval()
    with torch.no_grad():
        ref = model(input_ids=ids, attention_mask=mask, output_hidden_states=True, **kwargs).hidden_states
    assert len(ref) == n_layers + 1
    for i, h in enumerate(ref):
        np.testing.assert_allclose(hidden[i].astype(np.float32), h.numpy(), rtol=2e-3, atol=2e-3)
    sub = extract_hidden(model, ids, mask, layers=[-1, 0], **kwargs)
    assert sub.shape == (2, 5, 12, 32)
    assert (sub[0] == hidden[2]).all() and (sub[1] == hidden[0]).all()
    with pytest.raises(ValueError):
        extract_hidden(model, ids, layers=[3])


def test_bert_token_type_ids_matter():
    model = _bert()
    ids, mask = _inputs()
    a = extract_hidden(model, ids, mask)
    b = extract_hidden(model, ids, mask, token_type_ids=torch.ones_like(ids))
    assert not np.allclose(a[1], b[1])


@pytest.mark.parametrize("family", ["gpt2", "bert", "llama"])
def test_extract_attentions_equals_eager_model(family):
    model = MODELS[family]()
    model.set_attn_implementation("sdpa")
    ids, mask = _inputs(n_seq=3, n_tok=10)
    attn = extract_attentions(model, ids, mask, batch_size=2)
    assert attn.shape == (2, 3, 4, 10, 10) and attn.dtype == np.float32
    assert model.config._attn_implementation == "sdpa"
    np.testing.assert_allclose(attn.sum(-1)[:, 0], 1.0, rtol=1e-5)  # rows are distributions
    model.set_attn_implementation("eager")
    model.eval()
    with torch.no_grad():
        ref = model(input_ids=ids, attention_mask=mask, output_attentions=True).attentions
    for layer, a in enumerate(ref):
        np.testing.assert_allclose(attn[layer], a.numpy(), rtol=1e-5, atol=1e-6)
    if family != "bert":  # causal: nothing above the diagonal
        assert np.abs(np.triu(attn[:, 0, 0], k=1)).max() == 0


def test_pool():
    hidden = np.arange(2 * 3 * 4 * 2, dtype=np.float32).reshape(2, 3, 4, 2)  # [L, B, T, d]
    mask = np.array([[1, 1, 1, 1], [1, 1, 0, 0], [1, 0, 0, 0]])
    mean = pool(hidden, mask, "mean")
    assert mean.shape == (2, 3, 2)
    np.testing.assert_allclose(mean[:, 1], hidden[:, 1, :2].mean(axis=1))
    np.testing.assert_allclose(pool(hidden, mask, "first"), hidden[:, :, 0])
    np.testing.assert_allclose(pool(hidden, mask, "last")[:, 1], hidden[:, 1, 1])
    np.testing.assert_allclose(pool(hidden[0], None, "last"), hidden[0, :, -1])
    with pytest.raises(ValueError):
        pool(hidden, mask, "max")
