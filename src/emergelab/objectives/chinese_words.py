"""Chinese whole-word masking: jieba's words group the Han-character tokens of a row, as Chinese BERT-wwm does.

A BERT tokenizer splits Chinese into one token per Han character, so the vocabulary says nothing
about which characters form a word (every Han token "begins a word"). Chinese BERT-wwm (Cui et al.
2019) segments the text into words and masks all characters of a word together. Here each maximal run
of single-Han-character tokens of a row is joined back into its string and segmented with jieba
(``jieba==0.42.1``, its bundled dictionary, HMM for unknown words); a Han token begins a word exactly
where a jieba word begins. Other tokens keep the boundaries of ``objectives.words``.
"""
from __future__ import annotations

import logging

import numpy as np

_HAN_RANGES = ((0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xF900, 0xFAFF), (0x20000, 0x2FA1F))
_SEGMENTER = None


def is_han(ch: str) -> bool:
    o = ord(ch)
    return any(lo <= o <= hi for lo, hi in _HAN_RANGES)


def han_token_table(tokenizer) -> np.ndarray:
    """Object [vocab]: the Han character a token is (a token of exactly one Han character), else ``""``."""
    table = np.full(len(tokenizer), "", dtype=object)
    for token, i in tokenizer.get_vocab().items():
        if i < len(table) and len(token) == 1 and is_han(token):
            table[i] = token
    return table


def segmenter():
    """jieba's default tokenizer, initialised once (its dictionary loads in about a second; no log lines)."""
    global _SEGMENTER
    if _SEGMENTER is None:
        import jieba

        jieba.setLogLevel(logging.WARNING)
        jieba.initialize()
        _SEGMENTER = jieba.dt
    return _SEGMENTER


def jieba_word_starts(ids: np.ndarray, begin: np.ndarray, han: np.ndarray) -> np.ndarray:
    """``begin [B, T]`` with every run of Han tokens re-cut at jieba's word boundaries (a new array)."""
    out = begin.copy()
    chars = han[ids]  # [B, T] the character of each Han token, "" elsewhere
    cut = segmenter().cut
    for b in range(ids.shape[0]):
        row = chars[b]
        t, n = 0, ids.shape[1]
        while t < n:
            if not row[t]:
                t += 1
                continue
            end = t
            while end < n and row[end]:
                end += 1
            pos = t
            for word in cut("".join(row[t:end])):
                out[b, pos] = True
                out[b, pos + 1:pos + len(word)] = False  # the word's other characters continue it
                pos += len(word)
            t = end
    return out
