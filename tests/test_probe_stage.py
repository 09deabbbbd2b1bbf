"""The probe stage's view of a latent: which rows, which pooling, which control types, which latents."""
from __future__ import annotations

import numpy as np
import pytest

from emergelab.errors import UserError
from emergelab.probe.linear import probe_layer
from emergelab.stages.probe import _requested, latent_features
from emergelab.study import read_spec

rng = np.random.default_rng(0)
L, N, T, D = 3, 40, 6, 5
HIDDEN = rng.normal(size=(L, N, T, D)).astype(np.float16)
IDS = rng.integers(7, 20, size=(N, T))


def test_token_level_reads_labelled_positions_with_token_id_types():
    labels = np.full((N, T), -1)
    labels[:, 2] = rng.integers(0, 3, size=N)
    X, y, groups, types = latent_features(HIDDEN, IDS, labels, "token", pool="last", max_tokens=1000, seed=0)
    assert X.shape == (L, N, D) and X.dtype == np.float32
    np.testing.assert_array_equal(X, HIDDEN[:, :, 2].astype(np.float32))
    np.testing.assert_array_equal(types, IDS[:, 2])
    np.testing.assert_array_equal(groups, np.arange(N))
    X2, *_ = latent_features(HIDDEN, IDS, labels, "token", pool="last", max_tokens=10, seed=0)
    assert X2.shape == (L, 10, D)


def test_a_latent_read_at_one_token_type_gets_a_control_per_item():
    """The modular world's answer latents are labelled at '=' only: one token type, whose Hewitt–Liang control
    would be one constant label (control accuracy 1, selectivity = accuracy − 1 whatever the model holds).
    Each item is its own type instead, and the control is memorisation chance."""
    ids = IDS.copy()
    ids[:, 3] = 9  # '=' at the labelled position of every sequence
    labels = np.full((N, T), -1)
    labels[:, 3] = np.arange(N) % 4
    X, y, groups, types = latent_features(HIDDEN, ids, labels, "token", pool="last", max_tokens=1000, seed=0)
    np.testing.assert_array_equal(types, np.arange(N))
    # a representation that holds the label: selectivity well above 0 (it was accuracy − 1 ≤ 0 per token type)
    X = np.zeros((N, 4), dtype=np.float32)
    X[np.arange(N), y] = 1.0
    res = probe_layer(X, y, groups=groups, token_types=types, seed=0)
    assert res["accuracy"] == 1.0 and res["control_accuracy"] < 0.6 and res["selectivity"] > 0.4


@pytest.mark.parametrize("pool, position", [("last", -1), ("first", 0)])
def test_sequence_level_position_pools_with_one_control_type_per_sequence(pool, position):
    labels = rng.integers(0, 4, size=N)
    X, y, groups, types = latent_features(HIDDEN, IDS, labels, "sequence", pool=pool, max_tokens=10, seed=0)
    np.testing.assert_array_equal(X, HIDDEN[:, :, position].astype(np.float32))
    np.testing.assert_array_equal(types, np.arange(N))  # control: a random label per (held-out) sequence
    np.testing.assert_array_equal(groups, np.arange(N))
    np.testing.assert_array_equal(y, labels)


def test_sequence_level_mean_pool():
    labels = rng.integers(0, 4, size=N)
    X, _, groups, types = latent_features(HIDDEN, IDS, labels, "sequence", pool="mean", max_tokens=10, seed=0)
    np.testing.assert_allclose(X, HIDDEN.astype(np.float32).mean(axis=2), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(types, np.arange(N))


def test_last_pool_finds_a_latent_written_only_at_the_last_position():
    """A concept the model has inferred by the end of the sequence is decodable there, not at the start."""
    n = 300
    labels = np.random.default_rng(1).integers(0, 3, size=n)
    hidden = np.random.default_rng(2).normal(size=(1, n, 8, 6)).astype(np.float32)
    hidden[0, :, -1, :3] += 3.0 * np.eye(3)[labels]
    ids = np.random.default_rng(3).integers(7, 40, size=(n, 8))
    acc = {}
    for pool in ("last", "first"):
        X, y, g, types = latent_features(hidden, ids, labels, "sequence", pool=pool, max_tokens=10, seed=0)
        acc[pool] = probe_layer(X[0], y, groups=g, token_types=types, seed=0)
    assert acc["last"]["accuracy"] > 0.9 and acc["last"]["selectivity"] > 0.4
    assert acc["first"]["accuracy"] < 0.5 and acc["first"]["selectivity"] < 0.1


def test_requested_latents_and_unknown_names():
    latents = {"cos_k1": {}, "concept": {}, "slot": {}}
    spec = read_spec(preset="smoke")
    assert _requested(spec, latents) == ["cos_k1", "concept", "slot"]
    spec = read_spec(preset="smoke", overrides=["probe.latents=[slot, concept]"])
    assert _requested(spec, latents) == ["concept", "slot"]
    spec = read_spec(preset="smoke", overrides=["probe.latents=[colour]"])
    with pytest.raises(UserError, match="colour"):
        _requested(spec, latents)


def test_pool_option_is_validated():
    assert read_spec(preset="smoke").probe.pool == "last"
    assert read_spec(preset="smoke", overrides=["probe.pool=mean"]).probe.pool == "mean"
    with pytest.raises(UserError, match="probe.pool"):
        read_spec(preset="smoke", overrides=["probe.pool=max"])
