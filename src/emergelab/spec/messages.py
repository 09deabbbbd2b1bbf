"""One line for a spec that does not validate: the first error, its key path, and for a value out of range
the allowed range (read from the schema's bounds), so the message names the problem and the fix."""
from __future__ import annotations

from typing import Any, get_args

from pydantic import BaseModel, ValidationError

_BOUND_ERRORS = {"greater_than_equal", "less_than_equal", "greater_than", "less_than"}


def _constraints(annotation: Any) -> list:
    """annotated_types bounds (Ge, Gt, Le, Lt) on an ``Annotated`` type, through lists and optionals."""
    out = []
    for meta in getattr(annotation, "__metadata__", ()):
        out += list(getattr(meta, "metadata", [meta]))
    for arg in get_args(annotation):
        out += _constraints(arg)
    return out


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models an annotation holds, through lists, optionals, unions and ``Annotated``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in get_args(annotation) for m in _models_in(arg)]


def _bounds(loc: tuple, root: type[BaseModel]) -> tuple[Any, Any, str]:
    """(lower, upper, "≤" or "<" pair) of the field at ``loc`` of ``root``, as far as they are known."""
    model: Any = root
    metas: list = []
    for part in loc:
        if isinstance(part, int) or model is None:
            continue
        field = model.model_fields.get(str(part)) if isinstance(model, type) and issubclass(model, BaseModel) else None
        if field is None:
            continue
        metas = list(field.metadata) + _constraints(field.annotation)
        nested = _models_in(field.annotation)
        following = next((str(p) for p in loc[loc.index(part) + 1:] if not isinstance(p, int)), None)
        model = next((m for m in nested if following in m.model_fields), nested[0] if nested else None)
    lo = next(((m.ge, "≤") for m in metas if getattr(m, "ge", None) is not None),
              next(((m.gt, "<") for m in metas if getattr(m, "gt", None) is not None), (None, "")))
    hi = next(((m.le, "≤") for m in metas if getattr(m, "le", None) is not None),
              next(((m.lt, "<") for m in metas if getattr(m, "lt", None) is not None), (None, "")))
    return lo, hi, str(loc[-1]) if loc else "value"


def _range_message(err: dict, root: type[BaseModel]) -> str:
    """``123 is out of range; allowed: 1 ≤ steps ≤ 1000000000`` (the key path is added by the caller)."""
    loc = tuple(_key_path(err["loc"]))
    (lo, lo_op), (hi, hi_op), name = _bounds(loc, root)
    if isinstance(loc[-1], int):
        name = f"each value of {loc[-2]}" if len(loc) > 1 else "each value"
    parts = ([f"{lo:,} {lo_op}" if isinstance(lo, int) else f"{lo} {lo_op}"] if lo is not None else []) + [name] + (
        [f"{hi_op} {hi:,}" if isinstance(hi, int) else f"{hi_op} {hi}"] if hi is not None else [])
    if lo is None and hi is None:
        return err["msg"]
    value = err.get("input")
    return f"{value!r} is out of range; allowed: {' '.join(parts)}"


def _key_path(loc: tuple) -> list:
    """The spec's keys in a pydantic location, without the union branches it adds (``constrained-int``)."""
    return [p for p in loc if isinstance(p, int) or (str(p).isidentifier() and p not in ("int", "float", "str", "bool"))]


def first_error(exc: ValidationError, root: type[BaseModel]) -> str:
    """One line for a pydantic error: the key path and the message (the spec's error wording); ``root`` is
    the model the location starts at (the study spec, a world's parameters), for the allowed range of a value."""
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in _key_path(err["loc"])) or "<spec>"
    msg = err["msg"].removeprefix("Value error, ")
    if not err["loc"] and err["type"] == "value_error":  # a whole-spec check names its own keys
        return msg
    if err["type"] == "extra_forbidden":
        return f"{loc}: unknown key"
    if err["type"] == "literal_error":
        return f"{loc}: {msg} (got {err.get('input')!r})"
    if err["type"] in _BOUND_ERRORS and err["loc"]:
        return f"{loc}: {_range_message(err, root)}"
    return f"{loc}: {msg}"
