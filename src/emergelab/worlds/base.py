"""The World contract: a seeded generator with three faces — corpus, capability tasks, latent labels."""
from __future__ import annotations

import copy
import hashlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict

from emergelab.corpus.labelled import LabelledData
from emergelab.corpus.tokenizer import SPECIAL_TOKENS
from emergelab.errors import UserError

__all__ = ["SPECIAL_TOKENS", "LatentSet", "Link", "TaskExample", "TaskSet", "World", "rng_for"]


def rng_for(seed: int, purpose: str) -> np.random.Generator:
    """An independent, reproducible random stream per (seed, purpose)."""
    key = int.from_bytes(hashlib.sha256(purpose.encode()).digest()[:8], "little")
    return np.random.default_rng([seed, key])


@dataclass
class TaskExample:
    """One capability query: a prompt and its gold continuation, in symbol ids."""
    prompt: list[int]
    target: list[int]
    choices: list[list[int]] | None = None  # multiple-choice candidates (target is among them)


@dataclass
class TaskSet:
    """A capability task drawn from a world."""
    name: str
    description: str
    examples: list[TaskExample]
    #: chance level per metric (e.g. exact match of a random guess)
    chance: dict[str, float] = field(default_factory=dict)
    #: separator between few-shot demonstrations (symbol ids); None = task has no k-shot form
    fewshot_delimiter: list[int] | None = None

    @property
    def answer_length(self) -> int:
        return int(round(np.mean([len(e.target) for e in self.examples])))


@dataclass(frozen=True)
class Link:
    """One edge of a world's mechanism map: the ``signal`` (a latent, or a head score ``heads/<score>``)
    that bears on capability ``task`` (a task name), and why."""

    task: str
    signal: str
    why: str = ""

    def as_dict(self) -> dict:
        return {"task": self.task, "signal": self.signal, "why": self.why}


@dataclass
class LatentSet:
    """Ground-truth labels of a latent variable for a batch of sequences.

    ``labels`` is [N, T] for token-level latents (−1 where undefined) or [N] for sequence-level ones.
    """

    name: str
    description: str
    input_ids: np.ndarray  # [N, T] symbol ids
    labels: np.ndarray
    label_names: list[str]
    level: str = "token"  # token | sequence


class World(ABC):
    """A synthetic world. Subclasses define ``Params`` (a pydantic model) and the three faces."""
    name: ClassVar[str]
    summary: ClassVar[str]
    #: token id = symbol id + id_offset. Symbol worlds put the special tokens first; a world that
    #: trains its own tokenizer (real text) emits token ids directly and sets this to 0.
    id_offset: ClassVar[int] = len(SPECIAL_TOKENS)

    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid")

    _registry: ClassVar[dict[str, type["World"]]] = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:  # a concrete world registers itself by name
            World._registry[cls.name] = cls

    @staticmethod
    def registry() -> dict[str, type["World"]]:
        """Every world class defined so far, by name (worlds that build others, like the mixture, look here)."""
        return dict(World._registry)

    def __init__(self, params: BaseModel | dict | None = None, seed: int = 0, *, context: int | None = None):
        self.params = params if isinstance(params, BaseModel) else self.Params(**(params or {}))
        self.seed = seed
        #: the longest sequence a model will see (train.seq_len), if known: task prompts stay within it
        self.context = context

    @property
    @abstractmethod
    def symbols(self) -> list[str]:
        """The world's symbol vocabulary (token strings, without special tokens)."""
    @abstractmethod
    def train_blocks(self, n_blocks: int, seq_len: int) -> np.ndarray:
        """[n_blocks, seq_len] symbol ids for causal/masked pretraining, in training order."""
    def documents(self, n_docs: int) -> list[list[list[int]]]:
        """Documents made of sentences (symbol ids), for NSP; default: one block per document."""
        blocks = self.train_blocks(n_docs, 64)
        return [[list(map(int, b))] for b in blocks]

    @abstractmethod
    def tasks(self, n_examples: int) -> list[TaskSet]:
        """Capability tasks, drawn from a stream disjoint from training data."""
    @abstractmethod
    def latents(self, n_sequences: int, seq_len: int) -> list[LatentSet]:
        """Latent variables with ground-truth labels."""
    def mechanisms(self) -> list[Link]:
        """The world's mechanism map: which latents and attention-head scores bear on which capabilities.
        Explain computes leads (and the mechanism stage interventions) along these links only."""
        return []

    def labelled_tasks(self) -> dict[str, str]:
        """Fine-tuning tasks this world labels, name -> ``classify`` | ``tag``; the first is the default.

        A task is a latent of the same name, rendered as symbol text: a sequence-level latent is
        classification of the sequence, a token-level latent defined at every position is tagging of
        each symbol. Latents undefined at some positions (−1) are not offered. Default: none.
        """
        return {}

    def labelled(self, name: str, n_examples: int, seq_len: int):
        """``n_examples`` labelled examples of task ``name`` as ``LabelledData`` (symbols as words)."""
        tasks = self.labelled_tasks()
        if name not in tasks:
            raise UserError(f"world {self.name!r} has no labelled task {name!r}; allowed: {', '.join(tasks) or 'none'}")
        return self._labelled(name, tasks[name], n_examples, seq_len)

    def _labelled(self, name: str, kind: str, n_examples: int, seq_len: int):
        """The examples of a task ``labelled`` has checked: by default the latent of the same name."""
        latent = next(z for z in self.latents(n_examples, seq_len) if z.name == name)
        words = [[self.symbols[int(i)] for i in row] for row in latent.input_ids]
        source = f"{self.name}/{name}"
        if kind == "classify":
            return LabelledData.from_texts([" ".join(w) for w in words],
                                           [latent.label_names[int(y)] for y in latent.labels], source=source)
        tags = [[latent.label_names[int(y)] for y in row] for row in latent.labels]
        return LabelledData.from_tagged(words, tags, source=source)

    def rng(self, purpose: str) -> np.random.Generator:
        return rng_for(self.seed, f"{self.name}/{purpose}")

    #: the replicate whose training stream this world draws (None: the study's own seed); see ``with_replica``
    replica: int | None = None

    def with_replica(self, replica: int | None) -> "World":
        """The same world — structure, splits, tasks, latents, held-out stream — whose *training stream* is
        drawn for replicate ``replica``: seeds as replicates differ in data order and initialisation only."""
        other = copy.copy(self)
        other.replica = replica
        return other

    def stream_rng(self, purpose: str) -> np.random.Generator:
        """The generator of a training-stream draw; a replicate draws its own (the study's seed: ``rng``'s).
        Held-out streams (``heldout_world``) are never salted: every replicate is scored on the same blocks."""
        training = getattr(self, "_stream", "train") == "train" and getattr(self, "_split", "train") == "train"
        salted = self.replica is not None and training
        return self.rng(f"{purpose}/replica-{self.replica}" if salted else purpose)

    def heldout_world(self) -> "World":
        """The world whose ``train_blocks`` are the held-out evaluation blocks.

        Default: the same generator with another seed. Worlds whose structure depends on the seed
        (HMM concepts, train/held-out splits, a real corpus) override this to keep the structure and
        draw from their held-out stream instead.
        """
        return type(self)(self.params, self.seed + 1_000_003, context=self.context)

    def render(self, ids) -> str:
        """Symbol ids as readable text (for `emergelab worlds show`)."""
        return " ".join(self.symbols[int(i)] for i in ids)

    def describe(self) -> dict:
        """Facts about the generated data, recorded in data/manifest.json (e.g. a corpus summary)."""
        return {}
