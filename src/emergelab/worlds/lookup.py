"""Lookup world: word-by-word translation through a fixed random dictionary with Zipf-distributed entries."""
from __future__ import annotations

import copy
from functools import cached_property

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from emergelab.errors import UserError
from emergelab.worlds.base import LatentSet, Link, TaskExample, TaskSet, World
from emergelab.worlds.parity import zipf_probabilities

#: symbol ids of the two punctuation marks; key symbols follow, then value symbols
EQUALS, SEMI, FIRST_KEY = 0, 1, 2
#: the most dictionary entries a world may hold (n_keys ** key_tokens)
MAX_ENTRIES = 1 << 20
BANDS = ["head", "upper", "lower", "tail"]


class LookupParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    n_keys: int = Field(48, ge=2, le=1 << 16, description="key symbols")
    key_tokens: int = Field(2, ge=1, le=8, description="symbols per key: the dictionary has n_keys^key_tokens entries")
    n_values: int = Field(64, ge=2, le=1 << 16, description="value symbols; each entry's value is drawn uniformly")
    alpha: float = Field(0.0, ge=0, le=100, description="the entry of rank r is drawn with probability ∝ r^−(alpha+1), "
                                                        "as in the parity world (0: ∝ 1/r)")
    length: int = Field(6, ge=1, le=256, description="keys per example = answer tokens L of the task")

    @model_validator(mode="after")
    def _entries(self) -> "LookupParams":
        if self.n_keys ** self.key_tokens > MAX_ENTRIES:
            raise ValueError(f"n_keys^key_tokens = {self.n_keys}^{self.key_tokens} entries is more than "
                             f"{MAX_ENTRIES:,}; lower n_keys or key_tokens")
        return self


class LookupWorld(World):
    """Examples ``key_1 … key_L = f(key_1) … f(key_L) ;``: L dictionary entries drawn independently with Zipf
    probability ∝ r^−(α+1) by rank r, each written as ``key_tokens`` key symbols, then their values under
    a fixed random dictionary f (drawn from the seed). The entry of rank r is ``order[r]``, a seeded
    permutation (the identity with one key token: ``k0`` is the most frequent key). Each entry is
    memorised on its own, the frequent ones first, so the share of right answer tokens rises gradually
    while a whole L-token answer is right with probability ≈ p^L: the mechanism of Schaeffer et al.'s
    (2023) mirage.

    Task ``lookup``: prompt ``key_1 … key_L =``, target the L values (entries drawn as in training; chance
    1/n_values per token). Latents, at the ``=`` and each value but the last — where a causal model
    predicts the value of entry i — −1 elsewhere: ``key`` (``key_1`` … ``key_m`` with m key tokens), the key
    symbols it must translate (read back in context), and ``band``, that entry's frequency band (quarters
    of the probability mass, by rank).
    Training rows start at an example and hold whole examples (the last one cut at ``seq_len``).
    """

    name = "lookup"
    summary = "word-by-word translation through a random dictionary, Zipf entries; exact match ≈ p^L"
    Params = LookupParams
    _stream = "train"

    @property
    def symbols(self) -> list[str]:
        p = self.params
        return ["=", ";"] + [f"k{i}" for i in range(p.n_keys)] + [f"v{j}" for j in range(p.n_values)]

    @property
    def n_entries(self) -> int:
        return self.params.n_keys ** self.params.key_tokens

    @property
    def width(self) -> int:
        """Tokens per example: L keys of ``key_tokens`` symbols, ``=``, L values, ``;``."""
        return (self.params.key_tokens + 1) * self.params.length + 2

    @cached_property
    def dictionary(self) -> np.ndarray:
        """[n_entries] the value index f(e) of entry e (drawn uniformly from the seed's structure stream)."""
        return self.rng("structure").integers(0, self.params.n_values, size=self.n_entries)

    @cached_property
    def order(self) -> np.ndarray:
        """[n_entries] the entry of each frequency rank (rank 0 the most frequent)."""
        if self.params.key_tokens == 1:
            return np.arange(self.n_entries)
        return self.rng("order").permutation(self.n_entries)

    @property
    def frequencies(self) -> np.ndarray:
        """[n_entries] the probability of the entry of each rank, at each key position."""
        return zipf_probabilities(self.n_entries, self.params.alpha)

    @cached_property
    def bands(self) -> np.ndarray:
        """[n_entries] the frequency band of each entry: which quarter of the probability mass its rank falls in."""
        mass_before = np.cumsum(self.frequencies) - self.frequencies
        band_of_rank = np.minimum((mass_before * len(BANDS)).astype(np.int64), len(BANDS) - 1)
        out = np.empty(self.n_entries, dtype=np.int64)
        out[self.order] = band_of_rank
        return out

    def spell(self, entries: np.ndarray) -> np.ndarray:
        """[..., key_tokens] key symbol indices of each entry, most significant first."""
        m, n = self.params.key_tokens, self.params.n_keys
        powers = n ** np.arange(m - 1, -1, -1, dtype=np.int64)
        return (np.asarray(entries, dtype=np.int64)[..., None] // powers) % n

    def encode(self, entries: np.ndarray) -> np.ndarray:
        """[N, width] symbol rows ``key_1 … key_L = f(key_1) … f(key_L) ;`` from [N, L] entries."""
        n = len(entries)
        keys = self.spell(entries).reshape(n, -1) + FIRST_KEY
        values = self.dictionary[entries] + FIRST_KEY + self.params.n_keys
        return np.concatenate([keys, np.full((n, 1), EQUALS), values, np.full((n, 1), SEMI)], axis=1)

    def _entries(self, rng: np.random.Generator, n: int) -> np.ndarray:
        ranks = rng.choice(self.n_entries, size=(n, self.params.length), p=self.frequencies)
        return self.order[ranks]

    def _rows(self, rng: np.random.Generator, n_rows: int, seq_len: int) -> tuple[np.ndarray, np.ndarray]:
        """[n_rows, seq_len] rows of whole examples from the row's start, and their [n_rows·per_row, L] entries."""
        per_row = -(-seq_len // self.width)
        entries = self._entries(rng, n_rows * per_row)
        ids = self.encode(entries).reshape(n_rows, per_row * self.width)[:, :seq_len]
        return ids, entries

    def _labels(self, entries: np.ndarray, n_rows: int, seq_len: int, of: np.ndarray) -> np.ndarray:
        """[n_rows, seq_len] ``of[entry]`` at the position that predicts each value ('=' and the values but the last)."""
        L, start = self.params.length, self.params.key_tokens * self.params.length
        labels = np.full((len(entries), self.width), -1, dtype=np.int64)
        labels[:, start:start + L] = of[entries]
        return labels.reshape(n_rows, -1)[:, :seq_len]

    def train_blocks(self, n_blocks: int, seq_len: int) -> np.ndarray:
        ids, _ = self._rows(self.stream_rng(self._stream), n_blocks, seq_len)
        return ids

    def heldout_world(self) -> "LookupWorld":
        """Held-out blocks: fresh examples under the same dictionary (which depends on the seed)."""
        other = copy.copy(self)
        other._stream = "heldout"
        return other

    def tasks(self, n_examples: int) -> list[TaskSet]:
        L, start = self.params.length, self.params.key_tokens * self.params.length
        if self.context is not None and self.width - 1 > self.context:
            raise UserError(f"lookup: a prompt and its answer take {self.width - 1} tokens but the model's context is "
                            f"{self.context}; raise train.seq_len to at least {self.width} or lower world_args.length")
        rows = self.encode(self._entries(self.rng("task/lookup"), n_examples))
        examples = [TaskExample(prompt=r[:start + 1].tolist(), target=r[start + 1:start + 1 + L].tolist()) for r in rows]
        chance = 1.0 / self.params.n_values
        return [TaskSet("lookup", f"translate {L} Zipf-drawn keys through the dictionary, word by word", examples,
                        {"exact_match": chance ** L, "token_accuracy": chance}, fewshot_delimiter=[SEMI])]

    def key_latents(self) -> list[str]:
        """Names of the key latents: ``key`` with one key token, else ``key_1`` … ``key_m``."""
        m = self.params.key_tokens
        return ["key"] if m == 1 else [f"key_{j + 1}" for j in range(m)]

    def mechanisms(self) -> list[Link]:
        """A value is right only if the model has fetched the key symbols it translates, earlier in the context."""
        return [Link("lookup", name, "each answer token is the dictionary entry of key symbols read earlier in the context")
                for name in self.key_latents()]

    def latents(self, n_sequences: int, seq_len: int) -> list[LatentSet]:
        ids, entries = self._rows(self.rng("latent"), n_sequences, seq_len)
        spelled = self.spell(np.arange(self.n_entries))
        keys = [f"k{i}" for i in range(self.params.n_keys)]
        out = [LatentSet(name, f"symbol {j + 1} of the key whose value the next token is (read back in context)", ids,
                         self._labels(entries, n_sequences, seq_len, spelled[:, j]), keys)
               for j, name in enumerate(self.key_latents())]
        return out + [LatentSet("band", "the frequency band of the entry whose value the next token is", ids,
                                self._labels(entries, n_sequences, seq_len, self.bands), list(BANDS))]

    def describe(self) -> dict:
        f = self.frequencies
        return {"n_entries": self.n_entries, "n_values": self.params.n_values, "length": self.params.length,
                "head_entry_probability": float(f[0]), "tail_entry_probability": float(f[-1])}
