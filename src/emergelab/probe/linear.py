"""Linear probes: the LinearProbe estimator and one probe experiment per layer with its control task and selectivity."""
from __future__ import annotations

import math
import warnings
from typing import Any, Mapping, Sequence

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold, GroupShuffleSplit, KFold, ShuffleSplit
from sklearn.utils.validation import check_is_fitted

from emergelab.errors import UserError
from emergelab.probe.baselines import majority_label
from emergelab.probe.control import control_labels

__all__ = ["LinearProbe", "probe_layer", "split_by_sequence", "probe_rows", "PROBE_METRICS"]

#: The metrics ``probe_rows`` writes, in table order.
PROBE_METRICS = ("accuracy", "control_accuracy", "selectivity", "majority_baseline")


class LinearProbe(ClassifierMixin, BaseEstimator):
    """Multinomial logistic regression with an L2 penalty whose strength is cross-validated.

    Features are standardised (mean 0, variance 1 on the training rows) so that one grid of ``Cs`` suits
    every layer and width. The grid is walked from strong to weak regularisation with warm starts (lbfgs),
    which makes the whole path cost little more than one fit; the chosen ``C_`` is then refitted on all
    training rows, warm-started from the validation fit.

    Parameters
    ----------
    Cs : inverse L2 strengths tried (``C`` in scikit-learn's convention; larger = weaker penalty).
    cv : a float in (0, 1) holds out that fraction once (fast, the default); an int >= 2 is k-fold.
        Splits keep each group (sequence) on one side when ``fit`` gets ``groups``.
    max_iter, tol : lbfgs budget; probes need accuracy to ~1e-3, not the optimum to 1e-6.
    seed : seeds the validation split.

    Learned: ``classes_``, ``mean_``/``scale_`` (standardisation), ``C_``, ``cv_scores_ [n_folds, n_Cs]``,
    ``coef_``/``intercept_`` (standardised units), ``n_iter_``, ``converged_``.
    """

    def __init__(self, Cs: Sequence[float] = (0.01, 0.1, 1.0), cv: float | int = 0.2, max_iter: int = 100,
                 tol: float = 1e-3, seed: int = 0):
        self.Cs = Cs
        self.cv = cv
        self.max_iter = max_iter
        self.tol = tol
        self.seed = seed

    # -- fitting -----------------------------------------------------------------------------------
    def fit(self, X, y, groups=None) -> "LinearProbe":
        """Fit on ``X [N, d]``, ``y [N]``; ``groups [N]`` (sequence ids) keep sequences whole in validation."""
        with warnings.catch_warnings():
            # a probe stopped at max_iter is still a fine probe; ``converged_`` records it instead of a warning per fit
            warnings.simplefilter("ignore", ConvergenceWarning)
            self._fit(X, y, groups)
        self.converged_ = self.n_iter_ < self.max_iter
        return self

    def _fit(self, X, y, groups) -> None:
        X = np.asarray(X, dtype=np.float32)  # [N, d]; float32 halves lbfgs time against float64
        y = np.asarray(y)
        if X.ndim != 2 or len(X) != len(y):
            raise ValueError(f"X must be [N, d] and y [N]; got {X.shape} and {y.shape}")
        self.classes_, y_idx = np.unique(y, return_inverse=True)
        self.n_features_in_ = X.shape[1]
        self.mean_ = X.mean(axis=0)
        scale = X.std(axis=0)
        self.scale_ = np.where(scale > 1e-8, scale, 1.0).astype(np.float32)  # constant features stay 0
        Z = self._standardise(X)
        Cs = sorted(float(c) for c in self.Cs)
        if not Cs:
            raise ValueError("Cs must hold at least one value")
        if len(self.classes_) == 1:  # nothing to learn: always the one class
            self.model_ = None
            self.C_ = Cs[0]
            self.cv_scores_ = np.full((0, len(Cs)), np.nan)
            self.coef_ = np.zeros((1, X.shape[1]), dtype=np.float32)
            self.intercept_ = np.zeros(1, dtype=np.float32)
            self.n_iter_ = 0
            return
        warm = None
        if len(Cs) == 1:
            self.C_ = Cs[0]
            self.cv_scores_ = np.full((0, 1), np.nan)
        else:
            self.cv_scores_, warm = self._cross_validate(Z, y_idx, groups, Cs)
            mean = self.cv_scores_.mean(axis=0)
            best = int(np.flatnonzero(mean >= mean.max() - 1e-12)[0])  # ties -> the stronger penalty
            self.C_ = Cs[best]
            warm = warm[best]
        model = self._logreg(self.C_)
        if warm is not None and warm[0] is not None:
            model.coef_, model.intercept_ = warm[0].copy(), warm[1].copy()
        model.fit(Z, y_idx)
        self.model_ = model
        self.coef_ = model.coef_  # in standardised units
        self.intercept_ = model.intercept_
        self.n_iter_ = int(np.max(model.n_iter_))

    def _logreg(self, C: float) -> LogisticRegression:
        return LogisticRegression(C=C, l1_ratio=0.0, solver="lbfgs", max_iter=self.max_iter, tol=self.tol,
                                  warm_start=True)

    def _splits(self, n: int, groups) -> list[tuple[np.ndarray, np.ndarray]]:
        idx = np.zeros(n)
        cv = self.cv
        if isinstance(cv, (int, np.integer)) and not isinstance(cv, bool) and cv >= 2:
            n_groups = n if groups is None else len(np.unique(groups))
            k = min(int(cv), n_groups)
            if groups is None:
                return list(KFold(k, shuffle=True, random_state=self.seed).split(idx))
            return list(GroupKFold(k).split(idx, groups=groups))
        if not (isinstance(cv, float) and 0.0 < cv < 1.0):
            raise ValueError(f"cv must be a fraction in (0, 1) or an int >= 2, got {cv!r}")
        if groups is None:
            return list(ShuffleSplit(1, test_size=cv, random_state=self.seed).split(idx))
        return list(GroupShuffleSplit(1, test_size=cv, random_state=self.seed).split(idx, groups=groups))

    def _cross_validate(self, Z, y_idx, groups, Cs):
        """Validation accuracy ``[n_folds, n_Cs]`` and, per C, the first fold's weights for a warm refit."""
        n_classes = len(self.classes_)
        groups = None if groups is None else np.asarray(groups)
        if groups is not None and len(np.unique(groups)) < 2:
            groups = None  # one sequence: fall back to splitting rows
        splits = self._splits(len(Z), groups)
        scores = np.zeros((len(splits), len(Cs)))
        warm: list[tuple] = [(None, None)] * len(Cs)
        for f, (tr, va) in enumerate(splits):
            classes_tr = np.unique(y_idx[tr])
            if len(classes_tr) < 2:  # a fold that sees one class predicts it everywhere
                scores[f] = np.mean(y_idx[va] == classes_tr[0])
                continue
            model = self._logreg(Cs[0])
            for c, C in enumerate(Cs):  # strong -> weak penalty, each fit starts where the last ended
                model.set_params(C=C)
                model.fit(Z[tr], y_idx[tr])
                scores[f, c] = np.mean(model.predict(Z[va]) == y_idx[va])
                if f == 0 and len(classes_tr) == n_classes:
                    warm[c] = (model.coef_.copy(), model.intercept_.copy())
        return scores, warm

    # -- prediction --------------------------------------------------------------------------------
    def _standardise(self, X) -> np.ndarray:
        return (np.asarray(X, dtype=np.float32) - self.mean_) / self.scale_

    def decision_function(self, X) -> np.ndarray:
        check_is_fitted(self, "coef_")
        Z = self._standardise(X)
        if self.model_ is None:
            return np.zeros(len(Z), dtype=np.float32)
        return self.model_.decision_function(Z)

    def predict_proba(self, X) -> np.ndarray:
        check_is_fitted(self, "coef_")
        if self.model_ is None:
            return np.ones((len(X), 1))
        return self.model_.predict_proba(self._standardise(X))

    def predict(self, X) -> np.ndarray:
        check_is_fitted(self, "coef_")
        if self.model_ is None:
            return np.full(len(X), self.classes_[0])
        return self.classes_[self.model_.predict(self._standardise(X))]


# -- one probe experiment ------------------------------------------------------------------------------
def split_by_sequence(groups: np.ndarray, *, test_size: float = 0.3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Row indices ``(train, test)`` with every sequence wholly on one side.

    Tokens of one sequence share context, so a token-level split would let the probe see the test
    sentence's neighbours in training.
    """
    groups = np.asarray(groups)
    if len(np.unique(groups)) < 2:
        raise UserError(f"probing needs at least 2 sequences to split train/test by sequence; got {len(np.unique(groups))}")
    split = GroupShuffleSplit(n_splits=1, test_size=test_size, random_state=seed)
    train, test = next(split.split(np.zeros(len(groups)), groups=groups))
    return train, test


def probe_layer(
    X: np.ndarray,
    y: np.ndarray,
    *,
    groups: np.ndarray,
    token_types: np.ndarray,
    seed: int = 0,
    test_size: float = 0.3,
    probe: LinearProbe | None = None,
) -> dict[str, Any]:
    """Probe one layer's activations ``X [N, d_model]`` for labels ``y [N]``.

    ``groups [N]`` is the sequence of each row (train and test never share one); ``token_types [N]`` the
    token id of each row, which defines the control task. Returns ``accuracy`` (real task, test rows),
    ``control_accuracy`` (same probe recipe and split, control labels), ``selectivity`` = accuracy −
    control_accuracy, ``majority_baseline`` (test accuracy of always predicting the training set's most
    frequent class), ``n_train``, ``n_test`` and the chosen strengths ``C`` and ``control_C``.
    """
    X = np.asarray(X)
    y = np.asarray(y)
    groups = np.asarray(groups)
    token_types = np.asarray(token_types)
    if not (len(X) == len(y) == len(groups) == len(token_types)):
        raise ValueError(f"X, y, groups and token_types need one row each; got {len(X)}, {len(y)}, {len(groups)}, {len(token_types)}")
    train, test = split_by_sequence(groups, test_size=test_size, seed=seed)
    template = probe if probe is not None else LinearProbe(seed=seed)

    real = clone(template).fit(X[train], y[train], groups=groups[train])
    accuracy = float(np.mean(real.predict(X[test]) == y[test]))

    y_control = control_labels(token_types, y, seed=seed)
    control = clone(template).fit(X[train], y_control[train], groups=groups[train])
    control_accuracy = float(np.mean(control.predict(X[test]) == y_control[test]))

    majority = majority_label(y[train])
    return {
        "accuracy": accuracy,
        "control_accuracy": control_accuracy,
        "selectivity": accuracy - control_accuracy,
        "majority_baseline": float(np.mean(y[test] == majority)),
        "n_train": int(len(train)),
        "n_test": int(len(test)),
        "C": real.C_,
        "control_C": control.C_,
    }


def probe_rows(result: Mapping[str, Any], *, task: str, layer: int, **fields: Any) -> list[dict[str, Any]]:
    """Measurement rows (``source="probe"``) for one ``probe_layer`` result; ``fields`` fill the other columns.

    Accuracies carry their binomial standard error over the ``n_test`` test rows.
    """
    n = int(result["n_test"])
    rows = []
    for metric in PROBE_METRICS:
        value = float(result[metric])
        stderr = math.sqrt(max(value * (1 - value), 0.0) / n) if metric != "selectivity" and n > 0 else float("nan")
        rows.append({**fields, "source": "probe", "task": task, "layer": int(layer), "metric": metric,
                     "value": value, "stderr": stderr, "n": n})
    return rows
