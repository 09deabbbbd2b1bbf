"""A run's checkpoint steps: log-spaced early, then every ``checkpoint_every``, and the last step."""
from __future__ import annotations

#: checkpoints per run a spec may ask for
MAX_CHECKPOINTS = 10_000


def n_checkpoints(steps: int, every: int, log_spaced: bool = True) -> int:
    """``len(checkpoint_steps(...))`` without building the list (a spec may ask for billions)."""
    regular = steps // every
    if regular > 10 * MAX_CHECKPOINTS:  # far too many either way: the bound is enough to say so
        return regular
    return len(checkpoint_steps(steps, every, log_spaced))


def checkpoint_steps(steps: int, every: int, log_spaced: bool = True) -> list[int]:
    """Steps {0, 1, 2, 4, …, 2^k} ∪ {every, 2·every, …} ∪ {steps}, capped at ``steps``."""
    out = {0, steps}
    if log_spaced:
        s = 1
        while s <= steps:
            out.add(s)
            s *= 2
    out.update(range(every, steps + 1, every))
    return sorted(out)
