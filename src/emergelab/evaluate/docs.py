"""A task's documents: the evaluation split and the few-shot pool, from local JSON, a world, or the Hub."""
from __future__ import annotations

import glob
import json
from dataclasses import dataclass, field
from pathlib import Path

from emergelab.errors import UserError
from emergelab.evaluate.taskspec import TaskSpec


@dataclass
class TaskData:
    """What a task evaluates on. ``same_split``: the few-shot pool is the evaluation split, so a
    query's own document must be left out of its demonstrations."""

    docs: list[dict]
    fewshot_docs: list[dict]
    same_split: bool
    #: world tasks: few-shot separator in token ids (None: the task has no k-shot form)
    token_delimiter: list[int] | None = None
    #: world tasks: the manifest entry (chance levels, answer length, description)
    world_info: dict | None = None
    columns: list[str] = field(default_factory=list)


def _resolve(pattern: str, base_dir: str | None) -> list[Path]:
    roots = ([Path(base_dir)] if base_dir else []) + [Path.cwd()]
    for root in roots:
        full = Path(pattern) if Path(pattern).is_absolute() else root / pattern
        hits = sorted(Path(p) for p in glob.glob(str(full))) if any(c in pattern for c in "*?[") else [full] if full.is_file() else []
        if hits:
            return hits
    where = f" (looked in {base_dir} and the current directory)" if base_dir else ""
    raise UserError(f"data file {pattern} not found{where}; fix dataset_kwargs.data_files in the task file")


def read_json_records(path: Path, field_name: str | None = None) -> list[dict]:
    """Records of a JSON Lines file, a JSON list, or ``{field_name: [...]}`` (as datasets' json builder)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read {path} ({type(exc).__name__}); pass UTF-8 JSON or JSONL") from None
    stripped = text.lstrip()
    try:
        if stripped.startswith("[") or (field_name and stripped.startswith("{")):
            data = json.loads(text)
            records = data[field_name] if field_name else data
        else:
            records = [json.loads(line) for line in text.splitlines() if line.strip()]
    except (ValueError, KeyError, TypeError) as exc:
        raise UserError(f"{path} is not JSON Lines or a JSON list of records ({type(exc).__name__}: {str(exc)[:80]})") from None
    if not all(isinstance(r, dict) for r in records):
        raise UserError(f"{path}: every record must be a JSON object (a row with named columns)")
    return records


def _local_splits(spec: TaskSpec) -> dict[str, list[dict]]:
    kw = dict(spec.dataset_kwargs or {})
    files = kw.get("data_files")
    if files is None:
        raise UserError(f"task {spec.task}: dataset_path json needs dataset_kwargs.data_files (a path or a mapping split -> path)")
    if isinstance(files, (str, list)):
        files = {"train": files}
    splits = {}
    for split, pats in files.items():
        pats = [pats] if isinstance(pats, str) else list(pats)
        splits[split] = [r for p in pats for f in _resolve(str(p), spec.base_dir) for r in read_json_records(f, kw.get("field"))]
    return splits


def _hub_splits(spec: TaskSpec) -> dict[str, list[dict]]:
    """Any other dataset_path goes to ``datasets.load_dataset`` (a local directory or a Hub name)."""
    import datasets

    try:
        ds = datasets.load_dataset(spec.dataset_path, spec.dataset_name, **(spec.dataset_kwargs or {}))
    except Exception as exc:  # noqa: BLE001 — offline, missing or malformed: one line either way
        raise UserError(f"task {spec.task}: cannot load dataset {spec.dataset_path!r} ({type(exc).__name__}: {str(exc)[:120]}); "
                        "for local data use dataset_path: json with dataset_kwargs.data_files") from None
    return {name: [dict(r) for r in split] for name, split in ds.items()}


def _pick(splits: dict[str, list[dict]], spec: TaskSpec) -> tuple[str, str]:
    """(evaluation split, few-shot split), following lm-eval's order of preference."""
    def check(name: str | None, what: str) -> str | None:
        if name is not None and name not in splits:
            raise UserError(f"task {spec.task}: {what} {name!r} is not in the data (splits: {', '.join(splits)})")
        return name

    ev = check(spec.test_split, "test_split") or check(spec.validation_split, "validation_split")
    if ev is None:
        if len(splits) != 1:
            raise UserError(f"task {spec.task}: set test_split to one of {', '.join(splits)}")
        ev = next(iter(splits))
    fs = check(spec.fewshot_split, "fewshot_split") or check(spec.training_split, "training_split")
    if fs is None:
        val = check(spec.validation_split, "validation_split")
        fs = val if val is not None and val != ev else ev
    return ev, fs


def _world_data(spec: TaskSpec, data_dir: Path | None) -> TaskData:
    if spec.world_task is None:
        raise ValueError(f"world-wide task {spec.task} must be expanded with expand_world_tasks first")
    if data_dir is None:
        raise UserError(f"task {spec.task} reads a world's token-id data (dataset_path: world); "
                        "evaluate it in a study, or pass --data STUDY/data")
    manifest_path = Path(data_dir) / "manifest.json"
    if not manifest_path.exists():
        raise UserError(f"{data_dir} has no manifest.json; pass the data/ directory of a prepared study")
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    info = manifest.get("tasks", {}).get(spec.world_task)
    if info is None:
        raise UserError(f"world task {spec.world_task!r} is not in {manifest_path} (tasks: {', '.join(manifest.get('tasks', {}))})")
    docs = read_json_records(Path(data_dir) / "tasks" / f"{spec.world_task}.jsonl")
    return TaskData(docs=docs, fewshot_docs=docs, same_split=True, token_delimiter=info.get("fewshot_delimiter"),
                    world_info=info, columns=sorted(docs[0]) if docs else [])


def load_task_data(spec: TaskSpec, data_dir: Path | None = None, limit: int | None = None) -> TaskData:
    """The evaluation documents (the first ``limit`` of them) and the few-shot pool of ``spec``."""
    if spec.dataset_path == "world":
        data = _world_data(spec, data_dir)
    else:
        splits = _local_splits(spec) if spec.dataset_path in ("json", "jsonl") else _hub_splits(spec)
        ev, fs = _pick(splits, spec)
        data = TaskData(docs=splits[ev], fewshot_docs=splits[fs], same_split=ev == fs,
                        columns=sorted({k for r in splits[ev][:50] for k in r}))
    if not data.docs:
        raise UserError(f"task {spec.task} has no documents; check its data file")
    if limit is not None:
        data.docs = data.docs[:limit]
    return data
