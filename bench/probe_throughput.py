"""Probe-stage throughput on a synthetic copy of the default study: is probing every checkpoint cheap enough?

The default study probes 5 rungs x ~17 checkpoints x (n_layers + 1) layers for the ``in_repeat`` latent
on repeated random sequences, and scores every attention head. This script does the same on random-init
tiny GPT-2 models (weights do not change the cost), timing activation extraction, probes (real + control
task) and head scores separately, and compares ``LinearProbe`` with scikit-learn's ``LogisticRegressionCV``
(same grid, 3 group folds) on a sample of layers. Target: the whole probe stage in <= 60 s on 2 cores.

    OMP_NUM_THREADS=1 .venv/bin/python bench/probe_throughput.py
"""
from __future__ import annotations

import argparse
import os
import time


def _sequences(rng, n_seq: int, seq_len: int, vocab: int, min_period: int = 8, max_period: int = 32):
    """Induction-world sequences: a random block of 8-32 symbols repeated; label = position past the first block."""
    import numpy as np

    periods = rng.integers(min_period, max_period + 1, size=n_seq)
    blocks = rng.integers(0, vocab, size=(n_seq, max_period))
    pos = np.arange(seq_len)[None, :] % periods[:, None]
    seqs = np.take_along_axis(blocks, pos, axis=1)
    labels = (np.arange(seq_len)[None, :] >= periods[:, None]).astype(np.int64)
    return seqs.astype(np.int64), labels


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoints", type=int, default=17, help="checkpoints per rung")
    ap.add_argument("--n-seq", type=int, default=128, help="probe sequences per checkpoint")
    ap.add_argument("--seq-len", type=int, default=64)
    ap.add_argument("--max-tokens", type=int, default=3000, help="labelled tokens probed per layer (as the stage)")
    ap.add_argument("--vocab", type=int, default=64)
    ap.add_argument("--reference-layers", type=int, default=12, help="layers also probed with LogisticRegressionCV")
    ap.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "1")))
    args = ap.parse_args()

    import numpy as np
    import torch
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.model_selection import GroupKFold
    from sklearn.preprocessing import StandardScaler
    from transformers import GPT2Config, GPT2LMHeadModel
    from transformers.utils import logging as hf_logging

    from emergelab.probe import LinearProbe, extract_hidden, head_score_rows, probe_layer, split_by_sequence

    hf_logging.set_verbosity_error()
    torch.set_num_threads(args.threads)
    rungs = [(1, 64, 4), (2, 16, 2), (2, 32, 4), (2, 64, 4), (2, 128, 4)]  # (n_layer, d_model, n_head), as default.yaml
    rng = np.random.default_rng(0)
    seqs, labels = _sequences(rng, args.n_seq, args.seq_len, args.vocab)
    seq_idx, pos = np.nonzero(labels >= 0)
    keep = np.sort(rng.choice(len(seq_idx), size=min(args.max_tokens, len(seq_idx)), replace=False))
    seq_idx, pos = seq_idx[keep], pos[keep]
    y, types = labels[seq_idx, pos], seqs[seq_idx, pos]
    ids = torch.from_numpy(seqs)

    cpu0 = time.process_time()
    t_extract = t_probe = t_heads = 0.0
    n_probes = 0
    samples = []  # (X, rung) for the reference comparison
    accs = []
    for n_layer, d_model, n_head in rungs:
        for c in range(args.checkpoints):
            torch.manual_seed(1000 * d_model + c)
            config = GPT2Config(n_layer=n_layer, n_embd=d_model, n_head=n_head, vocab_size=args.vocab + 1,
                                n_positions=args.seq_len, bos_token_id=args.vocab, eos_token_id=args.vocab)
            model = GPT2LMHeadModel(config).eval()
            t0 = time.perf_counter()
            hidden = extract_hidden(model, ids)  # [n_layer + 1, n_seq, T, d_model]
            t1 = time.perf_counter()
            for layer in range(hidden.shape[0]):
                X = hidden[layer][seq_idx, pos].astype(np.float32)
                res = probe_layer(X, y, groups=seq_idx, token_types=types, seed=0)
                accs.append(res["accuracy"])
                n_probes += 1
                if len(samples) < args.reference_layers and c % 4 == 0:
                    samples.append(X)
            t2 = time.perf_counter()
            head_score_rows(model, args.vocab, seed=0)
            t3 = time.perf_counter()
            t_extract += t1 - t0
            t_probe += t2 - t1
            t_heads += t3 - t2
    total = t_extract + t_probe + t_heads
    cpu = time.process_time() - cpu0  # robust to other processes sharing the cores (wall time is not)
    n_ckpt = len(rungs) * args.checkpoints
    print(f"{len(rungs)} rungs x {args.checkpoints} checkpoints = {n_ckpt} checkpoints, {n_probes} layer probes "
          f"({len(y)} tokens each, real + control task), threads={args.threads}")
    print(f"  extract hidden : {t_extract:7.2f} s   ({1000 * t_extract / n_ckpt:6.1f} ms / checkpoint)")
    print(f"  probes         : {t_probe:7.2f} s   ({1000 * t_probe / n_probes:6.1f} ms / layer, real + control)")
    print(f"  head scores    : {t_heads:7.2f} s   ({1000 * t_heads / n_ckpt:6.1f} ms / checkpoint)")
    print(f"  total          : {total:7.2f} s wall, {cpu:.2f} s CPU (target <= 60 s; load average now "
          f"{os.getloadavg()[0]:.1f})   mean probe accuracy {np.mean(accs):.3f}")

    # Reference: scikit-learn's own cross-validated logistic regression on the same rows and grid.
    ours_t = ref_t = 0.0
    diffs = []
    train, test = split_by_sequence(seq_idx, seed=0)
    for X in samples:
        t0 = time.perf_counter()
        ours = LinearProbe(seed=0).fit(X[train], y[train], groups=seq_idx[train])
        ours_acc = np.mean(ours.predict(X[test]) == y[test])
        t1 = time.perf_counter()
        scaler = StandardScaler().fit(X[train])
        folds = list(GroupKFold(3).split(X[train], y[train], groups=seq_idx[train]))
        ref = LogisticRegressionCV(Cs=list(ours.Cs), cv=folds, l1_ratios=(0.0,), use_legacy_attributes=False, scoring="accuracy",
                                   max_iter=1000).fit(scaler.transform(X[train]), y[train])
        ref_acc = np.mean(ref.predict(scaler.transform(X[test])) == y[test])
        t2 = time.perf_counter()
        ours_t += t1 - t0
        ref_t += t2 - t1
        diffs.append(ours_acc - ref_acc)
    if samples:
        print(f"reference on {len(samples)} layers: LinearProbe {1000 * ours_t / len(samples):.1f} ms, "
              f"LogisticRegressionCV {1000 * ref_t / len(samples):.1f} ms per fit (ratio {ref_t / ours_t:.1f}x); "
              f"test accuracy difference mean {np.mean(diffs):+.4f}, max |.| {np.max(np.abs(diffs)):.4f}")


if __name__ == "__main__":
    main()
