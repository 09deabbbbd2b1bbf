"""The training loop for one rung: same data in the same order, log-spaced checkpoints, exact resume."""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch

from emergelab.corpus.prepare import load_blocks
from emergelab.corpus.tokenizer import load_tokenizer
from emergelab.io import atomic_write_text, read_json
from emergelab.layout import Layout
from emergelab.measurements import write_part
from emergelab.models import build_model, count_params, flops_per_token, initialise
from emergelab.objectives import make_objective
from emergelab.spec import StudySpec
from emergelab.train import checkpoint as ckpt
from emergelab.train.schedule import lr_at
from emergelab.train.state import load_state, save_state


def rung_info(spec: StudySpec, rung, vocab_size: int) -> dict:
    """Parameter counts and FLOPs per token of a rung, without training it."""
    model = build_model(rung, vocab_size=vocab_size, seq_len=spec.train.seq_len, causal=spec.causal)
    n, n_ne = count_params(model)
    return {"n_params": n, "n_params_nonembedding": n_ne,
            "flops_per_token": flops_per_token(n_ne, rung.n_layer, rung.d_model, spec.train.seq_len)}


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
    """Train (or resume, or skip) one rung; returns a summary. ``progress(rung, step, total, loss)``."""
    lay = Layout(Path(root))
    spec = StudySpec.model_validate(_load_spec(lay))
    rung = next(r for r in spec.ladder if r.name == rung_name)
    t = spec.train
    torch.set_num_threads(t.threads)
    data_manifest = read_json(lay.data / "manifest.json")
    tok = load_tokenizer(lay.data / "tokenizer")
    blocks = load_blocks(lay.data)
    per_step = t.batch_size * t.grad_accum
    ckpt_steps = spec.checkpoint_steps()
    root_ck = lay.checkpoints(rung.name)

    valid = {s for s, p in ckpt.list_checkpoints(root_ck).items() if s in ckpt_steps and ckpt.is_valid(p)}
    missing = [s for s in ckpt_steps if s not in valid]
    if not missing and lay.part("train", rung.name).exists():
        return {"rung": rung.name, "status": "done"}

    model = build_model(rung, vocab_size=data_manifest["vocab_size"], seq_len=t.seq_len, causal=spec.causal,
                        pad_token_id=tok.pad_token_id)
    initialise(model, spec.init, seed=spec.seed)
    n_params, n_ne = count_params(model)
    fpt = flops_per_token(n_ne, rung.n_layer, rung.d_model, t.seq_len)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": t.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=t.lr, betas=(0.9, 0.95))
    objective = make_objective(spec.objectives, tokenizer=tok, seed=spec.seed)

    start = 0
    state = load_state(lay.state(rung.name))
    if not missing:  # all checkpoints exist; only the measurement part is missing
        start = t.steps
    elif state and state["step"] in valid and state["step"] < min(missing):
        start = state["step"]
        model = ckpt.load_model(ckpt.step_dir(root_ck, start), verify=False)
        model.train()
        decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
        no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": t.weight_decay},
                                 {"params": no_decay, "weight_decay": 0.0}], lr=t.lr, betas=(0.9, 0.95))
        opt.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng"])
    else:
        torch.manual_seed(spec.seed)
    state_step = state["step"] if state else -1

    log_path = lay.logs(rung.name) / "train.jsonl"
    history = _read_log(log_path, start)
    atomic_write_text(log_path, "".join(json.dumps(r) + "\n" for r in history))
    tb = _tensorboard(lay.logs(rung.name), start)
    base = {"run": f"{spec.name}/{rung.name}", "rung": rung.name, "n_params": n_params,
            "n_params_nonembedding": n_ne, "spec_hash": spec.hash(), "data_order_hash": data_manifest["train_sha256"],
            "flops_per_token": fpt, "n_layer": rung.n_layer, "d_model": rung.d_model}
    model.train()
    t0, tokens_done = time.perf_counter(), 0
    with open(log_path, "a") as log:
        for step in range(start, t.steps + 1):
            if step in ckpt_steps:
                path = ckpt.step_dir(root_ck, step)
                if step not in valid:
                    tokens = step * per_step * t.seq_len
                    man = ckpt.save_checkpoint(path, model, tok, {**base, "step": step, "tokens_seen": tokens,
                                                                  "flops": fpt * tokens})
                    _invalidate_dependents(lay, rung.name, step)
                    valid.add(step)
                else:
                    man = ckpt.read_manifest(path)
                if step > state_step:
                    save_state(lay.state(rung.name), step=step, optimizer=opt, weights_sha256=man["weights_sha256"])
                    state_step = step
            if step == t.steps:
                break
            lr = lr_at(step, lr=t.lr, warmup=t.warmup, total=t.steps, schedule=t.schedule)
            for g in opt.param_groups:
                g["lr"] = lr
            step_blocks = blocks[step * per_step:(step + 1) * per_step]
            losses: dict[str, float] = {}
            for micro in range(t.grad_accum):
                mb = objective.batch(step_blocks[micro * t.batch_size:(micro + 1) * t.batch_size], step * t.grad_accum + micro)
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=t.bf16):
                    loss, parts = objective.loss(model, mb)
                (loss / t.grad_accum).backward()
                for k, v in parts.items():
                    losses[k] = losses.get(k, 0.0) + v / t.grad_accum
            gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), t.grad_clip if t.grad_clip > 0 else float("inf"))
            opt.step()
            opt.zero_grad(set_to_none=True)
            tokens_done += per_step * t.seq_len
            if step % t.log_every == 0 or step == t.steps - 1:
                elapsed = time.perf_counter() - t0
                rec = {"step": step, **losses, "lr": lr, "grad_norm": float(gnorm),
                       "tokens": step * per_step * t.seq_len, "tokens_per_s": tokens_done / max(elapsed, 1e-9)}
                log.write(json.dumps(rec) + "\n")
                log.flush()
                if tb is not None:
                    for k, v in rec.items():
                        if k not in ("step", "tokens"):
                            tb.add_scalar(f"train/{k}", v, step)
                if progress is not None:
                    progress(rung.name, step + 1, t.steps, losses.get("loss", float("nan")))
    if tb is not None:
        tb.close()
    rows = [{"study": spec.name, "rung": rung.name, "n_params": n_params, "step": r["step"], "tokens": r["tokens"],
             "flops": fpt * r["tokens"], "source": "train", "task": "pretrain", "metric": name, "value": r[name],
             "n": per_step, "seed": spec.seed}
            for r in _read_log(log_path, t.steps) for name in objective.names if name in r]
    write_part(lay.part("train", rung.name), rows)
    return {"rung": rung.name, "status": "trained", "from_step": start}


def _invalidate_dependents(lay: Layout, rung: str, step: int) -> None:
    """A (re)written checkpoint makes the parts computed from its predecessor stale."""
    for source in ("eval", "probe", "heads"):
        p = lay.part(source, rung, step)
        if p.exists():
            p.unlink()


def _tensorboard(log_dir: Path, start: int):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(log_dir), purge_step=start if start else None)


def _load_spec(lay: Layout) -> dict:
    import yaml

    return yaml.safe_load(lay.spec.read_text())
