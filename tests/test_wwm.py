"""Chinese whole-word masking: every character of a jieba word is selected together, or none is."""
from __future__ import annotations

import numpy as np
import pytest

jieba = pytest.importorskip("jieba", reason="jieba (pinned 0.42.1) is not installed")

from emergelab.corpus.tokenizer import train_wordpiece  # noqa: E402
from emergelab.objectives.chinese_words import han_token_table, jieba_word_starts  # noqa: E402
from emergelab.objectives.mlm import MaskedLM  # noqa: E402

TEXTS = ["我们喜欢自然语言处理", "今天天气很好，我们去公园散步", "机器学习是人工智能的一个分支", "他在北京大学读书 ok"]


@pytest.fixture(scope="module")
def tokenizer():
    return train_wordpiece(TEXTS * 3, vocab_size=200)


def _rows(tokenizer, width=24) -> np.ndarray:
    enc = tokenizer(TEXTS, padding="max_length", max_length=width, truncation=True)
    return np.asarray(enc["input_ids"], dtype=np.int64)


def _jieba_words(tokenizer, row) -> list[list[int]]:
    """Positions of each jieba word of the row's Han characters (the reference, segmenting the text itself)."""
    toks = tokenizer.convert_ids_to_tokens(row.tolist())
    words, t = [], 0
    while t < len(toks):
        if len(toks[t]) == 1 and "\u4e00" <= toks[t] <= "\u9fff":
            end = t
            while end < len(toks) and len(toks[end]) == 1 and "\u4e00" <= toks[end] <= "\u9fff":
                end += 1
            pos = t
            for w in jieba.lcut("".join(toks[t:end])):
                words.append(list(range(pos, pos + len(w))))
                pos += len(w)
            t = end
        else:
            t += 1
    return words


def test_every_han_character_is_its_own_token(tokenizer):
    han = han_token_table(tokenizer)
    ids = _rows(tokenizer)
    assert {han[i] for i in ids[0] if han[i]} == set("我们喜欢自然语言处理")


def test_whole_word_masking_selects_all_characters_of_a_jieba_word_or_none(tokenizer):
    ids = _rows(tokenizer)
    words = [_jieba_words(tokenizer, r) for r in ids]
    assert any(len(w) >= 2 for ws in words for w in ws)  # there are multi-character words to keep together
    wwm = MaskedLM(tokenizer=tokenizer, seed=0, whole_word=True, probability=0.3)
    plain = MaskedLM(tokenizer=tokenizer, seed=0, whole_word=False, probability=0.3)
    split_plain, selected_words = 0, 0
    for step in range(200):
        sel = wwm.batch(ids, step)["labels"].numpy() != -100
        sel_plain = plain.batch(ids, step)["labels"].numpy() != -100
        for b, ws in enumerate(words):
            for w in ws:
                assert len(set(sel[b, w])) == 1, (step, b, w)  # all or none
                selected_words += bool(sel[b, w[0]])
                split_plain += len(w) > 1 and len(set(sel_plain[b, w])) > 1
    n_words = 200 * sum(len(ws) for ws in words)
    assert abs(selected_words / n_words - 0.3) < 0.03  # words, not characters, are drawn at the rate
    assert split_plain > 100  # without whole-word masking, words are split (the check above can fail)


def test_jieba_starts_follow_jieba_and_leave_other_tokens(tokenizer):
    ids = _rows(tokenizer)[:1]
    han = han_token_table(tokenizer)
    begin = np.ones_like(ids, dtype=bool)
    got = jieba_word_starts(ids, begin, han)
    starts = {w[0] for w in _jieba_words(tokenizer, ids[0])}
    for t in range(ids.shape[1]):
        assert got[0, t] == (t in starts or not han[ids[0, t]])
