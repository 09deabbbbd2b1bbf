"""Training throughput: emergelab's trainer beside the Hugging Face ``Trainer``, same model, data and batch.

For BERT MLM+NSP and GPT-2 causal LM at d_model 64/128/256 × 2/4 layers with an 8k vocabulary, both
trainers train the same freshly initialised model on the same prepared rows (batch 32 × 128 tokens,
AdamW, clipping at 1.0, fp32) with the same thread count. emergelab runs its real ``train_rung`` on a
study directory; the HF side is ``Trainer`` + ``DataCollatorForLanguageModeling``, as the
``run_mlm.py`` / ``run_clm.py`` examples do. Tokens/s is measured between the ends of step
``--warmup`` and of the last step (no checkpoint falls inside), as the median step, best of
``--repeats`` interleaved runs (the machine may be shared). MFU is model FLOPs per token × tokens/s
over a float32 matmul peak measured in the same run with the same threads, where model FLOPs per token
count what the loss needs: 6 × (12·L·d² + head) + 12·L·T·d, the head being V·d for causal LM and
0.15·(d² + V·d) for MLM (its head runs only at the selected positions); the NSP head is negligible.
emergelab with bf16 autocast is reported beside, with its speed-up over fp32 and what ``train.bf16: auto``
chooses on this machine (bf16 where the CPU reports AVX512-BF16/AMX-BF16 units: there the bf16 run takes
as many steps as the fp32 one; elsewhere bf16 is emulated and slow, so it takes ``--bf16-steps``). Each
row gives the process CPU seconds beside the wall seconds of emergelab's fp32 runs (a ratio well below
the thread count means the machine was shared), and the load average is printed before and after.

    OMP_NUM_THREADS=1 .venv/bin/python bench/train_throughput.py            # full table (~10-20 min)
    OMP_NUM_THREADS=1 .venv/bin/python bench/train_throughput.py --sizes 64x2 --objectives clm --steps 6 --bf16-steps 0
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

VOCAB, BATCH, SEQ = 8192, 32, 128


def matmul_peak(threads: int, n: int = 2048, repeats: int = 5) -> float:
    """Best float32 FLOP/s of an n×n×n matmul."""
    import torch

    torch.set_num_threads(threads)
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * n ** 3 / best


def model_flops_per_token(d: int, n_layer: int, causal: bool, mlm_fraction: float = 0.15) -> float:
    """6 × (12·L·d² + head) + 12·L·T·d; head = V·d (causal) or fraction·(d² + V·d) (MLM at selected positions)."""
    head = VOCAB * d if causal else mlm_fraction * (d * d + VOCAB * d)
    return 6 * (12 * n_layer * d * d + head) + 12 * n_layer * SEQ * d


def rate(stamps: list[float], warmup: int) -> float:
    """Tokens/s of the median step after ``warmup`` (robust to other processes' bursts on a shared machine)."""
    import statistics

    return BATCH * SEQ / statistics.median(b - a for a, b in zip(stamps[warmup:], stamps[warmup + 1:]))


def prepare_study(root: Path, objective: str, sizes: list[tuple[int, int]], steps: int, threads: int) -> None:
    from emergelab.study import read_spec, run_study

    ladder = "[" + ", ".join(f"{{name: d{d}-L{n}, n_layer: {n}, d_model: {d}, n_head: {max(1, d // 64)}}}"
                             for d, n in sizes) + "]"
    sets = [f"ladder={ladder}", f"objectives={'[clm]' if objective == 'clm' else '[mlm,nsp]'}",
            f"world_args={{vocab: {VOCAB - 7}, min_period: 8, max_period: 64}}", f"train.steps={steps}",
            f"train.batch_size={BATCH}", f"train.seq_len={SEQ}", "train.lr=0.001", "train.log_every=1",
            "train.log_spaced=false", f"train.checkpoint_every={steps}", f"train.threads={threads}",
            "train.workers=1", "train.bf16=false", "train.trackers=[]"]
    run_study(read_spec(preset="smoke", overrides=sets), root, ["prepare"])


def ours(root: Path, rung: str, bf16_steps: int = 0, clock: list | None = None) -> list[float]:
    """emergelab's ``train_rung``; timestamps at the end of every step (its progress callback); appends
    (CPU seconds, wall seconds) of the run to ``clock``."""
    import shutil

    import yaml

    from emergelab.train.loop import train_rung

    if bf16_steps:  # a sibling study with train.bf16 on (and fewer steps: bf16 is slow without bf16 units)
        twin = root.with_name(root.name + "-bf16")
        if not twin.exists():
            shutil.copytree(root / "data", twin / "data")
            spec = yaml.safe_load((root / "study.yaml").read_text())
            spec["train"].update(bf16=True, steps=bf16_steps, checkpoint_every=bf16_steps)
            (twin / "study.yaml").write_text(yaml.safe_dump(spec))
        root = twin
    shutil.rmtree(root / "runs" / rung, ignore_errors=True)  # a repeat trains from scratch
    shutil.rmtree(root / "parts" / "train" / rung, ignore_errors=True)
    from emergelab.layout import Layout
    from emergelab.study import load_resolved

    stamps: list[float] = []
    lay = Layout(root)
    c0, w0 = time.process_time(), time.perf_counter()
    train_rung(load_resolved(lay), lay, rung,
               lambda r, step, total, loss=None, tps=None: loss is not None and stamps.append(time.perf_counter()))
    if clock is not None:
        clock.append((time.process_time() - c0, time.perf_counter() - w0))
    return stamps


def hf_trainer(root: Path, d: int, n_layer: int, causal: bool, threads: int, steps: int) -> list[float]:
    """HF ``Trainer`` + ``DataCollatorForLanguageModeling`` on the same model, rows and batch."""
    import numpy as np
    import torch
    from transformers import DataCollatorForLanguageModeling, PrinterCallback, Trainer, TrainerCallback, TrainingArguments

    from emergelab.corpus.tokenizer import load_tokenizer
    from emergelab.layout import DataDir
    from emergelab.models import build_model, initialise
    from emergelab.spec import Rung

    torch.set_num_threads(threads)
    tok = load_tokenizer(root / "data" / "tokenizer")
    rows = DataDir(root / "data").train_rows()
    model = initialise(build_model(Rung(name="x", n_layer=n_layer, d_model=d, n_head=max(1, d // 64)),
                                   vocab_size=len(tok), seq_len=SEQ, causal=causal, pad_token_id=tok.pad_token_id), "normal", 0)

    class Rows(torch.utils.data.Dataset):
        def __len__(self):
            return steps * BATCH

        def __getitem__(self, i):
            out = {"input_ids": np.asarray(rows["input_ids"][i], dtype=np.int64).tolist()}
            if not causal:
                out["token_type_ids"] = rows["token_type_ids"][i].astype(np.int64).tolist()
                out["next_sentence_label"] = int(rows["next_sentence_label"][i])
            return out

    stamps: list[float] = []

    class Stamp(TrainerCallback):
        def on_step_end(self, *args, **kwargs):
            stamps.append(time.perf_counter())

    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(output_dir=out, per_device_train_batch_size=BATCH, max_steps=steps, learning_rate=1e-3,
                                 lr_scheduler_type="constant", adam_beta2=0.95, weight_decay=0.0, max_grad_norm=1.0,
                                 save_strategy="no", report_to=[], use_cpu=True, disable_tqdm=True,
                                 logging_steps=10 ** 6, dataloader_num_workers=0, seed=0)
        collator = DataCollatorForLanguageModeling(tok, mlm=not causal, mlm_probability=0.15)
        trainer = Trainer(model=model, args=args, train_dataset=Rows(), data_collator=collator, callbacks=[Stamp()])
        trainer.remove_callback(PrinterCallback)
        trainer.train()
    return stamps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="64x2,64x4,128x2,128x4,256x2,256x4", help="d_model x n_layer, comma-separated")
    ap.add_argument("--objectives", default="mlm_nsp,clm")
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--warmup", type=int, default=2, help="steps excluded from the timing")
    ap.add_argument("--repeats", type=int, default=2, help="interleaved runs of each trainer; the best counts")
    ap.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "1")))
    ap.add_argument("--bf16-steps", type=int, default=4, help="steps of the bf16 run on a CPU without bf16 units "
                    "(0: skip bf16); with bf16 units it takes --steps")
    args = ap.parse_args()

    import torch
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    torch.set_num_threads(args.threads)
    sizes = [tuple(int(x) for x in s.split("x")) for s in args.sizes.split(",")]
    from emergelab.models.precision import cpu_bf16_units
    from emergelab.preflight.calibrate import _cpu_model
    from emergelab.train.accel import training_precision

    units = cpu_bf16_units()
    bf16_steps = (args.steps if units else args.bf16_steps) if args.bf16_steps else 0
    load0 = os.getloadavg()
    peak = matmul_peak(args.threads)
    print(f"CPU {_cpu_model()} ({os.cpu_count()} cores), bf16 units: {', '.join(units) or 'none'}; "
          f"train.bf16 auto → {training_precision('auto', 'cpu')}")
    print(f"threads {args.threads}; fp32 matmul peak {peak / 1e9:.1f} GFLOP/s; load average {load0[0]:.1f} (1 min)")
    print("| objective | d_model | layers | emergelab fp32 tok/s | HF Trainer tok/s | ratio | MFU emergelab | MFU HF | "
          "emergelab bf16 tok/s | bf16 / fp32 | CPU s / wall s (fp32) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for objective in args.objectives.split(","):
            causal = objective == "clm"
            root = Path(tmp) / objective
            prepare_study(root, objective, sizes, args.steps, args.threads)
            for d, n_layer in sizes:
                a = b = c = 0.0
                clock: list[tuple[float, float]] = []
                for _ in range(args.repeats):  # interleaved; the better of the repeats counts
                    a = max(a, rate(ours(root, f"d{d}-L{n_layer}", clock=clock), args.warmup))
                    b = max(b, rate(hf_trainer(root, d, n_layer, causal, args.threads, args.steps), args.warmup))
                    if bf16_steps and (units or not c):  # emulated bf16 is slow: one short run is enough
                        c = max(c, rate(ours(root, f"d{d}-L{n_layer}", bf16_steps), args.warmup if units else 1))
                c = c or float("nan")
                cpu, wall = sum(x[0] for x in clock), sum(x[1] for x in clock)
                peak = max(peak, matmul_peak(args.threads, repeats=2))  # the best the machine gave in this run
                fpt = model_flops_per_token(d, n_layer, causal)
                print(f"| {'MLM+NSP' if not causal else 'CLM'} | {d} | {n_layer} | {a:,.0f} | {b:,.0f} | {a / b:.2f}× | "
                      f"{a * fpt / peak:.0%} | {b * fpt / peak:.0%} | {c:,.0f} | {c / a:.2f}× | {cpu:.1f} / {wall:.1f} |",
                      flush=True)
    load1 = os.getloadavg()
    print(f"peak used for MFU {peak / 1e9:.1f} GFLOP/s; load average at the end {load1[0]:.1f} (1 min), "
          f"{load1[1]:.1f} (5 min)")


if __name__ == "__main__":
    main()
