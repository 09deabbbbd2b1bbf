"""The probe stage: every latent (or ``probe.data``'s labels) at every layer of every checkpoint, plus head scores.

Units are the evaluate stage's: one per checkpoint (trained or external), its part recording the
checkpoint's weights sha256.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from emergelab.corpus.tokenizer import SPECIAL_TOKENS
from emergelab.errors import UserError
from emergelab.layout import Layout
from emergelab.spec import StudySpec
from emergelab.stages.base import Stage, Unit, part_is_current
from emergelab.stages.checkpoints import Checkpoint, checkpoint_of, facts, load_model, local_path
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
    What the pooled token alone reveals of the latent is read off layer 0, the embedding. A token-level
    latent labelled at one token type only gets the sequence-level control (one type per item).
    """
    from emergelab.probe.activations import pool as pool_tokens

    if level == "token":
        seq, pos = _token_subset(labels, max_tokens, seed)
        types = input_ids[seq, pos]
        if len(types) and (types == types[0]).all():
            # read at one token only (the modular world's '='): per type the control would be one constant
            # label that every probe predicts (selectivity = accuracy − 1); each item is its own type instead,
            # so the control is memorisation chance, as for sequence-level latents
            types = np.arange(len(seq))
        return (hidden[:, seq, pos].astype(np.float32), labels[seq, pos], seq, types)
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


def _latent_rows(model, spec, lay: Layout, base: dict) -> list[dict]:
    """Probe rows of the world's latents at every layer (latents on the same sequences share one forward pass)."""
    import torch

    from emergelab.probe.activations import extract_hidden
    from emergelab.probe.baselines import probe_baseline_rows, probe_baselines
    from emergelab.probe.linear import probe_layer, split_by_sequence

    data_manifest = lay.data_dir.manifest()
    rows = []
    forward: dict[bytes, np.ndarray] = {}
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
        train, test = split_by_sequence(groups, seed=spec.seed)  # the probes' own split
        token_level = info.get("level", "token") == "token"
        rows += probe_baseline_rows(probe_baselines(y, train, test, token_types=types if token_level else None),
                                    task=latent, **base)
    return rows


def labelled_data(spec):
    """``probe.data`` read once per worker: (its task name, the LabelledData)."""
    from emergelab.corpus.labelled import load_labelled

    p = spec.probe
    kw = {"text_column": p.text_column, "label_column": p.label_column} if p.data_task == "classify" else {}
    return Path(p.data).stem, load_labelled(p.data, task=p.data_task, **kw)


def _labelled_rows(model, tokenizer, spec, labelled, base: dict) -> list[dict]:
    """Probe rows of ``probe.data`` at every layer, as ``emergelab probe --model`` computes them."""
    from emergelab.probe.standalone import classify_features, probe_features, tag_features

    name, data = labelled
    how = "mean" if spec.probe.pool == "mean" else spec.probe.pool
    if data.task == "tag":
        feats = tag_features(model, tokenizer, data.tokens, data.labels, max_length=spec.train.seq_len)
    else:
        feats = classify_features(model, tokenizer, data.texts, data.labels, how=how, max_length=spec.train.seq_len)
    return probe_features(feats, task=name, seed=spec.seed, **{k: v for k, v in base.items() if k != "seed"})


def _head_rows(model, spec, lay: Layout, base: dict, vocab_size: int) -> list[dict]:
    from emergelab.probe.heads import head_score_rows

    symbols = np.arange(len(SPECIAL_TOKENS) if spec.world is not None else 0, vocab_size)  # never special tokens
    period = min(32, spec.train.seq_len // 2)
    return [{**base, **r, "source": "heads", "seed": base["seed"]}  # the replicate's, not the scorer's
            for r in head_score_rows(model, vocab_size, seed=spec.seed, period=period, token_ids=symbols, n_seq=32)]


def probe_checkpoint(ck: Checkpoint, spec, lay: Layout, labelled=None) -> list[dict]:
    """Probe and head-score rows of one checkpoint (trained or external): the world's latents, ``probe.data``
    (``labelled``, read once), and head scores of causal models."""
    from emergelab.stages.evaluate import study_tokenizer

    path = local_path(ck, lay)
    model = load_model(ck, spec, path, eager=spec.probe.heads)
    base = {"study": spec.name, "rung": ck.rung, "step": ck.step, **facts(ck, lay), "seed": ck.seed}
    rows = _latent_rows(model, spec, lay, base) if spec.world is not None else []
    tokenizer = None
    if labelled is not None:
        tokenizer = study_tokenizer(spec, lay, path)
        rows += _labelled_rows(model, tokenizer, spec, labelled, base)
    if spec.probe.heads and spec.causal:
        vocab = lay.data_dir.manifest()["vocab_size"] if spec.world is not None else int(model.get_input_embeddings().weight.shape[0])
        rows += _head_rows(model, spec, lay, base, vocab)
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
    labelled = labelled_data(spec) if spec.probe.data is not None else None
    with threadpool_limits(limits=spec.train.threads):
        for i, u in enumerate(units):
            rows = probe_checkpoint(checkpoint_of(spec, lay, u), spec, lay, labelled)
            write_part(part_of(spec, lay, "probe", u), rows, u.inputs)
            if progress is not None:
                progress(u.group, i + 1, len(units))
    return len(units)


STAGE = Stage("probe", todo, run)
