"""Which examples train and which evaluate: a fixed held-out split and nested, seeded label subsets.

The evaluation split is drawn once (seed ``SPLIT_SEED``), so every label count and seed is scored on
the same examples. For each run seed the training pool is put in one random order whose first
examples are one of each class (classification); the run with ``k`` labels trains on the first ``k``.
So for one seed the 16-label set is inside the 64-label set, and every class is present.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from emergelab.corpus.labelled import LabelledData
from emergelab.errors import UserError

SPLIT_SEED = 0
ALL = None  # label count meaning "every example in the training pool"


def default_eval_size(n: int) -> int:
    """20 % of the examples, at most 1000."""
    return min(1000, max(1, n // 5))


def holdout_split(n: int, eval_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(pool, eval) index arrays: ``eval_size`` examples held out with a fixed seed."""
    if not 0 < eval_size < n:
        raise UserError(f"cannot hold out {eval_size} of {n} examples for evaluation; use an --eval-size between 1 and {n - 1}, or give --eval-data")
    order = np.random.default_rng(SPLIT_SEED).permutation(n)
    return np.sort(order[eval_size:]), np.sort(order[:eval_size])


def training_order(data: LabelledData, seed: int) -> np.ndarray:
    """A seeded order of ``data``'s examples: for classification, one per class first."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(data))
    if data.task != "classify":
        return order
    labels = np.asarray(data.labels)[order]
    first = [int(np.flatnonzero(labels == c)[0]) for c in rng.permutation(data.n_labels) if (labels == c).any()]
    rest = np.delete(np.arange(len(order)), first)
    return order[np.concatenate([first, rest]).astype(int)]


def parse_label_counts(text: str) -> list[int | None]:
    """``"16,64,all"`` -> ``[16, 64, None]``."""
    out: list[int | None] = []
    for part in str(text).split(","):
        part = part.strip().lower()
        if part == "all":
            out.append(ALL)
        elif part.isdigit() and int(part) > 0:
            out.append(int(part))
        else:
            raise UserError(f"--labels takes positive counts or 'all', separated by commas (e.g. 16,64,all); got {part!r}")
    return out


def check_label_counts(counts: Sequence[int | None], pool: LabelledData, *, held_out: int) -> None:
    """Refuse label counts larger than the pool, or (classification) smaller than the classes."""
    n = len(pool)
    unit = "labelled examples" if pool.task == "classify" else "tagged sentences"
    where = f" after holding out {held_out} for evaluation" if held_out else ""
    for k in counts:
        if k is ALL:
            continue
        if k > n:
            raise UserError(f"--labels {k} is more than the {n} {unit} available for training{where}; use at most {n} or 'all'")
        present = len({int(y) for y in pool.labels}) if pool.task == "classify" else 0
        if pool.task == "classify" and k < present:
            raise UserError(f"--labels {k} cannot cover the {present} classes; use at least {present} labelled examples")


def label_subset(data: LabelledData, k: int | None, seed: int) -> LabelledData:
    """The first ``k`` examples of the seeded training order (all of them for ``None``)."""
    order = training_order(data, seed)
    return data.subset(order if k is ALL else order[:k])
