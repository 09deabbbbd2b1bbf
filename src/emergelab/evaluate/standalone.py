"""Evaluation outside a study: any local model directory × task YAMLs × k-shots -> a measurement table."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import yaml

from emergelab.errors import UserError
from emergelab.evaluate.docs import load_task_data
from emergelab.evaluate.model import LanguageModel, MaskedLM, load_model_dir
from emergelab.evaluate.runner import plan_task, run_plan
from emergelab.evaluate.taskspec import TaskSpec, builtin_tasks, expand_world_tasks, load_task_file, world_task_spec
from emergelab.evaluate.templates import check_documents
from emergelab.io import atomic_write_json, read_json
from emergelab.layout import Layout
from emergelab.measurements import make_frame, write_part
from emergelab.spec import parse


def study_data_dir(model_dir: Path) -> Path | None:
    """``<study>/data`` when ``model_dir`` is a study checkpoint (``runs/<rung>/checkpoints/step-N``)."""
    lay = Layout.owner_of(model_dir)
    return lay.data if lay is not None and lay.data_dir.exists() else None


def trains_nsp(model_dir: Path) -> bool:
    """Whether ``model_dir`` is a checkpoint of a study whose objectives include NSP."""
    lay = Layout.owner_of(model_dir)
    if lay is None:
        return False
    try:
        return "nsp" in parse(yaml.safe_load(lay.spec.read_text()) or {}, str(lay.spec)).objectives
    except (OSError, yaml.YAMLError, UserError):
        return False


def _resolve_task(ref: str, data_dir: Path | None) -> list[TaskSpec]:
    """A YAML path or built-in name (a world's name: all its tasks), or a task the data manifest lists."""
    manifest = read_json(data_dir / "manifest.json") if data_dir is not None and (data_dir / "manifest.json").exists() else {}
    if not Path(ref).is_file() and ref not in builtin_tasks() and ref in manifest.get("tasks", {}):
        return [world_task_spec(ref, manifest.get("world"))]
    spec = load_task_file(ref)
    if spec.dataset_path == "world" and spec.world_task is None and not manifest:
        raise UserError(f"task {spec.task} reads a world's token-id data (dataset_path: world); "
                        "evaluate it in a study, or pass --data STUDY/data")
    return expand_world_tasks(spec, manifest)


def evaluate_model(model_dir: str | Path, tasks: list[str], out: str | Path, *, k_shot: list[int] | None = None,
                   limit: int | None = None, data_dir: str | Path | None = None, batch_size: int = 32,
                   dtype: str = "float32", trust_remote_code: bool = False, n_boot: int = 200, seed: int = 0,
                   on_model=None) -> tuple[pd.DataFrame, LanguageModel]:
    """Evaluate ``tasks`` (YAML paths or built-in names) on the model in ``model_dir``; write
    ``out/measurements.parquet`` and return the table. Every task's data and prompts are checked
    before anything is scored."""
    data_dir = Path(data_dir) if data_dir is not None else study_data_dir(Path(model_dir))
    specs = [s for t in tasks for s in _resolve_task(t, data_dir)]
    datas = [load_task_data(s, data_dir, limit) for s in specs]
    for s, d in zip(specs, datas):
        check_documents(s, d.docs + (d.fewshot_docs if not d.same_split else []))
    lm = load_model_dir(model_dir, trust_remote_code=trust_remote_code, dtype=dtype)
    dtype = str(next(lm.model.parameters()).dtype).removeprefix("torch.")  # what auto chose is what is recorded
    lm.wrap_world = isinstance(lm, MaskedLM) and trains_nsp(Path(model_dir))
    if on_model is not None:
        on_model(lm)
    shots = [s.shots(k_shot) for s in specs]
    plans = [plan_task(lm, s, d, k) for s, d, k in zip(specs, datas, shots)]
    man = lm.manifest
    base = {"study": man.get("run", ""), "rung": man.get("rung") or lm.name, "n_params": man.get("n_params") or lm.n_params(),
            "step": man.get("step", 0), "tokens": man.get("tokens_seen", 0), "flops": man.get("flops", 0.0),
            "source": "eval", "seed": seed}
    rows = []
    for s, d, plan in zip(specs, datas, plans):
        metric_rows, task_rows = run_plan(lm, s, d, plan, batch_size=batch_size, n_boot=n_boot, seed=seed)
        rows += [{**base, **r} for r in metric_rows]
        rows += [{**base, "rung": "", "step": -1, "n_params": 0, "tokens": 0, "flops": 0.0, **r} for r in task_rows]
    out = Path(out)
    df = make_frame(rows)
    write_part(out / "measurements.parquet", df)
    atomic_write_json(out / "evaluate.json", {"model": str(Path(model_dir).resolve()), "kind": lm.kind, "tasks": tasks,
                                              "k_shot": k_shot, "limit": limit, "dtype": dtype, "warnings": lm.warnings})
    return df, lm
