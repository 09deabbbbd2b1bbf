"""Induction world: random blocks that repeat; in-context copying appears as a phase change."""
from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from emergelab.worlds.base import LatentSet, Link, TaskExample, TaskSet, World


class InductionParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    vocab: int = Field(64, ge=4, le=1 << 20, description="number of distinct symbols")
    min_period: int = Field(8, ge=2, le=1 << 20, description="shortest repeated block")
    max_period: int = Field(32, ge=2, le=1 << 20, description="longest repeated block")
    answer_length: int = Field(5, ge=1, le=1 << 20, description="tokens to continue in the task")
    distinct: bool = Field(True, description="blocks hold distinct symbols, so every token's previous "
                                             "occurrence (what an induction head looks up) is unique")

    @model_validator(mode="after")
    def _order(self) -> "InductionParams":
        if self.min_period > self.max_period:
            raise ValueError(f"min_period {self.min_period} > max_period {self.max_period}")
        if self.distinct and self.max_period > self.vocab:
            raise ValueError(f"distinct blocks need max_period ≤ vocab, got {self.max_period} > {self.vocab}")
        return self


class InductionWorld(World):
    """A random block of ``period`` symbols repeats until the sequence is full.

    Capability ``induction``: after a block and the first token of its repeat, continue the repeat
    for ``answer_length`` tokens. Latent ``in_repeat``: whether the current token continues a repeat
    (its position is at or past the first repetition), which a model must infer in context.
    """

    name = "induction"
    summary = "random blocks of 8–32 symbols that repeat; in-context copying (induction heads)"
    Params = InductionParams

    @property
    def symbols(self) -> list[str]:
        return [f"s{i}" for i in range(self.params.vocab)]

    def _sequences(self, rng: np.random.Generator, n: int, seq_len: int) -> tuple[np.ndarray, np.ndarray]:
        p = self.params
        hi = min(p.max_period, max(p.min_period, seq_len // 2))
        periods = rng.integers(p.min_period, hi + 1, size=n)
        blocks = self._blocks(rng, n, hi)
        pos = np.arange(seq_len)[None, :] % periods[:, None]
        seqs = np.take_along_axis(blocks, pos, axis=1)
        return seqs.astype(np.int64), periods

    def _blocks(self, rng: np.random.Generator, n: int, width: int) -> np.ndarray:
        """[n, width] random symbols; without repeats within a row when ``distinct``."""
        if self.params.distinct:
            return np.argsort(rng.random((n, self.params.vocab)), axis=1)[:, :width]
        return rng.integers(0, self.params.vocab, size=(n, width))

    def train_blocks(self, n_blocks: int, seq_len: int) -> np.ndarray:
        seqs, _ = self._sequences(self.stream_rng("train"), n_blocks, seq_len)
        return seqs

    def tasks(self, n_examples: int) -> list[TaskSet]:
        p = self.params
        rng = self.rng("task/induction")
        examples = []
        for _ in range(n_examples):
            period = int(rng.integers(p.min_period, p.max_period + 1))
            block = self._blocks(rng, 1, period)[0].tolist()
            seq = (block * (2 + p.answer_length // period + 1))[: period + 1 + p.answer_length]
            examples.append(TaskExample(prompt=seq[: period + 1], target=seq[period + 1:]))
        chance = {"exact_match": (1 / p.vocab) ** p.answer_length, "token_accuracy": 1 / p.vocab}
        return [TaskSet("induction", "continue a repeated random block", examples, chance)]

    def labelled_tasks(self) -> dict[str, str]:
        return {"in_repeat": "tag"}

    def mechanisms(self) -> list[Link]:
        """In-context copying needs induction heads, which need previous-token heads (Olsson et al. 2022)."""
        return [Link("induction", "heads/induction", "an induction head attends to the token after the earlier copy"),
                Link("induction", "heads/previous_token", "the induction circuit's first half"),
                Link("induction", "in_repeat", "the model must know it is inside a repeat to copy")]

    def latents(self, n_sequences: int, seq_len: int) -> list[LatentSet]:
        seqs, periods = self._sequences(self.rng("latent"), n_sequences, seq_len)
        labels = (np.arange(seq_len)[None, :] >= periods[:, None]).astype(np.int64)
        return [LatentSet("in_repeat", "the current token continues a repeat", seqs, labels, ["first", "repeat"])]
