"""What a study will cost before it runs: units per stage, bytes on disk, peak memory, wall time.

Sizes are closed forms of the spec (int32 token ids, fp32 safetensors weights, AdamW's two moments).
Times scale this machine's measured seconds per training step and per forward pass (``calibrate``) by
the work each stage does; the cost model and how it compares with measured runs are in
docs/preflight.md. The run is refused, in one line naming the numbers and the fix, when its data and
checkpoints would not fit on the disk or its largest units in memory.
"""
from __future__ import annotations

import math
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from emergelab.errors import UserError
from emergelab.layout import Layout
from emergelab.spec import StudySpec

GIB = 1 << 30
#: a worker process before it loads a model: Python, torch, transformers, the data's pages
BASE_RSS = 450 << 20
#: per-unit overheads, measured on the 2-core machine of docs/preflight.md: loading and verifying a small
#: checkpoint and writing its part; setting up a fine-tuning run; starting a training run (model,
#: accelerator, logs) and writing one checkpoint; the study's own start (imports, worker processes)
LOAD_S, RUN_SETUP_S, TRAIN_SETUP_S, CHECKPOINT_S, START_S = 0.02, 0.07, 0.5, 0.06, 4.0


@dataclass
class WorldFacts:
    """What the cost model needs to know of the world's tasks and latents."""

    vocab_size: int
    answer_lengths: list[int] = field(default_factory=list)  # one per task
    prompt_lengths: list[float] = field(default_factory=list)  # mean prompt + answer tokens, one per task
    n_latent_sets: int = 1  # distinct probe sequence sets (latents on the same sequences share a forward pass)
    n_latents: int = 1
    n_links: int = 0  # mechanism links the mechanism stage tests


def n_checkpoints(spec: StudySpec) -> int:
    return len(spec.checkpoint_steps())


def data_bytes(spec: StudySpec, facts: WorldFacts) -> int:
    """``data/``: training rows (int32; NSP adds int8 segment ids and labels), held-out blocks, tasks, latents."""
    t = spec.train
    rows = t.steps * t.batch_size * t.grad_accum
    train = rows * t.seq_len * 4 + (rows * (t.seq_len + 1) if "nsp" in spec.objectives else 0)
    heldout = spec.eval.heldout_sequences * t.seq_len * 4
    tasks = len(facts.answer_lengths) * spec.eval.n_examples * t.seq_len * 6  # JSON lines of token ids
    latents = facts.n_latents * spec.probe.n_sequences * t.seq_len * 12
    return train + heldout + tasks + latents + 50 * facts.vocab_size


def prepare_peak_bytes(spec: StudySpec) -> int:
    """Generating the training rows holds them as int64, their offset copy and the int32 result at once."""
    t = spec.train
    return BASE_RSS + t.steps * t.batch_size * t.grad_accum * t.seq_len * 20


def checkpoint_bytes(n_params: int, vocab_size: int) -> int:
    return 4 * n_params + 60 * vocab_size + 20_000  # fp32 weights, tokenizer files, config and manifest


def state_bytes(n_params: int) -> int:
    return 8 * n_params + 8192  # AdamW's first and second moments (the latest state only)


def makespan(times: list[float], workers: int) -> float:
    """Wall time of independent jobs handed out largest first to ``workers`` processes."""
    load = [0.0] * max(1, workers)
    for x in sorted(times, reverse=True):
        load[load.index(min(load))] += x
    return max(load)


def free_disk(path: Path) -> int:
    p = Path(path).resolve()
    while not p.exists():
        p = p.parent
    return shutil.disk_usage(p).free


def available_memory() -> int:
    """MemAvailable, or the cgroup's limit less its usage when that is lower."""
    avail = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                avail = int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = int(Path("/sys/fs/cgroup/memory.current").read_text())
        if limit != "max":
            avail = min(avail or math.inf, int(limit) - used)
    except (OSError, ValueError):
        pass
    return int(avail) if avail is not None else os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")


def fmt_bytes(n: float) -> str:
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:,.1f} {unit}"
    return f"{int(n)} B"


def fmt_seconds(s: float) -> str:
    if s >= 86400 * 365:
        return f"{s / (86400 * 365):,.0f} years"
    if s >= 86400:
        return f"{s / 86400:,.1f} days"
    if s >= 3600:
        return f"{s / 3600:.1f} h"
    if s >= 60:
        return f"{int(s // 60)} min {int(s % 60):02d} s"
    return f"{s:.1f} s"


def writable(path: Path) -> bool:
    p = Path(path).resolve()
    while not p.exists():
        p = p.parent
    return os.access(p, os.W_OK)


def check_fits(spec: StudySpec, lay: Layout, *, need_disk: int, need_memory: int, what_memory: str) -> None:
    """Refuse, in one line with the numbers and the fix, a study that cannot fit."""
    if need_disk and not writable(lay.root):
        raise UserError(f"{lay.root} cannot be written (a read-only file system or no permission); choose a writable --out")
    disk = free_disk(lay.root)
    if need_disk > disk:
        raise UserError(f"the study needs about {fmt_bytes(need_disk)} on disk (prepared data and checkpoints) but "
                        f"{lay.root} has {fmt_bytes(disk)} free; lower train.steps (or train.batch_size), raise "
                        "train.checkpoint_every, or choose an --out with more space")
    mem = available_memory()
    if need_memory > mem:
        raise UserError(f"{what_memory} needs about {fmt_bytes(need_memory)} of memory but {fmt_bytes(mem)} is available; "
                        "lower train.steps or train.batch_size, train.workers, or the largest rung")


def stage_seconds(spec: StudySpec, facts: WorldFacts, timing: dict[str, dict], units: dict[str, dict[str, int]],
                  rungs: dict) -> dict[str, float]:
    """Wall seconds per stage: per-run unit costs (``timing`` and ``rungs`` by run name), spread over the
    workers (largest first)."""
    t, w = spec.train, spec.train.workers
    out = {"prepare": (0.5 + spec.train.steps * t.batch_size * t.grad_accum * t.seq_len * 2e-8) if units["prepare"] else 0.0}
    per_rung = TRAIN_SETUP_S + CHECKPOINT_S * len(spec.checkpoint_steps())
    out["train"] = makespan([timing[r]["train_step_s"] * t.steps + per_rung for r in units["train"]], w)
    per_eval = {r: _evaluate_s(spec, facts, timing[r]) for r in timing}
    per_probe = {r: _probe_s(spec, facts, timing[r], rungs[r]) for r in timing}
    per_ft = {r: _finetune_s(spec, timing[r]) for r in timing}
    # "" is a whole-study unit (evaluate's task-level rows): cheap next to the checkpoints'
    out["evaluate"] = makespan([per_eval[r] * n for r, n in units["evaluate"].items() if r], w)
    out["probe"] = makespan([per_probe[r] * n for r, n in units["probe"].items() if r], w)
    per_mech = {r: _mechanism_s(spec, facts, timing[r], per_eval[r]) for r in timing}
    out["mechanism"] = makespan([per_mech[r] * n for r, n in units.get("mechanism", {}).items() if r], w)
    out["finetune"] = makespan([per_ft[r] * n for r, n in units["finetune"].items() if r], w)
    n_curves = len(facts.answer_lengths) * 5 * len(spec.eval.k_shot) * (len(spec.ladder) + 2)
    out["explain"] = (0.5 + 0.02 * n_curves) if units["explain"] else 0.0
    n_figures = len(facts.answer_lengths) * 5 + 2 * facts.n_latents + 4
    out["report"] = (1.5 + 0.3 * n_figures) if units["report"] else 0.0
    return out


def _evaluate_s(spec: StudySpec, facts: WorldFacts, tm: dict) -> float:
    """One checkpoint: per task and k, a teacher-forced pass and a prompt pass per batch (their cost in
    proportion to the prompt's share of the context), then one cached forward per generated token; the
    held-out loss; loading."""
    bs, seq = spec.eval.batch_size, spec.train.seq_len
    batches = math.ceil(spec.eval.n_examples / bs) * len(spec.eval.k_shot)
    token_s = tm["forward_s"] / seq + 1e-3  # one cached step: little compute, Python overhead
    lengths = facts.prompt_lengths or [seq] * len(facts.answer_lengths)
    tasks = sum(batches * (2 * (tm["forward_s"] * min(1.0, n / seq) + 1e-3) + a * token_s)
                for n, a in zip(lengths, facts.answer_lengths))
    return LOAD_S + tasks + math.ceil(spec.eval.heldout_sequences / bs) * tm["forward_s"]


def _mechanism_s(spec: StudySpec, facts: WorldFacts, tm: dict, per_eval: float) -> float:
    """One checkpoint: the heads' reference means and, per link, the linked task re-scored on
    ``mechanism.n_examples`` prompts twice (intervention, control) beside its plain score; a latent's
    eraser is fitted on the probe sequences' activations (one more forward pass over them)."""
    m, bs = spec.mechanism, spec.eval.batch_size
    per_task = (per_eval - LOAD_S) / max(1, len(facts.answer_lengths)) * min(1.0, m.n_examples / spec.eval.n_examples)
    setup = math.ceil(m.n_reference / bs) * tm["forward_s"] + math.ceil(spec.probe.n_sequences / bs) * tm["forward_s"]
    return LOAD_S + setup + facts.n_links * 3 * per_task if facts.n_links else 0.0


def _probe_s(spec: StudySpec, facts: WorldFacts, tm: dict, rung) -> float:
    """One checkpoint: forward passes over the probe sequences, one probe fit per latent and layer, head scores."""
    forward = facts.n_latent_sets * math.ceil(spec.probe.n_sequences / spec.eval.batch_size) * tm["forward_s"]
    n = min(spec.probe.max_tokens, spec.probe.n_sequences * spec.train.seq_len)
    fit = 0.02 + n * rung.d_model * 4e-8  # lbfgs on [n, d_model] features, a few regularisation strengths
    heads = 2 * tm["forward_s"] if spec.probe.heads and spec.causal else 0.0
    return LOAD_S + forward + facts.n_latents * (rung.n_layer + 1) * fit + heads


def _finetune_s(spec: StudySpec, tm: dict) -> float:
    """One run: its optimizer steps at the fine-tuning batch (scaled from a training step), evaluation, set-up."""
    opts = spec.finetune
    if opts is None or not opts.enabled:
        return 0.0
    held = opts.eval_size or min(1000, max(1, round(0.2 * opts.n_examples)))
    pool = opts.n_examples - held
    counts = [pool if k is None else k for k in opts.label_counts()]
    mean_labels = sum(counts) / len(counts)
    steps = opts.steps or max(opts.min_steps, round(opts.epochs * math.ceil(mean_labels / opts.batch_size)))
    # a classification step on short labelled examples: about half a pretraining row's tokens, plus overhead
    step_s = tm["train_step_s"] * opts.batch_size / (spec.train.batch_size * spec.train.grad_accum) * 0.5 + 4e-3
    return RUN_SETUP_S + steps * step_s + math.ceil(held / 64) * tm["forward_s"]


def approx_params(d_model: int, n_layer: int, d_ff: int, *, vocab_size: int, seq_len: int, causal: bool) -> int:
    """Parameters of the rung as ``models.build`` builds it (tied embeddings counted once), in closed form:
    GPT-2 ``V·d + P·d + L·(4d² + 2d·f + 9d + f) + 2d``; BERT for pre-training adds token types, two layer
    norms, the pooler, the MLM transform and decoder bias, and the NSP head. No torch needed."""
    d, f, v, p = d_model, d_ff, vocab_size, seq_len
    layers = n_layer * (4 * d * d + 2 * d * f + 9 * d + f)
    if causal:
        return v * d + p * d + layers + 2 * d
    embeddings = v * d + p * d + 2 * d + 2 * d
    heads = (d * d + d) + (d * d + d + 2 * d + v) + (2 * d + 2)  # pooler, MLM transform + decoder bias, NSP
    return embeddings + layers + heads


def train_peak_bytes(n_params: int, spec: StudySpec, d_model: int, n_layer: int, n_head: int, vocab_size: int) -> int:
    """A worker training a rung: weights, gradients and AdamW's moments (16 bytes a parameter), activations
    (Korthikanti et al. 2022: s·b·h·(34 + 5·a·s/h) bytes a layer at 16 bits, doubled for fp32) and the logits."""
    s, b = spec.train.seq_len, spec.train.batch_size
    acts = n_layer * s * b * d_model * (34 + 5 * n_head * s / d_model) * 2
    logits = 3 * 4 * s * b * vocab_size
    return int(BASE_RSS + 16 * n_params + acts + logits)
