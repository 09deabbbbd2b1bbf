"""Replicate seeds of a tiny rung: the wall time of 3 seeds beside 1, three ways.

For each width (2 layers, d_model 8–64, 2 heads, the emergelab GPT-2 of ``models.build_model``, vocab 71,
batch 64 × 64 tokens, AdamW, fp32 unless ``--bf16``) this times one training step of

- **one** seed (the reference);
- **sequential**: 3 seeds one after another in one process (what 3 seeds cost on 1 core today);
- **stacked**: 3 seeds as one ``torch.func.vmap`` over stacked parameters (``functional_call``), one
  optimizer over the stacked tensors — the "train the seeds of a tiny rung together" design;
- **processes**: 3 seeds as 3 processes on ``--workers`` cores, the study's ``train.workers`` (measured
  as ⌈3 / workers⌉ rounds of the one-seed step: independent processes on distinct cores).

It prints the ratio of each to one seed (target of issue 17: 3 seeds ≤ 1.5× one seed for d ≤ 64), the
process CPU seconds beside the wall seconds, the median of ``--repeats`` timings, the load average, and
whether the CPU has AVX-512 BF16.

    OMP_NUM_THREADS=1 .venv/bin/python bench/seeds_throughput.py
    OMP_NUM_THREADS=1 .venv/bin/python bench/seeds_throughput.py --widths 8 16 --steps 10
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
from torch.func import functional_call, grad_and_value, stack_module_state, vmap

from emergelab.models.build import build_model
from emergelab.models.init import initialise
from emergelab.spec import Rung

VOCAB, BATCH, SEQ, SEEDS = 71, 64, 64, 3


def models(d: int, n: int) -> list[torch.nn.Module]:
    rung = Rung(name=f"L2-d{d}", n_layer=2, d_model=d, n_head=2)
    out = []
    for s in range(n):
        m = initialise(build_model(rung, vocab_size=VOCAB, seq_len=SEQ, causal=True), "normal", s)
        m.config.pad_token_id = None  # no data-dependent padding check inside vmap
        m.set_attn_implementation("eager")  # sdpa has no vmap batching rule on CPU (a slow fallback)
        out.append(m.train())
    return out


def lm_loss(model, params, buffers, ids):
    """One seed's causal LM loss on its [B, T] batch."""
    logits = functional_call(model, (params, buffers), (ids,)).logits[:, :-1]
    return torch.nn.functional.cross_entropy(logits.flatten(0, 1), ids[:, 1:].flatten())


def step_one(model, opt, ids) -> None:
    loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)


def stacked_step(base, params, buffers, opt, ids) -> None:
    """One AdamW step of every seed at once: the loss's gradient vmapped over the seeds' stacked parameters."""
    grads, _ = vmap(grad_and_value(lambda p, b, x: lm_loss(base, p, b, x)), in_dims=(0, 0, 0))(params, buffers, ids)
    for k, p in params.items():
        p.grad = grads[k]
    opt.step()
    opt.zero_grad(set_to_none=True)


def timed(fn, steps: int, repeats: int) -> tuple[float, float]:
    """(median wall s, median CPU s) per call of fn over ``repeats`` runs of ``steps`` calls (after one warm-up)."""
    fn()
    walls, cpus = [], []
    for _ in range(repeats):
        w, c = time.perf_counter(), time.process_time()
        for _ in range(steps):
            fn()
        walls.append((time.perf_counter() - w) / steps)
        cpus.append((time.process_time() - c) / steps)
    return statistics.median(walls), statistics.median(cpus)


def bench_width(d: int, steps: int, repeats: int, workers: int, bf16: bool) -> dict:
    gen = torch.Generator().manual_seed(d)
    ids = torch.randint(7, VOCAB, (SEEDS, BATCH, SEQ), generator=gen)
    ms = models(d, SEEDS)
    opts = [torch.optim.AdamW(m.parameters(), lr=1e-3) for m in ms]
    ctx = torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16)

    def one():
        with ctx:
            step_one(ms[0], opts[0], ids[0])

    def sequential():
        for m, o, x in zip(ms, opts, ids):
            with ctx:
                step_one(m, o, x)

    params, buffers = stack_module_state(ms)
    params = {k: v.detach().requires_grad_() for k, v in params.items()}
    base = models(d, 1)[0].to("meta")
    sopt = torch.optim.AdamW(list(params.values()), lr=1e-3)

    def stacked():
        with ctx:
            stacked_step(base, params, buffers, sopt, ids)

    w1, c1 = timed(one, steps, repeats)
    ws, cs = timed(sequential, steps, repeats)
    wv, cv = timed(stacked, steps, repeats)
    rounds = -(-SEEDS // workers)
    return {"d": d, "one": (w1, c1), "sequential": (ws, cs), "stacked": (wv, cv), "processes": rounds * w1}


def _cell(r: dict, k: str) -> str:
    return f"{r[k][0]:.4f} ({r[k][1]:.4f}) = {r[k][0] / r['one'][0]:.2f}×"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--widths", type=int, nargs="+", default=[8, 16, 32, 64])
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2, help="cores for the one-process-per-seed row")
    ap.add_argument("--bf16", action="store_true", help="bf16 autocast (fast only with AVX-512 BF16 / AMX)")
    a = ap.parse_args()
    torch.set_num_threads(1)
    flags = open("/proc/cpuinfo").read() if os.path.exists("/proc/cpuinfo") else ""
    print(f"load average before: {os.getloadavg()[0]:.2f}; avx512_bf16: {'avx512_bf16' in flags}; "
          f"{'bf16 autocast' if a.bf16 else 'fp32'}; 1 thread; batch {BATCH}×{SEQ}, 3 seeds")
    print("| rung | 1 seed s/step (CPU s) | 3 sequential | 3 stacked (vmap) | 3 as processes on "
          f"{a.workers} cores | stacked / 1 seed |")
    print("|---|---|---|---|---|---|")
    for d in a.widths:
        r = bench_width(d, a.steps, a.repeats, a.workers, a.bf16)
        w1 = r["one"][0]
        print(f"| L2-d{d} | {w1:.4f} ({r['one'][1]:.4f}) | {_cell(r, 'sequential')} | {_cell(r, 'stacked')} | "
              f"{r['processes']:.4f} = {r['processes'] / w1:.2f}× | {r['stacked'][0] / w1:.2f}× |", flush=True)
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
