"""The evaluate stage: every task × k-shot on every checkpoint of every rung, one part per checkpoint.

The tasks are the world's (whatever the data manifest lists, or ``eval.tasks``) plus any task
YAMLs in ``eval.task_files``. Units: one per checkpoint (its part records the checkpoint's weights
sha256, so a rewritten checkpoint with other weights is evaluated again) and one for the tasks'
chance levels and answer lengths (``parts/eval/_task``), which runs first and builds every prompt, so
bad input stops the stage at once. Causal models: world tasks are generated greedily (plus
teacher-forced metrics), held-out loss is next-token cross-entropy. Masked models: world tasks are
cloze — ``prompt + [MASK]×L`` (wrapped as ``[CLS] … [SEP]`` when the study trains NSP, whose rows look
like that), every target position masked at once — and held-out loss is the MLM loss on the held-out
blocks with the study's corruption (``mlm``: 15 %, 80/10/10 by default) under a fixed seed.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from emergelab.errors import UserError
from emergelab.layout import Layout
from emergelab.spec import StudySpec
from emergelab.stages.base import Stage, Unit, part_is_current
from emergelab.stages.checkpoints import Checkpoint, checkpoint_of, facts, load_model, local_path, study_checkpoints

TASK_GROUP = "_task"  # the part of the tasks' own rows (chance levels, answer lengths)

def _task_file(ref: str, lay: Layout):
    from emergelab.evaluate.taskspec import load_task_file

    p = Path(ref)
    if not p.is_absolute() and (lay.root / p).is_file():
        p = lay.root / p
    return load_task_file(p)


def study_tasks(spec, lay: Layout) -> list[tuple]:
    """(task, its data, the k values it is evaluated at) for every task of the study. A world task
    without a few-shot form is evaluated at k = 0 only; a suite without a world has only its task files."""
    from emergelab.evaluate.docs import load_task_data
    from emergelab.evaluate.taskspec import expand_world_tasks, world_task_spec

    manifest = lay.data_dir.manifest() if spec.world is not None else {"tasks": {}}
    names = spec.eval.tasks or list(manifest["tasks"])
    unknown = [n for n in names if n not in manifest["tasks"]]
    if unknown:
        have = f"this world's tasks: {', '.join(manifest['tasks'])}" if spec.world else "a suite without a world has only eval.task_files"
        raise UserError(f"eval.tasks: unknown task {unknown[0]!r}; {have}")
    out = []
    files = [t for f in spec.eval.task_files for t in expand_world_tasks(_task_file(f, lay), manifest)]
    for ts in [world_task_spec(n, manifest.get("world")) for n in names] + files:
        data = load_task_data(ts, lay.data)
        shots = list(spec.eval.k_shot)
        if ts.dataset_path == "world" and data.token_delimiter is None:
            shots = [0]
        out.append((ts, data, shots))
    return out


def _study_model(model, tokenizer, spec, name: str, max_length: int | None = None):
    from emergelab.evaluate.model import language_model

    return language_model(model, tokenizer, causal=spec.causal, max_length=max_length or spec.train.seq_len, name=name,
                          wrap_world="nsp" in spec.objectives)


def study_tokenizer(spec, lay: Layout, path: Path):
    """The world's tokenizer (trained ladders and suites that share it), else the checkpoint's own."""
    from emergelab.corpus.tokenizer import load_tokenizer

    if spec.world is not None:
        return load_tokenizer(lay.data_dir.tokenizer)
    from emergelab.models.local import load_config_and_tokenizer

    return load_config_and_tokenizer(path)[1]


def context_length(spec, ck: Checkpoint, path: Path, tokenizer) -> int:
    """The study's sequence length for its own checkpoints and world suites (within the model's positions),
    the model's own context for a suite scored on task files."""
    if ck.external is None:
        return spec.train.seq_len
    from transformers import AutoConfig

    from emergelab.evaluate.model import max_length_of

    own = max_length_of(AutoConfig.from_pretrained(str(path)), tokenizer)
    return min(own, spec.train.seq_len) if spec.world is not None else own


def evaluate_checkpoint(ck: Checkpoint, spec, lay: Layout, tasks: list | None = None) -> list[dict]:
    """Measurement rows for one checkpoint (all tasks, k-shots and, with a world, the held-out loss); the tasks,
    few-shot draws and bootstrap are the study's for every replicate."""
    from emergelab.evaluate.masked import masked_heldout_loss
    from emergelab.evaluate.runner import evaluate_task
    from emergelab.evaluate.scoring import heldout_loss

    path = local_path(ck, lay)
    tok = study_tokenizer(spec, lay, path)
    lm = _study_model(load_model(ck, spec, path), tok, spec, f"{ck.rung}/step-{ck.step}", context_length(spec, ck, path, tok))
    base = {"study": spec.name, "rung": ck.rung, "step": ck.step, **facts(ck, lay), "source": "eval", "seed": ck.seed}
    rows = []
    for ts, data, shots in tasks if tasks is not None else study_tasks(spec, lay):
        metric_rows, _ = evaluate_task(lm, ts, data, shots, batch_size=spec.eval.batch_size,
                                       n_boot=spec.eval.n_bootstrap, seed=spec.seed)
        rows += [{**base, **r} for r in metric_rows]
    if spec.world is None:
        return rows
    held = lay.data_dir.blocks("heldout")
    if spec.causal:
        loss, n = heldout_loss(lm.model, held), int(held.shape[0] * (held.shape[1] - 1))
    else:
        m = spec.mlm
        loss = masked_heldout_loss(lm.model, held, mask_id=lm.mask_id, vocab_size=lm.vocab_size, special_ids=list(tok.all_special_ids),
                                   seed=spec.seed, batch_size=spec.eval.batch_size, probability=m.probability, mask=m.mask, random=m.random)
        n = int(held.size)
    rows.append({**base, "task": "heldout", "metric": "loss", "value": loss, "n": n})
    world = modular_world(spec)
    if world is not None and spec.causal and ck.external is None:
        rows += fourier_rows(lm.model, last_checkpoint(spec, lay, ck), spec, lay, world, base)
    return rows


# ------------------------------------------------------------------ the modular world's Fourier progress measures

FOURIER_TASK = "fourier"  # rows task="fourier", metric restricted_loss | excluded_loss | key_share


def modular_world(spec):
    """The study's modular world (its pairs and their split), or None for any other world."""
    from emergelab.worlds import WORLDS, ModularWorld, make_world

    if spec.world is None or not issubclass(WORLDS[spec.world], ModularWorld):
        return None
    return make_world(spec.world, spec.world_args, spec.seed)


def last_checkpoint(spec, lay: Layout, ck: Checkpoint) -> Checkpoint:
    """The last checkpoint of ``ck``'s run: its logits give the run's key frequencies (Nanda et al.)."""
    return max((c for c in study_checkpoints(spec, lay) if c.run == ck.run), key=lambda c: c.step)


def answer_logits(model, world) -> np.ndarray:
    """[p, p, p]: the causal model's logits of the p answers at ``=`` of every prompt ``a + b =``."""
    import torch

    prompts, _ = world.sum_grid()
    p, off = world.params.p, world.id_offset
    with torch.inference_mode():
        logits = model(input_ids=torch.as_tensor(prompts + off, dtype=torch.long)).logits[:, -1, off:off + p]
    return logits.double().cpu().numpy().reshape(p, p, p)


def fourier_rows(model, last: Checkpoint, spec, lay: Layout, world, base: dict) -> list[dict]:
    """Restricted loss, excluded loss and the key frequencies' logit share of one checkpoint, the key
    frequencies being those of its run's last checkpoint (evaluate/fourier.py)."""
    from emergelab.evaluate.fourier import frequency_shares, key_frequencies, progress_measures

    prompts, train = world.sum_grid()
    keys = key_frequencies(frequency_shares(_last_logits(last, spec, lay, world)))
    measures = progress_measures(answer_logits(model, world), keys, train)
    n = {"restricted_loss": len(prompts), "excluded_loss": int(train.sum()), "key_share": len(prompts)}
    return [{**base, "task": FOURIER_TASK, "metric": m, "value": measures[m], "n": n[m]} for m in n]


def _last_logits(last: Checkpoint, spec, lay: Layout, world):
    key = (str(lay.checkpoint(last.run, last.step)), last.weights_sha256)
    if key not in _LAST_LOGITS:  # a worker evaluates one run's checkpoints in turn: its last one is read once
        _LAST_LOGITS.clear()
        _LAST_LOGITS[key] = answer_logits(load_model(last, spec, local_path(last, lay)), world)
    return _LAST_LOGITS[key]


_LAST_LOGITS: dict = {}


def chance_rows(spec, lay: Layout) -> list[dict]:
    """Per task: one ``chance/<metric>`` row per metric (the world's own levels where it states them,
    else a uniform guesser's) and one ``answer_length`` row (tokens). Runs before any checkpoint is
    evaluated and builds every task's prompts at every k, so bad input stops the stage at once."""
    from emergelab.evaluate.runner import plan_task, task_rows

    first = study_checkpoints(spec, lay)[:1] if spec.world is None else []
    if spec.world is None and not first:
        return []  # a suite whose checkpoints are not resolved yet (the suite stage runs first)
    path = local_path(first[0], lay) if first else None
    tok = study_tokenizer(spec, lay, path)
    vocab = lay.data_dir.manifest()["vocab_size"] if spec.world is not None else len(tok)
    lm = _study_model(None, tok, spec, "study model", context_length(spec, first[0], path, tok) if first else None)
    rows = []
    for ts, data, shots in study_tasks(spec, lay):
        output_type, built = plan_task(lm, ts, data, shots)  # builds every k's prompts: bad input fails here, first
        rows += task_rows(ts, data, built[shots[0]][0], output_type, vocab)
    return [{"study": spec.name, "step": -1, "source": "eval", **r} for r in rows]


# ------------------------------------------------------------------ the stage contract

def checkpoint_units(spec: StudySpec, lay: Layout, source: str) -> list[Unit]:
    """One unit ``(rung, seed, step)`` per checkpoint there is (trained or audited), largest rung first, grouped
    by run; its input is the checkpoint's weights sha256 (cheap: manifests or the suite audit)."""
    return [c.unit(source) for c in study_checkpoints(spec, lay)]


def part_of(spec: StudySpec, lay: Layout, source: str, unit: Unit) -> Path:
    rung, seed, step = unit.key
    return lay.part(source, spec.run_name(rung, seed), step)


def _with_key_checkpoint(spec: StudySpec, lay: Layout, units: list[Unit]) -> list[Unit]:
    """A modular world's rows also depend on the run's last checkpoint (its key frequencies): its sha is an input."""
    if spec.world is None or spec.is_suite or modular_world(spec) is None:
        return units
    last: dict[str, Checkpoint] = {}
    for c in study_checkpoints(spec, lay):
        if c.run not in last or c.step > last[c.run].step:
            last[c.run] = c
    return [Unit(u.stage, u.key, u.group, {**u.inputs, "key_frequencies_from": last[u.group].weights_sha256})
            for u in units]


def todo(spec: StudySpec, lay: Layout) -> list[Unit]:
    units = [u for u in _with_key_checkpoint(spec, lay, checkpoint_units(spec, lay, "evaluate"))
             if not part_is_current(part_of(spec, lay, "eval", u), u.inputs)]
    if not lay.part("eval", TASK_GROUP).exists() and (spec.world is not None or units):
        units.insert(0, Unit("evaluate", (TASK_GROUP,), TASK_GROUP))
    return units


def run(spec: StudySpec, lay: Layout, units: list[Unit], progress=None) -> int:
    import torch  # the work's imports (torch, transformers, pandas) stay out of the cheap ``todo`` path

    from emergelab.measurements import write_part

    torch.set_num_threads(spec.train.threads)
    if units and units[0].key == (TASK_GROUP,):
        write_part(lay.part("eval", TASK_GROUP), chance_rows(spec, lay))
        if progress is not None:
            progress(TASK_GROUP, 1, 1)
        return 1
    tasks = study_tasks(spec, lay)
    for i, u in enumerate(units):
        write_part(part_of(spec, lay, "eval", u), evaluate_checkpoint(checkpoint_of(spec, lay, u), spec, lay, tasks), u.inputs)
        if progress is not None:
            progress(u.group, i + 1, len(units))
    return len(units)


STAGE = Stage("evaluate", todo, run)
