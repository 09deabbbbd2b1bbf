"""Text world: a real corpus with its own trained tokenizer, a next-word task and a sentence-position latent."""
from __future__ import annotations

import copy
import logging
import re
from dataclasses import dataclass
from functools import cached_property
from typing import Callable, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from emergelab.corpus.readers import read_corpus
from emergelab.corpus.text import TextCorpus, TokenizedDocuments, build_corpus, pack_documents, sentence_surfaces, tokenize_documents
from emergelab.corpus.tokenizer import train_tokenizer
from emergelab.errors import UserError
from emergelab.worlds.base import LatentSet, TaskExample, TaskSet, World

log = logging.getLogger(__name__)

_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
#: a word: one Han character, or a run of other letters
WORD = re.compile(rf"[{_CJK}]|(?:(?![{_CJK}])[^\W\d_])+")
#: classes of the sentence_position latent: the token's word index within its sentence
POSITION_BINS = ["0", "1", "2-3", "4-7", "8-15", "16+"]
MAX_TARGET_TOKENS = 6


class TextParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    column: str = Field("text", description="JSONL/CSV/Parquet/datasets column holding the text")
    doc_split: Literal["auto", "file", "paragraph", "line", "percent"] = Field(
        "auto", description="how plain text is cut into documents (auto: % lines, else file in a folder, else paragraphs)")
    split: str = Field("train", description="the split of a datasets corpus to read")
    validation_fraction: float = Field(0.05, gt=0, lt=0.5, description="documents held out (seeded)")
    dedup: bool = Field(True, description="drop exact duplicate documents")
    max_documents: int | None = Field(None, ge=2, le=1 << 40, description="use at most this many documents")
    task_context: int = Field(48, ge=2, le=1 << 20, description="most prompt tokens of a next_word example")


def position_bin(pos: np.ndarray) -> np.ndarray:
    """Index into POSITION_BINS of word positions 0, 1, 2–3, 4–7, 8–15, 16+."""
    return np.searchsorted(np.array([1, 2, 4, 8, 16]), pos, side="right")


@dataclass
class _Prepared:
    corpus: TextCorpus
    tokenizer: object
    kind: str
    train: TokenizedDocuments
    validation: TokenizedDocuments
    summary: dict


class TextWorld(World):
    """Any real corpus (``corpus=PATH``): documents → sentences → a tokenizer trained on the training
    split (WordPiece for mlm/nsp, byte-level BPE for clm) → packed blocks of documents, each followed by
    [SEP] (WordPiece) or [EOS] (BPE), reshuffled every epoch. Held-out blocks are validation documents.

    Task ``next_word``: a validation document up to a word (at most ``task_context`` tokens) → that
    word's tokens (a Han character is a word); examples whose tokens differ when the word is encoded
    apart are skipped. Latent ``sentence_position``: the index of the token's word (pre-token: word,
    punctuation mark or Han character) in its sentence, binned 0, 1, 2–3, 4–7, 8–15, 16+; −1 on separators.
    """

    name = "text"
    summary = "a real corpus (corpus=PATH): its own tokenizer, next-word task, sentence-position latent"
    Params = TextParams
    id_offset = 0
    _split = "train"

    def __init__(self, params=None, seed: int = 0, *, context: int | None = None, corpus: str | None = None,
                 tokenizer: dict | None = None, causal: bool = True, echo: Callable[[str], None] | None = None):
        super().__init__(params, seed, context=context)
        if not corpus:
            raise UserError("world text needs a corpus: --set corpus=PATH (a text file or folder, JSONL/CSV, "
                            "or a datasets directory)")
        self.corpus_source = str(corpus)
        opts = {"kind": "auto", "vocab_size": 8000, "lowercase": False, "min_frequency": 2, **(tokenizer or {})}
        if opts["kind"] == "auto":
            opts["kind"] = "bpe" if causal else "wordpiece"
        self.tokenizer_options = opts
        self.echo = echo

    # ------------------------------------------------------------------ the corpus, once

    @cached_property
    def _data(self) -> _Prepared:
        p, o = self.params, self.tokenizer_options
        raw = read_corpus(self.corpus_source, column=p.column, doc_split=p.doc_split, split=p.split)
        corpus = build_corpus(raw, validation_fraction=p.validation_fraction, seed=self.seed, dedup=p.dedup,
                              max_documents=p.max_documents)
        texts = (s for d in corpus.train for s in sentence_surfaces(d))
        n_sent = sum(len(d) for d in corpus.train)
        tok = train_tokenizer(texts, o["kind"], o["vocab_size"], lowercase=o["lowercase"],
                              min_frequency=o["min_frequency"], length=n_sent)
        train, val = tokenize_documents(tok, corpus.train), tokenize_documents(tok, corpus.validation)
        unk = int(np.count_nonzero(train.ids == tok.unk_token_id))
        summary = {**corpus.summary, "tokenizer": o["kind"], "vocab_size": len(tok),
                   "train_tokens": int(train.ids.size), "validation_tokens": int(val.ids.size), "unk_tokens": unk}
        if self.echo is not None:
            self.echo(format_summary(summary))
        if raw.n_replaced_chars:
            log.warning("%s: %d invalid UTF-8 sequence(s) replaced by U+FFFD", raw.source, raw.n_replaced_chars)
        return _Prepared(corpus, tok, o["kind"], train, val, summary)

    @property
    def _separator(self) -> int:
        tok = self._data.tokenizer
        return tok.eos_token_id if self._data.kind == "bpe" else tok.sep_token_id

    @property
    def _tokens(self) -> TokenizedDocuments:
        return self._data.validation if self._split == "validation" else self._data.train

    def build_tokenizer(self):
        """The tokenizer trained on the training split (prepare saves it in Hugging Face format)."""
        return self._data.tokenizer

    @property
    def symbols(self) -> list[str]:
        tok = self._data.tokenizer
        return tok.convert_ids_to_tokens(list(range(len(tok))))

    def render(self, ids) -> str:
        return self._data.tokenizer.decode([int(i) for i in ids])

    def describe(self) -> dict:
        return dict(self._data.summary)

    # ------------------------------------------------------------------ the three faces

    def _stream(self, purpose: str, n_tokens: int) -> tuple[np.ndarray, list[np.ndarray]]:
        """Documents of the current split in a seeded order per epoch, separated; and the orders used."""
        toks = self._tokens
        parts, orders, have, epoch = [], [], 0, 0
        while have < n_tokens:
            order = self.stream_rng(f"{purpose}/{self._split}/{epoch}").permutation(toks.n_docs)
            part = pack_documents(toks, order, self._separator)
            parts.append(part)
            orders.append(order)
            have += part.size
            epoch += 1
        return np.concatenate(parts)[:n_tokens], orders

    def train_blocks(self, n_blocks: int, seq_len: int) -> np.ndarray:
        ids, _ = self._stream("order", n_blocks * seq_len)
        return ids.astype(np.int64).reshape(n_blocks, seq_len)

    def heldout_world(self) -> "TextWorld":
        """Held-out blocks are the validation documents (same corpus, tokenizer and seed)."""
        _ = self._data  # read and tokenise once; the copy shares it
        other = copy.copy(self)
        other._split = "validation"
        return other

    def documents(self, n_docs: int) -> list[list[list[int]]]:
        """Up to ``n_docs`` training documents (fewer if the corpus has fewer), as sentences of token ids."""
        toks = self._data.train
        out: list[list[list[int]]] = []
        for d in self.stream_rng("order/train/0").permutation(toks.n_docs):
            sents = [s for s in toks.sentences(int(d)) if s]  # a sentence the normaliser emptied is dropped
            if sents:
                out.append(sents)
            if len(out) >= n_docs:
                break
        return out

    def tasks(self, n_examples: int) -> list[TaskSet]:
        data = self._data
        enc = data.tokenizer.backend_tokenizer
        rng = self.rng("task/next_word")
        docs, toks = data.corpus.validation, data.validation
        examples: list[TaskExample] = []
        for _ in range(n_examples * 30):
            if len(examples) >= n_examples:
                break
            d = int(rng.integers(len(docs)))
            surfaces = sentence_surfaces(docs[d])
            s = int(rng.integers(len(surfaces)))
            sent = surfaces[s]
            words = [m for m in WORD.finditer(sent) if s > 0 or sent[:m.start()].strip()]
            if not words:
                continue
            m = words[int(rng.integers(len(words)))]
            cut = m.start() - 1 if m.start() > 0 and sent[m.start() - 1] == " " else m.start()
            pre = enc.encode(sent[:cut], add_special_tokens=False).ids if cut > 0 else []
            target = enc.encode(sent[cut:m.end()], add_special_tokens=False).ids
            if not target or len(target) > MAX_TARGET_TOKENS:
                continue
            if enc.encode(sent[:m.end()], add_special_tokens=False).ids != pre + target:
                continue  # the word is tokenised differently in context: its tokens are not a fair target
            budget = self.params.task_context
            if self.context is not None:
                budget = min(budget, self.context - len(target))
            s0 = toks.sent_start[toks.doc_start[d]]
            before = toks.ids[s0:toks.sent_start[toks.doc_start[d] + s]].tolist()
            prompt = (before + pre)[-budget:] if budget > 0 else []
            if prompt:
                examples.append(TaskExample(prompt=[int(x) for x in prompt], target=[int(x) for x in target]))
        if not examples:
            log.warning("text: no next_word examples could be made from %d validation documents", len(docs))
            return []
        V = len(data.tokenizer)
        chance = {"exact_match": float(np.mean([(1 / V) ** len(e.target) for e in examples])), "token_accuracy": 1 / V}
        return [TaskSet("next_word", "continue a held-out document with its next word (all of the word's tokens)",
                        examples, chance)]

    def latents(self, n_sequences: int, seq_len: int) -> list[LatentSet]:
        data = self._data
        docs, toks = data.corpus.validation, data.validation
        surfaces = [s for d in docs for s in sentence_surfaces(d)]
        encs = data.tokenizer.backend_tokenizer.encode_batch(surfaces, add_special_tokens=False)
        pos = np.fromiter((-1 if w is None else w for e in encs for w in e.word_ids), dtype=np.int64,
                          count=int(toks.ids.size))
        labels_by_doc = TokenizedDocuments(np.where(pos >= 0, position_bin(pos), -1), toks.sent_start, toks.doc_start)
        view = copy.copy(self)
        view._split = "validation"
        ids, orders = view._stream("latent", n_sequences * seq_len)
        labels = np.concatenate([pack_documents(labels_by_doc, o, -1) for o in orders])[: n_sequences * seq_len]
        return [LatentSet("sentence_position", "the index of the token's word within its sentence, binned",
                          ids.astype(np.int64).reshape(n_sequences, seq_len),
                          labels.astype(np.int64).reshape(n_sequences, seq_len), POSITION_BINS)]


def format_summary(s: dict) -> str:
    """One line: documents, duplicates, split, sentences, tokens, replaced characters."""
    return (f"corpus {s['source']}: {s['documents']:,} documents ({s['duplicates_removed']:,} duplicates removed"
            f"{', ' + str(s['skipped_files']) + ' non-text files skipped' if s['skipped_files'] else ''}) → "
            f"{s['train_documents']:,} train / {s['validation_documents']:,} validation; {s['sentences']:,} sentences; "
            f"{s['train_tokens'] + s['validation_tokens']:,} tokens ({s['tokenizer']}, vocab {s['vocab_size']:,}); "
            f"{s['replaced_characters']:,} invalid UTF-8 characters replaced")
