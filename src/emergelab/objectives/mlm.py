"""Masked language modelling (BERT), optionally with next-sentence prediction: masking and the loss.

Selection: each non-special, non-padding token is selected with ``probability`` (whole words at once
with ``whole_word``; Chinese words are jieba's, see objectives/chinese_words.py); a selected token becomes [MASK] (``mask``), a random non-special token
(``random``) or stays (``keep``). The masks are a pure function of (seed, step) over the step's whole
global batch, so a resumed run, a run with gradient accumulation and a multi-process run all see the
same masks.

The loss runs the encoder once and the MLM head only at the selected positions (the vocabulary-sized
head dominates the cost of small models; BERT computes it everywhere and discards 85 %), fused with
its cross-entropy (objectives/head_loss.py). It equals
``BertForPreTraining``'s own loss (mean cross-entropy over selected tokens + mean NSP cross-entropy).
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
import torch.nn.functional as F

from emergelab.objectives.base import Objective
from emergelab.objectives.chinese_words import han_token_table, jieba_word_starts
from emergelab.objectives.head_loss import linear_cross_entropy
from emergelab.objectives.words import word_start_table, word_starts

IGNORE = -100  # label of unselected positions, as in Hugging Face
_STREAM = 0x4D4C4D  # "MLM": the masking stream, independent of every other use of the seed


def special_table(tokenizer) -> np.ndarray:
    """Boolean [vocab]: the tokenizer's special tokens (never selected, never drawn as random tokens)."""
    table = np.zeros(len(tokenizer), dtype=bool)
    table[[i for i in tokenizer.all_special_ids if i is not None and i < len(tokenizer)]] = True
    return table


def select_positions(ids: np.ndarray, rng: np.random.Generator, probability: float, special: np.ndarray,
                     begin: np.ndarray | None = None) -> np.ndarray:
    """[B, T] booleans: positions chosen for prediction (whole words at once when ``begin`` [B, T], where
    each word begins, is given)."""
    u = rng.random(ids.shape)
    if begin is not None:
        pos = np.where(begin, np.arange(ids.shape[1])[None, :], 0)
        first = np.maximum.accumulate(pos, axis=1)  # position where each token's word begins
        u = np.take_along_axis(u, first, axis=1)  # every piece of a word shares its first piece's draw
    return (u < probability) & ~special[ids]


def corrupt(ids: np.ndarray, selected: np.ndarray, rng: np.random.Generator, *, mask_id: int, normal_ids: np.ndarray,
            mask: float, random: float) -> np.ndarray:
    """The model's input: selected tokens → [MASK] (``mask``), a random normal token (``random``) or kept."""
    v = rng.random(ids.shape)
    replacement = normal_ids[rng.integers(0, len(normal_ids), size=ids.shape)]
    out = ids.copy()
    out[selected & (v < mask)] = mask_id
    rand = selected & (v >= mask) & (v < mask + random)
    out[rand] = replacement[rand]
    return out


class MaskedLM(Objective):
    """BERT pretraining: MLM, plus NSP when ``nsp`` (rows then carry ``next_sentence_label``)."""

    def __init__(self, *, tokenizer, seed: int, nsp: bool = False, probability: float = 0.15, mask: float = 0.8,
                 random: float = 0.1, keep: float = 0.1, whole_word: bool = False):
        if tokenizer.mask_token_id is None:
            raise ValueError("masked language modelling needs a tokenizer with a mask token")
        self.seed, self.nsp = seed, nsp
        self.probability, self.mask_p, self.random_p = probability, mask, random
        self.mask_id, self.pad_id = tokenizer.mask_token_id, tokenizer.pad_token_id
        self.special = special_table(tokenizer)
        self.normal_ids = np.flatnonzero(~self.special)
        self.starts = word_start_table(tokenizer) if whole_word else None
        han = han_token_table(tokenizer) if whole_word else None
        self.han = han if han is not None and (han != "").any() else None  # a vocabulary with Han characters
        self.names = ("loss", "mlm_loss", "nsp_loss", "nsp_accuracy") if nsp else ("loss",)

    def batch(self, blocks, step: int) -> dict[str, torch.Tensor]:
        """Masked tensors for one step from its rows: a [B, T] array, or a mapping with ``input_ids``
        (and, for NSP, ``token_type_ids`` and ``next_sentence_label``)."""
        rows = blocks if isinstance(blocks, Mapping) else {"input_ids": blocks}
        ids = np.asarray(rows["input_ids"], dtype=np.int64)
        rng = np.random.default_rng([self.seed, _STREAM, step])
        selected = select_positions(ids, rng, self.probability, self.special, self.word_begin(ids))
        inputs = corrupt(ids, selected, rng, mask_id=self.mask_id, normal_ids=self.normal_ids,
                         mask=self.mask_p, random=self.random_p)
        out = {"input_ids": torch.from_numpy(inputs), "labels": torch.from_numpy(np.where(selected, ids, IGNORE)),
               "n_rows": torch.tensor(ids.shape[0]), "n_selected": torch.tensor(int(selected.sum()))}
        if self.pad_id is not None and (ids == self.pad_id).any():
            out["attention_mask"] = torch.from_numpy((ids != self.pad_id).astype(np.int64))
        if "token_type_ids" in rows:
            out["token_type_ids"] = torch.from_numpy(np.asarray(rows["token_type_ids"], dtype=np.int64))
        if self.nsp:
            if "next_sentence_label" not in rows:
                raise ValueError("NSP needs sentence-pair rows (prepare the study with objectives [mlm, nsp])")
            out["next_sentence_label"] = torch.from_numpy(np.asarray(rows["next_sentence_label"], dtype=np.int64))
        return out

    def word_begin(self, ids: np.ndarray) -> np.ndarray | None:
        """[B, T] where each word begins (None without whole-word masking); Han runs are cut by jieba."""
        if self.starts is None:
            return None
        begin = word_starts(ids, self.starts, self.special)
        return begin if self.han is None else jieba_word_starts(ids, begin, self.han)

    def loss(self, model, batch):
        """Mean MLM cross-entropy over selected tokens (+ mean NSP cross-entropy) of the whole batch.

        ``batch`` may be a slice of the step's rows (a micro-batch or one process's shard): the sums
        are then divided by the counts of the whole step (``n_selected``, ``n_rows``) and scaled by
        the number of slices, so that the average over slices is exactly the full batch's loss.
        """
        ids, labels = batch["input_ids"], batch["labels"]
        n_slices = batch["n_rows"].item() / ids.shape[0]
        out = model.bert(input_ids=ids, attention_mask=batch.get("attention_mask"),
                         token_type_ids=batch.get("token_type_ids"), return_dict=True)
        selected = labels != IGNORE
        head = model.cls.predictions
        hidden = head.transform(out.last_hidden_state[selected])  # [M, d]: the head only where there is a target
        mlm = linear_cross_entropy(hidden, head.decoder.weight, head.decoder.bias, labels[selected]) * (
            n_slices / max(batch["n_selected"].item(), 1))
        nsp_logits = model.cls.seq_relationship(out.pooler_output)  # [B, 2]
        if not self.nsp:
            # the NSP head takes part with weight 0: every parameter gets a gradient (DDP needs that)
            return mlm + 0.0 * nsp_logits.sum(), {"loss": mlm.item()}
        target = batch["next_sentence_label"]
        nsp = F.cross_entropy(nsp_logits.float(), target, reduction="sum") * (n_slices / batch["n_rows"].item())
        accuracy = (nsp_logits.argmax(-1) == target).float().mean().item()
        total = mlm + nsp
        return total, {"loss": total.item(), "mlm_loss": mlm.item(), "nsp_loss": nsp.item(), "nsp_accuracy": accuracy}
