"""The measurement table: every number a study measures, one tidy row each.

Stages write their rows as *parts* (one Parquet file per unit of work, written atomically), and
``measurements.parquet`` is the sorted concatenation of all parts. A part that exists is complete;
a killed stage leaves no part, so re-running it recomputes exactly the missing units.
"""
from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from emergelab.errors import UserError
from emergelab.io import INPUTS_KEY, atomic_write_bytes

#: Column name -> pandas dtype. ``layer`` is -1 and ``k_shot`` is 0 where they do not apply;
#: ``stderr`` is NaN where it was not estimated.
SCHEMA: dict[str, str] = {
    "study": "string",
    "rung": "string",
    "n_params": "int64",
    "step": "int64",
    "tokens": "int64",
    "flops": "float64",
    "source": "string",  # train | eval | probe | heads | mechanism | finetune | baseline
    "task": "string",
    "k_shot": "int64",
    "layer": "int64",
    "metric": "string",
    "value": "float64",
    "stderr": "float64",
    "n": "int64",
    "seed": "int64",
}
COLUMNS = list(SCHEMA)
SORT_KEY = ["source", "task", "metric", "rung", "step", "k_shot", "layer", "seed"]
#: ``baseline`` rows stand beside the probe or fine-tuning results they are a baseline for (same task, or for
#: fine-tuning ``finetune/<data>/<baseline>`` in the method's place; same rung, step, k_shot and seed; layer -1)
SOURCES = ("train", "eval", "probe", "heads", "mechanism", "finetune", "baseline")
#: a mechanism-map signal that names a head score (``heads/<score>``, rows ``source="heads"``) rather than a latent
HEADS_PREFIX = "heads/"

_DEFAULTS = {"study": "", "rung": "", "n_params": 0, "step": 0, "tokens": 0, "flops": 0.0,
             "k_shot": 0, "layer": -1, "stderr": np.nan, "n": 0, "seed": 0}


def make_frame(rows: Iterable[Mapping]) -> pd.DataFrame:
    """Build a frame of the documented schema from row dicts (missing optional fields get defaults)."""
    rows = [{**_DEFAULTS, **r} for r in rows]
    df = pd.DataFrame(rows, columns=COLUMNS)
    return conform(df)


def conform(df: pd.DataFrame) -> pd.DataFrame:
    """Check a frame against the schema and cast it; raise a UserError naming missing columns."""
    missing = [c for c in ("rung", "step", "source", "task", "metric", "value") if c not in df.columns]
    if missing:
        raise UserError(f"measurement table lacks column(s) {', '.join(missing)}; expected columns {', '.join(COLUMNS)}")
    df = df.copy()
    for col, default in _DEFAULTS.items():
        if col not in df.columns:
            df[col] = default
    df = df[COLUMNS]
    return df.astype(SCHEMA)


def to_parquet_bytes(df: pd.DataFrame, inputs: Mapping[str, str] | None = None) -> bytes:
    table = pa.Table.from_pandas(conform(df), preserve_index=False)
    if inputs is not None:
        meta = dict(table.schema.metadata or {})
        meta[INPUTS_KEY] = json.dumps(dict(inputs), sort_keys=True).encode()
        table = table.replace_schema_metadata(meta)
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


def write_part(path: str | Path, rows: Iterable[Mapping] | pd.DataFrame, inputs: Mapping[str, str] | None = None) -> None:
    """Write one unit's rows atomically; ``inputs`` (digests of what they were computed from) go in the footer."""
    df = rows if isinstance(rows, pd.DataFrame) else make_frame(rows)
    atomic_write_bytes(path, to_parquet_bytes(df, inputs))


def read_table(path: str | Path) -> pd.DataFrame:
    path = Path(path)
    if path.is_dir():
        path = path / "measurements.parquet"
    if not path.exists():
        raise UserError(f"no measurement table at {path}; run `emergelab study` (or a stage) first")
    try:
        return conform(pd.read_parquet(path))
    except UserError:
        raise
    except Exception as exc:  # corrupted parquet
        raise UserError(f"cannot read {path} as a measurement table ({type(exc).__name__}); delete it and re-run `emergelab study` to rebuild it") from None


def combine_parts(parts_dir: str | Path, out_path: str | Path) -> pd.DataFrame:
    """Concatenate every part under ``parts_dir`` into ``out_path`` (sorted, atomic)."""
    files = sorted(Path(parts_dir).rglob("*.parquet"))
    frames = [pd.read_parquet(f) for f in files]
    df = pd.concat(frames, ignore_index=True) if frames else make_frame([])
    df = conform(df).sort_values(SORT_KEY, kind="stable").reset_index(drop=True)
    atomic_write_bytes(out_path, to_parquet_bytes(df))
    return df


#: Metric name -> (higher_is_better, kind). ``kind`` is "discontinuous" (a threshold on the output,
#: such as exact match) or "continuous" (a smooth function of the model's probabilities).
METRICS: dict[str, tuple[bool, str]] = {
    "exact_match": (True, "discontinuous"),
    "mc_accuracy": (True, "discontinuous"),
    "mc_accuracy_norm": (True, "discontinuous"),
    "target_pll": (True, "continuous"),  # pseudo-log-likelihood of a multi-token target (masked models)
    "token_accuracy": (True, "continuous"),
    "target_logprob": (True, "continuous"),  # sum over target tokens (nats)
    "target_logprob_per_token": (True, "continuous"),
    "edit_distance": (False, "continuous"),  # token edit distance of the greedy output
    "brier": (False, "continuous"),
    "loss": (False, "continuous"),
    "accuracy": (True, "discontinuous"),
    "macro_f1": (True, "discontinuous"),
    "control_accuracy": (True, "discontinuous"),
    "selectivity": (True, "continuous"),
    "majority_baseline": (True, "discontinuous"),
    "word_lookup_baseline": (True, "discontinuous"),
    # the modular world's Fourier progress measures (evaluate/fourier.py): the restricted loss falls and the
    # excluded loss rises as the key frequencies take over the logits (Nanda et al. 2023)
    "restricted_loss": (False, "continuous"),
    "excluded_loss": (True, "continuous"),
    "key_share": (True, "continuous"),
}

#: Chance levels are stored as rows with ``metric = CHANCE_PREFIX + <metric>`` (e.g.
#: ``chance/exact_match``), ``source="eval"``, ``rung=""`` and ``step=-1``, one per task.
CHANCE_PREFIX = "chance/"

#: Mechanism rows (``source="mechanism"``, ``task=<capability>``, ``layer``: where the intervention acted —
#: the erased residual site, or the top ablated head's block) name what they measure in ``metric`` as
#: ``<quantity>:<capability metric>:<signal>``: quantity ``drop`` (the capability's score without minus
#: with the intervention, signed so that a loss of capability is positive), ``control_drop`` (the same
#: for the control: as many random heads of the same layers, or a random subspace of the same rank) or
#: ``specificity`` (drop − control_drop); the signal comes last and may itself hold ``:`` (a mixture's
#: ``component:latent``). E.g. ``specificity:exact_match:heads/induction``.
MECHANISM_QUANTITIES = ("drop", "control_drop", "specificity")


def mechanism_metric(quantity: str, metric: str, signal: str) -> str:
    return f"{quantity}:{metric}:{signal}"


def parse_mechanism_metric(name: str) -> tuple[str, str, str] | None:
    """(quantity, capability metric, signal) of a mechanism row's metric, or None if it is not one."""
    parts = name.split(":", 2)
    return (parts[0], parts[1], parts[2]) if len(parts) == 3 and parts[0] in MECHANISM_QUANTITIES else None
