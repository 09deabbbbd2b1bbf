"""Labelled data for probes and fine-tuning: texts with a class, or token sequences with a tag each.

Formats (``task="classify"``): CSV, TSV or JSON Lines with a text column and a label column.
Formats (``task="tag"``): ``word/TAG`` tokens, one sentence per line (Brown corpus, People's Daily),
or a folder of such files; CoNLL columns (token TAB tag, a blank line between sentences; CoNLL-U
takes FORM and UPOS); JSON Lines whose text and label columns hold equal-length lists.

Invalid UTF-8 is replaced by U+FFFD and counted in ``n_replaced_chars``, never dropped. The label
vocabulary is ``label_names`` (sorted; numerically when every label is an integer) and ``labels``
hold indices into it.
"""
from __future__ import annotations

import io
import json
import logging
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal, Sequence

from emergelab.corpus.readers import decode_bytes, json_lines
from emergelab.errors import UserError

log = logging.getLogger(__name__)

Task = Literal["classify", "tag"]
TASKS = ("classify", "tag")
_JSONL_SUFFIXES = {".jsonl", ".ndjson", ".json"}
_TSV_SUFFIXES = {".tsv", ".tab"}
_CONLL_SUFFIXES = {".conll", ".conllu", ".conllx", ".iob", ".bio"}


@dataclass
class LabelledData:
    """Labelled examples: ``texts`` (classify) or ``tokens`` (tag), with label indices."""

    task: str
    texts: list[str] | None
    tokens: list[list[str]] | None
    labels: list[int] | list[list[int]]
    label_names: list[str]
    n_replaced_chars: int
    source: str

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def n_labels(self) -> int:
        """Size of the label vocabulary."""
        return len(self.label_names)

    @classmethod
    def from_texts(cls, texts: Sequence[str], labels: Sequence, *, source: str = "<memory>",
                   n_replaced_chars: int = 0, min_classes: int = 2) -> "LabelledData":
        """Classification data from parallel lists of texts and label values (any hashable)."""
        if len(texts) != len(labels):
            raise UserError(f"{source}: {len(texts)} texts but {len(labels)} labels; give one label per text")
        names = _label_vocabulary([str(v) for v in labels], source, min_classes=min_classes)
        index = {n: i for i, n in enumerate(names)}
        return cls("classify", [str(t) for t in texts], None, [index[str(v)] for v in labels], names,
                   n_replaced_chars, source)

    @classmethod
    def from_tagged(cls, tokens: Sequence[Sequence[str]], tags: Sequence[Sequence], *,
                    source: str = "<memory>", n_replaced_chars: int = 0, min_classes: int = 2) -> "LabelledData":
        """Tagging data from sentences of tokens and their per-token tags."""
        if len(tokens) != len(tags):
            raise UserError(f"{source}: {len(tokens)} sentences but {len(tags)} tag sequences")
        for i, (ws, ts) in enumerate(zip(tokens, tags)):
            if len(ws) != len(ts):
                raise UserError(f"{source}: sentence {i + 1} has {len(ws)} tokens but {len(ts)} tags; give one tag per token")
        names = _label_vocabulary([str(t) for ts in tags for t in ts], source, "tag", min_classes)
        index = {n: i for i, n in enumerate(names)}
        return cls("tag", None, [list(map(str, ws)) for ws in tokens],
                   [[index[str(t)] for t in ts] for ts in tags], names, n_replaced_chars, source)

    def subset(self, indices: Sequence[int]) -> "LabelledData":
        """The examples at ``indices`` (label vocabulary unchanged)."""
        idx = list(indices)
        return replace(
            self,
            texts=None if self.texts is None else [self.texts[i] for i in idx],
            tokens=None if self.tokens is None else [self.tokens[i] for i in idx],
            labels=[self.labels[i] for i in idx],
        )

    def label_counts(self) -> dict[str, int]:
        """Occurrences of each label (tokens, for tagging)."""
        counts = [0] * self.n_labels
        for y in self.labels:
            for v in (y if isinstance(y, list) else [y]):
                counts[v] += 1
        return dict(zip(self.label_names, counts))

    def with_label_names(self, names: Sequence[str], *, reference: str = "the training data") -> "LabelledData":
        """Re-index labels onto another vocabulary; a label missing from it is a UserError."""
        names = list(names)
        unseen = sorted(set(self.label_names) - set(names))
        if unseen:
            shown = ", ".join(repr(u) for u in unseen[:5]) + (" …" if len(unseen) > 5 else "")
            raise UserError(
                f"{self.source} has label(s) {shown} that never occur in {reference} (labels there: "
                f"{', '.join(names[:10])}{' …' if len(names) > 10 else ''}); remove those examples or add training examples with them"
            )
        index = {n: i for i, n in enumerate(names)}
        old_to_new = [index[n] for n in self.label_names]
        labels = [[old_to_new[v] for v in y] if isinstance(y, list) else old_to_new[y] for y in self.labels]
        return replace(self, labels=labels, label_names=names)


def load_labelled(
    path: str | Path,
    *,
    task: Task,
    text_column: str = "text",
    label_column: str = "label",
    encoding_errors: str = "replace",
    min_classes: int = 2,
) -> LabelledData:
    """Read labelled data from ``path`` (a file, or for ``tag`` a folder of tagged files).

    Fewer than ``min_classes`` distinct labels is an error (training data needs two; evaluation data
    may pass 1).
    """
    if task not in TASKS:
        raise UserError(f"unknown task {task!r}; choose one of: {', '.join(TASKS)}")
    if encoding_errors not in ("replace", "strict"):
        raise UserError(f"encoding_errors must be 'replace' or 'strict', not {encoding_errors!r}")
    path = Path(path).expanduser()
    if not path.exists():
        raise UserError(f"labelled data {path} does not exist; check the path")
    if path.is_dir():
        if task == "classify":
            raise UserError(f"{path} is a folder; classification data is one CSV, TSV or JSONL file")
        return _load_tag_folder(path, text_column, label_column, encoding_errors, min_classes)
    text, n_bad = _read_text(path, encoding_errors)
    if task == "classify":
        data = _parse_classify(text, path, text_column, label_column, min_classes)
    else:
        data = _parse_tag(text, path, text_column, label_column, min_classes)
    data.n_replaced_chars = n_bad
    if n_bad:
        log.warning("%s: %d invalid UTF-8 sequence(s) replaced by U+FFFD", path, n_bad)
    return data


# ----------------------------------------------------------------------------- reading bytes


def _read_text(path: Path, encoding_errors: str) -> tuple[str, int]:
    """Decode ``path`` as UTF-8; return the text and the number of replaced invalid sequences."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror}; check the path and its permissions") from None
    if not raw.strip():
        raise UserError(f"{path} is empty; give a file with labelled examples")
    text, n_bad = decode_bytes(raw, str(path))
    if n_bad and encoding_errors == "strict":
        raise UserError(f"{path} is not valid UTF-8 ({n_bad} invalid byte sequences); re-encode it as UTF-8 or use "
                        "encoding_errors='replace'")
    return text, n_bad


def _label_vocabulary(values: Sequence[str], source: str, column: str = "label", min_classes: int = 2) -> list[str]:
    names = sorted(set(values))
    if not names:
        raise UserError(f"{source} has no labels; give labelled examples")
    if len(names) < min_classes:
        only = repr(names[0]) if names else "none"
        raise UserError(f"{source}: the {column} column has only one class ({only}); a classifier needs at least two")
    try:
        return sorted(names, key=int)
    except ValueError:
        return names


# ----------------------------------------------------------------------------- classification


def _parse_classify(text: str, path: Path, text_column: str, label_column: str, min_classes: int) -> LabelledData:
    suffix = path.suffix.lower()
    if suffix in _JSONL_SUFFIXES or (suffix not in _TSV_SUFFIXES | {".csv"} and _looks_json(text)):
        rows = _read_jsonl(text, path)
        columns = list(dict.fromkeys(k for r in rows for k in r))
        texts_raw = [r.get(text_column) for r in rows] if text_column in columns else None
        labels_raw = [r.get(label_column) for r in rows] if label_column in columns else None
    else:
        sep = "\t" if suffix in _TSV_SUFFIXES or (suffix != ".csv" and "\t" in text.split("\n", 1)[0]) else ","
        import pandas as pd

        try:
            df = pd.read_csv(io.StringIO(text), sep=sep, dtype=str, keep_default_na=False)
        except Exception as exc:  # pandas ParserError / EmptyDataError
            msg = " ".join(str(exc).split())
            raise UserError(f"cannot parse {path} as {'TSV' if sep == chr(9) else 'CSV'}: {msg}; check the quoting or give JSONL") from None
        columns = [str(c) for c in df.columns]
        texts_raw = df[text_column].tolist() if text_column in df.columns else None
        labels_raw = df[label_column].tolist() if label_column in df.columns else None
    for name, kind, values in ((text_column, "text", texts_raw), (label_column, "label", labels_raw)):
        if values is None:
            raise UserError(
                f"{path} has no {kind} column {name!r}; its columns are: {', '.join(columns) or '(none)'}; "
                f"pass --{kind}-column"
            )
    if not labels_raw:
        raise UserError(f"{path} has a header but no rows; give a file with labelled examples")
    for i, (t, y) in enumerate(zip(texts_raw, labels_raw)):
        if y is None or str(y).strip() == "":
            raise UserError(f"{path}: example {i + 1} has an empty {label_column!r}; label it or remove it")
        if t is None:
            raise UserError(f"{path}: example {i + 1} has no {text_column!r}; add the text or remove it")
    labels = [str(y).strip() for y in labels_raw]
    names = _label_vocabulary(labels, str(path), repr(label_column), min_classes)
    index = {n: i for i, n in enumerate(names)}
    return LabelledData("classify", [str(t) for t in texts_raw], None, [index[y] for y in labels], names, 0, str(path))


def _looks_json(text: str) -> bool:
    """A JSON object per line, or a JSON array of objects (not a line starting with a bracketed word)."""
    return re.match(r"\s*(\{|\[\s*[{\]])", text) is not None


def _read_jsonl(text: str, path: Path) -> list[dict]:
    stripped = text.lstrip()
    if stripped.startswith("["):  # a plain JSON array of objects
        try:
            rows = json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise UserError(f"{path} is not valid JSON ({exc.msg}, line {exc.lineno}); give JSON Lines, one object per line") from None
    else:
        rows = json_lines(text, path)
    if not all(isinstance(r, dict) for r in rows):
        raise UserError(f"{path}: every JSON line must be an object with the text and label columns")
    if not rows:
        raise UserError(f"{path} has no JSON objects; give a file with labelled examples")
    return rows


# ----------------------------------------------------------------------------- tagging


def _parse_tag(text: str, path: Path, text_column: str, label_column: str, min_classes: int) -> LabelledData:
    suffix = path.suffix.lower()
    if suffix in _JSONL_SUFFIXES or _looks_json(text):
        rows = _read_jsonl(text, path)
        tokens = [r.get(text_column) for r in rows]
        tags = [r.get(label_column) for r in rows]
        if any(not isinstance(v, list) for v in tokens + tags):
            columns = list(dict.fromkeys(k for r in rows for k in r))
            raise UserError(
                f"{path}: tagging JSONL needs list-valued columns {text_column!r} (tokens) and {label_column!r} (tags); "
                f"its columns are: {', '.join(columns)}; pass --text-column/--label-column"
            )
        return LabelledData.from_tagged(tokens, tags, source=str(path), min_classes=min_classes)
    if suffix in _CONLL_SUFFIXES or _looks_conll(text):
        tokens, tags = _parse_conll(text, path, label_column)
    else:
        tokens, tags = _parse_slash_tagged(text, path)
    if not tokens:
        raise UserError(f"{path} has no tagged sentences; give word/TAG lines or CoNLL columns")
    return LabelledData.from_tagged(tokens, tags, source=str(path), min_classes=min_classes)


def _content_lines(text: str, n: int = 20) -> list[str]:
    out = []
    for line in text.splitlines():
        s = line.strip()
        if s and not s.startswith("#"):
            out.append(s)
            if len(out) >= n:
                break
    return out


def _looks_conll(text: str) -> bool:
    """CoNLL: stripped content lines are tab-separated columns, one token per line."""
    lines = _content_lines(text)
    return bool(lines) and sum("\t" in s for s in lines) >= 0.8 * len(lines)


def _tagged_fraction(text: str) -> float:
    """Fraction of whitespace tokens of the first lines that look like ``word/TAG``."""
    toks = [t for s in _content_lines(text) for t in s.split()]
    return sum(_split_slash(t) is not None for t in toks) / max(1, len(toks))


def _split_slash(token: str) -> tuple[str, str] | None:
    word, sep, tag = token.rpartition("/")
    if not sep or not word or not tag:
        return None
    if word.startswith("[") and len(word) > 1:  # People's Daily compound brackets: [中央/n ... 台]nt
        word = word[1:]
    if "]" in tag:
        tag = tag.split("]", 1)[0]
    return (word, tag) if tag else None


def _parse_slash_tagged(text: str, path: Path) -> tuple[list[list[str]], list[list[str]]]:
    tokens, tags = [], []
    for lineno, line in enumerate(text.splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        ws, ts = [], []
        for tok in parts:
            pair = _split_slash(tok)
            if pair is None:
                raise UserError(
                    f"{path}: line {lineno} has token {tok[:40]!r} without a /TAG; tagged text is word/TAG tokens "
                    "separated by spaces, one sentence per line (or give CoNLL columns)"
                )
            ws.append(pair[0])
            ts.append(pair[1])
        tokens.append(ws)
        tags.append(ts)
    return tokens, tags


def _parse_conll(text: str, path: Path, label_column: str) -> tuple[list[list[str]], list[list[str]]]:
    lines = _content_lines(text, 5)
    first = lines[0].split("\t") if lines else []
    conllu = len(first) == 10 and first[0].split("-")[0].split(".")[0].isdigit()
    tokens, tags, ws, ts = [], [], [], []
    for lineno, line in enumerate(text.splitlines() + [""], 1):
        s = line.strip()
        if not s:
            if ws:
                tokens.append(ws)
                tags.append(ts)
                ws, ts = [], []
            continue
        if s.startswith("#") or s.startswith("-DOCSTART-"):
            continue
        cols = s.split("\t") if "\t" in s else s.split()
        if conllu:
            if not cols[0].isdigit():  # multi-word ranges (1-2) and empty nodes (1.1)
                continue
            word, tag = cols[1], cols[3]
        else:
            if len(cols) < 2:
                raise UserError(f"{path}: line {lineno} has one column; CoNLL lines are token TAB tag, sentences separated by a blank line")
            col = int(label_column) if label_column.isdigit() else len(cols) - 1
            if col >= len(cols):
                raise UserError(f"{path}: line {lineno} has {len(cols)} columns, no column {col}; pass a smaller --label-column")
            word, tag = cols[0], cols[col]
        ws.append(word)
        ts.append(tag)
    return tokens, tags


def _load_tag_folder(folder: Path, text_column: str, label_column: str, encoding_errors: str,
                     min_classes: int) -> LabelledData:
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
    tokens, tags, n_bad, used, skipped = [], [], 0, 0, []
    for f in files:
        try:
            text, bad = _read_text(f, encoding_errors)
        except UserError:
            skipped.append(f.name)  # binary or empty files beside the corpus (pickles, READMEs)
            continue
        if not (_looks_conll(text) or f.suffix.lower() in _CONLL_SUFFIXES) and _tagged_fraction(text) < 0.9:
            skipped.append(f.name)
            continue
        part = _parse_tag(text, f, text_column, label_column, 1)
        tokens += part.tokens
        tags += [[part.label_names[v] for v in y] for y in part.labels]
        n_bad += bad
        used += 1
    if not used:
        raise UserError(f"{folder} holds no tagged files (word/TAG per token or CoNLL columns); point at the corpus folder")
    if skipped:
        log.info("%s: skipped %d file(s) that are not tagged text: %s", folder, len(skipped), ", ".join(skipped[:10]))
    return LabelledData.from_tagged(tokens, tags, source=str(folder), n_replaced_chars=n_bad, min_classes=min_classes)
