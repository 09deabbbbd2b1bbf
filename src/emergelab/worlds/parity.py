"""Parity world: multitask sparse parity with Zipf-distributed subtasks (Michaud et al. 2023, quanta)."""
from __future__ import annotations

import copy
from functools import cached_property

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from emergelab.worlds.base import LatentSet, Link, TaskExample, TaskSet, World


class ParityParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    n_tasks: int = Field(16, ge=1, le=100_000, description="subtasks (Michaud et al.: 500)")
    n_bits: int = Field(24, ge=1, le=100_000, description="task bits per example (Michaud et al.: 100)")
    k: int = Field(3, ge=1, le=100_000, description="bits whose parity a subtask asks for")
    alpha: float = Field(0.4, ge=0, le=100, description="subtask i is drawn with probability ∝ i^−(alpha+1)")
    answer_tokens: bool = Field(False, description="the answer is its own token, even/odd, rather than the bit tokens "
                                                   "0/1: with tied embeddings the loss on the random bits keeps a model "
                                                   "from telling the bits apart (docs/phenomena.md, Quanta)")

    @model_validator(mode="after")
    def _k_fits(self) -> "ParityParams":
        if self.k > self.n_bits:
            raise ValueError(f"k {self.k} > n_bits {self.n_bits}")
        return self


def zipf_probabilities(n: int, alpha: float) -> np.ndarray:
    """p_i = i^−(alpha+1) / Σ_j j^−(alpha+1), i = 1..n (Michaud et al. 2023)."""
    w = np.arange(1, n + 1, dtype=np.float64) ** -(alpha + 1.0)
    return w / w.sum()


class ParityWorld(World):
    """Examples ``t_i b_1 … b_n = y ;``: the subtask token t_i, n random bits, and y = the parity of the
    k bits in subtask i's fixed random subset. Subtask i is drawn with Zipf probability ∝ i^−(α+1)
    (t0 the most frequent), so rare subtasks are learned late: emergent subtasks, smooth average.

    The subtask is one token rather than Michaud et al.'s one-hot control bits (the same information).
    ``answer_tokens`` writes y as ``even``/``odd`` instead of the bit tokens.
    Tasks ``parity-{i}``: one per subtask (chance 0.5: the answer is a bit), and ``parity-all`` drawn from the
    training mixture (the frequency-weighted average). Latent ``subtask``: the
    subtask id at every bit and the ``=`` of an example (the model must carry it from t_i); −1 elsewhere.
    """

    name = "parity"
    summary = "multitask sparse parity with Zipf-distributed subtasks (quanta)"
    Params = ParityParams
    _stream = "train"

    @property
    def symbols(self) -> list[str]:
        answers = ["even", "odd"] if self.params.answer_tokens else []
        return ["0", "1", "=", ";"] + [f"t{i}" for i in range(self.params.n_tasks)] + answers

    @cached_property
    def subsets(self) -> np.ndarray:
        """[n_tasks, k] the bit positions of each subtask (distinct within a subtask)."""
        rng = self.rng("structure")
        return np.stack([np.sort(rng.choice(self.params.n_bits, self.params.k, replace=False))
                         for _ in range(self.params.n_tasks)])

    @property
    def frequencies(self) -> np.ndarray:
        return zipf_probabilities(self.params.n_tasks, self.params.alpha)

    def encode(self, task: np.ndarray, bits: np.ndarray) -> np.ndarray:
        """[N, n_bits+4] rows ``t_i bits = y ;`` (y the token 0/1, or even/odd under ``answer_tokens``)."""
        y = bits[np.arange(len(task))[:, None], self.subsets[task]].sum(axis=1) % 2
        if self.params.answer_tokens:
            y = y + 4 + self.params.n_tasks
        n = len(task)
        return np.concatenate([(task + 4)[:, None], bits, np.full((n, 1), 2), y[:, None], np.full((n, 1), 3)], axis=1)

    def _examples(self, rng: np.random.Generator, n: int, task: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        tasks = (np.full(n, task) if task is not None
                 else rng.choice(self.params.n_tasks, size=n, p=self.frequencies))
        bits = rng.integers(0, 2, size=(n, self.params.n_bits))
        return self.encode(tasks, bits), tasks

    def _stream_of(self, rng: np.random.Generator, n_tokens: int) -> tuple[np.ndarray, np.ndarray]:
        width = self.params.n_bits + 4
        rows, tasks = self._examples(rng, -(-n_tokens // width))
        lab = np.full(rows.shape, -1, dtype=np.int64)
        lab[:, 1:width - 2] = tasks[:, None]  # the bits and '='
        return rows.reshape(-1)[:n_tokens], lab.reshape(-1)[:n_tokens]

    def train_blocks(self, n_blocks: int, seq_len: int) -> np.ndarray:
        ids, _ = self._stream_of(self.stream_rng(self._stream), n_blocks * seq_len)
        return ids.reshape(n_blocks, seq_len)

    def heldout_world(self) -> "ParityWorld":
        """Held-out blocks: fresh examples of the same subtasks (the subsets depend on the seed)."""
        other = copy.copy(self)
        other._stream = "heldout"
        return other

    def tasks(self, n_examples: int) -> list[TaskSet]:
        """``parity-{i}`` per subtask, and ``parity-all``: examples drawn from the training mixture (subtasks
        Zipf-distributed), so its scores are the frequency-weighted average over subtasks."""
        width = len(str(self.params.n_tasks - 1))
        chance = {"exact_match": 0.5, "token_accuracy": 0.5}
        out = []
        for i in range(self.params.n_tasks):
            rows, _ = self._examples(self.rng(f"task/{i}"), n_examples, task=i)
            out.append(TaskSet(f"parity-{i:0{width}d}",
                               f"parity of bits {self.subsets[i].tolist()} (subtask frequency {self.frequencies[i]:.3g})",
                               self._task_examples(rows), dict(chance), fewshot_delimiter=[3]))
        rows, _ = self._examples(self.rng("task/all"), n_examples)
        out.append(TaskSet("parity-all", "the parity asked by an example of the training mixture (subtasks "
                           f"Zipf-distributed, alpha {self.params.alpha:g}): the frequency-weighted average over "
                           "subtasks", self._task_examples(rows), dict(chance), fewshot_delimiter=[3]))
        return out

    def _task_examples(self, rows: np.ndarray) -> list[TaskExample]:
        """Prompts ``t_i bits =`` with the two answers as choices: mc_accuracy is at chance (0.5) from the
        first checkpoint, where exact match first measures whether a model answers with an answer token."""
        zero = 4 + self.params.n_tasks if self.params.answer_tokens else 0
        choices = [[zero], [zero + 1]]
        return [TaskExample(prompt=r[:-2].tolist(), target=[int(r[-2])], choices=choices) for r in rows]

    def mechanisms(self) -> list[Link]:
        """Each sparse-parity subtask needs the model to know which subtask a prompt asks (Michaud et al. 2023)."""
        width = len(str(self.params.n_tasks - 1))
        names = [f"parity-{i:0{width}d}" for i in range(self.params.n_tasks)] + ["parity-all"]
        return [Link(name, "subtask", "the subtask index selects the bits") for name in names]

    def latents(self, n_sequences: int, seq_len: int) -> list[LatentSet]:
        ids, lab = self._stream_of(self.rng("latent"), n_sequences * seq_len)
        return [LatentSet("subtask", "which subtask the current example asks (carried from its first token)",
                          ids.reshape(n_sequences, seq_len), lab.reshape(n_sequences, seq_len),
                          [f"t{i}" for i in range(self.params.n_tasks)])]
