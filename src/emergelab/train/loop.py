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
import shutil
import time
from pathlib import Path

import torch

from emergelab.corpus.prepare import load_train
from emergelab.corpus.tokenizer import load_tokenizer
from emergelab.errors import UserError
from emergelab.io import atomic_write_text, read_json
from emergelab.layout import Layout
from emergelab.measurements import write_part
from emergelab.models import build_model, count_params, flops_per_token, initialise
from emergelab.objectives import make_objective
from emergelab.spec import StudySpec
from emergelab.train import checkpoint as ckpt
from emergelab.train.accel import check_divisible, make_accelerator, shard, take_rows, use_bf16
from emergelab.train.schedule import lr_at
from emergelab.train.state import load_state, save_state


def rung_info(spec: StudySpec, rung, vocab_size: int) -> dict:
    """Parameter counts and FLOPs per token of a rung, without training it."""
    model = build_model(rung, vocab_size=vocab_size, seq_len=spec.train.seq_len, causal=spec.causal)
    n, n_ne = count_params(model)
    return {"n_params": n, "n_params_nonembedding": n_ne,
            "flops_per_token": flops_per_token(n_ne, rung.n_layer, rung.d_model, spec.train.seq_len)}


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


def training_objective(spec: StudySpec, tokenizer):
    """The study's objective; causal LM trains with the fused vocabulary head (the same loss, faster)."""
    if spec.causal:
        from emergelab.objectives.clm_fused import FusedCausalLM

        return FusedCausalLM()
    return make_objective(spec.objectives, tokenizer=tokenizer, seed=spec.seed, **spec.mlm.model_dump())


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


def train_rung(root: str, rung_name: str, progress=None) -> dict:
    """Train (or resume, or skip) one rung; returns a summary.

    ``progress(rung, step, total, loss, tokens_per_s)`` is called on the main process at log steps.
    """
    lay = Layout(Path(root))
    spec = StudySpec.model_validate(_load_spec(lay))
    rung = next(r for r in spec.ladder if r.name == rung_name)
    t = spec.train
    torch.set_num_threads(t.threads)
    if not (lay.data / "manifest.json").exists():
        raise UserError(f"{lay.root} has no prepared data; run `emergelab prepare --out {lay.root}` (or `emergelab study`) first")
    data_manifest = read_json(lay.data / "manifest.json")
    tok = load_tokenizer(lay.data / "tokenizer")
    rows = load_train(lay.data)
    per_step = t.batch_size * t.grad_accum
    if rows["input_ids"].shape[0] < t.steps * per_step:
        raise UserError(f"{lay.data} holds {rows['input_ids'].shape[0]} training rows but {t.steps} steps need "
                        f"{t.steps * per_step}; delete {lay.data} and re-run `emergelab prepare`")
    ckpt_steps = spec.checkpoint_steps()
    root_ck = lay.checkpoints(rung.name)
    acc = make_accelerator(t.trackers, lay.logs(rung.name))
    main = acc.is_main_process
    check_divisible(t.batch_size, acc.num_processes)
    mine = shard(t.batch_size, acc.num_processes, acc.process_index)

    valid = {s for s, p in ckpt.list_checkpoints(root_ck).items() if s in ckpt_steps and ckpt.is_valid(p)}
    missing = [s for s in ckpt_steps if s not in valid]
    acc.wait_for_everyone()  # every process has looked before the main one writes anything
    if not missing and lay.part("train", rung.name).exists():
        return {"rung": rung.name, "status": "done"}

    model = build_model(rung, vocab_size=data_manifest["vocab_size"], seq_len=t.seq_len, causal=spec.causal,
                        pad_token_id=tok.pad_token_id)
    initialise(model, spec.init, seed=spec.seed)
    n_params, n_ne = count_params(model)
    fpt = flops_per_token(n_ne, rung.n_layer, rung.d_model, t.seq_len)
    start, state = 0, load_state(lay.state(rung.name))
    if not missing:  # all checkpoints exist; only the measurement part is missing
        start = t.steps
    elif state and state["step"] in valid and state["step"] < min(missing):
        start = state["step"]
        ckpt.load_weights(model, ckpt.step_dir(root_ck, start))
    if t.compile:
        compile_backbone(model)
    objective = training_objective(spec, tok)
    step_module = acc.prepare(StepModule(model, objective))
    model = acc.unwrap_model(step_module).model
    opt = make_optimizer(model, t)
    if start and start < t.steps:
        opt.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng"])
    else:
        torch.manual_seed(spec.seed)
    state_step = state["step"] if state else -1
    bf16 = use_bf16(t.bf16, acc.device)

    log_path = lay.logs(rung.name) / "train.jsonl"
    tb = None
    if main:
        atomic_write_text(log_path, "".join(json.dumps(r) + "\n" for r in _read_log(log_path, start)))
        tb = _tensorboard(lay.logs(rung.name), start) if "tensorboard" in t.trackers else None
        if acc.log_with:
            acc.init_trackers(spec.name, config={"rung": rung.name, **rung.model_dump(), **t.model_dump(exclude={"trackers"})},
                              init_kwargs={"wandb": {"name": rung.name}})
        if progress is not None:
            progress(rung.name, start, t.steps, None)
    base = {"run": f"{spec.name}/{rung.name}", "rung": rung.name, "n_params": n_params,
            "n_params_nonembedding": n_ne, "spec_hash": spec.hash(), "data_order_hash": data_manifest["train_sha256"],
            "flops_per_token": fpt, "n_layer": rung.n_layer, "d_model": rung.d_model, "objectives": spec.objectives,
            "init": spec.init, "global_batch": per_step, "seq_len": t.seq_len, "bf16": bf16}
    step_module.train()
    t0, tokens_done = time.perf_counter(), 0
    with open(log_path, "a") if main else contextlib.nullcontext() as log:
        for step in range(start, t.steps + 1):
            if step in ckpt_steps:
                path = ckpt.step_dir(root_ck, step)
                if step not in valid:
                    if main:
                        tokens = step * per_step * t.seq_len
                        ckpt.save_checkpoint(path, model, tok, {**base, "step": step, "tokens_seen": tokens,
                                                                "flops": fpt * tokens})
                        _invalidate_dependents(lay, rung.name, step)
                    acc.wait_for_everyone()
                    valid.add(step)
                if main and step > state_step:
                    save_state(lay.state(rung.name), step=step, optimizer=opt,
                               weights_sha256=ckpt.read_manifest(path)["weights_sha256"])
                    state_step = step
            if step == t.steps:
                break
            lr = lr_at(step, lr=t.lr, warmup=t.warmup, total=t.steps, schedule=t.schedule)
            for g in opt.param_groups:
                g["lr"] = lr
            lo = step * per_step
            step_rows = {k: v[lo:lo + per_step] for k, v in rows.items()}
            full = objective.batch(step_rows if len(step_rows) > 1 else step_rows["input_ids"], step)
            losses: dict[str, float] = {}
            for micro in range(t.grad_accum):
                part = slice(micro * t.batch_size + mine.start, micro * t.batch_size + mine.stop)
                mb = take_rows(full, part, per_step, acc.device)
                sync = contextlib.nullcontext() if micro == t.grad_accum - 1 else acc.no_sync(step_module)
                with sync:
                    with torch.autocast(acc.device.type, dtype=torch.bfloat16, enabled=bf16):
                        loss, parts = step_module(mb)
                    acc.backward(loss / t.grad_accum)
                for k, v in parts.items():
                    losses[k] = losses.get(k, 0.0) + v / t.grad_accum
            gnorm = acc.clip_grad_norm_(step_module.parameters(), t.grad_clip if t.grad_clip > 0 else float("inf"))
            opt.step()
            opt.zero_grad(set_to_none=True)
            tokens_done += per_step * t.seq_len
            if step % t.log_every == 0 or step == t.steps - 1:
                if acc.num_processes > 1:  # every process holds the loss of its shard
                    names = list(losses)
                    mean = acc.reduce(torch.tensor([losses[k] for k in names], device=acc.device), "mean")
                    losses = dict(zip(names, mean.tolist()))
                if main:
                    rate = tokens_done / max(time.perf_counter() - t0, 1e-9)
                    rec = {"step": step, **losses, "lr": lr, "grad_norm": float(gnorm),
                           "tokens": step * per_step * t.seq_len, "tokens_per_s": rate}
                    log.write(json.dumps(rec) + "\n")
                    log.flush()
                    scalars = {f"train/{k}": v for k, v in rec.items() if k not in ("step", "tokens")}
                    if tb is not None:
                        for k, v in scalars.items():
                            tb.add_scalar(k, v, step)
                    if acc.log_with:
                        acc.log(scalars, step=step)
                    if progress is not None:
                        progress(rung.name, step + 1, t.steps, losses.get("loss"), rate)
    if tb is not None:
        tb.close()
    for tracker in acc.trackers:
        tracker.finish()
    if main:
        rows_out = [{"study": spec.name, "rung": rung.name, "n_params": n_params, "step": r["step"],
                     "tokens": r["tokens"], "flops": fpt * r["tokens"], "source": "train", "task": metric_of(k)[0],
                     "metric": metric_of(k)[1], "value": r[k], "n": per_step, "seed": spec.seed}
                    for r in _read_log(log_path, t.steps) for k in objective.names if k in r]
        write_part(lay.part("train", rung.name), rows_out)
    acc.wait_for_everyone()
    return {"rung": rung.name, "status": "trained", "from_step": start}


def _invalidate_dependents(lay: Layout, rung: str, step: int) -> None:
    """A (re)written checkpoint makes the parts computed from its predecessor stale."""
    for source in ("eval", "probe", "heads"):
        p = lay.part(source, rung, step)
        if p.exists():
            p.unlink()
    tuned = lay.parts / "finetune" / rung / f"step-{step:06d}"  # fine-tuning runs from this checkpoint
    if tuned.exists():
        shutil.rmtree(tuned)


def _tensorboard(log_dir: Path, start: int):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(log_dir), purge_step=start if start else None)


def _load_spec(lay: Layout) -> dict:
    import yaml

    return yaml.safe_load(lay.spec.read_text())
