"""Linear probes: recover a planted latent, not a shuffled one; controls keep the label distribution; splits by sequence."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import chisquare

from emergelab.errors import UserError
from emergelab.probe import LinearProbe, control_labels, probe_layer, probe_rows, split_by_sequence


def _planted(seed: int = 0, n_seq: int = 80, seq_len: int = 25, d: int = 32, n_classes: int = 4, noise: float = 0.3):
    """Activations with a latent written along ``n_classes`` random directions, plus Gaussian noise."""
    rng = np.random.default_rng(seed)
    n = n_seq * seq_len
    y = rng.integers(0, n_classes, size=n)
    directions = rng.normal(size=(n_classes, d))
    X = directions[y] + noise * rng.normal(size=(n, d)) * np.sqrt(d)
    groups = np.repeat(np.arange(n_seq), seq_len)
    types = rng.integers(0, 200, size=n)
    return X.astype(np.float16), y, groups, types


def test_probe_recovers_planted_latent():
    X, y, groups, types = _planted()
    res = probe_layer(X, y, groups=groups, token_types=types, seed=0)
    assert res["accuracy"] > 0.97
    # types are independent of the latent: memorising them cannot beat the majority class by much
    assert res["control_accuracy"] < res["majority_baseline"] + 0.1
    assert res["selectivity"] == pytest.approx(res["accuracy"] - res["control_accuracy"])
    assert res["n_train"] + res["n_test"] == len(y)


def test_probe_does_not_recover_shuffled_latent():
    X, y, groups, types = _planted()
    y_shuffled = np.random.default_rng(1).permutation(y)
    res = probe_layer(X, y_shuffled, groups=groups, token_types=types, seed=0)
    assert abs(res["accuracy"] - res["majority_baseline"]) < 0.05


def test_control_task_is_learnable_from_token_identity():
    """A one-hot token identity lets the probe fit the control task: control accuracy near 1."""
    rng = np.random.default_rng(0)
    n_types, n = 20, 3000
    types = rng.integers(0, n_types, size=n)
    X = np.eye(n_types)[types] + 0.01 * rng.normal(size=(n, n_types))
    y = rng.integers(0, 3, size=n)  # unrelated to the type
    res = probe_layer(X, y, groups=np.arange(n) // 30, token_types=types, seed=0,
                      probe=LinearProbe(Cs=(10.0,)))
    assert res["control_accuracy"] > 0.97
    assert res["accuracy"] < 0.5


def test_linear_probe_is_an_estimator():
    from sklearn.base import clone

    X, y, groups, _ = _planted(n_seq=40)
    probe = LinearProbe(Cs=(0.01, 1.0), cv=3, seed=0)
    assert probe.fit(X, y, groups=groups) is probe
    assert probe.C_ in (0.01, 1.0) and probe.cv_scores_.shape == (3, 2)
    assert probe.coef_.shape == (4, X.shape[1])
    assert probe.score(X, y) > 0.93
    assert probe.predict_proba(X[:5]).shape == (5, 4)
    assert clone(probe).get_params() == probe.get_params()


def test_linear_probe_string_labels_and_single_class():
    X, y, groups, _ = _planted(n_seq=20, n_classes=2)
    names = np.array(["noun", "verb"])[y]
    probe = LinearProbe(seed=0).fit(X, names, groups=groups)
    assert set(probe.predict(X)) <= {"noun", "verb"} and probe.score(X, names) > 0.95
    one = LinearProbe().fit(X, np.zeros(len(X), dtype=int))
    assert (one.predict(X) == 0).all()


def test_probe_is_deterministic():
    X, y, groups, types = _planted(n_seq=30)
    assert probe_layer(X, y, groups=groups, token_types=types, seed=3) == probe_layer(X, y, groups=groups, token_types=types, seed=3)


def test_no_sequence_in_both_train_and_test():
    groups = np.repeat(np.arange(50), np.random.default_rng(0).integers(1, 20, size=50))
    train, test = split_by_sequence(groups, test_size=0.3, seed=0)
    assert len(train) + len(test) == len(groups)
    assert not set(groups[train]) & set(groups[test])
    assert len(test) > 0 and len(train) > 0
    with pytest.raises(UserError):
        split_by_sequence(np.zeros(10))


def test_probe_layer_split_is_by_sequence(monkeypatch):
    """The probe sees only training sequences: every row it is fitted on belongs to a training group."""
    X, y, groups, types = _planted(n_seq=30)
    seen = []
    original = LinearProbe.fit

    def spy(self, X_, y_, groups=None):
        seen.append(np.asarray(groups))
        return original(self, X_, y_, groups=groups)

    monkeypatch.setattr(LinearProbe, "fit", spy)
    res = probe_layer(X, y, groups=groups, token_types=types, seed=0)
    train, test = split_by_sequence(groups, seed=0)
    assert len(seen) == 2  # real task and control task, same split
    for g in seen:
        assert set(g) == set(groups[train])
        assert not set(g) & set(groups[test])
    assert res["n_test"] == len(test)


def test_control_labels_follow_the_real_distribution():
    rng = np.random.default_rng(0)
    p = np.array([0.5, 0.3, 0.15, 0.05])
    n_types = 4000
    types = rng.integers(0, n_types, size=40000)
    labels = rng.choice(4, size=len(types), p=p)
    control = control_labels(types, labels, seed=0)
    # one label per type
    per_type = {}
    for t, c in zip(types, control):
        assert per_type.setdefault(t, c) == c
    # per-type labels are draws from the empirical label distribution
    type_labels = np.array([per_type[t] for t in sorted(per_type)])
    empirical = np.bincount(labels, minlength=4) / len(labels)
    observed = np.bincount(type_labels, minlength=4)
    assert chisquare(observed, empirical * len(type_labels)).pvalue > 0.001
    assert set(np.unique(control)) <= set(np.unique(labels))
    assert (control_labels(types, labels, seed=0) == control).all()
    assert not (control_labels(types, labels, seed=1) == control).all()


def test_control_labels_keep_label_dtype():
    labels = np.array(["a", "b", "b", "c"])
    out = control_labels(np.array([1, 2, 1, 3]), labels, seed=0)
    assert out.dtype == labels.dtype and out[0] == out[2]


def test_probe_rows_are_measurements():
    from emergelab.measurements import make_frame

    res = {"accuracy": 0.9, "control_accuracy": 0.6, "selectivity": 0.3, "majority_baseline": 0.5, "n_train": 70, "n_test": 30}
    rows = probe_rows(res, task="pos", layer=2, rung="m", step=4, seed=0)
    df = make_frame(rows)
    assert list(df.metric) == ["accuracy", "control_accuracy", "selectivity", "majority_baseline"]
    assert (df.source == "probe").all() and (df.layer == 2).all() and (df.n == 30).all()
    assert df.stderr.iloc[0] == pytest.approx(np.sqrt(0.9 * 0.1 / 30))
