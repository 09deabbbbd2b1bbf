"""Learning-rate schedules as pure functions of the step: warmup, then constant, cosine or linear decay."""
from __future__ import annotations

import math


def lr_at(step: int, *, lr: float, warmup: int, total: int, schedule: str, min_ratio: float = 0.1) -> float:
    """lr·min(1, (step+1)/warmup) during warmup; then constant, cosine or linear decay to ``min_ratio``·lr."""
    if warmup and step < warmup:
        return lr * (step + 1) / warmup
    if schedule == "constant":
        return lr
    frac = (step - warmup) / max(1, total - warmup)
    frac = min(max(frac, 0.0), 1.0)
    if schedule == "cosine":
        return lr * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * frac)))
    if schedule == "linear":
        return lr * (1 - (1 - min_ratio) * frac)
    raise ValueError(f"unknown schedule {schedule!r}")
