"""Baselines beside every fine-tuning result: the majority class, a frozen checkpoint + logistic regression, TF-IDF n-grams.

A fine-tuning number means little alone: 0.86 accuracy is poor where a logistic regression on the
*frozen* checkpoint's mean-pooled last hidden state reaches 0.96, and 0.63 macro-F1 may be good on data
where a bag of n-grams reaches 0.55. Each baseline sees exactly the run's training labels (the same
``k`` examples of the same seed) and is scored on the same held-out examples, so it is a row beside
the run's rows:

- ``majority``: always the most frequent training label;
- ``frozen-logreg``: standardised mean-pooled last hidden state of the untouched checkpoint, multinomial
  logistic regression with its L2 strength chosen by cross-validation on the training labels;
- ``tfidf-logreg``: character 1–4-gram (within word boundaries) and word 1–2-gram TF-IDF, logistic
  regression likewise; it needs no model, so it says what the words alone give.

Rows: ``source="baseline"``, ``task = "finetune/<data>/<baseline>"`` (a baseline takes a method's place
in the task name), metrics ``accuracy`` (binomial stderr) and ``macro_f1``; the other columns as the
fine-tuning run's. Classification only: for tagging the model-free reference is the probe's word lookup.
"""
from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np

from emergelab.finetune.evaluate import accuracy, accuracy_stderr, macro_f1, majority_class

BASELINES = ("majority", "frozen-logreg", "tfidf-logreg")
#: inverse L2 strengths tried by the logistic-regression baselines (strong to weak)
CS = (0.01, 0.1, 1.0, 10.0, 100.0)
#: training rows from which the L2 strength is chosen on one hold-out split instead of 5 folds
ONE_SPLIT = 2000
#: most n-grams of each TF-IDF vocabulary (the most frequent; bounds memory and time on large pools)
MAX_NGRAMS = 200_000


def majority_predict(train_y: np.ndarray, n: int) -> np.ndarray:
    """``n`` predictions of the most frequent training label (ties: the smallest label)."""
    return np.full(n, majority_class(train_y))


def logreg_predict(X_train, y_train: np.ndarray, X_test, *, seed: int = 0, standardise: bool = True) -> np.ndarray:
    """Predictions of a multinomial logistic regression whose C (``CS``) is chosen by stratified CV on the training rows.

    The CV has up to 5 folds, fewer when the rarest class has fewer examples (with one example of a
    class no fold can hold it out, and C = 1 is used); from ``ONE_SPLIT`` training rows on, one
    stratified 20 % hold-out instead, which is as reliable there and five times cheaper.
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV, StratifiedKFold, StratifiedShuffleSplit
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    y_train = np.asarray(y_train)
    if len(np.unique(y_train)) < 2:
        return np.full(X_test.shape[0], y_train[0])
    steps = ([StandardScaler()] if standardise else []) + [LogisticRegression(C=1.0, max_iter=1000)]
    model = make_pipeline(*steps)
    folds = min(5, int(np.bincount(y_train).min(where=np.bincount(y_train) > 0, initial=len(y_train))))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        if folds >= 2:
            cv = (StratifiedShuffleSplit(1, test_size=0.2, random_state=seed) if len(y_train) >= ONE_SPLIT
                  else StratifiedKFold(folds, shuffle=True, random_state=seed))
            model = GridSearchCV(model, {"logisticregression__C": list(CS)}, cv=cv, scoring="accuracy")
        model.fit(X_train, y_train)
    return model.predict(X_test)


def tfidf_features(train_texts: Sequence[str], test_texts: Sequence[str]):
    """Sparse TF-IDF rows ``(train, test)``: char 1–4-grams within word boundaries plus word 1–2-grams, fitted on train."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import make_union

    union = make_union(TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 4), sublinear_tf=True, max_features=MAX_NGRAMS),
                       TfidfVectorizer(analyzer="word", ngram_range=(1, 2), sublinear_tf=True, max_features=MAX_NGRAMS,
                                       token_pattern=r"(?u)\b\w+\b"))
    return union.fit_transform(list(train_texts)), union.transform(list(test_texts))


def tfidf_predict(train_texts: Sequence[str], y_train, test_texts: Sequence[str], *, seed: int = 0) -> np.ndarray:
    X_tr, X_te = tfidf_features(train_texts, test_texts)
    return logreg_predict(X_tr, np.asarray(y_train), X_te, seed=seed, standardise=False)


def mean_pooled(model, enc, *, pad_token_id: int, batch_size: int = 64, device: str = "cpu") -> np.ndarray:
    """``[N, d_model]`` float32: the mean over real tokens of the transformer body's last hidden state."""
    import torch

    from emergelab.finetune.encode import collate

    body = getattr(model, "base_model", model)
    out = np.zeros((len(enc), model.config.hidden_size), dtype=np.float32)
    order = sorted(range(len(enc)), key=lambda i: len(enc.input_ids[i]))  # similar lengths, little padding
    was_training = body.training
    body.eval()
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            batch = collate(enc, idx, pad_token_id=pad_token_id)
            batch.pop("labels")
            hidden = body(**{k: v.to(device) for k, v in batch.items()}).last_hidden_state.float()  # [b, T, d]
            mask = batch["attention_mask"].to(device).unsqueeze(-1).float()  # [b, T, 1]
            out[idx] = ((hidden * mask).sum(1) / mask.sum(1).clamp(min=1)).cpu().numpy()
    body.train(was_training)
    return out


def baseline_scores(pred: np.ndarray, gold: np.ndarray) -> dict[str, float]:
    acc = accuracy(pred, gold)
    return {"accuracy": acc, "accuracy_stderr": accuracy_stderr(acc, len(gold)), "macro_f1": macro_f1(pred, gold),
            "n": int(len(gold))}


def baseline_rows(scores_by_name: dict[str, dict], *, data_name: str, common: dict) -> list[dict]:
    """Measurement rows of each baseline's scores (see the module docstring); ``common`` fills the other columns."""
    rows = []
    order = {name: i for i, name in enumerate(BASELINES)}  # a record read back from JSON has its keys sorted
    for name, sc in sorted(scores_by_name.items(), key=lambda kv: order.get(kv[0], len(order))):
        base = {**common, "source": "baseline", "task": f"finetune/{data_name}/{name}", "layer": -1, "n": sc["n"]}
        rows += [{**base, "metric": "accuracy", "value": sc["accuracy"], "stderr": sc["accuracy_stderr"]},
                 {**base, "metric": "macro_f1", "value": sc["macro_f1"]}]
    return rows


def run_baselines(model, train_enc, eval_enc, *, train_texts: Sequence[str] | None, eval_texts: Sequence[str] | None,
                  which: Sequence[str], pad_token_id: int, batch_size: int = 64, device: str = "cpu", seed: int = 0,
                  cache: dict | None = None, base_key: str = "") -> dict[str, dict]:
    """Scores of the baselines in ``which`` for one run's training examples, on its evaluation examples.

    ``model`` is the checkpoint with its fresh head, not yet trained (``frozen-logreg`` reads its body).
    ``cache`` (one dict for the runs of one training pool and evaluation split) keeps what does not depend
    on the run: the evaluation examples' frozen features per base model (``base_key``), and the
    model-free baselines' scores per label count and seed (equal for every checkpoint).
    """
    cache = cache if cache is not None else {}
    y_train, gold = np.asarray(train_enc.labels), np.asarray(eval_enc.labels)
    out: dict[str, dict] = {}
    if "majority" in which:
        out["majority"] = baseline_scores(majority_predict(y_train, len(gold)), gold)
    if "frozen-logreg" in which:
        key = ("frozen-eval", base_key)
        if key not in cache:
            cache[key] = mean_pooled(model, eval_enc, pad_token_id=pad_token_id, batch_size=batch_size, device=device)
        X_train = mean_pooled(model, train_enc, pad_token_id=pad_token_id, batch_size=batch_size, device=device)
        out["frozen-logreg"] = baseline_scores(logreg_predict(X_train, y_train, cache[key], seed=seed), gold)
    if "tfidf-logreg" in which and train_texts is not None:
        key = ("tfidf-logreg", len(train_texts), seed)
        if key not in cache:
            cache[key] = baseline_scores(tfidf_predict(train_texts, y_train, eval_texts, seed=seed), gold)
        out["tfidf-logreg"] = cache[key]
    return out
