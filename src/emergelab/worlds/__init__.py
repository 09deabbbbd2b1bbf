"""Worlds: seeded generators of corpora, capability tasks and latent variables."""
from __future__ import annotations

import sys

from emergelab.corpus.tokenizer import symbol_tokenizer
from emergelab.worlds.arithmetic import ArithmeticWorld
from emergelab.worlds.base import SPECIAL_TOKENS, LatentSet, TaskExample, TaskSet, World, rng_for
from emergelab.worlds.concepts import ConceptsWorld
from emergelab.worlds.induction import InductionWorld
from emergelab.worlds.lookup import LookupWorld
from emergelab.worlds.mixture import MixtureWorld
from emergelab.worlds.modular import ModularWorld
from emergelab.worlds.parity import ParityWorld
from emergelab.worlds.text import TextWorld

#: name -> World class (the same registry ``World.registry()`` gives the mixture world)
WORLDS: dict[str, type[World]] = {w.name: w for w in [ConceptsWorld, ArithmeticWorld, InductionWorld, LookupWorld,
                                                       MixtureWorld, ModularWorld, ParityWorld, TextWorld]}


def make_world(name: str, params: dict | None = None, seed: int = 0, **options) -> World:
    """A world by name; ``options`` are keyword arguments of its constructor (``context``, and for
    ``text``: ``corpus``, ``tokenizer``, ``causal``, ``echo``)."""
    return WORLDS[name](params, seed, **options)


def world_tokenizer(world: World):
    """The world's own tokenizer if it trains one (real text), else a symbol tokenizer."""
    build = getattr(world, "build_tokenizer", None)
    return build() if build is not None else symbol_tokenizer(world.symbols)


def _stderr(line: str) -> None:
    sys.stderr.write(line + "\n")  # progress and notes go to stderr, data to stdout


def world_for_spec(spec, echo=_stderr) -> World:
    """The world a study spec describes: its parameters and seed, the model context (``train.seq_len``)
    and, for ``text``, the corpus and tokenizer options (``echo`` receives the corpus summary line)."""
    options: dict = {"context": spec.train.seq_len}
    if spec.world == TextWorld.name:
        options.update(corpus=spec.corpus, tokenizer=spec.tokenizer.model_dump(), causal=spec.causal, echo=echo)
    return make_world(spec.world, spec.world_args, spec.seed, **options)


__all__ = ["WORLDS", "SPECIAL_TOKENS", "LatentSet", "TaskExample", "TaskSet", "World", "make_world", "rng_for",
           "world_for_spec", "world_tokenizer"]
