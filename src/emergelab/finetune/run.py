"""One fine-tuning run: labelled subset -> wrapped model -> training -> scores -> record and rows on disk.

Measurement rows (``source="finetune"``) use ``task = "finetune/<data>/<method>"`` (``-scratch``
appended for random-init runs), ``k_shot`` = the number of labelled training examples the run used
(sentences for tagging), ``n`` = the examples (words, for tagging) scored, ``seed`` = the run seed,
and ``rung``/``step``/``n_params``/``tokens``/``flops`` describe the base model (from its
``checkpoint.json`` when it is an emergelab checkpoint), so fine-tuning results line up with the
other stages' scale and training-time axes. Metrics: ``accuracy`` (with binomial stderr),
``macro_f1`` and ``majority_baseline`` (always predicting the most frequent training label).

A run asked for ``baselines`` also records them (``finetune.baselines``) on its training labels and
evaluation examples: rows with ``source="baseline"`` and ``task = "finetune/<data>/<baseline>"``, every
other column the run's (a baseline row stands beside the result it is a baseline for; the model-free
``majority`` and ``tfidf-logreg`` are then equal across checkpoints, ``frozen-logreg`` is not).
"""
from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from emergelab.corpus.labelled import LabelledData
from emergelab.errors import UserError
from emergelab.finetune.baselines import BASELINES, baseline_rows, run_baselines
from emergelab.finetune.config import FinetuneConfig
from emergelab.finetune.encode import IGNORE, Encoded, encode
from emergelab.finetune.evaluate import majority_baseline, scores
from emergelab.finetune.methods import adalora_ranks, wrap_model
from emergelab.finetune.model_dir import (
    HEAD_NAMES,
    BaseModel,
    check_model_dir,
    count_parameters,
    is_causal,
    load_task_model,
    load_tokenizer,
)
from emergelab.finetune.sampling import check_label_counts, default_eval_size, holdout_split, label_subset
from emergelab.finetune.saved import RECORD, SCHEMA_VERSION, save_base, save_weights
from emergelab.finetune.train import train
from emergelab.io import atomic_write_json, read_json
from emergelab.measurements import write_part

log = logging.getLogger(__name__)
ROWS = "measurements.parquet"


@dataclass
class Splits:
    """The training pool and the evaluation examples (never trained on)."""
    pool: LabelledData
    eval: LabelledData
    held_out: int  # examples of the data held out for evaluation (0 with separate eval data)


def prepare_splits(data: LabelledData, *, eval_data: LabelledData | None = None, eval_size: int | None = None) -> Splits:
    """Hold out a fixed evaluation split of ``data``, or check ``eval_data`` against its labels."""
    if eval_data is not None:
        if eval_data.task != data.task:
            raise UserError(f"--eval-data is {eval_data.task} data but --data is {data.task} data; give the same task")
        return Splits(data, eval_data.with_label_names(data.label_names, reference=data.source), 0)
    size = eval_size or default_eval_size(len(data))
    pool_idx, eval_idx = holdout_split(len(data), size)
    pool, ev = data.subset(pool_idx), data.subset(eval_idx)
    seen = _label_set(pool)
    unseen = sorted(data.label_names[v] for v in _label_set(ev) - seen)
    if unseen and data.task == "classify":
        raise UserError(
            f"label(s) {', '.join(map(repr, unseen))} occur only in the held-out evaluation split of {data.source}; "
            "add examples of them, remove them, or give --eval-data"
        )
    if unseen:  # rare tags: scored (as errors) rather than refused, the tagset of a corpus has a long tail
        log.warning("%d tag(s) occur only in the evaluation split: %s", len(unseen), ", ".join(unseen[:10]))
    return Splits(pool, ev, size)


def _label_set(data: LabelledData) -> set[int]:
    return {v for y in data.labels for v in (y if isinstance(y, list) else [y])}


def data_digest(data: LabelledData) -> str:
    """sha256 of the examples and labels (what a recorded run was trained and scored on)."""
    h = hashlib.sha256()
    h.update(json.dumps([data.task, data.label_names]).encode())
    for x, y in zip(data.texts or data.tokens, data.labels):
        h.update(json.dumps([x, y], ensure_ascii=False).encode())
    return h.hexdigest()


def data_name_of(data: LabelledData) -> str:
    name = Path(data.source).stem or "data"
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "data"


def task_name(data_name: str, config: FinetuneConfig) -> str:
    return f"finetune/{data_name}/{config.method}{'-scratch' if config.from_scratch else ''}"


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def measurement_rows(rec: dict, *, study: str = "") -> list[dict]:
    """The run's rows of the measurement table (see the module docstring)."""
    b, ev = rec["base"], rec["eval"]
    common = dict(study=study, rung=b["rung"], n_params=b["n_params"], step=b["step"], tokens=b["tokens"],
                  flops=b["flops"], source="finetune", task=rec["task_name"], k_shot=rec["k_shot"], layer=-1,
                  n=ev["n"], seed=rec["seed"])
    rows = [
        {**common, "metric": "accuracy", "value": ev["accuracy"], "stderr": ev["accuracy_stderr"]},
        {**common, "metric": "macro_f1", "value": ev["macro_f1"]},
        {**common, "metric": "majority_baseline", "value": ev["majority_baseline"]},
    ]
    return rows + baseline_rows(rec.get("baselines") or {}, data_name=rec["data_name"], common=common)


def recorded(run_dir: Path | None, spec_hash: str) -> dict | None:
    """The record of a complete run with this spec in ``run_dir``; a different spec is an error."""
    if run_dir is None or not (run_dir / RECORD).exists():
        return None
    rec = read_json(run_dir / RECORD)
    if rec.get("spec_hash") != spec_hash:
        raise UserError(f"{run_dir} holds a fine-tuning run with other settings; choose another --out or delete it")
    return rec if (run_dir / ROWS).exists() else None


def run_one(base: BaseModel, splits: Splits, *, config: FinetuneConfig, seed: int, n_labels: int | None,
            data_name: str, run_dir: Path | None = None, save: bool = True, spec_hash: str = "",
            study: str = "", device: str | None = None, progress=None, baselines: Sequence[str] = (),
            baseline_cache: dict | None = None) -> dict:
    """Fine-tune once (or return the recorded run) and return its record, with ``rows``.

    ``baselines``: names from ``finetune.baselines.BASELINES`` to score beside the run (classification);
    ``baseline_cache`` keeps what the baselines of several runs on the same splits share (see ``run_baselines``).
    """
    if (rec := recorded(run_dir, spec_hash)) is not None:
        return {**rec, "rows": measurement_rows(rec, study=study), "skipped": True}
    device = device or default_device()
    task = splits.pool.task
    train_data = label_subset(splits.pool, n_labels, seed)
    tokenizer = load_tokenizer(base.path, task=task, trust_remote_code=config.trust_remote_code)
    model, new_modules = load_task_model(base.path, task=task, label_names=splits.pool.label_names,
                                         pad_token_id=tokenizer.pad_token_id, from_scratch=config.from_scratch, seed=seed,
                                         trust_remote_code=config.trust_remote_code)
    n_backbone = sum(p.numel() for p in model.base_model.parameters())
    if config.from_scratch and save and run_dir is not None and config.method != "full":
        save_base(model, run_dir)
    subtoken = config.label_subtoken
    if subtoken == "auto":
        subtoken = "last" if is_causal(model.config) else "first"
    train_enc = encode(tokenizer, train_data, max_length=config.max_length, subtoken=subtoken)
    eval_enc = encode(tokenizer, splits.eval, max_length=config.max_length, subtoken=subtoken)
    base_scores = _baselines(model, base, train_data, splits, train_enc, eval_enc, tokenizer, config, baselines,
                             device=device, seed=seed, cache=baseline_cache)
    # early stopping: the last examples of the seeded order validate (the first ones hold every class)
    n_val = config.n_validation(len(train_data))
    fit_enc, val_enc = _carve(train_enc, len(train_enc) - n_val)
    steps = config.n_steps(len(fit_enc))
    model = wrap_model(model, config, task=task, total_steps=steps, new_modules=new_modules)
    trainable, total = count_parameters(model)
    model.to(device)
    desc = f"{config.method} k={len(train_data)} seed={seed}"
    stats = train(model, fit_enc, config=config, steps=steps, seed=seed, pad_token_id=tokenizer.pad_token_id,
                  device=device, progress=progress, description=desc, val_enc=val_enc if n_val else None,
                  head_names=(*HEAD_NAMES, *new_modules))
    sc = scores(model, eval_enc, pad_token_id=tokenizer.pad_token_id, batch_size=config.eval_batch_size, device=device)
    gold = np.array([v for y in eval_enc.labels for v in (y if isinstance(y, list) else [y]) if v != IGNORE])
    sc["majority_baseline"] = majority_baseline(train_data.labels, gold)
    rec = _record(base, splits, config, data_name=data_name, spec_hash=spec_hash, seed=seed, train_data=train_data,
                  n_backbone=n_backbone, subtoken=subtoken, new_modules=new_modules, params=(trainable, total),
                  stats=stats, fit=(len(fit_enc), n_val, steps), sc=sc, model=model, base_scores=base_scores, device=device)
    if run_dir is not None:
        if save:
            rec["weights"] = save_weights(model, tokenizer, run_dir, method=config.method, new_modules=new_modules)
        write_part(run_dir / ROWS, measurement_rows(rec, study=study))
        atomic_write_json(run_dir / RECORD, rec)  # last: a run with its record is complete
    return {**rec, "rows": measurement_rows(rec, study=study), "skipped": False, "model": model, "tokenizer": tokenizer}


def _baselines(model, base: BaseModel, train_data, splits: Splits, train_enc: Encoded, eval_enc: Encoded, tokenizer,
               config: FinetuneConfig, baselines: Sequence[str], *, device: str, seed: int, cache: dict | None) -> dict:
    """The baselines' scores beside a classification run ({} for tagging or none asked for)."""
    if not baselines or splits.pool.task != "classify":
        return {}
    which = [b for b in baselines if not (b == "frozen-logreg" and config.from_scratch)]  # a random body is no checkpoint
    model.to(device)
    return run_baselines(model, train_enc, eval_enc, train_texts=train_data.texts, eval_texts=splits.eval.texts,
                         which=which, pad_token_id=tokenizer.pad_token_id, batch_size=config.eval_batch_size,
                         device=device, seed=seed, cache=cache, base_key=base.weights_sha256)


def _record(base: BaseModel, splits: Splits, config: FinetuneConfig, *, data_name: str, spec_hash: str, seed: int,
            train_data, n_backbone: int, subtoken: str, new_modules, params: tuple[int, int], stats, fit: tuple[int, int, int],
            sc: dict, model, base_scores: dict, device: str) -> dict:
    """The run's record (``record.json``): what was trained, on what, and how it scored."""
    n_fit, n_val, steps = fit
    base_info = asdict(base)
    base_info["n_params"] = base.n_params or n_backbone
    rec = {
        "schema_version": SCHEMA_VERSION, "spec_hash": spec_hash, "task": splits.pool.task, "method": config.method,
        "task_name": task_name(data_name, config), "data": splits.pool.source, "data_name": data_name,
        "label_names": splits.pool.label_names, "k_shot": len(train_data), "seed": seed,
        "from_scratch": config.from_scratch, "config": config.to_dict(), "base": base_info,
        "label_subtoken": subtoken if splits.pool.task == "tag" else None, "new_modules": new_modules,
        "trainable_params": params[0], "total_params": params[1], "trainable_fraction": params[0] / params[1],
        "train": {"steps": stats.steps, "tokens": stats.tokens, "seconds": round(stats.seconds, 3),
                  "final_loss": stats.final_loss, "examples": n_fit, "validation_examples": n_val,
                  "planned_steps": steps, "best_step": stats.best_step, "validation_losses": stats.val_losses},
        "eval": {**sc, "examples": len(splits.eval), "source": splits.eval.source},
        "adalora_ranks": adalora_ranks(model) if config.method == "adalora" else None,
        "adalora_initial_rank": config.adalora_init_r if config.method == "adalora" else None,
        "baselines": base_scores, "weights": None, "device": device, "versions": _versions(),
    }
    return rec


def _carve(enc: Encoded, n_fit: int) -> tuple[Encoded, Encoded]:
    """(the first ``n_fit`` examples, the rest) of ``enc``."""
    def part(sl: slice) -> Encoded:
        tt = enc.token_type_ids[sl] if enc.token_type_ids is not None else None
        return Encoded(enc.input_ids[sl], enc.labels[sl], tt)

    return part(slice(0, n_fit)), part(slice(n_fit, None))


def _versions() -> dict:
    import peft
    import torch
    import transformers

    import emergelab

    return {"emergelab": emergelab.__version__, "torch": torch.__version__,
            "transformers": transformers.__version__, "peft": peft.__version__}


def finetune(model_dir: str | Path, data: LabelledData, *, config: FinetuneConfig | None = None,
             n_labels: int | None = None, seed: int = 0, eval_data: LabelledData | None = None,
             eval_size: int | None = None, out_dir: str | Path | None = None, data_name: str | None = None,
             study: str = "", device: str | None = None, progress=None, baselines: Sequence[str] = BASELINES) -> dict:
    """Fine-tune ``model_dir`` on ``data`` once; with ``out_dir`` the run is saved there (reloadable).

    Returns the run record (``finetune.json``'s content) plus ``rows`` (measurement rows), ``model``
    and ``tokenizer`` (absent when the run was already recorded in ``out_dir`` and so skipped).
    """

    config = config or FinetuneConfig()
    base = check_model_dir(model_dir)
    splits = prepare_splits(data, eval_data=eval_data, eval_size=eval_size)
    check_label_counts([n_labels], splits.pool, held_out=splits.held_out)
    name = data_name or data_name_of(data)
    spec = spec_digest(base, config, data_digest(data), data_digest(eval_data) if eval_data else "",
                       splits.held_out, n_labels, seed, name)
    return run_one(base, splits, config=config, seed=seed, n_labels=n_labels, data_name=name,
                   run_dir=Path(out_dir) if out_dir else None, spec_hash=spec, study=study, device=device,
                   progress=progress, baselines=baselines)


def spec_digest(base: BaseModel, config: FinetuneConfig, data_hash: str, eval_hash: str, held_out: int,
                n_labels: int | None, seed: int, data_name: str) -> str:
    """What makes two runs the same run: base weights, data, evaluation examples, config, k, seed."""
    parts = [base.weights_sha256, data_hash, eval_hash, held_out, config.digest(), n_labels, seed, data_name]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:16]
