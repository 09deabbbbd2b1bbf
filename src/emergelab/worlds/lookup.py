"""Lookup world: word-by-word translation through a fixed random dictionary with Zipf-distributed keys."""
from __future__ import annotations

import copy
from functools import cached_property

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from emergelab.errors import UserError
from emergelab.worlds.base import LatentSet, Link, TaskExample, TaskSet, World
from emergelab.worlds.parity import zipf_probabilities

#: symbol ids of the two punctuation marks; keys follow, then values
EQUALS, SEMI, FIRST_KEY = 0, 1, 2


class LookupParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    n_keys: int = Field(128, ge=2, le=1 << 16, description="dictionary entries (key symbols)")
    n_values: int = Field(128, ge=2, le=1 << 16, description="value symbols; each key's value is drawn uniformly")
    alpha: float = Field(0.0, ge=0, le=100, description="key i is drawn with probability ∝ i^−(alpha+1), "
                                                        "as in the parity world (0: ∝ 1/i)")
    length: int = Field(6, ge=1, le=256, description="keys per example = answer tokens L of the task")


class LookupWorld(World):
    """Examples ``k_1 … k_L = f(k_1) … f(k_L) ;``: L keys drawn independently with Zipf probability
    ∝ i^−(α+1) (``k0`` the most frequent), then their values under a fixed random dictionary f (drawn
    from the seed). Each entry is memorised on its own, the frequent ones first, so the share of right
    answer tokens rises gradually while a whole L-token answer is right with probability ≈ p^L: the
    mechanism of Schaeffer et al.'s (2023) mirage.

    Task ``lookup``: prompt ``k_1 … k_L =``, target the L values (keys drawn as in training; chance
    1/n_values per token). Latent ``key``: at the ``=`` and at each value but the last — where a causal
    model predicts the value of key i — the key i it must translate (L positions back); −1 elsewhere.
    Training rows start at an example and hold whole examples (the last one cut at ``seq_len``).
    """

    name = "lookup"
    summary = "word-by-word translation through a random dictionary, Zipf keys; exact match ≈ p^L"
    Params = LookupParams
    _stream = "train"

    @property
    def symbols(self) -> list[str]:
        p = self.params
        return ["=", ";"] + [f"k{i}" for i in range(p.n_keys)] + [f"v{j}" for j in range(p.n_values)]

    @property
    def width(self) -> int:
        """Tokens per example: L keys, ``=``, L values, ``;``."""
        return 2 * self.params.length + 2

    @cached_property
    def dictionary(self) -> np.ndarray:
        """[n_keys] the value index f(i) of key i (drawn uniformly from the seed's structure stream)."""
        return self.rng("structure").integers(0, self.params.n_values, size=self.params.n_keys)

    @property
    def frequencies(self) -> np.ndarray:
        """[n_keys] the probability of each key at each key position."""
        return zipf_probabilities(self.params.n_keys, self.params.alpha)

    def encode(self, keys: np.ndarray) -> np.ndarray:
        """[N, 2L+2] symbol rows ``k_1 … k_L = f(k_1) … f(k_L) ;`` from [N, L] key indices."""
        n = len(keys)
        values = self.dictionary[keys] + FIRST_KEY + self.params.n_keys
        return np.concatenate([keys + FIRST_KEY, np.full((n, 1), EQUALS), values, np.full((n, 1), SEMI)], axis=1)

    def _keys(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.choice(self.params.n_keys, size=(n, self.params.length), p=self.frequencies)

    def _rows(self, rng: np.random.Generator, n_rows: int, seq_len: int) -> tuple[np.ndarray, np.ndarray]:
        """[n_rows, seq_len] rows of whole examples from the row's start, and the ``key`` labels beside them."""
        per_row = -(-seq_len // self.width)
        keys = self._keys(rng, n_rows * per_row)
        L = self.params.length
        labels = np.full((len(keys), self.width), -1, dtype=np.int64)
        labels[:, L:2 * L] = keys  # '=' predicts f(k_1), value i predicts f(k_{i+1})
        ids = self.encode(keys).reshape(n_rows, per_row * self.width)[:, :seq_len]
        return ids, labels.reshape(n_rows, per_row * self.width)[:, :seq_len]

    def train_blocks(self, n_blocks: int, seq_len: int) -> np.ndarray:
        ids, _ = self._rows(self.stream_rng(self._stream), n_blocks, seq_len)
        return ids

    def heldout_world(self) -> "LookupWorld":
        """Held-out blocks: fresh examples under the same dictionary (which depends on the seed)."""
        other = copy.copy(self)
        other._stream = "heldout"
        return other

    def tasks(self, n_examples: int) -> list[TaskSet]:
        L = self.params.length
        if self.context is not None and 2 * L + 1 > self.context:
            raise UserError(f"lookup: a prompt and its answer take {2 * L + 1} tokens but the model's context is "
                            f"{self.context}; raise train.seq_len to at least {self.width} or lower world_args.length")
        rows = self.encode(self._keys(self.rng("task/lookup"), n_examples))
        examples = [TaskExample(prompt=r[:L + 1].tolist(), target=r[L + 1:2 * L + 1].tolist()) for r in rows]
        chance = 1.0 / self.params.n_values
        return [TaskSet("lookup", f"translate {L} Zipf-drawn keys through the dictionary, word by word", examples,
                        {"exact_match": chance ** L, "token_accuracy": chance}, fewshot_delimiter=[SEMI])]

    def mechanisms(self) -> list[Link]:
        """A value is right only if the model has fetched the key it translates (L positions back)."""
        return [Link("lookup", "key", "each answer token is the dictionary entry of the key L positions back")]

    def latents(self, n_sequences: int, seq_len: int) -> list[LatentSet]:
        ids, labels = self._rows(self.rng("latent"), n_sequences, seq_len)
        return [LatentSet("key", "the key whose value the next token is (read L positions back)", ids, labels,
                          [f"k{i}" for i in range(self.params.n_keys)])]

    def describe(self) -> dict:
        f = self.frequencies
        return {"n_keys": self.params.n_keys, "n_values": self.params.n_values, "length": self.params.length,
                "head_key_probability": float(f[0]), "tail_key_probability": float(f[-1])}
