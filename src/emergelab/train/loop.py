"""The training loop for one rung: same data in the same order, log-spaced checkpoints, exact resume.

A step takes the next ``batch_size × grad_accum`` rows of the prepared data (the same rows in the same
order for every rung), turns them into the objective's batch (a pure function of the rows and the
step), splits it into micro-batches and, under ``accelerate launch``, into one shard per process.
Killed at any moment and re-run, training restarts from the last checkpoint with its optimizer and RNG
state and finishes with bit-identical weights (same machine, same thread count).
"""
from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from emergelab.corpus.tokenizer import load_tokenizer
from emergelab.errors import UserError
from emergelab.io import atomic_write_text
from emergelab.layout import Layout
from emergelab.measurements import write_part
from emergelab.models import checkpoint as ckpt
from emergelab.models.build import build_model, count_params, flops_per_token
from emergelab.models.init import initialise
from emergelab.objectives import make_objective
from emergelab.objectives.clm_fused import FusedCausalLM, seen_ids
from emergelab.spec import Rung, StudySpec
from emergelab.train.accel import bf16_choice, check_divisible, make_accelerator, shard, take_rows
from emergelab.train.schedule import lr_at
from emergelab.train.state import load_state, save_state


class StepModule(torch.nn.Module):
    """The model with its objective as one module: DDP must see the whole forward, which for MLM runs
    the encoder, then the vocabulary head on the selected positions only."""

    def __init__(self, model: torch.nn.Module, objective):
        super().__init__()
        self.model = model
        self.objective = objective

    def forward(self, batch: dict[str, torch.Tensor]):
        return self.objective.loss(self.model, batch)


def make_optimizer(model: torch.nn.Module, t) -> torch.optim.AdamW:
    """AdamW (the fused kernel on CPU and CUDA); matrices decay, vectors (biases, norms) do not."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    fused = all(p.device.type in ("cpu", "cuda") for p in decay + no_decay) or None
    return torch.optim.AdamW([{"params": decay, "weight_decay": t.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=t.lr, betas=(0.9, 0.95), fused=fused)


def training_objective(spec: StudySpec, tokenizer, seed: int | None = None, rows: np.ndarray | None = None,
                       vocab_size: int | None = None):
    """The study's objective (MLM masks drawn for ``seed``, default the study's); causal LM trains with the
    fused vocabulary head (the same loss, faster), its softmax over the ids that occur in ``rows`` under
    ``train.loss_vocab: seen``, on the tokens after ``train.loss_after`` only when it is set."""
    if spec.causal:
        after = None if spec.train.loss_after is None else int(tokenizer.convert_tokens_to_ids(spec.train.loss_after))
        seen = seen_ids(rows, vocab_size) if spec.train.loss_vocab == "seen" else None
        return FusedCausalLM(seen, vocab_size, after=after)
    return make_objective(spec.objectives, tokenizer=tokenizer, seed=spec.seed if seed is None else seed,
                          **spec.mlm.model_dump())


def compile_backbone(model: torch.nn.Module) -> None:
    """``torch.compile`` the transformer body in place (state-dict keys unchanged; heads stay eager)."""
    body = getattr(model, "bert", None) or getattr(model, "transformer", None) or model
    body.compile()


def metric_of(key: str) -> tuple[str, str]:
    """Log key -> (task, metric): ``loss`` is the total; ``nsp_accuracy`` is task pretrain/nsp, metric accuracy."""
    if key == "loss":
        return "pretrain", "loss"
    head, _, metric = key.partition("_")
    return f"pretrain/{head}", metric


def _read_log(path: Path, upto: int) -> list[dict]:
    if not path.exists():
        return []
    rows = {}
    for line in path.read_text().splitlines():
        try:
            r = json.loads(line)
        except ValueError:  # a torn last line after a crash
            continue
        if r["step"] < upto:
            rows[r["step"]] = r
    return [rows[k] for k in sorted(rows)]


@dataclass
class RungRun:
    """What one rung's training loop holds between its steps."""
    spec: StudySpec
    lay: Layout
    rung: Rung
    seed: int  # the replicate: its initialisation, data order and every training sampler
    acc: Any
    tok: Any
    rows: dict
    mine: slice
    valid: set[int]
    start: int = 0
    state_step: int = -1
    model: torch.nn.Module | None = None
    step_module: torch.nn.Module | None = None
    objective: Any = None
    opt: torch.optim.Optimizer | None = None
    bf16: bool = False
    base: dict = field(default_factory=dict)

    @property
    def per_step(self) -> int:
        return self.spec.train.batch_size * self.spec.train.grad_accum

    @property
    def name(self) -> str:
        """The run's directory name under ``runs/`` (the rung's, or ``<rung>@seed<k>`` for another replicate)."""
        return self.spec.run_name(self.rung.name, self.seed)


def train_rung(spec: StudySpec, lay: Layout, rung_name: str, progress=None, seed: int | None = None) -> dict:
    """Train (or resume, or skip) one rung for one replicate ``seed`` (default: the study's); returns a summary.

    ``progress(run, step, total, loss, tokens_per_s)`` is called on the main process at log steps.
    """
    t = spec.train
    torch.set_num_threads(t.threads)
    run = _open(spec, lay, spec.rung(rung_name), spec.seed if seed is None else seed)
    missing = [s for s in spec.checkpoint_steps() if s not in run.valid]
    run.acc.wait_for_everyone()  # every process has looked before the main one writes anything
    if not missing and lay.part("train", run.name).exists():
        return {"rung": rung_name, "seed": run.seed, "status": "done"}
    _build(run, missing)
    log_path = lay.logs(run.name) / "train.jsonl"
    tb = _start_logs(run, log_path, progress)
    run.step_module.train()
    t0, tokens_done = time.perf_counter(), 0
    with open(log_path, "a") if run.acc.is_main_process else contextlib.nullcontext() as log:
        for step in range(run.start, t.steps + 1):
            if step in spec.checkpoint_steps():
                _checkpoint(run, step)
            if step == t.steps:
                break
            losses, lr, gnorm = _step(run, step)
            tokens_done += run.per_step * t.seq_len
            if step % t.log_every == 0 or step == t.steps - 1:
                rate = tokens_done / max(time.perf_counter() - t0, 1e-9)
                _log(run, log, tb, step, _mean_over_processes(run, losses), lr, gnorm, rate, progress)
    _finish(run, log_path, tb)
    return {"rung": rung_name, "seed": run.seed, "status": "trained", "from_step": run.start}


def _open(spec: StudySpec, lay: Layout, rung: Rung, seed: int) -> RungRun:
    """The prepared data of the replicate, the accelerator and the checkpoints already valid."""
    t = spec.train
    if not lay.data_dir.exists():
        raise UserError(f"{lay.root} has no prepared data; run `emergelab prepare --out {lay.root}` (or `emergelab study`) first")
    rows = lay.data_dir.train_rows(None if seed == spec.seed else seed)
    per_step = t.batch_size * t.grad_accum
    if rows["input_ids"].shape[0] < t.steps * per_step:
        raise UserError(f"{lay.data} holds {rows['input_ids'].shape[0]} training rows but {t.steps} steps need "
                        f"{t.steps * per_step}; delete {lay.data} and re-run `emergelab prepare`")
    name = spec.run_name(rung.name, seed)
    acc = make_accelerator(t.trackers, lay.logs(name), t.device)
    check_divisible(t.batch_size, acc.num_processes)
    steps = spec.checkpoint_steps()
    valid = {s for s, p in ckpt.list_checkpoints(lay.checkpoints(name)).items() if s in steps and ckpt.is_valid(p)}
    return RungRun(spec, lay, rung, seed, acc, load_tokenizer(lay.data_dir.tokenizer), rows,
                   shard(t.batch_size, acc.num_processes, acc.process_index), valid)


def _build(run: RungRun, missing: list[int]) -> None:
    """Model, initialisation, resumed weights, optimizer and RNG, in the order that makes resume exact."""
    spec, t, rung = run.spec, run.spec.train, run.rung
    manifest = run.lay.data_dir.manifest()
    model = build_model(rung, vocab_size=manifest["vocab_size"], seq_len=t.seq_len, causal=spec.causal,
                        pad_token_id=run.tok.pad_token_id)
    initialise(model, spec.init, seed=run.seed)
    n_params, n_ne = count_params(model)
    state = load_state(run.lay.state(run.name))
    if not missing:  # all checkpoints exist; only the measurement part is missing
        run.start = t.steps
    elif state and state["step"] in run.valid and state["step"] < min(missing):
        run.start = state["step"]
        ckpt.load_weights(model, run.lay.checkpoint(run.name, run.start))
    if t.compile:
        compile_backbone(model)
    used = run.rows["input_ids"][: t.steps * run.per_step]  # the rows this run trains on
    run.objective = training_objective(spec, run.tok, run.seed, used, manifest["vocab_size"])
    run.step_module = run.acc.prepare(StepModule(model, run.objective))
    run.model = run.acc.unwrap_model(run.step_module).model
    run.opt = make_optimizer(run.model, t)
    if run.start and run.start < t.steps:
        run.opt.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng"])
    else:
        torch.manual_seed(run.seed)
    run.state_step = state["step"] if state else -1
    run.bf16, why = _precision(run, t.bf16)
    data_sha = manifest.get("replicate_train_sha256", {}).get(str(run.seed), manifest["train_sha256"])
    run.base = {"run": f"{spec.name}/{run.name}", "rung": rung.name, **({"seed": run.seed} if spec.seeds else {}),
                "n_params": n_params, "n_params_nonembedding": n_ne, "spec_hash": spec.hash(), "data_order_hash": data_sha,
                "flops_per_token": flops_per_token(n_ne, rung.n_layer, rung.d_model, t.seq_len),
                "n_layer": rung.n_layer, "d_model": rung.d_model, "objectives": spec.objectives, "init": spec.init,
                "global_batch": run.per_step, "seq_len": t.seq_len, "bf16": run.bf16, "bf16_reason": why,
                "device": run.acc.device.type}


def _precision(run: RungRun, setting: bool | str) -> tuple[bool, str]:
    """bf16 autocast or fp32, and why. A resumed rung keeps the precision its checkpoints were trained in
    under ``auto`` (an exact resume; and a ladder trained before auto meant bf16 on this CPU stays fp32)."""
    if setting == "auto" and run.start:
        man = ckpt.read_manifest(run.lay.checkpoint(run.name, run.start))
        if "bf16" in man:
            return bool(man["bf16"]), man.get("bf16_reason", "train.bf16 auto: fp32, as the checkpoints resumed from")
    return bf16_choice(setting, run.acc.device)


def _start_logs(run: RungRun, log_path: Path, progress):
    """Keep the log up to the resumed step; open TensorBoard (purging redone steps) and other trackers."""
    spec, t, acc = run.spec, run.spec.train, run.acc
    if not acc.is_main_process:
        return None
    atomic_write_text(log_path, "".join(json.dumps(r) + "\n" for r in _read_log(log_path, run.start)))
    tb = _tensorboard(run.lay.logs(run.name), run.start) if "tensorboard" in t.trackers else None
    if acc.log_with:
        acc.init_trackers(spec.name, config={"rung": run.rung.name, "seed": run.seed, **run.rung.model_dump(),
                                             **t.model_dump(exclude={"trackers"})},
                          init_kwargs={"wandb": {"name": run.name}})
    if progress is not None:
        progress(run.name, run.start, t.steps, None)
    return tb


def _checkpoint(run: RungRun, step: int) -> None:
    """Write the step's checkpoint (unless it is valid already) and the resume state after it."""
    path = run.lay.checkpoint(run.name, step)
    main = run.acc.is_main_process
    if step not in run.valid:
        if main:
            tokens = step * run.per_step * run.spec.train.seq_len
            ckpt.save_checkpoint(path, run.model, run.tok, {**run.base, "step": step, "tokens_seen": tokens,
                                                            "flops": run.base["flops_per_token"] * tokens})
        run.acc.wait_for_everyone()
        run.valid.add(step)
    if main and step > run.state_step:
        save_state(run.lay.state(run.name), step=step, optimizer=run.opt,
                   weights_sha256=ckpt.read_manifest(path)["weights_sha256"])
        run.state_step = step


def _step(run: RungRun, step: int) -> tuple[dict[str, float], float, torch.Tensor]:
    """One optimizer step on the step's rows: (losses, learning rate, gradient norm)."""
    t, acc = run.spec.train, run.acc
    lr = lr_at(step, lr=t.lr, warmup=t.warmup, total=t.steps, schedule=t.schedule)
    for g in run.opt.param_groups:
        g["lr"] = lr
    lo = step * run.per_step
    step_rows = {k: v[lo:lo + run.per_step] for k, v in run.rows.items()}
    full = run.objective.batch(step_rows if len(step_rows) > 1 else step_rows["input_ids"], step)
    losses: dict[str, float] = {}
    for micro in range(t.grad_accum):
        part = slice(micro * t.batch_size + run.mine.start, micro * t.batch_size + run.mine.stop)
        mb = take_rows(full, part, run.per_step, acc.device)
        sync = contextlib.nullcontext() if micro == t.grad_accum - 1 else acc.no_sync(run.step_module)
        with sync:
            with torch.autocast(acc.device.type, dtype=torch.bfloat16, enabled=run.bf16):
                loss, parts = run.step_module(mb)
            acc.backward(loss / t.grad_accum)
        for k, v in parts.items():
            losses[k] = losses.get(k, 0.0) + v / t.grad_accum
    gnorm = acc.clip_grad_norm_(run.step_module.parameters(), t.grad_clip if t.grad_clip > 0 else float("inf"))
    run.opt.step()
    run.opt.zero_grad(set_to_none=True)
    return losses, lr, gnorm


def _mean_over_processes(run: RungRun, losses: dict[str, float]) -> dict[str, float]:
    if run.acc.num_processes == 1:  # every process holds the loss of its shard
        return losses
    names = list(losses)
    mean = run.acc.reduce(torch.tensor([losses[k] for k in names], device=run.acc.device), "mean")
    return dict(zip(names, mean.tolist()))


def _log(run: RungRun, log, tb, step: int, losses: dict, lr: float, gnorm, rate: float, progress) -> None:
    if not run.acc.is_main_process:
        return
    rec = {"step": step, **losses, "lr": lr, "grad_norm": float(gnorm),
           "tokens": step * run.per_step * run.spec.train.seq_len, "tokens_per_s": rate}
    log.write(json.dumps(rec) + "\n")
    log.flush()
    scalars = {f"train/{k}": v for k, v in rec.items() if k not in ("step", "tokens")}
    if tb is not None:
        for k, v in scalars.items():
            tb.add_scalar(k, v, step)
    if run.acc.log_with:
        run.acc.log(scalars, step=step)
    if progress is not None:
        progress(run.name, step + 1, run.spec.train.steps, losses.get("loss"), rate)


def _finish(run: RungRun, log_path: Path, tb) -> None:
    """Close the trackers and write the rung's training rows (one per logged step and loss)."""
    if tb is not None:
        tb.close()
    for tracker in run.acc.trackers:
        tracker.finish()
    if run.acc.is_main_process:
        spec, fpt = run.spec, run.base["flops_per_token"]
        rows_out = [{"study": spec.name, "rung": run.rung.name, "n_params": run.base["n_params"], "step": r["step"],
                     "tokens": r["tokens"], "flops": fpt * r["tokens"], "source": "train", "task": metric_of(k)[0],
                     "metric": metric_of(k)[1], "value": r[k], "n": run.per_step, "seed": run.seed}
                    for r in _read_log(log_path, spec.train.steps) for k in run.objective.names if k in r]
        write_part(run.lay.part("train", run.name), rows_out)
    run.acc.wait_for_everyone()


def _tensorboard(log_dir: Path, start: int):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(log_dir), purge_step=start if start else None)
