"""Reading corpora: every format into documents; bad input is one clear line (exit 2 on the CLI)."""
from __future__ import annotations

import json
import os

import pytest

from emergelab.corpus.readers import decode_bytes, is_tagged, read_corpus, strip_tags
from emergelab.errors import UserError
from tests.conftest import run_cli


def test_folder_of_text_files_one_document_per_file_skipping_binary_hidden_and_links(tmp_path):
    (tmp_path / "a.txt").write_text("First file. It has two sentences.\n\nAnd a paragraph.\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.md").write_text("Second file.\n")
    (tmp_path / ".hidden.txt").write_text("never read\n")
    (tmp_path / "index.dat").write_bytes(b"\x00\x01\x02")
    (tmp_path / "blob").write_bytes(b"abc\x00def")
    (tmp_path / "a.u8").symlink_to(tmp_path / "a.txt")
    c = read_corpus(tmp_path)
    assert c.documents == ["First file. It has two sentences.\n\nAnd a paragraph.\n", "Second file.\n"]
    assert c.n_files == 2 and c.skipped_files == ["blob"]


def test_single_file_paragraphs_lines_and_fortune_percent_format(tmp_path):
    f = tmp_path / "book.txt"
    f.write_text("Para one\nwrapped.\n\n\nPara two.\n")
    assert read_corpus(f).documents == ["Para one\nwrapped.", "Para two.\n"]
    assert read_corpus(f, doc_split="line").documents == ["Para one", "wrapped.", "Para two."]
    assert read_corpus(f, doc_split="file").documents == ["Para one\nwrapped.\n\n\nPara two.\n"]
    g = tmp_path / "fortunes"
    g.write_text("A fortune.\n\nStill the same one.\n%\nAnother.\n%\n")
    assert read_corpus(g).documents == ["A fortune.\n\nStill the same one.\n", "\nAnother.\n"]
    with pytest.raises(UserError, match="doc_split 'pages' is unknown"):
        read_corpus(f, doc_split="pages")


def test_jsonl_csv_tsv_parquet_columns(tmp_path):
    rows = [{"body": "Hello there.", "id": 1}, {"body": "General Kenobi.", "id": 2}, {"body": None, "id": 3}]
    (tmp_path / "d.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    assert read_corpus(tmp_path / "d.jsonl", column="body").documents == ["Hello there.", "General Kenobi."]
    with pytest.raises(UserError, match="has no column 'text'; its columns are: body, id; set world_args.column"):
        read_corpus(tmp_path / "d.jsonl")
    (tmp_path / "d.csv").write_text('text,label\n"One, with a comma.",1\nTwo.,0\n')
    assert read_corpus(tmp_path / "d.csv").documents == ["One, with a comma.", "Two."]
    (tmp_path / "d.tsv").write_text("label\tsentence\n1\tTabbed text.\n")
    assert read_corpus(tmp_path / "d.tsv", column="sentence").documents == ["Tabbed text."]
    import pandas as pd

    pd.DataFrame({"text": ["From parquet.", "Second row."]}).to_parquet(tmp_path / "d.parquet")
    assert read_corpus(tmp_path / "d.parquet").documents == ["From parquet.", "Second row."]
    (tmp_path / "bad.jsonl").write_text('{"text": "ok"}\n{not json}\n')
    with pytest.raises(UserError, match="line 2 is not valid JSON"):
        read_corpus(tmp_path / "bad.jsonl")


def test_datasets_directory_with_splits_and_columns(tmp_path):
    from datasets import Dataset, DatasetDict

    ds = Dataset.from_dict({"content": ["A saved dataset.", "", "Another row."]})
    ds.save_to_disk(str(tmp_path / "one"))
    assert read_corpus(tmp_path / "one", column="content").documents == ["A saved dataset.", "Another row."]
    DatasetDict({"train": ds, "test": ds.select([0])}).save_to_disk(str(tmp_path / "dict"))
    assert read_corpus(tmp_path / "dict", column="content", split="test").documents == ["A saved dataset."]
    with pytest.raises(UserError, match="has no split 'validation'; its splits are: train, test"):
        read_corpus(tmp_path / "dict", column="content", split="validation")
    with pytest.raises(UserError, match="has no column 'text'; its columns are: content"):
        read_corpus(tmp_path / "one")


def test_tagged_text_is_detected_and_its_tags_stripped(tmp_path):
    brown = "\n\n\tThe/at Fulton/np-tl County/nn-tl Grand/jj-tl Jury/nn-tl said/vbd ``/`` no/at evidence/nn ''/'' ./.\n"
    assert is_tagged(brown) and not is_tagged("A plain sentence with a/b slash in it and more words here.")
    assert strip_tags(brown).strip() == "The Fulton County Grand Jury said `` no evidence '' ."
    pd = "19980101-01-001-001/m  迈向/v  充满/v  希望/n  的/u  新/a  世纪/n  ——/w  [中央/n 电台/n]nt  Debian/nx 你好/v"
    assert strip_tags(pd) == "19980101-01-001-001 迈向充满希望的新世纪 —— 中央电台 Debian 你好"
    (tmp_path / "ca01").write_text(brown)
    c = read_corpus(tmp_path / "ca01")
    assert c.tagged_files == 1 and "The Fulton County" in c.documents[0]


def test_invalid_utf8_is_replaced_and_counted_and_utf16_is_decoded(tmp_path):
    text, n = decode_bytes(b"ok \xff and \xc3\x28 and \xef\xbf\xbd real", "x")
    assert n == 2 and text.count("\ufffd") == 3
    (tmp_path / "u16.txt").write_bytes("Grüße aus Köln.".encode("utf-16"))
    assert read_corpus(tmp_path / "u16.txt").documents == ["Grüße aus Köln."]
    (tmp_path / "bad.txt").write_bytes(b"Caf\xe9 au lait. Na\xefve.\n")
    c = read_corpus(tmp_path / "bad.txt")
    assert c.n_replaced_chars == 2 and c.documents == ["Caf\ufffd au lait. Na\ufffdve.\n"]


@pytest.mark.parametrize("case, fragment", [
    ("missing", "does not exist"),
    ("empty_file", "has no text"),
    ("empty_folder", "has no text"),
    ("binary", "looks like a binary file"),
    ("only_binary_folder", "skipped 1 binary or empty file"),
    ("missing_column", "has no column 'text'"),
])
def test_bad_corpora_are_one_clear_error(tmp_path, case, fragment):
    path = tmp_path / case
    if case == "empty_file":
        path.write_text("  \n\n")
    elif case == "empty_folder":
        path.mkdir()
    elif case == "binary":
        path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00")
    elif case == "only_binary_folder":
        path.mkdir()
        (path / "x.png").write_bytes(b"\x89PNG\x00")
    elif case == "missing_column":
        path = tmp_path / "rows.csv"
        path.write_text("body\nhello\n")
    with pytest.raises(UserError) as e:
        read_corpus(path if case != "missing" else "./no/such/corpus")
    assert fragment in str(e.value) and "\n" not in str(e.value)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_unreadable_file_is_one_clear_error(tmp_path):
    f = tmp_path / "locked.txt"
    f.write_text("secret")
    f.chmod(0)
    with pytest.raises(UserError, match="cannot read"):
        read_corpus(f)


def test_cli_bad_corpus_exits_2_with_one_line(tmp_path):
    (tmp_path / "empty").mkdir()
    res = run_cli("study", "--preset", "smoke", "--out", str(tmp_path / "s"), "--stages", "prepare",
                  "--set", "world=text", "--set", f"corpus={tmp_path / 'empty'}")
    assert res.returncode == 2
    lines = [l for l in res.stderr.splitlines() if l.strip()]
    assert lines[-1].startswith("error: corpus") and "has no text" in lines[-1] and "Traceback" not in res.stderr
    res = run_cli("worlds", "show", "text", "--corpus", str(tmp_path / "nothing-here.txt"))
    assert res.returncode == 2 and res.stderr.strip().startswith("error: corpus") and "does not exist" in res.stderr
