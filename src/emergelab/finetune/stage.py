"""The finetune stage of a study: chosen checkpoints (and random init) × methods × label counts × seeds.

One unit of work is one fine-tuning run; its rows are one Parquet part (``Layout.finetune_part``),
written atomically, so a part that exists is complete and a killed stage redoes only missing runs.
Rows follow ``finetune.run.measurement_rows`` — the convention of ``emergelab finetune`` sweeps:
``task = finetune/<data>/<method>`` (``-scratch`` for random init), ``k_shot`` = labelled training
examples, ``seed`` = the run seed — with ``rung``/``step``/``tokens``/``flops`` of the checkpoint.
Random-init runs have the rung's architecture with fresh weights, so they are recorded at step 0
with no tokens or compute: the model has learned nothing before fine-tuning.

The functions above ``finetune_rung`` only look at paths and the spec (no torch), so the study
runner can ask cheaply whether anything is left to do.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from emergelab.errors import UserError
from emergelab.layout import Layout


@dataclass(frozen=True)
class Unit:
    """One fine-tuning run of a study."""

    rung: str
    step: int | None  # None: random init (the architecture of the rung's last checkpoint)
    method: str
    n_labels: int | None  # None: every example of the training pool
    seed: int


def enabled(spec) -> bool:
    """On, with something to fine-tune on (a file, or a task the world labels)."""
    return spec.finetune is not None and spec.finetune.enabled and skipped_because(spec) is None


def skipped_because(spec) -> str | None:
    """Why an enabled section runs nothing: the world labels no task and no file was given."""
    from emergelab.finetune.options import world_tasks

    opts = spec.finetune
    if opts is None or not opts.enabled or opts.data is not None or world_tasks(spec.world, spec.world_args, spec.seed):
        return None
    return f"world {spec.world} labels no task and finetune.data is not given; the finetune stage is skipped"


def rungs(spec) -> list[str]:
    """The rungs to fine-tune, largest first (the order the other per-rung stages use)."""
    chosen = spec.finetune.rungs
    ordered = sorted(spec.ladder, key=lambda r: -r.n_layer * r.d_model ** 2)
    return [r.name for r in ordered if chosen is None or r.name in chosen]


def base_steps(spec) -> list[int | None]:
    opts = spec.finetune
    if opts.checkpoints == "last":
        steps = [spec.train.steps]
    elif opts.checkpoints == "all":
        steps = spec.checkpoint_steps()
    else:  # a list of checkpoint steps (validated against the schedule by the spec)
        steps = opts.checkpoints
    return list(steps) + ([None] if opts.random_init else [])


def units(spec, rung: str) -> list[Unit]:
    opts = spec.finetune
    return [Unit(rung, step, m, k, s) for step in base_steps(spec) for m in opts.methods
            for k in opts.label_counts() for s in opts.seeds]


def part_of(lay: Layout, u: Unit) -> Path:
    return lay.finetune_part(u.rung, u.step, u.method, u.n_labels, u.seed)


def missing(spec, lay: Layout, rung: str | None = None) -> list[Unit]:
    """Runs without their part (all chosen rungs, or one); empty when the stage is off."""
    if not enabled(spec):
        return []
    return [u for r in ([rung] if rung else rungs(spec)) for u in units(spec, r) if not part_of(lay, u).exists()]


# ------------------------------------------------------------------ data (numpy, no torch)

def study_data(spec):
    """The labelled examples of the stage: the world's task, or the user's file."""
    opts = spec.finetune
    if opts.data is not None:
        from emergelab.data.labelled import load_labelled

        return load_labelled(opts.data, task=opts.data_task, text_column=opts.text_column, label_column=opts.label_column)
    from emergelab.worlds import WORLDS

    world = WORLDS[spec.world](spec.world_args, spec.seed, context=spec.train.seq_len)
    name = opts.task or next(iter(world.labelled_tasks()))
    return world.labelled(name, opts.n_examples, spec.train.seq_len)


def splits_for(spec):
    """(splits, data name): the held-out split and training pool, every label count checked against
    the pool; the data name (file stem, or the world task's name) goes into the rows' task."""
    from emergelab.finetune.run import data_name_of, prepare_splits
    from emergelab.finetune.sampling import check_label_counts

    try:
        data = study_data(spec)
        splits = prepare_splits(data, eval_size=spec.finetune.eval_size)
        check_label_counts(spec.finetune.label_counts(), splits.pool, held_out=splits.held_out)
    except UserError as exc:  # the CLI's wording (--labels, --eval-size) names the spec's keys here
        msg = str(exc).replace("--labels", "finetune.labels").replace("--eval-size", "finetune.eval_size")
        raise UserError(f"finetune: {msg}") from None
    return splits, data_name_of(data)


def preflight(spec) -> None:
    """Check the task's data before any stage runs, so a bad finetune section fails in seconds."""
    splits_for(spec)


# ------------------------------------------------------------------ the work (torch)

def _base(lay: Layout, rung: str, step: int | None, spec):
    """The verified checkpoint a run starts from, described for its rows."""
    from emergelab.finetune.model_dir import BaseModel
    from emergelab.io import read_json
    from emergelab.train import checkpoint as ckpt

    at = spec.train.steps if step is None else step
    path = ckpt.step_dir(lay.checkpoints(rung), at)
    if not (path / "checkpoint.json").exists():
        raise UserError(f"rung {rung} has no checkpoint at step {at} ({path}); run the train stage first")
    man = ckpt.verify_checkpoint(path)
    base = BaseModel(path=str(path), model_type=str(read_json(path / "config.json").get("model_type", "")),
                     weights_sha256=man["weights_sha256"], rung=rung, step=at, tokens=int(man["tokens_seen"]),
                     flops=float(man["flops"]), n_params=int(man["n_params"]))
    return replace(base, step=0, tokens=0, flops=0.0) if step is None else base


def finetune_rung(root: str, rung: str, progress=None) -> int:
    """Run every missing fine-tuning run of ``rung``; returns how many were done."""
    from emergelab.study import load_resolved_spec

    lay = Layout(Path(root))
    spec = load_resolved_spec(lay)
    todo = missing(spec, lay, rung)
    if not todo:
        return 0
    import torch

    from emergelab.finetune.config import FinetuneConfig
    from emergelab.finetune.run import run_one
    from emergelab.measurements import write_part

    torch.set_num_threads(spec.train.threads)
    opts = spec.finetune
    splits, name = splits_for(spec)
    for i, u in enumerate(todo):
        config = FinetuneConfig(method=u.method, epochs=opts.epochs, steps=opts.steps, min_steps=opts.min_steps,
                                lr=opts.lr, batch_size=opts.batch_size, max_length=spec.train.seq_len,
                                from_scratch=u.step is None)
        rec = run_one(_base(lay, rung, u.step, spec), splits, config=config, seed=u.seed, n_labels=u.n_labels,
                      data_name=name, run_dir=None, save=False, study=spec.name)
        write_part(part_of(lay, u), rec["rows"])
        if progress is not None:
            progress(rung, i + 1, len(todo), None)
    return len(todo)
