"""Metrics as pure functions of per-position model outputs, and bootstrap standard errors."""
from __future__ import annotations

import numpy as np


def exact_match(correct: np.ndarray) -> float:
    """1 if every target token is the model's top prediction (= greedy decoding reproduces it), else 0."""
    return float(np.all(correct))


def token_accuracy(correct: np.ndarray) -> float:
    """Fraction of target tokens that are the model's top prediction (teacher-forced)."""
    return float(np.mean(correct))


def target_logprob(logp: np.ndarray) -> float:
    """Σ_t log p(target_t | prompt, target_<t), in nats."""
    return float(np.sum(logp))


def brier(probs: np.ndarray, target: np.ndarray) -> float:
    """Mean over target positions of Σ_v (p_v − 1[v = target])², in [0, 2]."""
    onehot = np.zeros_like(probs)
    onehot[np.arange(len(target)), target] = 1.0
    return float(np.mean(np.sum((probs - onehot) ** 2, axis=-1)))


def edit_distance(a: list[int] | np.ndarray, b: list[int] | np.ndarray) -> int:
    """Levenshtein distance between two token sequences (insertions, deletions, substitutions)."""
    a, b = list(a), list(b)
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i]
        for j, y in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))
        prev = cur
    return prev[-1]


def bootstrap_stderr(values: np.ndarray, n_boot: int, seed: int) -> float:
    """Standard deviation of the mean over ``n_boot`` resamples (NaN when n_boot is 0)."""
    values = np.asarray(values, dtype=float)
    if n_boot <= 0 or len(values) < 2:
        return float("nan")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(values), size=(n_boot, len(values)))
    return float(values[idx].mean(axis=1).std(ddof=1))


def softmax(scores: np.ndarray) -> np.ndarray:
    """exp(s_i − max s) / Σ_j exp(s_j − max s)."""
    s = np.asarray(scores, dtype=float)
    e = np.exp(s - s.max())
    return e / e.sum()


def mc_accuracy(scores: np.ndarray, gold: int) -> float:
    """1 if the gold choice has the highest score (ties go to the first, as numpy's argmax), else 0."""
    return float(int(np.argmax(scores)) == gold)


def choice_brier(scores: np.ndarray, gold: int) -> float:
    """Σ_c (p_c − 1[c = gold])² with p = softmax of the choices' log-likelihoods, in [0, 2]."""
    p = softmax(scores)
    onehot = np.zeros_like(p)
    onehot[gold] = 1.0
    return float(np.sum((p - onehot) ** 2))


def normalise_answer(text: str, *, ignore_case: bool = False, ignore_punctuation: bool = False,
                     regexes_to_ignore: list[str] | None = None) -> str:
    """The string compared by exact match: trimmed, then optionally without the given regexes,
    lower-cased and without punctuation (the options of lm-eval's exact_match)."""
    import re
    import string

    for rx in regexes_to_ignore or []:
        text = re.sub(rx, "", text)
    if ignore_case:
        text = text.lower()
    if ignore_punctuation:
        text = text.translate(str.maketrans("", "", string.punctuation))
    return text.strip()
