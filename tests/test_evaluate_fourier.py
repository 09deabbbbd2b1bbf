"""Nanda et al.'s progress measures on hand-built logits with known answers."""
import numpy as np
import pytest

from emergelab.evaluate.fourier import (
    answer_loss,
    excluded_logits,
    frequency_shares,
    key_frequencies,
    progress_measures,
    restricted_logits,
    sum_basis,
)

P = 5


def _grid():
    a, b, c = np.meshgrid(np.arange(P), np.arange(P), np.arange(P), indexing="ij")
    return a, b, c


def _wave(k, alpha=3.0):
    """alpha·cos(2πk(a+b−c)/p): a model that adds with frequency k only."""
    a, b, c = _grid()
    return alpha * np.cos(2 * np.pi * k * (a + b - c) / P)


def test_sum_basis_is_orthonormal():
    B = sum_basis(P, [1, 2])
    assert B.shape == (25, 4)
    np.testing.assert_allclose(B.T @ B, np.eye(4), atol=1e-12)
    np.testing.assert_allclose(B.sum(axis=0), 0, atol=1e-12)  # orthogonal to the constant


def test_one_frequency_model():
    logits = _wave(1)
    shares = frequency_shares(logits)
    assert shares[1] == pytest.approx(1.0) and shares[2] == pytest.approx(0.0, abs=1e-12)
    assert key_frequencies(shares) == [1]
    np.testing.assert_allclose(restricted_logits(logits, [1]), logits, atol=1e-12)
    np.testing.assert_allclose(excluded_logits(logits, [1]), 0.0, atol=1e-12)  # the wave has zero mean over inputs
    # by hand: the correct answer's logit is 3, the others 3·cos(72°) (twice) and 3·cos(144°) (twice)
    alpha, w = 3.0, 2 * np.pi / 5
    hand = -alpha + np.log(np.exp(alpha) + 2 * np.exp(alpha * np.cos(w)) + 2 * np.exp(alpha * np.cos(2 * w)))
    assert answer_loss(logits) == pytest.approx(hand, rel=1e-12)
    train = np.zeros((P, P), bool)
    train[:2] = True
    m = progress_measures(logits, [1], train)
    assert m["restricted_loss"] == pytest.approx(hand, rel=1e-12)
    assert m["excluded_loss"] == pytest.approx(np.log(5), rel=1e-12)  # uniform logits after the key frequency goes
    assert m["key_share"] == pytest.approx(1.0)
    assert m["full_loss"] == pytest.approx(hand, rel=1e-12)


def test_restricting_to_the_wrong_frequency_removes_the_answer():
    logits = _wave(1) + 0.5 * _wave(2)  # frequency 2 carries 0.25/1.25 = 20 % of the squared norm
    shares = frequency_shares(logits)
    assert shares[1] == pytest.approx(0.8) and shares[2] == pytest.approx(0.2)
    assert key_frequencies(shares, ratio=1.5) == [1]  # mean share 0.5: 0.8 is at least 1.5 times it, 0.2 is not
    assert key_frequencies(shares, ratio=0.3) == [1, 2]
    assert key_frequencies({1: 0.0, 2: 0.0}) == []
    np.testing.assert_allclose(restricted_logits(logits, [2]), 0.5 * _wave(2), atol=1e-12)
    np.testing.assert_allclose(excluded_logits(logits, [2]), _wave(1), atol=1e-12)


def test_memorising_logits_keep_their_mean_and_their_residue():
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((P, P, P)) + np.arange(P)  # a per-answer bias plus noise
    kept = restricted_logits(logits, [])
    np.testing.assert_allclose(kept, np.broadcast_to(logits.reshape(25, P).mean(0), (P, P, P)), atol=1e-12)
    np.testing.assert_allclose(excluded_logits(logits, []), logits, atol=1e-12)
    np.testing.assert_allclose(restricted_logits(logits, [1, 2]) + excluded_logits(logits, [1, 2]) - kept, logits,
                               atol=1e-12)
    assert sum(frequency_shares(logits).values()) < 1.0


def test_answer_logits_are_the_models_logits_of_the_numbers_at_equals():
    """The evaluate stage reads the logits grid [a, b, c] off the model at '=' of ``a + b =``, numbers only."""
    import torch

    from emergelab.models import build_model, initialise
    from emergelab.spec import Rung
    from emergelab.stages.evaluate import answer_logits
    from emergelab.worlds import make_world

    world = make_world("modular", {"p": 5, "train_fraction": 0.4}, 0)
    vocab = world.id_offset + len(world.symbols)
    model = initialise(build_model(Rung(name="x", n_layer=1, d_model=16, n_head=2), vocab_size=vocab, seq_len=12,
                                   causal=True), "normal", 0).eval()
    grid = answer_logits(model, world)
    assert grid.shape == (5, 5, 5)
    off = world.id_offset
    ids = torch.tensor([[2 + off, 5 + off, 3 + off, 6 + off]])  # "2 + 3 =": '+' is symbol p, '=' is p + 1
    with torch.no_grad():
        direct = model(input_ids=ids).logits[0, -1, off:off + 5].double().numpy()
    np.testing.assert_allclose(grid[2, 3], direct, atol=1e-5)
    prompts, train = world.sum_grid()
    assert train.sum() == 10 and (prompts[2 * 5 + 3] == [2, 5, 3, 6]).all()
