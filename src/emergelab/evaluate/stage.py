"""The evaluate stage of a study: every task × k-shot on every checkpoint of every rung.

The tasks are the world's (whatever ``data/manifest.json`` lists, or ``eval.tasks``) plus any task
YAMLs in ``eval.task_files``. Each checkpoint's rows are one part file written atomically, so a
killed evaluation resumes at the first checkpoint without a part and never duplicates rows.
Causal models: world tasks are generated greedily (plus teacher-forced metrics), held-out loss is
next-token cross-entropy. Masked models: world tasks are cloze — ``prompt + [MASK]×L`` (wrapped as
``[CLS] … [SEP]`` when the study trains NSP, whose rows look like that), every target position
masked at once — and held-out loss is the MLM loss on the held-out blocks with the study's
corruption (``mlm``: 15 %, 80/10/10 by default) under a fixed seed.
"""
from __future__ import annotations

from pathlib import Path

import torch

from emergelab.corpus.prepare import load_blocks
from emergelab.errors import UserError
from emergelab.evaluate.docs import TaskData, load_task_data
from emergelab.evaluate.masked import masked_heldout_loss
from emergelab.evaluate.model import LanguageModel
from emergelab.evaluate.runner import evaluate_task, plan_task, task_rows
from emergelab.evaluate.scoring import heldout_loss
from emergelab.evaluate.taskspec import TaskSpec, expand_world_tasks, load_task_file, world_task_spec
from emergelab.io import read_json
from emergelab.layout import Layout
from emergelab.measurements import write_part
from emergelab.train import checkpoint as ckpt


def _task_file(ref: str, lay: Layout) -> TaskSpec:
    p = Path(ref)
    if not p.is_absolute() and (lay.root / p).is_file():
        p = lay.root / p
    return load_task_file(p)


def study_tasks(spec, lay: Layout) -> list[tuple[TaskSpec, TaskData, list[int]]]:
    """(task, its data, the k values it is evaluated at) for every task of the study. A world task
    without a few-shot form is evaluated at k = 0 only."""
    manifest = read_json(lay.data / "manifest.json")
    names = spec.eval.tasks or list(manifest["tasks"])
    unknown = [n for n in names if n not in manifest["tasks"]]
    if unknown:
        raise UserError(f"eval.tasks: unknown task {unknown[0]!r}; this world's tasks: {', '.join(manifest['tasks'])}")
    out = []
    files = [t for f in spec.eval.task_files for t in expand_world_tasks(_task_file(f, lay), manifest)]
    for ts in [world_task_spec(n, manifest.get("world")) for n in names] + files:
        data = load_task_data(ts, lay.data)
        shots = list(spec.eval.k_shot)
        if ts.dataset_path == "world" and data.token_delimiter is None:
            shots = [0]
        out.append((ts, data, shots))
    return out


def _study_model(model, tokenizer, spec, name: str) -> LanguageModel:
    return LanguageModel(model, tokenizer, "causal" if spec.causal else "masked", spec.train.seq_len, name=name,
                         wrap_world="nsp" in spec.objectives)


def evaluate_checkpoint(path: Path, spec, lay: Layout, rung: str, step: int,
                        tasks: list[tuple[TaskSpec, TaskData, list[int]]] | None = None) -> list[dict]:
    """Measurement rows for one checkpoint (all tasks, k-shots and the held-out loss)."""
    from emergelab.corpus.tokenizer import load_tokenizer

    man = ckpt.verify_checkpoint(path)
    lm = _study_model(ckpt.load_model(path, verify=False), load_tokenizer(lay.data / "tokenizer"), spec, f"{rung}/step-{step}")
    base = {"study": spec.name, "rung": rung, "n_params": man["n_params"], "step": step,
            "tokens": man["tokens_seen"], "flops": man["flops"], "source": "eval", "seed": spec.seed}
    rows = []
    for ts, data, shots in tasks if tasks is not None else study_tasks(spec, lay):
        metric_rows, _ = evaluate_task(lm, ts, data, shots, batch_size=spec.eval.batch_size,
                                       n_boot=spec.eval.n_bootstrap, seed=spec.seed)
        rows += [{**base, **r} for r in metric_rows]
    held = load_blocks(lay.data, "heldout")
    if spec.causal:
        loss, n = heldout_loss(lm.model, held), int(held.shape[0] * (held.shape[1] - 1))
    else:
        m = spec.mlm
        tok = lm.tokenizer
        loss = masked_heldout_loss(lm.model, held, mask_id=lm.mask_id, vocab_size=lm.vocab_size, special_ids=list(tok.all_special_ids),
                                   seed=spec.seed, batch_size=spec.eval.batch_size, probability=m.probability, mask=m.mask, random=m.random)
        n = int(held.size)
    rows.append({**base, "task": "heldout", "metric": "loss", "value": loss, "n": n})
    return rows


def chance_rows(spec, lay: Layout) -> list[dict]:
    """Per task: one ``chance/<metric>`` row per metric (the world's own levels where it states them,
    else a uniform guesser's) and one ``answer_length`` row (tokens). Runs before any checkpoint is
    evaluated and builds every task's prompts at every k, so bad input stops the stage at once."""
    from emergelab.corpus.tokenizer import load_tokenizer

    manifest = read_json(lay.data / "manifest.json")
    tok = load_tokenizer(lay.data / "tokenizer")
    lm = _study_model(None, tok, spec, "study model")
    rows = []
    for ts, data, shots in study_tasks(spec, lay):
        output_type, built = plan_task(lm, ts, data, shots)  # builds every k's prompts: bad input fails here, first
        rows += task_rows(ts, data, built[shots[0]][0], output_type, manifest["vocab_size"])
    return [{"study": spec.name, "step": -1, "source": "eval", **r} for r in rows]


def evaluate_rung(root: str, rung: str, progress=None) -> int:
    """Evaluate every checkpoint of ``rung`` that has no eval part yet; returns how many were done."""
    from emergelab.study import load_resolved_spec

    lay = Layout(Path(root))
    spec = load_resolved_spec(lay)
    torch.set_num_threads(spec.train.threads)
    ckpts = ckpt.list_checkpoints(lay.checkpoints(rung))
    todo = [s for s in ckpts if not lay.part("eval", rung, s).exists()]
    tasks = study_tasks(spec, lay) if todo else []
    done = 0
    for i, (step, path) in enumerate(ckpts.items()):
        part = lay.part("eval", rung, step)
        if not part.exists():
            write_part(part, evaluate_checkpoint(path, spec, lay, rung, step, tasks))
            done += 1
        if progress is not None:
            progress(rung, i + 1, len(ckpts), None)
    return done
