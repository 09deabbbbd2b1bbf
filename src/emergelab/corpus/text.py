"""A real text corpus made ready for pretraining: sentences, exact deduplication, a seeded split, tokens."""
from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass

import numpy as np

from emergelab.corpus.readers import RawCorpus
from emergelab.corpus.segment import segment_document
from emergelab.errors import UserError

#: documents of this many sentences are made when a corpus has a single document (one long file)
CHUNK_SENTENCES = 16


@dataclass
class TextCorpus:
    """Documents as lists of sentences, split into training and validation, with a summary."""

    train: list[list[str]]
    validation: list[list[str]]
    summary: dict


def _wide(ch: str) -> bool:
    return "\u2e80" <= ch <= "\u9fff" or "\uf900" <= ch <= "\ufaff" or "\uff00" <= ch <= "\uffef"


def sentence_surfaces(sentences: list[str]) -> list[str]:
    """Sentences as they appear in running text: a leading space before every sentence but the first,
    except between CJK characters — so that byte-level BPE sees `` The`` as inside a document."""
    out = []
    for i, s in enumerate(sentences):
        if i and not (_wide(sentences[i - 1][-1]) and _wide(s[0])):
            s = " " + s
        out.append(s)
    return out


def build_corpus(raw: RawCorpus, *, validation_fraction: float, seed: int, dedup: bool = True,
                 max_documents: int | None = None) -> TextCorpus:
    """Segment every document into sentences, drop exact duplicates, and split documents (seeded)."""
    docs = [s for s in (segment_document(d) for d in raw.documents) if s]
    n_read = len(docs)
    n_dup = 0
    if dedup:
        seen: set[bytes] = set()
        kept = []
        for d in docs:
            key = hashlib.blake2b("\n".join(" ".join(s.split()) for s in d).encode(), digest_size=16).digest()
            if key not in seen:
                seen.add(key)
                kept.append(d)
        n_dup = len(docs) - len(kept)
        docs = kept
    if max_documents is not None:
        docs = docs[:max_documents]
    chunked = False
    if len(docs) < 2:  # one long text: cut it into documents of CHUNK_SENTENCES sentences
        sents = [s for d in docs for s in d]
        docs = [sents[i:i + CHUNK_SENTENCES] for i in range(0, len(sents), CHUNK_SENTENCES)]
        if len(docs) < 2 and len(sents) >= 2:
            docs = [sents[: len(sents) // 2], sents[len(sents) // 2:]]
        chunked = True
    if len(docs) < 2:
        raise UserError(f"corpus {raw.source} has a single sentence; give more text (at least two sentences)")
    order = np.random.default_rng([seed, 0x5EED]).permutation(len(docs))
    n_val = min(max(1, round(validation_fraction * len(docs))), len(docs) - 1)
    val_idx, train_idx = np.sort(order[:n_val]), np.sort(order[n_val:])
    train, validation = [docs[i] for i in train_idx], [docs[i] for i in val_idx]
    summary = {
        "source": raw.source, "files": raw.n_files, "skipped_files": len(raw.skipped_files),
        "tagged_files": raw.tagged_files, "documents_read": n_read, "duplicates_removed": n_dup,
        "documents": len(docs), "chunked_into_documents": chunked, "train_documents": len(train),
        "validation_documents": len(validation), "sentences": sum(len(d) for d in docs),
        "characters": sum(len(s) for d in docs for s in d), "replaced_characters": raw.n_replaced_chars,
    }
    return TextCorpus(train, validation, summary)


@dataclass
class TokenizedDocuments:
    """Token ids of documents' sentences: ``ids[sent_start[i]:sent_start[i+1]]`` is sentence i and
    document d holds sentences ``doc_start[d]:doc_start[d+1]``."""

    ids: np.ndarray  # [n_tokens] int32
    sent_start: np.ndarray  # [n_sentences + 1]
    doc_start: np.ndarray  # [n_docs + 1]

    @property
    def n_docs(self) -> int:
        return len(self.doc_start) - 1

    def doc_ids(self, d: int) -> np.ndarray:
        return self.ids[self.sent_start[self.doc_start[d]]:self.sent_start[self.doc_start[d + 1]]]

    def sentences(self, d: int) -> list[list[int]]:
        s0, s1 = self.doc_start[d], self.doc_start[d + 1]
        return [self.ids[self.sent_start[i]:self.sent_start[i + 1]].tolist() for i in range(s0, s1)]


def tokenize_documents(tokenizer, docs: list[list[str]]) -> TokenizedDocuments:
    """Encode every sentence (surface form, no special tokens) in one batched call."""
    surfaces = [s for d in docs for s in sentence_surfaces(d)]
    encs = tokenizer.backend_tokenizer.encode_batch_fast(surfaces, add_special_tokens=False)
    lists = [e.ids for e in encs]
    lengths = np.fromiter(map(len, lists), dtype=np.int64, count=len(lists))
    ids = np.fromiter(itertools.chain.from_iterable(lists), dtype=np.int32, count=int(lengths.sum()))
    sent_start = np.concatenate([[0], np.cumsum(lengths)])
    doc_start = np.concatenate([[0], np.cumsum([len(d) for d in docs])])
    return TokenizedDocuments(ids, sent_start, doc_start)


def pack_documents(tokens: TokenizedDocuments, order: np.ndarray, separator: int) -> np.ndarray:
    """The token stream of documents in ``order``, each followed by ``separator``."""
    parts = []
    sep = np.array([separator], dtype=np.int32)
    for d in order:
        parts += [tokens.doc_ids(int(d)), sep]
    return np.concatenate(parts) if parts else np.empty(0, dtype=np.int32)
