"""Tokenisation for fine-tuning: texts with a label, or words with a tag on one sub-token each.

For tagging, each word's tag goes on its first sub-token and every other position gets -100 (ignored
by the loss and by scoring), using the fast tokenizer's ``word_ids``. Causal models cannot see the
rest of a word from its first sub-token (GPT-2 splits ``w13`` into ``Ġw`` + ``13``), so for them
the tag goes on the *last* sub-token (``subtoken="last"``). Words cut off by ``max_length`` carry
no label, so they are neither trained on nor scored.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from emergelab.corpus.labelled import LabelledData

IGNORE = -100  # the label transformers' losses skip


@dataclass
class Encoded:
    """Unpadded token ids per example, with labels (an int, or one per token for tagging)."""

    input_ids: list[list[int]]
    labels: list  # list[int] (classify) | list[list[int]] (tag, IGNORE where unscored)
    token_type_ids: list[list[int]] | None = None

    def __len__(self) -> int:
        return len(self.input_ids)

    def n_scored(self) -> int:
        """Examples (classify) or labelled tokens (tag) that evaluation scores."""
        if self.labels and isinstance(self.labels[0], list):
            return sum(v != IGNORE for y in self.labels for v in y)
        return len(self.labels)


def encode(tokenizer, data: LabelledData, *, max_length: int, subtoken: str = "first") -> Encoded:
    """Tokenise ``data`` for its task (no padding; batches are padded by ``collate``).

    ``subtoken``: "first" or "last" sub-token of each word carries its tag (tagging only).
    """
    if data.task == "classify":
        enc = tokenizer(data.texts, truncation=True, max_length=max_length)
        filler = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.pad_token_id
        ids = [x if x else [filler] for x in enc["input_ids"]]  # an empty text still needs one position
        return Encoded(ids, list(data.labels), enc.get("token_type_ids"))
    enc = tokenizer(data.tokens, is_split_into_words=True, truncation=True, max_length=max_length)
    labels = []
    for i, tags in enumerate(data.labels):
        word_ids = enc.word_ids(i)
        if subtoken == "last":
            nxt = word_ids[1:] + [None]
            row = [IGNORE if w is None or w == n else tags[w] for w, n in zip(word_ids, nxt)]
        else:
            prev = [None] + word_ids[:-1]
            row = [IGNORE if w is None or w == p else tags[w] for w, p in zip(word_ids, prev)]
        labels.append(row)
    return Encoded(enc["input_ids"], labels, enc.get("token_type_ids"))


def collate(enc: Encoded, indices, *, pad_token_id: int) -> dict[str, torch.Tensor]:
    """Right-padded tensors for the examples at ``indices``."""
    ids = [enc.input_ids[i] for i in indices]
    width = max(len(x) for x in ids)
    input_ids = torch.full((len(ids), width), pad_token_id, dtype=torch.long)  # (batch, seq)
    attention_mask = torch.zeros((len(ids), width), dtype=torch.long)
    for r, x in enumerate(ids):
        input_ids[r, : len(x)] = torch.tensor(x)
        attention_mask[r, : len(x)] = 1
    batch = {"input_ids": input_ids, "attention_mask": attention_mask}
    if enc.token_type_ids is not None:
        tt = torch.zeros((len(ids), width), dtype=torch.long)
        for r, i in enumerate(indices):
            tt[r, : len(enc.token_type_ids[i])] = torch.tensor(enc.token_type_ids[i])
        batch["token_type_ids"] = tt
    if isinstance(enc.labels[0], list):
        labels = torch.full((len(ids), width), IGNORE, dtype=torch.long)
        for r, i in enumerate(indices):
            labels[r, : len(enc.labels[i])] = torch.tensor(enc.labels[i])
    else:
        labels = torch.tensor([enc.labels[i] for i in indices], dtype=torch.long)
    batch["labels"] = labels
    return batch
