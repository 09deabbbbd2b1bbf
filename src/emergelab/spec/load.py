"""Reading a spec: YAML files, presets, ``--set`` overrides, and the schema's error wording.

``spec_data`` resolves a file or preset and its overrides into plain data; ``parse`` checks it
against the schema. ``emergelab.study.validate`` adds the stages' checks: call that, not ``parse``,
to get a spec the stages trust.
"""
from __future__ import annotations

from importlib import resources
from pathlib import Path

import yaml
from pydantic import BaseModel, ValidationError

from emergelab.errors import UserError
from emergelab.spec.messages import first_error
from emergelab.spec.schema import StudySpec, plain


def _allowed_keys(exc: ValidationError) -> str:
    err = exc.errors()[0]
    if err["type"] != "extra_forbidden":
        return ""
    model: type[BaseModel] = StudySpec
    for part in err["loc"][:-1]:
        field = model.model_fields.get(str(part))
        ann = getattr(field, "annotation", None) if field else None
        ann = getattr(ann, "__args__", (ann,))[0] if ann is not None and hasattr(ann, "__args__") else ann
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            model = ann
        elif isinstance(part, int):
            continue
        else:
            return ""
    return "; allowed keys: " + ", ".join(model.model_fields)


def presets() -> list[str]:
    return sorted(p.name.removesuffix(".yaml") for p in resources.files("emergelab.presets").iterdir() if p.name.endswith(".yaml"))


def _load_yaml(text: str, where: str) -> dict:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        pos = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise UserError(f"{where} is not valid YAML{pos}: {getattr(exc, 'problem', exc)}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise UserError(f"{where} must be a YAML mapping of keys to values, got {type(data).__name__}")
    return data


def preset_dict(name: str) -> dict:
    if name not in presets():
        raise UserError(f"unknown preset {name!r}; allowed: {', '.join(presets())}")
    text = resources.files("emergelab.presets").joinpath(f"{name}.yaml").read_text()
    return _load_yaml(text, f"preset {name}")


def apply_override(data: dict, assignment: str) -> None:
    """Apply ``a.b.c=<yaml value>`` to the nested dict ``data`` in place."""
    if "=" not in assignment:
        raise UserError(f"--set {assignment!r} must look like key.path=value (e.g. train.steps=200)")
    key, raw = assignment.split("=", 1)
    parts = [p for p in key.strip().split(".")]
    if not all(parts):
        raise UserError(f"--set {assignment!r}: empty key in {key!r}")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        raise UserError(f"--set {key}: {raw!r} is not a valid YAML value") from None
    node = data
    for p in parts[:-1]:
        if isinstance(node, list) and p.isdigit() and int(p) < len(node):
            node = node[int(p)]
            continue
        if not isinstance(node, dict):
            raise UserError(f"--set {key}: {p!r} is not inside a mapping")
        node = node.setdefault(p, {})
        if node is None:
            node = {}
    last = parts[-1]
    if isinstance(node, list) and last.isdigit() and int(last) < len(node):
        node[int(last)] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise UserError(f"--set {key}: cannot set {last!r} here")


def parse(data: dict, where: str = "spec") -> StudySpec:
    """The data checked against the schema (no stage checks: see ``emergelab.study.validate``)."""
    try:
        return StudySpec.model_validate(data)
    except ValidationError as exc:
        raise UserError(f"{where}: {first_error(exc, StudySpec)}{_allowed_keys(exc)}") from None


def spec_data(path: str | Path | None = None, preset: str | None = None,
              overrides: list[str] | None = None) -> tuple[dict, str]:
    """(data, where): a YAML file (its ``preset:`` key, if any, is the base) or a preset, then ``--set``."""
    data: dict = {}
    where = "spec"
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise UserError(f"spec file {p} does not exist; pass a YAML file or use --preset ({', '.join(presets())})")
        try:
            text = p.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UserError(f"cannot read spec {p}: {exc.__class__.__name__}; pass a UTF-8 YAML file") from None
        data = _load_yaml(text, str(p))
        where = str(p)
        base = data.pop("preset", None) or preset
        if base:
            base_data = preset_dict(base)
            if data.get("world", base_data.get("world")) != base_data.get("world"):
                _drop_world_bound(base_data)
            data = _deep_merge(base_data, data)
    else:
        data = preset_dict(preset or "default")
        where = f"preset {preset or 'default'}"
    base_world = data.get("world")
    world_sets = [a for a in overrides or [] if a.split("=", 1)[0].strip() == "world"]
    if world_sets:
        apply_override(data, world_sets[-1])
        if data.get("world") != base_world:
            _drop_world_bound(data)  # --set world=text
    base_rungs = _rung_names(data)
    for a in overrides or []:
        apply_override(data, a)
    _drop_stale_rung_choice(data, base_rungs, overrides or [])
    return data, where


def _drop_world_bound(data: dict) -> None:
    """A base's ``world_args`` and ``finetune.task`` belong to the base's world; another world uses its own defaults."""
    data.pop("world_args", None)
    if isinstance(data.get("finetune"), dict):
        data["finetune"].pop("task", None)


def _rung_names(data: dict) -> list | None:
    ladder = data.get("ladder")
    return [r.get("name") for r in ladder if isinstance(r, dict)] if isinstance(ladder, list) else None


def _drop_stale_rung_choice(data: dict, base_rungs: list | None, overrides: list[str]) -> None:
    """``--set ladder=…`` replaces the rungs a preset's ``finetune.rungs`` named: the choice falls back to every
    rung (as a changed world drops the base's ``world_args``), unless ``finetune.rungs`` is set too."""
    finetune = data.get("finetune")
    if not isinstance(finetune, dict) or "rungs" not in finetune:
        return
    if any(a.split("=", 1)[0].strip() == "finetune.rungs" for a in overrides):
        return
    if _rung_names(data) != base_rungs:
        finetune.pop("rungs")


def _deep_merge(base: dict, top: dict) -> dict:
    out = dict(base)
    for k, v in top.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def dump_yaml(spec: StudySpec) -> str:
    body = yaml.safe_dump(plain(spec), sort_keys=False)
    return f"# resolved study spec; spec_hash: {spec.hash()}\n{body}"
