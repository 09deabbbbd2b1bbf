"""Predictions and scores of a fine-tuned classifier: accuracy and macro-F1 on held-out examples.

Tagging is scored per word (its first sub-token); macro-F1 averages F1 over the labels that occur in
the gold labels or the predictions (scikit-learn's default), so a class never predicted and never
present does not count.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from emergelab.finetune.encode import IGNORE, Encoded, collate


@torch.no_grad()
def predict_logits(model, enc: Encoded, *, pad_token_id: int, batch_size: int = 64, device: str = "cpu") -> list[torch.Tensor]:
    """Logits per example: ``(n_labels,)`` for classification, ``(seq, n_labels)`` for tagging."""
    was_training = model.training
    model.eval()
    # sort by length so that batches hold similar lengths (less padding), then restore the order
    order = sorted(range(len(enc)), key=lambda i: len(enc.input_ids[i]))
    results: dict[int, torch.Tensor] = {}
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        batch = collate(enc, idx, pad_token_id=pad_token_id)
        batch.pop("labels")
        logits = model(**{k: v.to(device) for k, v in batch.items()}).logits.float().cpu()
        for r, i in enumerate(idx):
            results[i] = logits[r] if logits.dim() == 2 else logits[r, : len(enc.input_ids[i])]
    out = [results[i] for i in range(len(enc))]
    model.train(was_training)
    return out


def flatten_predictions(logits: list[torch.Tensor], enc: Encoded) -> tuple[np.ndarray, np.ndarray]:
    """(predicted, gold) label arrays over every scored example or word."""
    if not isinstance(enc.labels[0], list):
        pred = np.array([int(l.argmax()) for l in logits])
        return pred, np.asarray(enc.labels)
    preds, gold = [], []
    for l, y in zip(logits, enc.labels):
        y = np.asarray(y)
        keep = y != IGNORE
        preds.append(l.argmax(-1).numpy()[keep])
        gold.append(y[keep])
    return np.concatenate(preds), np.concatenate(gold)


def accuracy(pred: np.ndarray, gold: np.ndarray) -> float:
    """mean(pred == gold)"""
    return float(np.mean(pred == gold)) if len(gold) else float("nan")


def accuracy_stderr(acc: float, n: int) -> float:
    """sqrt(acc (1 - acc) / n), the binomial standard error."""
    return math.sqrt(acc * (1 - acc) / n) if n else float("nan")


def macro_f1(pred: np.ndarray, gold: np.ndarray) -> float:
    """mean over classes c in gold ∪ pred of F1_c = 2 TP_c / (2 TP_c + FP_c + FN_c).

    Equal to ``sklearn.metrics.f1_score(gold, pred, average="macro", zero_division=0)``.
    """
    if not len(gold):
        return float("nan")
    classes = np.union1d(gold, pred)
    tp = np.array([np.sum((pred == c) & (gold == c)) for c in classes])
    fp = np.array([np.sum((pred == c) & (gold != c)) for c in classes])
    fn = np.array([np.sum((pred != c) & (gold == c)) for c in classes])
    return float(np.mean(2 * tp / (2 * tp + fp + fn)))


def majority_class(labels) -> int:
    """The most frequent label (ties: the smallest)."""
    return int(np.bincount(np.asarray(labels, dtype=np.int64)).argmax())


def majority_baseline(train_labels: list, gold: np.ndarray) -> float:
    """Accuracy of always predicting the most frequent training label."""
    flat = [v for y in train_labels for v in (y if isinstance(y, list) else [y]) if v != IGNORE]
    return float(np.mean(gold == majority_class(flat)))


def scores(model, enc: Encoded, *, pad_token_id: int, batch_size: int = 64, device: str = "cpu") -> dict[str, float]:
    """accuracy, its stderr, macro_f1 and n (scored examples or words)."""
    pred, gold = flatten_predictions(predict_logits(model, enc, pad_token_id=pad_token_id, batch_size=batch_size, device=device), enc)
    acc = accuracy(pred, gold)
    return {"accuracy": acc, "accuracy_stderr": accuracy_stderr(acc, len(gold)), "macro_f1": macro_f1(pred, gold),
            "n": int(len(gold))}
