"""Documents to prompts, targets and choices, resolved exactly as lm-evaluation-harness resolves them.

A ``doc_to_*`` field is a column name (its value is used as is), a Jinja template rendered with the
document's columns (``{{question}}``; an undefined column is an error, as lm-eval's StrictUndefined),
an integer, or a list. ``doc_to_choice`` templates must render a Python list literal.
"""
from __future__ import annotations

import ast
import re
from functools import lru_cache
from typing import Any

from emergelab.errors import UserError


def _regex_replace(string: str, pattern: str, repl: str, count: int = 0) -> str:
    return re.sub(pattern, repl, string, count=count)


@lru_cache(maxsize=1)
def _env():
    from jinja2 import BaseLoader, Environment, StrictUndefined

    env = Environment(loader=BaseLoader(), undefined=StrictUndefined, keep_trailing_newline=True)  # noqa: S701 — prompts, not HTML
    env.filters["regex_replace"] = _regex_replace
    return env


@lru_cache(maxsize=256)
def _compile(template: str):
    return _env().from_string(template)


def render(template: str, doc: dict, *, task: str, what: str) -> str:
    """Render a Jinja template; a missing column or a syntax error is one line naming the field."""
    from jinja2 import TemplateSyntaxError, UndefinedError

    try:
        return _compile(template).render(**doc)
    except UndefinedError as exc:
        missing = re.search(r"'([^']+)' is undefined", str(exc))
        col = f"column {missing.group(1)!r}" if missing else "a missing value"
        raise UserError(f"task {task}: {what} template {template!r} refers to {col}, which the data lacks "
                        f"(columns: {', '.join(sorted(doc))})") from None
    except TemplateSyntaxError as exc:
        raise UserError(f"task {task}: {what} template {template!r} is not valid Jinja ({exc.message})") from None
    except Exception as exc:  # noqa: BLE001 — an error inside the template's own expression
        raise UserError(f"task {task}: {what} template {template!r} failed on a document ({type(exc).__name__}: {exc})") from None


def doc_to_text(spec, doc: dict) -> Any:
    """The prompt: a string (text tasks) or a list of token ids (world tasks)."""
    v = spec.doc_to_text
    if isinstance(v, int):
        return v
    if v in doc:
        return doc[v]
    out = render(v, doc, task=spec.task, what="doc_to_text")
    if out.isdigit() and spec.doc_to_choice is not None:
        raise UserError(f"task {spec.task}: doc_to_text renders a choice index (a multiple-input task); "
                        "emergelab supports one context per document — put the context in doc_to_text")
    return out


def doc_to_target(spec, doc: dict) -> Any:
    """The gold answer: a string, a choice index, a list of token ids, or a list of gold strings."""
    v = spec.doc_to_target
    if isinstance(v, (int, list)):
        return v
    if v in doc:
        return doc[v]
    out = render(v, doc, task=spec.task, what="doc_to_target")
    if out.isdigit() and spec.doc_to_choice is not None:
        return ast.literal_eval(out)
    if len(out) >= 2 and out[0] == "[" and out[-1] == "]":
        try:
            return ast.literal_eval(out)
        except (SyntaxError, ValueError):
            return out
    return out


def doc_to_choice(spec, doc: dict) -> list | None:
    """The candidate answers (strings or token-id lists), or None when the task has none."""
    v = spec.doc_to_choice
    if v is None:
        return doc.get("choices") if spec.dataset_path == "world" else None
    if isinstance(v, list):
        return v
    if isinstance(v, dict):
        return list(v.values())
    if v in doc:
        return doc[v]
    out = render(v, doc, task=spec.task, what="doc_to_choice")
    try:
        choices = ast.literal_eval(out)
    except (SyntaxError, ValueError):
        raise UserError(f"task {spec.task}: doc_to_choice {v!r} must render a list literal such as ['yes', 'no'], got {out[:60]!r}") from None
    if not isinstance(choices, (list, tuple)) or not choices:
        raise UserError(f"task {spec.task}: doc_to_choice {v!r} rendered {out[:60]!r}, not a non-empty list")
    return list(choices)


def gold_index(spec, target: Any, choices: list) -> int:
    """The index of the gold answer among the choices (lm-eval: an int index or the answer string)."""
    if isinstance(target, list) and target and not all(isinstance(t, int) for t in target):
        target = target[0]  # several gold strings: score the first (lm-eval's multiple_target scores any)
    if isinstance(target, int) and not isinstance(target, bool):
        if 0 <= target < len(choices):
            return target
    elif target in choices:
        return choices.index(target)
    raise UserError(f"task {spec.task}: the target {str(target)[:40]!r} is neither a choice nor a valid index "
                    f"into {len(choices)} choices; fix doc_to_target")


def check_documents(spec, docs: list[dict]) -> None:
    """Resolve every template on every document (and the gold choice), so that a missing column or a
    bad target is reported before a model is even loaded."""
    for doc in docs:
        doc_to_text(spec, doc)
        target, choices = doc_to_target(spec, doc), doc_to_choice(spec, doc)
        if choices is not None and spec.output_type in ("multiple_choice", "cloze", "auto"):
            gold_index(spec, target, choices)
        if spec.doc_to_suffix:
            render(spec.doc_to_suffix, doc, task=spec.task, what="doc_to_suffix")
