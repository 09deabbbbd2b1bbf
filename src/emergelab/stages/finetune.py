"""The finetune stage of a study: chosen checkpoints (and random init) × methods × label counts × seeds.

One unit of work is one fine-tuning run; its rows are one Parquet part (``Layout.finetune_part``),
written atomically, so a part that exists is complete and a killed stage redoes only missing runs.
Rows follow ``finetune.run.measurement_rows`` — the convention of ``emergelab finetune`` sweeps:
``task = finetune/<data>/<method>`` (``-scratch`` for random init), ``k_shot`` = labelled training
examples, ``seed`` = the run seed — with ``rung``/``step``/``tokens``/``flops`` of the checkpoint.
Random-init runs have the rung's architecture with fresh weights, so they are recorded at step 0
with no tokens or compute: the model has learned nothing before fine-tuning.

A run from a checkpoint records that checkpoint's weights sha256 in its part, so a checkpoint rewritten
with other weights redoes the runs made from it. ``todo`` only looks at paths, manifests and the spec
(no torch); ``resolve`` checks the task against the world when the spec is validated.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from emergelab.errors import UserError
from emergelab.finetune.sampling import default_eval_size
from emergelab.io import read_json
from emergelab.layout import Layout
from emergelab.models import checkpoint as ckpt
from emergelab.spec import StudySpec
from emergelab.stages.base import Stage, Unit, part_is_current
from emergelab.stages.checkpoints import facts, find, local_path, study_checkpoints
from emergelab.worlds import WORLDS, World, world_for_spec


@dataclass(frozen=True)
class Run:
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
    opts = spec.finetune
    if opts is None or not opts.enabled or opts.data is not None or world_tasks(spec):
        return None
    if spec.world is None:
        return "a suite without a world fine-tunes on finetune.data, which is not given; the finetune stage is skipped"
    return f"world {spec.world} labels no task and finetune.data is not given; the finetune stage is skipped"


def rungs(spec) -> list[str]:
    """The rungs to fine-tune, largest first (the order the other per-rung stages use)."""
    chosen = spec.finetune.rungs
    return [r.name for r in spec.rungs_by_size() if chosen is None or r.name in chosen]


def _schedule(spec, lay: Layout | None, rung: str | None) -> list[int]:
    """The rung's checkpoint steps: the training schedule, or a suite entry's audited checkpoints."""
    if not spec.is_suite:
        return spec.checkpoint_steps()
    return [c.step for c in study_checkpoints(spec, lay) if c.rung == rung] if lay is not None else []


def base_steps(spec, lay: Layout | None = None, rung: str | None = None) -> list[int | None]:
    opts = spec.finetune
    schedule = _schedule(spec, lay, rung)
    if opts.checkpoints == "last":
        steps = schedule[-1:] if spec.is_suite else [spec.train.steps]
    elif opts.checkpoints == "all":
        steps = schedule
    else:  # a list of checkpoint steps (validated against the schedule by the spec)
        steps = opts.checkpoints
    return list(steps) + ([None] if opts.random_init else [])


def runs(spec, rung: str, lay: Layout | None = None) -> list[Run]:
    opts = spec.finetune
    return [Run(rung, step, m, k, s) for step in base_steps(spec, lay, rung) for m in opts.methods
            for k in opts.label_counts() for s in opts.seeds]


def part_of(lay: Layout, u: Run) -> Path:
    return lay.finetune_part(u.rung, u.step, u.method, u.n_labels, u.seed)


def base_run(spec: StudySpec, rung: str) -> str:
    """The training run fine-tuning starts from: the rung trained with the study's seed (or, when ``seeds``
    leaves it out, with the first replicate seed)."""
    seeds = spec.replicate_seeds()
    return spec.run_name(rung, spec.seed if spec.seed in seeds else seeds[0])


def _inputs(spec: StudySpec, lay: Layout, run: Run, shas: dict) -> dict[str, str]:
    """A run from a checkpoint depends on its weights; a run from random init on nothing trained."""
    if run.step is None:
        return {}
    key = (run.rung, run.step)
    if spec.is_suite and key not in shas:
        ck = find(spec, lay, run.rung, spec.seed, run.step)
        shas[key] = ck.weights_sha256 if ck is not None else ""
    if key not in shas:
        path = lay.checkpoint(base_run(spec, run.rung), run.step)
        shas[key] = ckpt.read_manifest(path).get("weights_sha256", "") if (path / "checkpoint.json").exists() else ""
    return {"checkpoint": shas[key]}


def missing(spec, lay: Layout, rung: str | None = None) -> list[Unit]:
    """Units of the runs whose part is missing or stale (all chosen rungs, or one); empty when the stage is off."""
    if not enabled(spec):
        return []
    shas: dict = {}
    out = []
    for r in [rung] if rung else rungs(spec):
        for run in runs(spec, r, lay):
            inputs = _inputs(spec, lay, run, shas)
            if not part_is_current(part_of(lay, run), inputs):
                out.append(Unit("finetune", (run.rung, run.step, run.method, run.n_labels, run.seed), base_run(spec, run.rung),
                                inputs))
    return out


# ------------------------------------------------------------------ data (numpy, no torch)

def study_data(spec):
    """The labelled examples of the stage: the world's task, or the user's file."""
    opts = spec.finetune
    if opts.data is not None:
        from emergelab.corpus.labelled import load_labelled

        return load_labelled(opts.data, task=opts.data_task, text_column=opts.text_column, label_column=opts.label_column)
    world = world_for_spec(spec)
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


def preflight(spec: StudySpec, lay: Layout) -> None:
    """Check the task's data before any stage runs, so a bad finetune section fails in seconds."""
    if missing(spec, lay):
        splits_for(spec)


# ------------------------------------------------------------------ the work (torch)

def _base(lay: Layout, rung: str, step: int | None, spec):
    """The verified checkpoint a run starts from, described for its rows."""
    from emergelab.finetune.model_dir import BaseModel

    if spec.is_suite:
        return _suite_base(lay, rung, step, spec)
    at = spec.train.steps if step is None else step
    path = lay.checkpoint(base_run(spec, rung), at)
    if not (path / "checkpoint.json").exists():
        raise UserError(f"rung {rung} has no checkpoint at step {at} ({path}); run the train stage first")
    man = ckpt.verify_checkpoint(path)
    base = BaseModel(path=str(path), model_type=str(read_json(path / "config.json").get("model_type", "")),
                     weights_sha256=man["weights_sha256"], rung=rung, step=at, tokens=int(man["tokens_seen"]),
                     flops=float(man["flops"]), n_params=int(man["n_params"]))
    return replace(base, step=0, tokens=0, flops=0.0) if step is None else base


def _suite_base(lay: Layout, rung: str, step: int | None, spec):
    """An external checkpoint a run starts from (random init: the architecture of the entry's last one)."""
    from emergelab.finetune.model_dir import BaseModel

    at = _schedule(spec, lay, rung)[-1] if step is None else step
    ck = find(spec, lay, rung, spec.seed, at)
    if ck is None:
        raise UserError(f"suite entry {rung} has no checkpoint at step {at}; audited steps: {_schedule(spec, lay, rung)}")
    path = local_path(ck, lay)
    f = facts(ck, lay)
    base = BaseModel(path=str(path), model_type=str(read_json(path / "config.json").get("model_type", "")),
                     weights_sha256=ck.weights_sha256, rung=rung, step=at, tokens=int(f["tokens"]), flops=float(f["flops"]),
                     n_params=int(f["n_params"]))
    return replace(base, step=0, tokens=0, flops=0.0) if step is None else base


def run(spec: StudySpec, lay: Layout, units: list[Unit], progress=None) -> int:
    """Run the given fine-tuning runs (one rung's); returns how many were done."""
    import torch  # the work's imports (torch, transformers, peft) stay out of the cheap ``todo`` path

    from emergelab.finetune.baselines import BASELINES
    from emergelab.finetune.config import FinetuneConfig
    from emergelab.finetune.run import run_one
    from emergelab.measurements import write_part

    torch.set_num_threads(spec.train.threads)
    opts = spec.finetune
    splits, name = splits_for(spec)
    cache: dict = {}  # what the baselines of these runs share (evaluation features per checkpoint, model-free scores)
    for i, u in enumerate(units):
        run_ = Run(*u.key)
        config = FinetuneConfig(method=run_.method, epochs=opts.epochs, steps=opts.steps, min_steps=opts.min_steps,
                                lr=opts.lr, batch_size=opts.batch_size, max_length=spec.train.seq_len,
                                from_scratch=run_.step is None)
        # the baselines (independent of the method) beside the first method's runs of each checkpoint
        baselines = BASELINES if run_.method == opts.methods[0] else ()
        rec = run_one(_base(lay, run_.rung, run_.step, spec), splits, config=config, seed=run_.seed,
                      n_labels=run_.n_labels, data_name=name, run_dir=None, save=False, study=spec.name,
                      baselines=baselines, baseline_cache=cache)
        write_part(part_of(lay, run_), rec["rows"], u.inputs)
        if progress is not None:
            progress(u.group, i + 1, len(units))
    return len(units)


# ------------------------------------------------------------------ the stage contract

def world_tasks(spec: StudySpec) -> dict[str, str]:
    """The world's labelled tasks; a world without any is not built (text would need its corpus)."""
    if spec.world is None:
        return {}
    cls = WORLDS[spec.world]
    if cls.labelled_tasks is World.labelled_tasks:
        return {}
    return world_for_spec(spec).labelled_tasks()


def resolve(spec: StudySpec) -> StudySpec:
    """The task must be one the world labels, and the label counts must fit its pool; a labelled file is
    checked (read) by ``preflight`` before any stage runs."""
    opts = spec.finetune
    if opts is None or not opts.enabled or opts.data is not None:
        return spec
    tasks = world_tasks(spec)
    if not tasks and opts.task is None:
        return spec  # nothing to fine-tune on: the stage is skipped, and says so (a preset switched to world text)
    if not tasks:
        raise UserError(f"finetune.task: world {spec.world!r} labels no fine-tuning task (asked for {opts.task!r}); "
                        "give finetune.data=FILE (a CSV with text and label columns)")
    if opts.task is not None and opts.task not in tasks:
        raise UserError(f"finetune.task: world {spec.world!r} has no labelled task {opts.task!r}; allowed: {', '.join(tasks)}")
    held = opts.eval_size or default_eval_size(opts.n_examples)
    pool = opts.n_examples - held
    if pool < 1:
        raise UserError(f"finetune.eval_size {held} leaves no training examples of n_examples {opts.n_examples}; lower eval_size")
    too_many = [k for k in opts.label_counts() if k is not None and k > pool]
    if too_many:
        raise UserError(f"finetune.labels: {too_many[0]} is more than the {pool} examples available for training "
                        f"({opts.n_examples} drawn, {held} held out); use at most {pool}, 'all', or raise n_examples")
    return spec


def todo(spec: StudySpec, lay: Layout) -> list[Unit]:
    return missing(spec, lay)


STAGE = Stage("finetune", todo, run, resolve=resolve, preflight=preflight, note=skipped_because)
