"""Scorers against direct computations from the models' full logits (causal) and manual masked passes."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from emergelab.evaluate.masked import masked_heldout_loss, mlm_corruption, pseudo_loglik, score_masked, score_masked_choices
from emergelab.evaluate.scoring import greedy_generate, prefix_groups, score_choices, score_continuations

V, MASK = 40, 4


@pytest.fixture(scope="module", params=["gpt2", "llama"])
def causal(request):
    torch.manual_seed(0)
    if request.param == "gpt2":
        from transformers import GPT2Config, GPT2LMHeadModel

        m = GPT2LMHeadModel(GPT2Config(vocab_size=V, n_positions=64, n_embd=16, n_layer=2, n_head=2,
                                       bos_token_id=None, eos_token_id=None))
    else:
        from transformers import LlamaConfig, LlamaForCausalLM

        m = LlamaForCausalLM(LlamaConfig(vocab_size=V, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                                         bos_token_id=None, eos_token_id=None, pad_token_id=None))
    return m.eval()


@pytest.fixture(scope="module")
def bert():
    from transformers import BertConfig, BertForPreTraining

    torch.manual_seed(0)
    return BertForPreTraining(BertConfig(vocab_size=V, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                                         intermediate_size=32, max_position_embeddings=64)).eval()


def _rand(rng, lo, hi):
    return rng.integers(5, V, size=int(rng.integers(lo, hi))).tolist()


@torch.no_grad()
def _direct(model, ctx, cont):
    """log p of each continuation token from the full logits of one unpadded forward pass."""
    logp = torch.log_softmax(model(torch.tensor([ctx + cont])).logits[0].float(), -1)
    return np.array([logp[len(ctx) - 1 + j, t].item() for j, t in enumerate(cont)]), \
        np.array([int(logp[len(ctx) - 1 + j].argmax()) == t for j, t in enumerate(cont)])


def test_continuation_loglik_equals_full_logits(causal):
    rng = np.random.default_rng(0)
    pairs = [(_rand(rng, 1, 12), _rand(rng, 1, 5)) for _ in range(17)]
    got = score_continuations(causal, pairs, batch_size=5)
    for (ctx, cont), s in zip(pairs, got):
        logp, greedy = _direct(causal, ctx, cont)
        np.testing.assert_allclose(s.logp, logp, atol=1e-5)
        assert s.greedy.tolist() == greedy.tolist()


def test_choices_sharing_a_context_equal_full_logits(causal):
    rng = np.random.default_rng(1)
    items = [(_rand(rng, 1, 12), [_rand(rng, 1, 4) for _ in range(int(rng.integers(1, 5)))]) for _ in range(11)]
    got = score_choices(causal, items, batch_size=7)
    for (ctx, choices), scores in zip(items, got):
        assert len(scores) == len(choices)
        for c, s in zip(choices, scores):
            np.testing.assert_allclose(s.logp, _direct(causal, ctx, c)[0], atol=1e-5)


def test_prefix_groups_share_what_saves_tokens():
    shared = list(range(5, 25))  # a 20-token prompt prefix common to three requests
    seqs = [shared + [30, 31], [7, 7, 7], shared + [32], shared + [30, 33, 34], [7, 7, 8, 9]]
    groups = sorted((t, sorted(m)) for t, m in prefix_groups(seqs))
    # the three share 20 tokens; the two short ones share 2 < MIN_SHARED and stay whole
    assert groups == [(3, [1]), (4, [4]), (20, [0, 2, 3])]


def test_requests_sharing_prompts_across_documents_equal_full_logits(causal):
    """A few-shot prefix common to every request, several continuations of one document, tails longer
    than a batch: shared and unshared scoring both equal the unpadded full-logit values."""
    rng = np.random.default_rng(5)
    demos = _rand(rng, 10, 11)
    docs = [_rand(rng, 2, 6) for _ in range(5)]
    pairs = [(demos + d, _rand(rng, 1, 4)) for d in docs for _ in range(3)] + [(_rand(rng, 3, 8), _rand(rng, 1, 3)) for _ in range(4)]
    shared = score_continuations(causal, pairs, batch_size=4)
    alone = score_continuations(causal, pairs, batch_size=4, share_prefixes=False)
    for (ctx, cont), s, a in zip(pairs, shared, alone):
        logp, greedy = _direct(causal, ctx, cont)
        np.testing.assert_allclose(s.logp, logp, atol=1e-5)
        np.testing.assert_allclose(a.logp, logp, atol=1e-5)
        assert s.greedy.tolist() == greedy.tolist()
        np.testing.assert_allclose(s.brier, a.brier, atol=1e-5)


def test_tails_padded_past_the_models_last_position_still_score():
    """Rows that fill the model's 12 positions: a long trunk's short tail is padded to a short trunk's long
    tail in one chunk, and its padding must not index positions the model does not have."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    m = GPT2LMHeadModel(GPT2Config(vocab_size=V, n_positions=12, n_embd=16, n_layer=1, n_head=2,
                                   bos_token_id=None, eos_token_id=None)).eval()
    rng = np.random.default_rng(7)
    short, long = [5, 5, 5, 5], [6] * 9  # trunks of 4 and 9 shared tokens
    pairs = [(short + _rand(rng, 7, 8), [9]), (short + [8] + _rand(rng, 6, 7), [9]),
             (long + [10, 11], [12]), (long + [13, 14], [15])]
    for (ctx, cont), s in zip(pairs, score_continuations(m, pairs, batch_size=4)):
        np.testing.assert_allclose(s.logp, _direct(m, ctx, cont)[0], atol=1e-5)


def test_greedy_generation_equals_stepwise_argmax(causal):
    rng = np.random.default_rng(2)
    ctxs = [_rand(rng, 1, 10) for _ in range(6)]
    stop_after = {2: 1}  # document 2 stops after its first token
    got = greedy_generate(causal, ctxs, [4, 4, 4, 3, 0, 4], batch_size=4,
                          stop=lambda i, toks: len(toks) >= stop_after.get(i, 99))
    for i, (ctx, g) in enumerate(zip(ctxs, got)):
        ids = list(ctx)
        for _ in range([4, 4, 1, 3, 0, 4][i]):
            with torch.no_grad():
                ids.append(int(causal(torch.tensor([ids])).logits[0, -1].argmax()))
        assert g == ids[len(ctx):]


@torch.no_grad()
def _masked_logp(bert, ids, positions, targets):
    logits = bert(torch.tensor([ids])).prediction_logits[0]
    logp = torch.log_softmax(logits.float(), -1)
    return np.array([logp[p, t].item() for p, t in zip(positions, targets)])


def test_cloze_equals_manual_masked_forward(bert):
    rng = np.random.default_rng(3)
    items = [(_rand(rng, 1, 8), _rand(rng, 1, 4), _rand(rng, 0, 4)) for _ in range(9)]
    got = score_masked(bert, items, mask_id=MASK, batch_size=4)
    for (left, ans, right), s in zip(items, got):
        ids = left + [MASK] * len(ans) + right
        pos = list(range(len(left), len(left) + len(ans)))
        np.testing.assert_allclose(s.logp, _masked_logp(bert, ids, pos, ans), atol=1e-5)
        logits = bert(torch.tensor([ids])).prediction_logits[0]
        assert s.greedy.tolist() == [int(logits[p].argmax()) == t for p, t in zip(pos, ans)]


def test_pseudo_loglik_masks_one_token_at_a_time(bert):
    rng = np.random.default_rng(4)
    items = [(_rand(rng, 1, 6), _rand(rng, 1, 4), _rand(rng, 0, 3)) for _ in range(6)]
    got = pseudo_loglik(bert, items, mask_id=MASK, batch_size=3)
    for (left, fill, right), s in zip(items, got):
        want = []
        for t in range(len(fill)):
            ids = left + fill + right
            ids[len(left) + t] = MASK
            want.append(_masked_logp(bert, ids, [len(left) + t], [fill[t]])[0])
        np.testing.assert_allclose(s.logp, want, atol=1e-5)


def test_masked_choices_single_tokens_share_one_pass(bert):
    left, right = [7, 8, 9], [10]
    choices = [[11], [12, 13], [14]]
    got = score_masked_choices(bert, [(left, choices, right)], mask_id=MASK)[0]
    single = _masked_logp(bert, left + [MASK] + right, [3, 3], [11, 14])
    np.testing.assert_allclose([got[0].logp[0], got[2].logp[0]], single, atol=1e-5)
    pll = pseudo_loglik(bert, [(left, [12, 13], right)], mask_id=MASK)[0]
    np.testing.assert_allclose(got[1].logp, pll.logp, atol=1e-6)


def test_mlm_corruption_and_heldout_loss(bert):
    blocks = np.random.default_rng(5).integers(7, V, size=(64, 32))
    inputs, sel = mlm_corruption(blocks, mask_id=MASK, vocab_size=V, special_ids=list(range(7)), seed=0)
    assert 0.13 < sel.mean() < 0.17 and sel.any(axis=1).all()
    masked = (inputs == MASK) & sel
    assert 0.75 < masked.sum() / sel.sum() < 0.85
    assert (inputs[~sel] == blocks[~sel]).all()
    loss = masked_heldout_loss(bert, blocks[:8], mask_id=MASK, vocab_size=V, special_ids=list(range(7)), seed=0, batch_size=3)
    inp8, sel8 = mlm_corruption(blocks[:8], mask_id=MASK, vocab_size=V, special_ids=list(range(7)), seed=0)
    with torch.no_grad():
        logits = bert(torch.tensor(inp8)).prediction_logits
    want = torch.nn.functional.cross_entropy(logits[torch.tensor(sel8)], torch.tensor(blocks[:8])[torch.tensor(sel8)]).item()
    assert loss == pytest.approx(want, abs=1e-5)


def test_first_n_sampler_gives_every_query_the_same_leading_demonstrations():
    from emergelab.evaluate.fewshot import demo_indices

    # lm-eval's first_n: the pool in order, minus the query (same split) and documents equal to it
    assert demo_indices(6, 3, 1, 1234, exclude_query=True, first_n=True) == [0, 2, 3]
    assert demo_indices(6, 3, 4, 1234, exclude_query=True, first_n=True) == [0, 1, 2]
    assert demo_indices(6, 3, 4, 1234, exclude_query=False, exclude={0}, first_n=True) == [1, 2, 3]
    # the default sampler is seeded per query: each query its own demonstrations
    assert demo_indices(6, 2, 4, 1234, exclude_query=True) == [5, 3]
    assert demo_indices(6, 2, 1, 1234, exclude_query=True) == [0, 2]
