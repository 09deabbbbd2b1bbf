"""Next-sentence prediction data: ``[CLS] A [SEP] B [SEP]`` pairs, 50 % IsNext, 50 % B from another document.

Pairs are built once, when the study is prepared (as BERT's ``create_pretraining_data.py`` does), so
that every rung sees the same pairs in the same order; the MLM masks on top of them are drawn per step.

From each document in turn: take its sentences up to the length budget (``seq_len`` − 3), split them
at a random sentence boundary into A and the rest; with probability ½ B is the rest (IsNext, label 0),
otherwise B is a run of sentences from a random *other* document starting at a random sentence
(NotNext, label 1). A document that is a single sentence — the induction world's repeated blocks — is
split into two halves that serve as its two sentences, so IsNext asks "does B continue A's pattern?".
A pair too long for the budget loses tokens from the start of A and the end of B (never a whole
segment): the A|B boundary, where the evidence for IsNext is, survives.
"""
from __future__ import annotations

import numpy as np

IS_NEXT, NOT_NEXT = 0, 1  # Hugging Face's next_sentence_label convention


def as_sentences(document) -> list[np.ndarray]:
    """A document's non-empty sentences as arrays; a single sentence becomes its two halves."""
    sents = [np.asarray(s, dtype=np.int64) for s in document if len(s)]
    if len(sents) == 1 and len(sents[0]) >= 2:
        half = len(sents[0]) // 2
        sents = [sents[0][:half], sents[0][half:]]
    return sents


def truncate_pair(a, b, budget: int):
    """Trim the longer segment (A from its start, B from its end) until both fit in ``budget`` tokens."""
    la, lb = len(a), len(b)
    while la + lb > budget:
        if la > lb:
            la -= 1
        else:
            lb -= 1
    return a[len(a) - la:], b[:lb]


def _chunk(sents: list[np.ndarray], start: int, budget: int) -> list[np.ndarray]:
    """Sentences from ``start`` until the budget is reached (at least one)."""
    out, n = [], 0
    for s in sents[start:]:
        out.append(s)
        n += len(s)
        if n >= budget:
            break
    return out


def make_pairs(documents, n_pairs: int, seq_len: int, *, cls_id: int, sep_id: int,
               pad_id: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """``n_pairs`` NSP rows: input_ids and token_type_ids [N, seq_len], next_sentence_label, doc_a, doc_b [N]."""
    budget = seq_len - 3
    docs = [as_sentences(d) for d in documents]
    usable = [i for i, d in enumerate(docs) if len(d) >= 2]
    if len(usable) < 2:
        raise ValueError("next-sentence prediction needs at least two documents of two or more tokens")
    ids = np.full((n_pairs, seq_len), pad_id, dtype=np.int32)
    types = np.zeros((n_pairs, seq_len), dtype=np.int8)
    label = np.zeros(n_pairs, dtype=np.int8)
    doc_a, doc_b = np.zeros(n_pairs, dtype=np.int32), np.zeros(n_pairs, dtype=np.int32)
    k, cursor = 0, 0
    while k < n_pairs:
        d = usable[cursor % len(usable)]
        cursor += 1
        start = 0
        while start < len(docs[d]) - 1 and k < n_pairs:
            chunk = _chunk(docs[d], start, budget)
            if len(chunk) < 2:
                chunk = docs[d][start:start + 2]
            a_end = int(rng.integers(1, len(chunk)))
            a = np.concatenate(chunk[:a_end])
            if rng.random() < 0.5:
                b, lab, other = np.concatenate(chunk[a_end:]), IS_NEXT, d
            else:
                other = usable[int(rng.integers(0, len(usable) - 1))]
                other = other if other != d else usable[-1]
                j = int(rng.integers(0, len(docs[other])))
                b = np.concatenate(_chunk(docs[other], j, max(budget - len(a), 1)))
                lab = NOT_NEXT
            a, b = truncate_pair(a, b, budget)
            n = len(a) + len(b) + 3
            ids[k, 0], ids[k, 1:len(a) + 1], ids[k, len(a) + 1] = cls_id, a, sep_id
            ids[k, len(a) + 2:n - 1], ids[k, n - 1] = b, sep_id
            types[k, len(a) + 2:n] = 1
            label[k], doc_a[k], doc_b[k] = lab, d, other
            k += 1
            start += len(chunk)
    return {"input_ids": ids, "token_type_ids": types, "next_sentence_label": label, "doc_a": doc_a, "doc_b": doc_b}
