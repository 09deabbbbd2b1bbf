"""The integrity audit of a suite: is each checkpoint what its name says?

Per checkpoint: the weights' sha256, the global weight norm and the cosine to the previous checkpoint
of its family (streamed tensor by tensor from the safetensors files, memory-mapped, so no checkpoint is
held in memory). Per family: identical weights under different names (Pythia issue #205: revisions
that served the final weights), norms that leave the line through their neighbours (modified z-score,
Iglewicz & Hoaglin), checkpoints that do not lie between their neighbours (both neighbours closer to
each other than to it), and config keys that change between checkpoints.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

#: config keys that define an architecture: checkpoints of one family must agree on them
ARCH_KEYS = ("model_type", "architectures", "hidden_size", "n_embd", "d_model", "num_hidden_layers", "n_layer",
             "num_attention_heads", "n_head", "intermediate_size", "vocab_size")
#: config keys that legitimately differ between checkpoints of one run
_VOLATILE_KEYS = {"_name_or_path", "transformers_version", "torch_dtype", "dtype", "_commit_hash"}
#: modified z-score above which a change along the steps is flagged (Iglewicz & Hoaglin 1993)
OUTLIER_Z = 3.5
_EMBEDDING_NAMES = ("wte", "wpe", "word_embeddings", "position_embeddings", "token_type_embeddings", "embed_in", "embed_tokens")


def read_config(path: Path) -> dict:
    return json.loads((Path(path) / "config.json").read_text(encoding="utf-8"))


def architecture(config: dict) -> dict:
    return {k: config[k] for k in ARCH_KEYS if k in config}


def config_changes(before: dict, after: dict) -> list[str]:
    """Keys (beyond versions and paths) whose value differs between two configs of one family."""
    keys = (set(before) | set(after)) - _VOLATILE_KEYS
    return sorted(k for k in keys if before.get(k) != after.get(k))


def _tensors(path: Path):
    """(name, float64 numpy array) of every tensor of the checkpoint, one at a time (memory-mapped files)."""
    from safetensors import safe_open

    for f in sorted(Path(path).glob("*.safetensors")):
        with safe_open(str(f), framework="pt") as st:
            for name in st.keys():
                yield name, st.get_tensor(name).double().numpy().ravel()


def param_counts(path: Path) -> tuple[int, int]:
    """(total, non-embedding) parameters stored in the safetensors files, read from their headers only."""
    from safetensors import safe_open

    total = emb = 0
    for f in sorted(Path(path).glob("*.safetensors")):
        with safe_open(str(f), framework="pt") as st:
            for name in st.keys():
                n = math.prod(st.get_slice(name).get_shape())
                total += n
                emb += n if any(k in name for k in _EMBEDDING_NAMES) else 0
    return total, total - emb


def weight_norm(path: Path) -> float:
    """‖θ‖₂ over every stored tensor."""
    return float(math.sqrt(sum(float(a @ a) for _, a in _tensors(path))))


def cosine(path_a: Path, path_b: Path) -> float:
    """cos(θ_a, θ_b) over the tensors both checkpoints store (same names and shapes), streamed pairwise."""
    from safetensors import safe_open

    dot = na = nb = 0.0
    b_files = {n: f for f in sorted(Path(path_b).glob("*.safetensors")) for n in safe_open(str(f), framework="pt").keys()}
    for name, a in _tensors(path_a):
        if name not in b_files:
            continue
        with safe_open(str(b_files[name]), framework="pt") as st:
            b = st.get_tensor(name).double().numpy().ravel()
        if b.shape != a.shape:
            continue
        dot, na, nb = dot + float(a @ b), na + float(a @ a), nb + float(b @ b)
    return dot / math.sqrt(na * nb) if na > 0 and nb > 0 else float("nan")


def modified_z(x: np.ndarray) -> np.ndarray:
    """0.6745 (x − median) / MAD (Iglewicz & Hoaglin); zero where the MAD is zero and x is the median."""
    med = np.median(x)
    mad = np.median(np.abs(x - med))
    if mad == 0:
        return np.where(np.abs(x - med) > 1e-12, np.inf, 0.0)
    return 0.6745 * (x - med) / mad


def norm_outliers(steps: list[int], norms: list[float], *, min_rel: float = 0.01) -> list[int]:
    """Indices whose log-norm leaves the line through its neighbours (in log step) by an outlying amount
    (modified z > 3.5 among the family's residuals) and by more than ``min_rel`` of the norm."""
    if len(steps) < 5:
        return []
    x, y = np.log1p(np.asarray(steps, dtype=float)), np.log(np.maximum(norms, 1e-30))
    w = (x[1:-1] - x[:-2]) / np.maximum(x[2:] - x[:-2], 1e-12)
    resid = y[1:-1] - ((1 - w) * y[:-2] + w * y[2:])  # [n-2] distance from the neighbours' interpolation
    z = modified_z(np.abs(resid))
    return [i + 1 for i in np.nonzero((z > OUTLIER_Z) & (np.abs(resid) > min_rel))[0]]


def out_of_place(cos_prev: list[float | None], cos_skip: list[float | None]) -> list[int]:
    """Indices of checkpoints that do not lie between their neighbours: both neighbours are closer to each
    other (``cos_skip[i]`` = cos(θ_{i−1}, θ_{i+1})) than to it — a checkpoint served from elsewhere in training."""
    out = []
    for i in range(1, len(cos_prev) - 1):
        before, after, skip = cos_prev[i], cos_prev[i + 1], cos_skip[i]
        if None not in (before, after, skip) and skip > max(before, after) + 1e-9:
            out.append(i)
    return out
