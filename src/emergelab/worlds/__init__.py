"""Worlds: seeded generators of corpora, capability tasks and latent variables."""
from __future__ import annotations

from emergelab.worlds.base import SPECIAL_TOKENS, LatentSet, TaskExample, TaskSet, World
from emergelab.worlds.induction import InductionWorld

#: name -> World class
WORLDS: dict[str, type[World]] = {w.name: w for w in [InductionWorld]}


def make_world(name: str, params: dict | None = None, seed: int = 0) -> World:
    return WORLDS[name](params, seed)


__all__ = ["WORLDS", "SPECIAL_TOKENS", "LatentSet", "TaskExample", "TaskSet", "World", "make_world"]
