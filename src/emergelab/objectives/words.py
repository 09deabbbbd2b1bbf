"""Word boundaries from any fast tokenizer: which vocabulary entries begin a word (for whole-word masking).

A token *begins a word* when the tokenizer's own decoder puts whitespace before it after a plain word.
That single rule covers WordPiece (``##`` pieces continue), byte-level BPE (``Ġ`` pieces begin),
SentencePiece/Metaspace (``▁`` pieces begin) and word-level tokenizers (every token is a word), and it
agrees with the fast tokenizer's ``word_ids()`` (tests/test_objectives_mlm.py checks it).
"""
from __future__ import annotations

import numpy as np


def _reference_token(tokenizer, special: set[int]) -> int:
    """A plain, alphanumeric word-beginning token to decode the vocabulary after."""
    backend = tokenizer.backend_tokenizer
    for text in ("the", "a", "word", "x"):
        ids = backend.encode(text, add_special_tokens=False).ids
        if len(ids) == 1 and ids[0] not in special:
            return ids[0]
    for i in range(len(tokenizer)):
        if i not in special and backend.decode([i], skip_special_tokens=False).strip().isalnum():
            return i
    raise ValueError("the tokenizer has no plain token to decode word boundaries against")


def word_start_table(tokenizer) -> np.ndarray:
    """Boolean [vocab] table: True where a token begins a word (special tokens are words of their own)."""
    special = set(tokenizer.all_special_ids)
    n = len(tokenizer)
    ref = _reference_token(tokenizer, special)
    backend = tokenizer.backend_tokenizer
    prefix = backend.decode([ref], skip_special_tokens=False)
    pairs = backend.decode_batch([[ref, i] for i in range(n)], skip_special_tokens=False)
    starts = np.zeros(n, dtype=bool)
    for i, text in enumerate(pairs):
        rest = text[len(prefix):] if text.startswith(prefix) else text
        starts[i] = i in special or rest[:1].isspace()
    return starts


def word_starts(ids: np.ndarray, starts: np.ndarray, special: np.ndarray) -> np.ndarray:
    """[B, T] booleans: position begins a word (first position, special tokens and the token after one)."""
    out = starts[ids] | special[ids]
    out[:, 0] = True
    out[:, 1:] |= special[ids[:, :-1]]
    return out


def word_ids(ids: np.ndarray, starts: np.ndarray, special: np.ndarray) -> np.ndarray:
    """[B, T] word index per position (0, 1, … within each row), from :func:`word_starts`."""
    return np.cumsum(word_starts(ids, starts, special), axis=1) - 1
