"""Probe-stage throughput for the default study: is probing every layer of every checkpoint cheap enough?

Mirrors the default preset (``presets/default.yaml``): its ladder, its checkpoint steps, its probed
latents drawn from its world (the mixture's ``concept``, read at the last position as ``probe.pool``
says), ``probe.n_sequences``/``max_tokens``, and the head scores — on random-init models of each rung,
since weights do not change the cost. It times activation extraction, probes (real + control task)
and head scores per rung, then projects the stage's wall time on the study's ``train.workers`` worker
processes (whole rungs per worker, largest first, as the study schedules them). It also compares
``LinearProbe`` with scikit-learn's ``LogisticRegressionCV`` (same grid, 3 group folds) on a sample of
layers. Target: the whole probe stage in <= 60 s on 2 cores.

    OMP_NUM_THREADS=1 .venv/bin/python bench/probe_throughput.py [--preset default] [--set probe.pool=mean]
"""
from __future__ import annotations

import argparse
import os
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="default")
    ap.add_argument("--set", action="append", default=[], help="spec override, as `emergelab study --set`")
    ap.add_argument("--reference-layers", type=int, default=12, help="layers also probed with LogisticRegressionCV")
    ap.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "1")))
    args = ap.parse_args()

    t_import = time.perf_counter()
    import numpy as np
    import torch
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.model_selection import GroupKFold
    from sklearn.preprocessing import StandardScaler
    from transformers.utils import logging as hf_logging

    from emergelab.models.build import build_model
    from emergelab.probe import LinearProbe, extract_hidden, head_score_rows, probe_layer, split_by_sequence
    from emergelab.stages.probe import latent_features
    from emergelab.study import read_spec
    from emergelab.worlds import world_for_spec
    from emergelab.worlds.base import SPECIAL_TOKENS

    t_import = time.perf_counter() - t_import
    hf_logging.set_verbosity_error()
    torch.set_num_threads(args.threads)
    spec = read_spec(preset=args.preset, overrides=args.set)
    world = world_for_spec(spec, echo=lambda line: None)
    vocab = len(SPECIAL_TOKENS) + len(world.symbols)
    latents = [ls for ls in world.latents(spec.probe.n_sequences, spec.train.seq_len)
               if spec.probe.latents is None or ls.name in spec.probe.latents]
    steps = spec.checkpoint_steps()
    print(f"preset {args.preset}: world {spec.world}, {len(spec.ladder)} rungs x {len(steps)} checkpoints, latents "
          f"{[f'{ls.name} ({ls.level})' for ls in latents]}, pool {spec.probe.pool}, {spec.probe.n_sequences} sequences, "
          f"heads {spec.probe.heads}, threads {args.threads}")

    cpu0 = time.process_time()
    per_rung: dict[str, dict[str, float]] = {}
    n_probes, samples, accs = 0, [], []
    for rung in spec.ladder:
        t = per_rung.setdefault(rung.name, {"extract": 0.0, "probe": 0.0, "heads": 0.0})
        for c, _ in enumerate(steps):
            torch.manual_seed(1000 * rung.d_model + c)
            model = build_model(rung, vocab_size=vocab, seq_len=spec.train.seq_len, causal=spec.causal).eval()
            forward = {}
            for ls in latents:
                t0 = time.perf_counter()
                ids = (ls.input_ids + len(SPECIAL_TOKENS)).astype(np.int64)
                key = ids.tobytes()
                if key not in forward:
                    forward[key] = extract_hidden(model, torch.from_numpy(ids))
                t1 = time.perf_counter()
                X, y, groups, types = latent_features(forward[key], ids, ls.labels, ls.level, pool=spec.probe.pool,
                                                      max_tokens=spec.probe.max_tokens, seed=spec.seed)
                for layer in range(X.shape[0]):
                    res = probe_layer(X[layer], y, groups=groups, token_types=types, seed=spec.seed)
                    accs.append(res["accuracy"])
                    n_probes += 1
                    if len(samples) < args.reference_layers and c % 4 == 0:
                        samples.append((X[layer], y, groups))
                t2 = time.perf_counter()
                t["extract"] += t1 - t0
                t["probe"] += t2 - t1
            t2 = time.perf_counter()
            if spec.probe.heads and spec.causal:
                head_score_rows(model, vocab, seed=spec.seed, period=min(32, spec.train.seq_len // 2),
                                token_ids=np.arange(len(SPECIAL_TOKENS), vocab), n_seq=32)
            t["heads"] += time.perf_counter() - t2
    cpu = time.process_time() - cpu0  # robust to other processes sharing the cores (wall time is not)
    n_ckpt = len(spec.ladder) * len(steps)
    tot = {k: sum(r[k] for r in per_rung.values()) for k in ("extract", "probe", "heads")}
    total = sum(tot.values())
    print(f"{n_ckpt} checkpoints, {n_probes} layer probes (real + control task each)")
    print(f"  extract hidden : {tot['extract']:7.2f} s   ({1000 * tot['extract'] / n_ckpt:6.1f} ms / checkpoint)")
    print(f"  probes         : {tot['probe']:7.2f} s   ({1000 * tot['probe'] / max(n_probes, 1):6.1f} ms / layer, real + control)")
    print(f"  head scores    : {tot['heads']:7.2f} s   ({1000 * tot['heads'] / n_ckpt:6.1f} ms / checkpoint)")
    workers = [0.0] * max(1, spec.train.workers)  # whole rungs per worker, largest rung first (as study.py)
    order = sorted(spec.ladder, key=lambda r: -r.n_layer * r.d_model ** 2)
    for rung in order:
        i = int(np.argmin(workers))
        workers[i] += sum(per_rung[rung.name].values()) + t_import  # each worker imports once per stage
    print(f"  total          : {total:7.2f} s wall in one process, {cpu:.2f} s CPU; imports {t_import:.1f} s per "
          f"process; projected stage wall on {len(workers)} workers {max(workers):.1f} s (target <= 60 s; load "
          f"average now {os.getloadavg()[0]:.1f})   mean probe accuracy {np.mean(accs):.3f}")

    # Reference: scikit-learn's own cross-validated logistic regression on the same rows and grid.
    ours_t = ref_t = 0.0
    diffs = []
    for X, y, groups in samples:
        train, test = split_by_sequence(groups, seed=0)
        t0 = time.perf_counter()
        ours = LinearProbe(seed=0).fit(X[train], y[train], groups=groups[train])
        ours_acc = np.mean(ours.predict(X[test]) == y[test])
        t1 = time.perf_counter()
        scaler = StandardScaler().fit(X[train])
        folds = list(GroupKFold(3).split(X[train], y[train], groups=groups[train]))
        ref = LogisticRegressionCV(Cs=list(ours.Cs), cv=folds, l1_ratios=(0.0,), use_legacy_attributes=False,
                                   scoring="accuracy", max_iter=1000).fit(scaler.transform(X[train]), y[train])
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
