"""Worlds: seeded generators of corpora, capability tasks and latent variables."""
from __future__ import annotations

import sys

from emergelab.worlds.arithmetic import ArithmeticWorld
from emergelab.worlds.base import SPECIAL_TOKENS, LatentSet, TaskExample, TaskSet, World
from emergelab.worlds.concepts import ConceptsWorld
from emergelab.worlds.induction import InductionWorld
from emergelab.worlds.mixture import MixtureWorld
from emergelab.worlds.modular import ModularWorld
from emergelab.worlds.parity import ParityWorld
from emergelab.worlds.text import TextWorld

#: name -> World class
WORLDS: dict[str, type[World]] = {w.name: w for w in [ConceptsWorld, ArithmeticWorld, InductionWorld, MixtureWorld,
                                                       ModularWorld, ParityWorld, TextWorld]}


def make_world(name: str, params: dict | None = None, seed: int = 0, **options) -> World:
    """A world by name; ``options`` are keyword arguments of its constructor (``context``, and for
    ``text``: ``corpus``, ``tokenizer``, ``causal``, ``echo``)."""
    return WORLDS[name](params, seed, **options)


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def world_for_spec(spec, echo=_stderr) -> World:
    """The world a study spec describes: its parameters and seed, the model context (``train.seq_len``)
    and, for ``text``, the corpus and tokenizer options (``echo`` receives the corpus summary line)."""
    options: dict = {"context": spec.train.seq_len}
    if spec.world == TextWorld.name:
        options.update(corpus=spec.corpus, tokenizer=spec.tokenizer.model_dump(), causal=spec.causal, echo=echo)
    return make_world(spec.world, spec.world_args, spec.seed, **options)


__all__ = ["WORLDS", "SPECIAL_TOKENS", "LatentSet", "TaskExample", "TaskSet", "World", "make_world", "world_for_spec"]
