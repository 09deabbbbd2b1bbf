"""Time a few real training steps and forward passes of a rung on this machine, on synthetic rows.

The steps run through the training loop's own ``_step`` (same objective, optimizer, autocast and
micro-batching), so the time per step is what training will see; the preflight scales it to the study.
"""
from __future__ import annotations

import resource
import time
from pathlib import Path
from tempfile import TemporaryDirectory

import numpy as np
import torch

from emergelab.corpus.tokenizer import symbol_tokenizer
from emergelab.layout import Layout
from emergelab.models.build import build_model, count_params
from emergelab.models.init import initialise
from emergelab.spec import Rung, StudySpec
from emergelab.train.accel import make_accelerator, shard, use_bf16
from emergelab.train.loop import RungRun, StepModule, _step, make_optimizer, training_objective


def synthetic_rows(spec: StudySpec, vocab_size: int, n_rows: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Random rows shaped like the prepared data (NSP adds segment ids and labels)."""
    ids = rng.integers(7, vocab_size, size=(n_rows, spec.train.seq_len), dtype=np.int32)
    rows = {"input_ids": ids}
    if "nsp" in spec.objectives:
        half = spec.train.seq_len // 2
        rows["token_type_ids"] = np.concatenate([np.zeros((n_rows, half), np.int8),
                                                 np.ones((n_rows, spec.train.seq_len - half), np.int8)], axis=1)
        rows["next_sentence_label"] = rng.integers(0, 2, size=n_rows, dtype=np.int8)
    return rows


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def time_rung(spec: StudySpec, rung: Rung, vocab_size: int, *, warmup: int = 2, steps: int = 4) -> dict:
    """Seconds per training step and per forward pass (eval batch × seq_len), the rung's parameter
    count, and this process's peak RSS after the steps (bytes)."""
    t = spec.train
    torch.set_num_threads(t.threads)
    symbols = [f"s{i}" for i in range(vocab_size - 7)]
    tok = symbol_tokenizer(symbols)
    model = build_model(rung, vocab_size=len(tok), seq_len=t.seq_len, causal=spec.causal, pad_token_id=tok.pad_token_id)
    initialise(model, spec.init, seed=spec.seed)
    n_params, _ = count_params(model)
    per_step = t.batch_size * t.grad_accum
    rng = np.random.default_rng(0)
    with TemporaryDirectory() as tmp:
        lay = Layout(Path(tmp))
        # a driver without the GPU its Ray tasks will train on calibrates on what it has
        acc = make_accelerator([], lay.logs(rung.name), t.device if t.device != "cuda" or torch.cuda.is_available() else "auto")
        rows = synthetic_rows(spec, len(tok), per_step * (warmup + steps), rng)
        objective = training_objective(spec, tok, rows=rows["input_ids"], vocab_size=len(tok))
        step_module = acc.prepare(StepModule(model, objective))
        run = RungRun(spec, lay, rung, spec.seed, acc, tok, rows,
                      shard(t.batch_size, 1, 0), set(), model=model, step_module=step_module, objective=objective,
                      opt=make_optimizer(model, t), bf16=use_bf16(t.bf16, acc.device))
        step_module.train()
        for s in range(warmup):
            _step(run, s)
        t0 = time.perf_counter()
        for s in range(warmup, warmup + steps):
            _step(run, s)
        step_s = (time.perf_counter() - t0) / steps
    return {"n_params": n_params, "train_step_s": step_s, "forward_s": _time_forward(model, spec, len(tok), rng),
            "peak_rss": peak_rss_bytes()}


@torch.inference_mode()
def _time_forward(model, spec: StudySpec, vocab_size: int, rng: np.random.Generator, repeats: int = 3) -> float:
    """Seconds for one forward pass of ``eval.batch_size`` sequences of ``seq_len`` tokens."""
    model.eval()
    ids = torch.from_numpy(rng.integers(7, vocab_size, size=(spec.eval.batch_size, spec.train.seq_len)))
    model(input_ids=ids)
    t0 = time.perf_counter()
    for _ in range(repeats):
        model(input_ids=ids)
    return (time.perf_counter() - t0) / repeats
