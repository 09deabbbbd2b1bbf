"""Next-sentence prediction pairs: 50 % IsNext, NotNext never from the same document, BERT's layout,
truncation that keeps both segments; the prepared induction study trains on them."""
from __future__ import annotations

import numpy as np

from emergelab.objectives.nsp import IS_NEXT, NOT_NEXT, make_pairs, truncate_pair

CLS, SEP, PAD = 2, 3, 0


def _documents(n, rng):
    """Documents of 1–5 sentences; token = 1000·doc + position, so every token names its document."""
    docs = []
    for d in range(n):
        n_sent = int(rng.integers(1, 6))
        lengths = rng.integers(3, 20, size=n_sent)
        pos = np.split(np.arange(lengths.sum()), np.cumsum(lengths)[:-1])
        docs.append([list(1000 * (d + 1) + p) for p in pos])
    return docs


def _segments(row, types):
    n = int((row != PAD).sum())
    assert row[0] == CLS and row[n - 1] == SEP and (row[n:] == PAD).all()
    first_sep = int(np.flatnonzero(row == SEP)[0])
    a, b = row[1:first_sep], row[first_sep + 1:n - 1]
    assert (types[:first_sep + 1] == 0).all() and (types[first_sep + 1:n] == 1).all() and (types[n:] == 0).all()
    return a, b


def test_half_is_next_and_not_next_b_from_another_document():
    rng = np.random.default_rng(0)
    docs = _documents(3000, rng)
    out = make_pairs(docs, 3000, 32, cls_id=CLS, sep_id=SEP, pad_id=PAD, rng=np.random.default_rng(1))
    label = out["next_sentence_label"]
    assert abs((label == IS_NEXT).mean() - 0.5) < 0.03
    not_next = label == NOT_NEXT
    assert (out["doc_b"][not_next] != out["doc_a"][not_next]).all()
    assert (out["doc_b"][~not_next] == out["doc_a"][~not_next]).all()
    for row, types, lab, da, db in zip(out["input_ids"], out["token_type_ids"], label, out["doc_a"], out["doc_b"]):
        a, b = _segments(row, types)
        assert len(a) >= 1 and len(b) >= 1 and len(a) + len(b) <= 29
        assert (a // 1000 == da + 1).all() and (b // 1000 == db + 1).all()  # segments come from the named documents
        if lab == IS_NEXT:  # B continues A exactly where A stops
            assert b[0] == a[-1] + 1


def test_single_sentence_documents_split_into_halves():
    blocks = [[list(range(100 * (d + 1), 100 * (d + 1) + 29))] for d in range(200)]
    out = make_pairs(blocks, 200, 32, cls_id=CLS, sep_id=SEP, pad_id=PAD, rng=np.random.default_rng(2))
    assert (out["input_ids"] != PAD).all()  # 29 tokens + 3 specials fill the row exactly
    for row, types, lab in zip(out["input_ids"], out["token_type_ids"], out["next_sentence_label"]):
        a, b = _segments(row, types)
        assert len(a) == 14
        if lab == IS_NEXT:
            assert list(b) == list(range(a[0] + 14, a[0] + 29))


def test_truncation_keeps_both_segments_and_the_boundary():
    a, b = truncate_pair(list(range(50)), list(range(100, 103)), budget=10)
    assert a == list(range(43, 50)) and b == [100, 101, 102]
    a, b = truncate_pair(list(range(40)), list(range(100, 140)), budget=9)
    assert len(a) >= 4 and len(b) >= 4 and a[-1] == 39 and b[0] == 100


def test_prepared_induction_study_has_pairs(tmp_path):
    from emergelab.layout import DataDir
    from emergelab.stages.prepare import prepare
    from emergelab.study import read_spec

    spec = read_spec(preset="smoke", overrides=["objectives=[mlm,nsp]", "train.steps=4"])
    man = prepare(spec, tmp_path / "data")
    rows = DataDir(tmp_path / "data").train_rows()
    ids = rows["input_ids"]
    assert ids.shape == (64, 32) and man["n_train_blocks"] == 64
    assert (ids[:, 0] == CLS).all() and ((ids == SEP).sum(1) == 2).all()
    assert abs(rows["next_sentence_label"].mean() - 0.5) < 0.2
    clm = prepare(read_spec(preset="smoke", overrides=["train.steps=4"]), tmp_path / "clm")
    assert clm["train_sha256"] != man["train_sha256"]
    assert set(DataDir(tmp_path / "clm").train_rows()) == {"input_ids"}
