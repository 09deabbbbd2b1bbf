"""Reading a real corpus into documents: text files or folders, JSONL/CSV/Parquet columns, `datasets`.

Invalid UTF-8 is replaced by U+FFFD and counted, never dropped. Bad input (a missing path, an empty
corpus, a binary file, a missing column) is one UserError naming the problem and the fix.
"""
from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from emergelab.errors import UserError

DOC_SPLITS = ("auto", "file", "paragraph", "line", "percent")
_TABLE_SUFFIXES = {".jsonl", ".ndjson", ".json", ".csv", ".tsv", ".parquet"}
_SKIP_SUFFIXES = {".gz", ".zip", ".bz2", ".xz", ".pkl", ".npy", ".npz", ".pt", ".bin", ".safetensors", ".dat"}
_BINARY_PROBE = 1 << 16
_PERCENT_LINE = re.compile(r"(?m)^%[ \t]*\r?$")
_BLANK_LINES = re.compile(r"\n[ \t]*\r?\n(?:[ \t]*\r?\n)*")
_TAGGED = re.compile(r"^\S+/[^\s/]+$")


@dataclass
class RawCorpus:
    """Documents as read (not yet cleaned or segmented), with what reading them noticed."""

    documents: list[str]
    source: str
    n_files: int = 0
    skipped_files: list[str] = field(default_factory=list)
    n_replaced_chars: int = 0
    tagged_files: int = 0  # word/TAG files whose tags were stripped


def decode_bytes(raw: bytes, where: str) -> tuple[str, int]:
    """Text of ``raw`` and the number of invalid UTF-8 sequences replaced by U+FFFD.

    A UTF-16 byte-order mark is honoured; NUL bytes in a file without one mean a binary file (UserError).
    """
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        text = raw.decode("utf-16", errors="replace")
        return text, text.count("\ufffd")
    if b"\x00" in raw[:_BINARY_PROBE]:
        raise UserError(f"{where} looks like a binary file (it contains NUL bytes); give UTF-8 text, JSONL, CSV or a datasets directory")
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        return raw.decode("utf-8"), 0
    except UnicodeDecodeError:
        text = raw.decode("utf-8", errors="replace")
        # each invalid sequence becomes one U+FFFD; a U+FFFD already present is the bytes EF BF BD
        return text, text.count("\ufffd") - raw.count(b"\xef\xbf\xbd")


def json_lines(text: str, where) -> list:
    """The values of a JSON Lines text (blank lines skipped); a bad line is one UserError naming it."""
    rows = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise UserError(f"{where}: line {lineno} is not valid JSON ({exc.msg}); give one JSON object per line") from None
    return rows


def is_tagged(text: str, lines: int = 20) -> bool:
    """Whether the text is ``word/TAG`` tokens (Brown, People's Daily): ≥ 90 % of the first tokens."""
    toks = []
    for line in text.splitlines():
        if line.strip():
            toks += line.split()
            lines -= 1
            if lines == 0:
                break
    return len(toks) >= 5 and sum(bool(_TAGGED.match(t)) for t in toks) >= 0.9 * len(toks)


def strip_tags(text: str) -> str:
    """``The/at jury/nn said/vbd`` → ``The jury said``; ``[中央/n 台]nt`` → ``中央台`` (no space between Han)."""
    out_lines = []
    for line in text.splitlines():
        words = []
        for tok in line.split():
            word, sep, _tag = tok.rpartition("/")
            word = word if sep else tok
            if word.startswith("[") and len(word) > 1:
                word = word[1:]
            if word:
                words.append(word)
        out_lines.append(join_words(words))
    return "\n".join(out_lines)


def _is_han(ch: str) -> bool:
    return "\u2e80" <= ch <= "\u9fff" or "\uf900" <= ch <= "\ufaff" or "\u3000" <= ch <= "\u303f" or "\uff00" <= ch <= "\uffef"


def join_words(words: list[str]) -> str:
    """Words joined by spaces, except where both neighbours are CJK characters or full-width punctuation."""
    out = ""
    for w in words:
        if out and not (_is_han(out[-1]) and _is_han(w[0])):
            out += " "
        out += w
    return out


def split_documents(text: str, how: str) -> list[str]:
    """One file's text cut into documents: ``file`` (whole), ``paragraph`` (blank lines), ``line``,
    ``percent`` (lines holding only ``%``, the fortune format)."""
    if how == "file":
        parts = [text]
    elif how == "line":
        parts = text.splitlines()
    elif how == "percent":
        parts = _PERCENT_LINE.split(text)
    else:
        parts = _BLANK_LINES.split(text)
    return [p for p in parts if p.strip()]


def _file_documents(text: str, how: str, many_files: bool) -> list[str]:
    if how == "auto":
        how = "percent" if _PERCENT_LINE.search(text) else ("file" if many_files else "paragraph")
    return split_documents(text, how)


def _column_values(rows_columns: list[str], values, column: str, where: str) -> list[str]:
    if values is None:
        raise UserError(f"{where} has no column {column!r}; its columns are: {', '.join(map(str, rows_columns)) or '(none)'}; "
                        f"set world_args.column")
    return [v for v in values if isinstance(v, str) and v.strip()]


def _table_documents(text: str | None, path: Path, column: str) -> list[str]:
    suffix = path.suffix.lower()
    import pandas as pd

    try:
        if suffix == ".parquet":
            df = pd.read_parquet(path)
        elif suffix in (".jsonl", ".ndjson", ".json"):
            stripped = (text or "").lstrip()
            if stripped.startswith("["):
                rows = json.loads(stripped)
            else:
                rows = json_lines(text or "", path)
            if not all(isinstance(r, dict) for r in rows):
                raise UserError(f"{path}: every JSON line must be an object with a {column!r} field")
            cols = list(dict.fromkeys(k for r in rows for k in r))
            return _column_values(cols, [r.get(column) for r in rows] if column in cols else None, column, str(path))
        else:
            df = pd.read_csv(io.StringIO(text or ""), sep="\t" if suffix == ".tsv" else ",", dtype=str, keep_default_na=False)
    except UserError:
        raise
    except Exception as exc:  # pandas/pyarrow/json parse errors
        msg = " ".join(str(exc).split())[:200]
        raise UserError(f"cannot parse {path}: {msg}; check the file format") from None
    cols = [str(c) for c in df.columns]
    return _column_values(cols, df[column].tolist() if column in df.columns else None, column, str(path))


def _is_datasets_dir(path: Path) -> bool:
    return any((path / f).exists() for f in ("dataset_info.json", "state.json", "dataset_dict.json"))


def _datasets_documents(ds, column: str, where: str, split: str) -> list[str]:
    from datasets import DatasetDict

    if isinstance(ds, DatasetDict):
        if split not in ds:
            raise UserError(f"{where} has no split {split!r}; its splits are: {', '.join(ds)}; set world_args.split")
        ds = ds[split]
    if column not in ds.column_names:
        raise UserError(f"{where} has no column {column!r}; its columns are: {', '.join(ds.column_names)}; set world_args.column")
    return [v for v in ds[column] if isinstance(v, str) and v.strip()]


def read_corpus(source: str | Path, *, column: str = "text", doc_split: str = "auto", split: str = "train") -> RawCorpus:
    """Documents of a corpus: a text file or a folder (read recursively), a JSONL/CSV/TSV/Parquet file
    (one document per row, from ``column``), a saved ``datasets`` directory, or a ``datasets`` name.

    Plain text is cut into documents by ``doc_split``; ``auto`` uses ``%`` lines where a file has them
    (fortune files), else one document per file in a folder of several files, else paragraphs. Files of
    ``word/TAG`` tokens have their tags stripped.
    """
    if doc_split not in DOC_SPLITS:
        raise UserError(f"doc_split {doc_split!r} is unknown; choose one of: {', '.join(DOC_SPLITS)}")
    src = str(source)
    path = Path(src).expanduser()
    if not path.exists():
        if src.startswith((".", "/", "~")) or Path(src).suffix.lower() in _TABLE_SUFFIXES | {".txt"} or "\\" in src:
            raise UserError(f"corpus {src} does not exist; give a text file or folder, a JSONL/CSV file or a datasets directory")
        return _read_hub(src, column, split)
    if path.is_dir() and _is_datasets_dir(path):
        from datasets import load_from_disk

        try:
            ds = load_from_disk(str(path))
        except Exception as exc:  # a damaged Arrow directory
            raise UserError(f"cannot load the datasets directory {path}: {' '.join(str(exc).split())[:200]}") from None
        docs = _datasets_documents(ds, column, str(path), split)
        return _nonempty(RawCorpus(docs, str(path), n_files=1), path)
    return _read_files(path, column, doc_split)


def _read_files(path: Path, column: str, doc_split: str) -> RawCorpus:
    """The documents of a file, or of every file of a folder (binary, empty and foreign files skipped)."""
    files = _corpus_files(path) if path.is_dir() else [path]
    corpus = RawCorpus([], str(path))
    table_errors: list[UserError] = []
    for f in files:
        try:
            raw = f.read_bytes()
        except OSError as exc:
            raise UserError(f"cannot read {f}: {exc.strerror}; check the path and its permissions") from None
        binary = b"\x00" in raw[:_BINARY_PROBE] and not raw.startswith((b"\xff\xfe", b"\xfe\xff"))
        if path.is_dir() and f.suffix.lower() != ".parquet" and (not raw.strip() or binary):
            corpus.skipped_files.append(str(f.relative_to(path)))  # index files, images … beside the texts
            continue
        try:
            docs = _one_file(corpus, f, raw, column, doc_split, many=len(files) > 1)
        except UserError as exc:
            if not path.is_dir() or f.suffix.lower() not in _TABLE_SUFFIXES:
                raise
            table_errors.append(exc)  # package.json & co. beside the texts; an error if nothing else is found
            corpus.skipped_files.append(str(f.relative_to(path)))
            continue
        corpus.documents += docs
        corpus.n_files += 1
    if not corpus.documents and table_errors:
        raise table_errors[0]
    return _nonempty(corpus, path)


def _one_file(corpus: RawCorpus, f: Path, raw: bytes, column: str, doc_split: str, *, many: bool) -> list[str]:
    """One file's documents (a table's rows, or plain text cut by ``doc_split``); counts go to ``corpus``."""
    if f.suffix.lower() in _TABLE_SUFFIXES:
        text, n_bad = (None, 0) if f.suffix.lower() == ".parquet" else decode_bytes(raw, str(f))
        docs = _table_documents(text, f, column)
        corpus.n_replaced_chars += n_bad
        return docs
    text, n_bad = decode_bytes(raw, str(f))
    corpus.n_replaced_chars += n_bad
    if is_tagged(text):
        text = strip_tags(text)
        corpus.tagged_files += 1
    return _file_documents(text, doc_split, many)


def _corpus_files(folder: Path) -> list[Path]:
    """Regular files under ``folder``, sorted, skipping hidden ones, archives and links to files already listed."""
    seen, out = set(), []
    for f in sorted(folder.rglob("*")):
        if not f.is_file() or any(part.startswith(".") for part in f.relative_to(folder).parts):
            continue
        if f.suffix.lower() in _SKIP_SUFFIXES:
            continue
        real = f.resolve()
        if real in seen:  # fortune files come with .u8 symlinks to themselves
            continue
        seen.add(real)
        out.append(f)
    return out


def _nonempty(corpus: RawCorpus, path: Path) -> RawCorpus:
    if not corpus.documents:
        extra = f" (skipped {len(corpus.skipped_files)} binary or empty file(s))" if corpus.skipped_files else ""
        raise UserError(f"corpus {path} has no text{extra}; give a non-empty text file or folder, or the right column")
    return corpus


def _read_hub(name: str, column: str, split: str) -> RawCorpus:
    """A dataset from the Hugging Face Hub (needs network; not exercised offline)."""
    try:
        from datasets import load_dataset

        ds = load_dataset(name, split=split)
    except Exception as exc:
        raise UserError(f"corpus {name!r} is not a local path and could not be loaded as a datasets name "
                        f"({exc.__class__.__name__}); check the path, or the name and your network") from None
    return _nonempty(RawCorpus(_datasets_documents(ds, column, name, split), name, n_files=1), Path(name))
