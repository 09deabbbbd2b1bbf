"""Arithmetic world: n-digit addition and multiplication, exact match over an L-digit answer."""
from __future__ import annotations

import copy
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from emergelab.errors import UserError
from emergelab.worlds.base import LatentSet, Link, TaskExample, TaskSet, World

Op = Literal["add", "mul"]
SYMBOLS = [str(d) for d in range(10)] + ["+", "*", "=", ";"]
PLUS, TIMES, EQUALS, SEMI = 10, 11, 12, 13
OP_SYMBOL = {"add": PLUS, "mul": TIMES}


class ArithmeticParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ops: list[Op] = Field(default_factory=lambda: ["add", "mul"], description="operations in the corpus")
    digits: list[int] = Field(default_factory=lambda: [1, 2, 3, 4], description="operand digit counts")
    heldout_fraction: float = Field(0.1, gt=0, lt=1, description="problems never trained on; tasks use them")

    @field_validator("ops", "digits")
    @classmethod
    def _nonempty(cls, v: list) -> list:
        if not v:
            raise ValueError("give at least one value")
        return sorted(set(v), key=v.index)

    @field_validator("digits")
    @classmethod
    def _digits(cls, v: list[int]) -> list[int]:
        if any(d < 1 or d > 9 for d in v):
            raise ValueError("digit counts must be between 1 and 9")
        return v


def answer_length(op: str, n: int) -> int:
    """L: n+1 digits for a sum of two n-digit numbers, 2n for a product."""
    return n + 1 if op == "add" else 2 * n


def digits_msb(x: np.ndarray, width: int) -> np.ndarray:
    """[N, width] decimal digits of x, zero-padded, most significant first."""
    powers = 10 ** np.arange(width - 1, -1, -1, dtype=np.int64)
    return (np.asarray(x, dtype=np.int64)[:, None] // powers) % 10


def column_carries(a: np.ndarray, b: np.ndarray, op: str, n: int) -> np.ndarray:
    """[N, L] carry *into* each answer column, most significant first (long addition/multiplication).

    Column sums s_i (i from the least significant digit) are a_i + b_i, or Σ_{j+k=i} a_j b_k for a
    product; c_0 = 0 and c_{i+1} = ⌊(s_i + c_i) / 10⌋, so answer digit i = (s_i + c_i) mod 10.
    """
    L = answer_length(op, n)
    da, db = digits_msb(a, n)[:, ::-1], digits_msb(b, n)[:, ::-1]  # least significant first
    sums = np.zeros((len(a), L), dtype=np.int64)
    if op == "add":
        sums[:, :n] = da + db
    else:
        for j in range(n):
            sums[:, j:j + n] += da[:, j:j + 1] * db
    carries = np.zeros((len(a), L), dtype=np.int64)
    for i in range(1, L):
        carries[:, i] = (sums[:, i - 1] + carries[:, i - 1]) // 10
    return carries[:, ::-1]


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser: a well-mixed 64-bit hash of each element."""
    x = x.astype(np.uint64)
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


class ArithmeticWorld(World):
    """Problems ``a+b=c;`` / ``a*b=c;`` with zero-padded n-digit operands and an L-digit answer.

    A fixed, seeded fraction of each (op, n) problem space is held out: training never contains those
    problems, and the tasks ``add-{n}`` / ``mul-{n}`` ask only them. Latents ``carry_add`` /
    ``carry_mul``: at the token *before* each answer digit (``=`` or the previous digit, where a
    causal model predicts that digit), the carry into that digit's column; −1 elsewhere.
    """

    name = "arithmetic"
    summary = "n-digit addition/multiplication, L-digit answers; exact match vs per-digit accuracy"
    Params = ArithmeticParams
    _stream = "train"

    @property
    def symbols(self) -> list[str]:
        return SYMBOLS

    def is_heldout(self, op: str, n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Whether each problem belongs to the held-out split (a seeded hash, so membership is exact)."""
        with np.errstate(over="ignore"):  # wrap-around is part of the hash
            key = ((np.asarray(a, dtype=np.uint64) * np.uint64(10 ** n) + np.asarray(b, dtype=np.uint64))
                   * np.uint64(32) + np.uint64(2 * n + (op == "mul")))
            h = _mix64(key ^ _mix64(np.array([self.seed % (1 << 64)], dtype=np.uint64) + np.uint64(0x9E3779B97F4A7C15)))
        return (h >> np.uint64(11)).astype(np.float64) / float(1 << 53) < self.params.heldout_fraction

    def sample_problems(self, rng: np.random.Generator, op: str, n: int, size: int, heldout: bool) -> tuple[np.ndarray, np.ndarray]:
        """``size`` problems (a, b) of one kind from the training split or the held-out split."""
        got_a, got_b, have, tries = [], [], 0, 0
        while have < size:
            a = rng.integers(0, 10 ** n, size=2 * size + 16)
            b = rng.integers(0, 10 ** n, size=2 * size + 16)
            keep = self.is_heldout(op, n, a, b) == heldout
            got_a.append(a[keep])
            got_b.append(b[keep])
            have += int(keep.sum())
            tries += 1
            if tries > 10_000:
                raise UserError(f"arithmetic: no {'held-out' if heldout else 'training'} {n}-digit {op} problems "
                                f"exist with heldout_fraction={self.params.heldout_fraction}; change heldout_fraction")
        return np.concatenate(got_a)[:size], np.concatenate(got_b)[:size]

    def encode(self, op: str, n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """[N, 2n+2+L+1] token rows ``a op b = c ;``."""
        c = a * b if op == "mul" else a + b
        N = len(a)
        return np.concatenate([digits_msb(a, n), np.full((N, 1), OP_SYMBOL[op]), digits_msb(b, n),
                               np.full((N, 1), EQUALS), digits_msb(c, answer_length(op, n)),
                               np.full((N, 1), SEMI)], axis=1)

    def _problem_stream(self, rng: np.random.Generator, n_tokens: int, ops: list[str], heldout: bool,
                        with_carries: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Packed problems (kinds uniform over ``ops`` × digits) and, optionally, carry labels."""
        p = self.params
        kinds = [(op, n) for op in ops for n in p.digits]
        mean_len = np.mean([2 * n + 3 + answer_length(op, n) for op, n in kinds])
        n_prob = int(n_tokens / mean_len * 1.2) + 8
        kind = rng.integers(0, len(kinds), size=n_prob)
        rows: list[np.ndarray] = [np.empty(0, dtype=np.int64)] * n_prob
        labels: list[np.ndarray] = [np.empty(0, dtype=np.int64)] * n_prob
        for j, (op, n) in enumerate(kinds):
            idx = np.flatnonzero(kind == j)
            if not len(idx):
                continue
            a, b = self.sample_problems(rng, op, n, len(idx), heldout)
            enc = self.encode(op, n, a, b)
            lab = np.full(enc.shape, -1, dtype=np.int64)
            if with_carries:
                L = answer_length(op, n)
                lab[:, 2 * n + 1:2 * n + 1 + L] = column_carries(a, b, op, n)  # '=' and digits before the last
            for r, i in enumerate(idx):
                rows[i], labels[i] = enc[r], lab[r]
        ids, lab = np.concatenate(rows), np.concatenate(labels)
        while len(ids) < n_tokens:  # rare: the estimate was short
            more_ids, more_lab = self._problem_stream(rng, n_tokens - len(ids), ops, heldout, with_carries)
            ids, lab = np.concatenate([ids, more_ids]), np.concatenate([lab, more_lab])
        return ids[:n_tokens], lab[:n_tokens]

    def train_blocks(self, n_blocks: int, seq_len: int) -> np.ndarray:
        ids, _ = self._problem_stream(self.stream_rng(self._stream), n_blocks * seq_len, self.params.ops,
                                      heldout=self._stream == "heldout")
        return ids.reshape(n_blocks, seq_len)

    def heldout_world(self) -> "ArithmeticWorld":
        """Held-out blocks are packed held-out problems (the training split never contains them)."""
        other = copy.copy(self)
        other._stream = "heldout"
        return other

    def tasks(self, n_examples: int) -> list[TaskSet]:
        out = []
        for op in self.params.ops:
            for n in self.params.digits:
                L = answer_length(op, n)
                a, b = self.sample_problems(self.rng(f"task/{op}-{n}"), op, n, n_examples, heldout=True)
                enc = self.encode(op, n, a, b)
                examples = [TaskExample(prompt=row[:2 * n + 2].tolist(), target=row[2 * n + 2:2 * n + 2 + L].tolist())
                            for row in enc]
                word = "sum" if op == "add" else "product"
                out.append(TaskSet(f"{op}-{n}", f"the {L}-digit {word} of two held-out {n}-digit numbers", examples,
                                   {"exact_match": 10.0 ** -L, "token_accuracy": 0.1}, fewshot_delimiter=[SEMI]))
        return out

    def mechanisms(self) -> list[Link]:
        """A digit of a sum or product is right only with the carry into it (per-digit accuracy)."""
        return [Link(f"{op}-{n}", f"carry_{op}", "the carry into each answer digit")
                for op in self.params.ops for n in self.params.digits]

    def latents(self, n_sequences: int, seq_len: int) -> list[LatentSet]:
        out = []
        for op in self.params.ops:
            ids, lab = self._problem_stream(self.rng(f"latent/{op}"), n_sequences * seq_len, [op], heldout=False,
                                            with_carries=True)
            top = 1 if op == "add" else 9 * max(self.params.digits)  # a carry is at most 1, or 9n for a product
            out.append(LatentSet(f"carry_{op}", f"carry into the column of the next answer digit ({op})",
                                 ids.reshape(n_sequences, seq_len), lab.reshape(n_sequences, seq_len),
                                 [str(c) for c in range(top + 1)]))
        return out

    def render(self, ids) -> str:
        return "".join(SYMBOLS[int(i)] for i in ids)
