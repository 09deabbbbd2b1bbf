"""The probe stage of a study: every latent at every layer of every checkpoint, plus head scores."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from emergelab.corpus.prepare import load_latent
from emergelab.io import read_json
from emergelab.layout import Layout
from emergelab.measurements import write_part
from emergelab.train import checkpoint as ckpt

PROBE_METRICS = ("accuracy", "control_accuracy", "selectivity", "majority_baseline")


def _token_subset(labels: np.ndarray, max_tokens: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(sequence index, position) of labelled tokens; the same subset for every checkpoint."""
    seq, pos = np.nonzero(labels >= 0)
    if len(seq) > max_tokens:
        keep = np.sort(np.random.default_rng(seed).choice(len(seq), size=max_tokens, replace=False))
        seq, pos = seq[keep], pos[keep]
    return seq, pos


def probe_checkpoint(path: Path, spec, lay: Layout, rung: str, step: int) -> list[dict]:
    from emergelab.probe.activations import extract_hidden
    from emergelab.probe.heads import head_score_rows
    from emergelab.probe.linear import probe_layer

    man = ckpt.verify_checkpoint(path)
    model = ckpt.load_model(path, verify=False, eager=spec.probe.heads)
    data_manifest = read_json(lay.data / "manifest.json")
    base = {"study": spec.name, "rung": rung, "n_params": man["n_params"], "step": step,
            "tokens": man["tokens_seen"], "flops": man["flops"], "seed": spec.seed}
    rows = []
    for latent, info in data_manifest["latents"].items():
        if spec.probe.latents is not None and latent not in spec.probe.latents:
            continue
        z = load_latent(lay.data, latent)
        ids = torch.from_numpy(z["input_ids"].astype(np.int64))
        hidden = extract_hidden(model, ids)  # [L+1, N, T, d]
        if info.get("level", "token") == "token":
            seq, pos = _token_subset(z["labels"], spec.probe.max_tokens, spec.seed)
            y, types = z["labels"][seq, pos], z["input_ids"][seq, pos]
            feats = [hidden[layer][seq, pos].astype(np.float32) for layer in range(hidden.shape[0])]
        else:
            seq = np.arange(len(z["labels"]))
            y, types = z["labels"], seq
            feats = [hidden[layer].mean(axis=1).astype(np.float32) for layer in range(hidden.shape[0])]
        for layer, X in enumerate(feats):
            res = probe_layer(X, y, groups=seq, token_types=types, seed=spec.seed)
            for metric in PROBE_METRICS:
                rows.append({**base, "source": "probe", "task": latent, "layer": layer, "metric": metric,
                             "value": float(res[metric]), "n": int(res["n_test"])})
    if spec.probe.heads and spec.causal:
        from emergelab.worlds.base import SPECIAL_TOKENS

        symbols = np.arange(len(SPECIAL_TOKENS), data_manifest["vocab_size"])  # never special tokens
        period = min(32, spec.train.seq_len // 2)
        for r in head_score_rows(model, data_manifest["vocab_size"], seed=spec.seed, period=period, token_ids=symbols,
                                 n_seq=32):
            rows.append({**base, **r, "source": "heads"})
    return rows


def probe_rung(root: str, rung: str, progress=None) -> int:
    """Probe every checkpoint of ``rung`` that has no probe part yet; returns how many were done."""
    from emergelab.study import load_resolved_spec

    lay = Layout(Path(root))
    spec = load_resolved_spec(lay)
    torch.set_num_threads(spec.train.threads)
    done = 0
    ckpts = ckpt.list_checkpoints(lay.checkpoints(rung))
    for i, (step, path) in enumerate(ckpts.items()):
        part = lay.part("probe", rung, step)
        if not part.exists():
            write_part(part, probe_checkpoint(path, spec, lay, rung, step))
            done += 1
        if progress is not None:
            progress(rung, i + 1, len(ckpts), None)
    return done
