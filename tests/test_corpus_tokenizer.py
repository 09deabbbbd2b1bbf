"""Trained tokenizers: special tokens first, Hugging Face round trip, determinism, no [UNK] for Chinese."""
from __future__ import annotations

import pytest

from emergelab.corpus.tokenizer import SPECIAL_TOKENS, load_tokenizer, train_tokenizer
from tests.test_worlds_text import _OBJECTS, _SUBJECTS, _VERBS, _ZH

TEXTS = [f"{s} {v} {o}." for s in _SUBJECTS for v in _VERBS for o in _OBJECTS] + [z + "。" for z in _ZH] * 20


@pytest.mark.parametrize("kind", ["wordpiece", "bpe"])
def test_special_tokens_first_and_auto_tokenizer_round_trip(tmp_path, kind):
    tok = train_tokenizer(TEXTS, kind, 500)
    assert tok.convert_ids_to_tokens(list(range(len(SPECIAL_TOKENS)))) == SPECIAL_TOKENS
    assert (tok.pad_token_id, tok.unk_token_id, tok.cls_token_id, tok.sep_token_id, tok.mask_token_id,
            tok.bos_token_id, tok.eos_token_id) == tuple(range(7))
    tok.save_pretrained(str(tmp_path))
    again = load_tokenizer(tmp_path)
    sample = ["The old captain repaired a wooden table.", "今天天气很好。我喜欢喝茶。"]
    assert again(sample)["input_ids"] == tok(sample)["input_ids"]
    assert len(again) == len(tok)
    if kind == "wordpiece":  # BERT templates
        ids = again("The mayor.", "Our teacher.")["input_ids"]
        assert ids[0] == 2 and ids.count(3) == 2
    else:  # GPT style: nothing added
        assert again("The mayor.")["input_ids"] == again("The mayor.", add_special_tokens=False)["input_ids"]


@pytest.mark.parametrize("kind", ["wordpiece", "bpe"])
def test_training_is_deterministic(kind):
    a, b = train_tokenizer(TEXTS, kind, 400), train_tokenizer(iter(TEXTS), kind, 400)
    assert a.backend_tokenizer.to_str() == b.backend_tokenizer.to_str()


def test_bpe_reaches_the_vocabulary_size_and_never_produces_unknown():
    tok = train_tokenizer(TEXTS, "bpe", 450)
    assert len(tok) == 450
    unseen = "Ünïcödé 😀 naïve — 龘靐 χαίρετε"
    ids = tok(unseen)["input_ids"]
    assert tok.unk_token_id not in ids and tok.decode(ids) == unseen
    # a Han character is one pre-token: pieces never span two characters
    enc = tok.backend_tokenizer.encode("今天天气很好")
    assert all(end - start == 1 for start, end in enc.offsets) and {s for s, _ in enc.offsets} == set(range(6))


def test_wordpiece_splits_han_characters_and_learns_pieces():
    tok = train_tokenizer(TEXTS, "wordpiece", 500)
    assert len(tok) <= 500
    assert tok.tokenize("今天天气很好") == ["今", "天", "天", "气", "很", "好"]
    assert tok.unk_token_id not in tok("我们去公园散步")["input_ids"]
    assert tok.tokenize("painter") == ["painter"]  # a frequent word is one piece
    assert any(t.startswith("##") for t in tok.get_vocab())


def test_lowercase_option():
    tok = train_tokenizer(TEXTS, "bpe", 400, lowercase=True)
    assert tok("THE MAYOR")["input_ids"] == tok("the mayor")["input_ids"]
