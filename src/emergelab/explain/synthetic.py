"""Measurement rows with known answers (curves of a chosen shape), for tests, demos and benchmarks."""
from __future__ import annotations

from typing import Iterable

import numpy as np
import pandas as pd

from emergelab.measurements import CHANCE_PREFIX, make_frame

TOKENS_PER_STEP = 4096


def checkpoint_base(rung: str, n_params: int, step: int, study: str = "synthetic") -> dict:
    """The columns shared by every row of one checkpoint (flops = 6·N·tokens)."""
    tokens = int(step) * TOKENS_PER_STEP
    return {"study": study, "rung": rung, "n_params": int(n_params), "step": int(step), "tokens": tokens,
            "flops": 6.0 * n_params * tokens}


def step_rows(task: str, metric: str, steps: Iterable[int], values: Iterable[float], rung: str = "r0",
              n_params: int = 1_000_000, k_shot: int = 0) -> list[dict]:
    """One eval row per checkpoint of one rung."""
    return [{**checkpoint_base(rung, n_params, s), "source": "eval", "task": task, "k_shot": k_shot,
             "metric": metric, "value": float(v), "n": 256} for s, v in zip(steps, values)]


def ladder_rows(task: str, metric: str, n_params: Iterable[int], values: Iterable[float], step: int = 1000,
                k_shot: int = 0) -> list[dict]:
    """One eval row per rung (its final checkpoint), rungs named ``r<n_params>``."""
    return [{**checkpoint_base(f"r{int(n)}", n, step), "source": "eval", "task": task, "k_shot": k_shot,
             "metric": metric, "value": float(v), "n": 256} for n, v in zip(n_params, values)]


def heldout_rows(steps: Iterable[int], losses: Iterable[float], rung: str = "r0",
                 n_params: int = 1_000_000) -> list[dict]:
    """Held-out pretraining loss per checkpoint (the x of the loss axis)."""
    return [{**checkpoint_base(rung, n_params, s), "source": "eval", "task": "heldout", "metric": "loss",
             "value": float(v)} for s, v in zip(steps, losses)]


def chance_row(task: str, metric: str, value: float) -> dict:
    return {"study": "synthetic", "rung": "", "step": -1, "source": "eval", "task": task,
            "metric": CHANCE_PREFIX + metric, "value": float(value)}


def answer_length_row(task: str, length: float) -> dict:
    return {"study": "synthetic", "rung": "", "step": -1, "source": "eval", "task": task,
            "metric": "answer_length", "value": float(length)}


def probe_rows(latent: str, steps: Iterable[int], selectivity: np.ndarray, rung: str = "r0",
               n_params: int = 1_000_000) -> list[dict]:
    """Probe selectivity rows; ``selectivity`` is (n_steps × n_layers)."""
    sel = np.asarray(selectivity, dtype=float)
    return [{**checkpoint_base(rung, n_params, s), "source": "probe", "task": latent, "layer": layer,
             "metric": "selectivity", "value": float(sel[i, layer])}
            for i, s in enumerate(steps) for layer in range(sel.shape[1])]


def frame(*row_lists: list[dict]) -> pd.DataFrame:
    """A measurement table of the documented schema from lists of rows."""
    return make_frame([r for rows in row_lists for r in rows])
