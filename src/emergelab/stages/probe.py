"""The probe stage: every latent at every layer of every checkpoint, plus head scores.

Units are the evaluate stage's: one per checkpoint, its part recording the checkpoint's weights sha256.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from emergelab.corpus.tokenizer import SPECIAL_TOKENS
from emergelab.errors import UserError
from emergelab.layout import Layout
from emergelab.models import checkpoint as ckpt
from emergelab.spec import StudySpec
from emergelab.stages.base import Stage, Unit, part_is_current
from emergelab.stages.evaluate import checkpoint_units, part_of

PROBE_METRICS = ("accuracy", "control_accuracy", "selectivity", "majority_baseline")


def _token_subset(labels: np.ndarray, max_tokens: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(sequence index, position) of labelled tokens; the same subset for every checkpoint."""
    seq, pos = np.nonzero(labels >= 0)
    if len(seq) > max_tokens:
        keep = np.sort(np.random.default_rng(seed).choice(len(seq), size=max_tokens, replace=False))
        seq, pos = seq[keep], pos[keep]
    return seq, pos


def latent_features(hidden: np.ndarray, input_ids: np.ndarray, labels: np.ndarray, level: str, *, pool: str,
                    max_tokens: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """What one latent's probes see: (X [L+1, N, d] float32, y [N], groups [N], token types [N]).

    Token-level latents read the labelled positions (at most ``max_tokens``, the same subset at every
    checkpoint); the control task's types are the token ids there (Hewitt & Liang). Sequence-level
    latents read one vector per sequence, pooled as ``pool`` says, and every sequence is its own type:
    the control task is a random label per sequence, which no probe can carry to held-out sequences, so
    control accuracy is the chance a memorising probe reaches and selectivity is accuracy above it.
    (Typing by the pooled token instead would make the control a 50-way token-identity lookup that the
    embedding layer solves perfectly, and every layer's selectivity for the concept strongly negative.)
    What the pooled token alone reveals of the latent is read off layer 0, the embedding.
    """
    from emergelab.probe.activations import pool as pool_tokens

    if level == "token":
        seq, pos = _token_subset(labels, max_tokens, seed)
        return (hidden[:, seq, pos].astype(np.float32), labels[seq, pos], seq, input_ids[seq, pos])
    seq = np.arange(len(labels))
    X = pool_tokens(hidden, None, pool).astype(np.float32)  # [L+1, N, d]
    return X, labels, seq, seq


def _requested(spec, latents: dict) -> list[str]:
    """The latents to probe, in manifest order; a requested name the world lacks is a user error."""
    if spec.probe.latents is None:
        return list(latents)
    missing = [n for n in spec.probe.latents if n not in latents]
    if missing:
        raise UserError(f"probe.latents names {missing}, which this world does not have; choose from "
                        f"{', '.join(latents)}")
    return [n for n in latents if n in spec.probe.latents]


def probe_checkpoint(path: Path, spec, lay: Layout, rung: str, step: int, seed: int | None = None) -> list[dict]:
    """Probe and head-score rows of one checkpoint of the replicate ``seed`` (default: the study's)."""
    import torch  # the work's imports (torch, transformers) stay out of the cheap ``todo`` path

    from emergelab.probe.activations import extract_hidden
    from emergelab.probe.heads import head_score_rows
    from emergelab.probe.linear import probe_layer

    man = ckpt.verify_checkpoint(path)
    model = ckpt.load_model(path, verify=False, eager=spec.probe.heads)
    data_manifest = lay.data_dir.manifest()
    base = {"study": spec.name, "rung": rung, "n_params": man["n_params"], "step": step,
            "tokens": man["tokens_seen"], "flops": man["flops"], "seed": spec.seed if seed is None else seed}
    rows = []
    forward: dict[bytes, np.ndarray] = {}  # latents drawn on the same sequences share one forward pass
    for latent in _requested(spec, data_manifest["latents"]):
        info = data_manifest["latents"][latent]
        z = lay.data_dir.latent(latent)
        key = z["input_ids"].tobytes()
        if key not in forward:
            forward[key] = extract_hidden(model, torch.from_numpy(z["input_ids"].astype(np.int64)))  # [L+1, N, T, d]
        X, y, groups, types = latent_features(forward[key], z["input_ids"], z["labels"], info.get("level", "token"),
                                              pool=spec.probe.pool, max_tokens=spec.probe.max_tokens, seed=spec.seed)
        for layer in range(X.shape[0]):
            res = probe_layer(X[layer], y, groups=groups, token_types=types, seed=spec.seed)
            for metric in PROBE_METRICS:
                rows.append({**base, "source": "probe", "task": latent, "layer": layer, "metric": metric,
                             "value": float(res[metric]), "n": int(res["n_test"])})
    if spec.probe.heads and spec.causal:
        symbols = np.arange(len(SPECIAL_TOKENS), data_manifest["vocab_size"])  # never special tokens
        period = min(32, spec.train.seq_len // 2)
        for r in head_score_rows(model, data_manifest["vocab_size"], seed=spec.seed, period=period, token_ids=symbols,
                                 n_seq=32):
            rows.append({**base, **r, "source": "heads", "seed": base["seed"]})  # the replicate's, not the scorer's
    return rows


# ------------------------------------------------------------------ the stage contract

def todo(spec: StudySpec, lay: Layout) -> list[Unit]:
    return [u for u in checkpoint_units(spec, lay, "probe") if not part_is_current(part_of(spec, lay, "probe", u), u.inputs)]


def run(spec: StudySpec, lay: Layout, units: list[Unit], progress=None) -> int:
    import torch  # the work's imports (torch, transformers, pandas) stay out of the cheap ``todo`` path
    from threadpoolctl import threadpool_limits

    from emergelab.measurements import write_part

    torch.set_num_threads(spec.train.threads)
    # scikit-learn's lbfgs runs on numpy's BLAS, which otherwise starts a thread per core in every worker:
    # on small probes those threads only spin against the other workers (measured: 1.4x the CPU time)
    with threadpool_limits(limits=spec.train.threads):
        for i, u in enumerate(units):
            rung, seed, step = u.key
            path = lay.checkpoint(spec.run_name(rung, seed), step)
            write_part(part_of(spec, lay, "probe", u), probe_checkpoint(path, spec, lay, rung, step, seed=seed), u.inputs)
            if progress is not None:
                progress(u.group, i + 1, len(units))
    return len(units)


STAGE = Stage("probe", todo, run)
