"""Mixture world: several symbol worlds in one pretraining corpus, as real corpora mix skills.

Why: a capability and a latent can live in different worlds. The default study wants modular
addition (a capability that emerges) beside the GINC concepts (a sequence-level latent a model must
infer in context); a mixture trains one model on both, so the ladder and checkpoints that show the
capability are the ones whose hidden states are probed for the concept.
"""
from __future__ import annotations

import copy
import hashlib
from collections import Counter
from functools import cached_property

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from emergelab.worlds.base import SPECIAL_TOKENS, LatentSet, Link, TaskExample, TaskSet, World

#: worlds a mixture cannot hold: real text trains its own tokenizer (no symbol ids to offset), and a
#: mixture of mixtures is a flatter mixture
NOT_MIXABLE = ("text", "mixture")


def _registry() -> dict[str, type[World]]:
    return World.registry()


class Component(BaseModel):
    """One world of the mixture, its share of training blocks, and its own ``world_args``."""

    model_config = ConfigDict(extra="forbid")
    world: str = Field(description="a symbol world (not text, not mixture)")
    weight: float = Field(1.0, gt=0, le=1e6, description="relative share of training blocks (normalised over components)")
    args: dict = Field(default_factory=dict, description="the component world's parameters (its world_args)")
    name: str | None = Field(None, pattern=r"^[A-Za-z0-9_-]+$",
                             description="prefix for clashing names; default: the world's name")

    @model_validator(mode="after")
    def _check(self) -> "Component":
        worlds = _registry()
        if self.world in NOT_MIXABLE or self.world not in worlds:
            allowed = sorted(set(worlds) - set(NOT_MIXABLE))
            raise ValueError(f"component world {self.world!r} cannot be mixed; allowed: {', '.join(allowed)}")
        try:
            params = worlds[self.world].Params(**self.args)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err.get("loc", ()))
            raise ValueError(f"component {self.world} args{'.' + where if where else ''}: {err['msg']}") from None
        self.args = params.model_dump()
        if self.name is None:
            self.name = self.world
        return self


def _default_components() -> list[Component]:
    return [Component(world="modular", weight=0.5), Component(world="concepts", weight=0.5)]


class MixtureParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    components: list[Component] = Field(default_factory=_default_components,
                                         description="the mixed worlds: [{world, weight, args, name}]")

    @field_validator("components")
    @classmethod
    def _distinct(cls, v: list[Component]) -> list[Component]:
        if not v:
            raise ValueError("a mixture needs at least one component: components: [{world: modular, weight: 1}]")
        names = [c.name for c in v]
        dup = sorted(n for n, k in Counter(names).items() if k > 1)
        if dup:
            raise ValueError(f"component names {dup} repeat; give each a distinct `name:` (a world used twice needs one)")
        return v


def _prefixed(names_per_component: list[list[str]], prefixes: list[str]) -> list[list[str]]:
    """Names made unique across components: a name that occurs in more than one is prefixed ``component:``
    in every component, so no name silently changes meaning; unique names stay as they are."""
    counts = Counter(n for names in names_per_component for n in set(names))
    return [[f"{p}:{n}" if counts[n] > 1 else n for n in names] for names, p in zip(names_per_component, prefixes)]


class MixtureWorld(World):
    """Each training block comes wholly from one component, drawn by a seeded weighted choice.

    Component ``i`` owns symbol ids ``[offset_i, offset_i + len(symbols_i))`` (symbols concatenated in
    component order). Its tasks and latents are the component's, with ids shifted into that range; a
    symbol, task or latent name used by more than one component is prefixed ``name:``. Held-out blocks,
    NSP documents and the description are composed the same way. A component that is the only one of
    its world gets the mixture's seed, so its blocks, tasks and latents are exactly those of the world
    on its own (shifted); a world used twice seeds each copy from its name.
    """

    name = "mixture"
    summary = "several symbol worlds in one corpus (e.g. modular + concepts); one component per block"
    Params = MixtureParams
    _stream = "train"

    def __init__(self, params: BaseModel | dict | None = None, seed: int = 0, *, context: int | None = None):
        super().__init__(params, seed, context=context)
        comps = self.params.components
        per_world = Counter(c.world for c in comps)
        self.components: list[World] = []
        for c in comps:
            own_seed = seed if per_world[c.world] == 1 else seed + int.from_bytes(hashlib.sha256(c.name.encode()).digest()[:3], "little")
            self.components.append(_registry()[c.world](c.args, own_seed, context=context))
        for c, w in zip(comps, self.components):
            if w.id_offset != len(SPECIAL_TOKENS):
                raise ValueError(f"component {c.name}: world {c.world} has no symbol ids to mix")
        sizes = [len(w.symbols) for w in self.components]
        #: first symbol id of each component
        self.offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        weights = np.array([c.weight for c in comps], dtype=np.float64)
        self.weights = weights / weights.sum()

    @property
    def _prefixes(self) -> list[str]:
        return [c.name for c in self.params.components]

    @cached_property
    def _symbols(self) -> list[str]:
        return [s for names in _prefixed([w.symbols for w in self.components], self._prefixes) for s in names]

    @property
    def symbols(self) -> list[str]:
        return self._symbols

    def _which(self, purpose: str, n: int) -> np.ndarray:
        """[n] component index per block (or document): the seeded weighted choice."""
        return self.stream_rng(f"{self._stream}/{purpose}").choice(len(self.components), size=n, p=self.weights)

    def _member(self, i: int) -> World:
        return self.components[i].heldout_world() if self._stream == "heldout" else self.components[i]

    def train_blocks(self, n_blocks: int, seq_len: int) -> np.ndarray:
        which = self._which("blocks", n_blocks)
        out = np.empty((n_blocks, seq_len), dtype=np.int64)
        for i in range(len(self.components)):
            rows = np.flatnonzero(which == i)
            if len(rows):  # the component's own stream, in its own order
                out[rows] = self._member(i).train_blocks(len(rows), seq_len) + self.offsets[i]
        return out

    def documents(self, n_docs: int) -> list[list[list[int]]]:
        """Up to ``n_docs`` documents in the seeded weighted order; a component with a finite corpus (concepts
        has ``n_docs`` documents) may hold fewer than its share, and its turns are then skipped."""
        which = self._which("documents", n_docs)
        per = []
        for i in range(len(self.components)):
            docs = self._member(i).documents(int(np.sum(which == i))) if np.any(which == i) else []
            per.append(iter([[[int(x) + int(self.offsets[i]) for x in s] for s in d] for d in docs]))
        out = []
        for i in which:
            doc = next(per[i], None)
            if doc is not None:
                out.append(doc)
        return out

    def heldout_world(self) -> "MixtureWorld":
        other = copy.copy(self)
        other._stream = "heldout"
        return other

    def with_replica(self, replica: int | None) -> "MixtureWorld":
        """The components draw the replicate's training streams too, and the mixture its block order."""
        other = copy.copy(self)
        other.replica = replica
        other.components = [c.with_replica(replica) for c in self.components]
        return other

    def _shift(self, ids, i: int) -> list[int]:
        return [int(x) + int(self.offsets[i]) for x in ids]

    def tasks(self, n_examples: int) -> list[TaskSet]:
        sets = [w.tasks(n_examples) for w in self.components]
        names = _prefixed([[ts.name for ts in s] for s in sets], self._prefixes)
        out = []
        for i, (s, new_names) in enumerate(zip(sets, names)):
            for ts, name in zip(s, new_names):
                examples = [TaskExample(self._shift(e.prompt, i), self._shift(e.target, i),
                                        None if e.choices is None else [self._shift(c, i) for c in e.choices])
                            for e in ts.examples]
                delim = None if ts.fewshot_delimiter is None else self._shift(ts.fewshot_delimiter, i)
                out.append(TaskSet(name, ts.description, examples, dict(ts.chance), delim))
        return out

    def latents(self, n_sequences: int, seq_len: int) -> list[LatentSet]:
        sets = [w.latents(n_sequences, seq_len) for w in self.components]
        names = _prefixed([[ls.name for ls in s] for s in sets], self._prefixes)
        return [LatentSet(name, ls.description, ls.input_ids + self.offsets[i], ls.labels, ls.label_names, ls.level)
                for i, (s, new_names) in enumerate(zip(sets, names)) for ls, name in zip(s, new_names)]

    def mechanisms(self) -> list[Link]:
        """Each component's links, under the names the mixture gives its tasks and latents (a capability
        is linked only to signals of its own component)."""
        tasks = _prefixed([[ts.name for ts in w.tasks(1)] for w in self.components], self._prefixes)
        latents = _prefixed([[ls.name for ls in w.latents(1, 16)] for w in self.components], self._prefixes)
        out = []
        for i, w in enumerate(self.components):
            t_map = dict(zip([ts.name for ts in w.tasks(1)], tasks[i]))
            l_map = dict(zip([ls.name for ls in w.latents(1, 16)], latents[i]))
            out += [Link(t_map.get(x.task, x.task), l_map.get(x.signal, x.signal), x.why) for x in w.mechanisms()]
        return out

    @cached_property
    def _labelled_index(self) -> dict[str, tuple[int, str, str]]:
        """Mixture task name -> (component index, the component's own task name, kind)."""
        own = [list(w.labelled_tasks().items()) for w in self.components]
        names = _prefixed([[n for n, _ in tasks] for tasks in own], self._prefixes)
        return {new: (i, name, kind) for i, (tasks, new_names) in enumerate(zip(own, names))
                for (name, kind), new in zip(tasks, new_names)}

    def labelled_tasks(self) -> dict[str, str]:
        """The components' labelled tasks (names prefixed only on a clash), in component order."""
        return {name: kind for name, (_, _, kind) in self._labelled_index.items()}

    def _labelled(self, name: str, kind: str, n_examples: int, seq_len: int):
        """The component's labelled examples, its symbols renamed to the mixture's vocabulary (as tokenized)."""
        from dataclasses import replace

        i, own, _ = self._labelled_index[name]
        data = self.components[i].labelled(own, n_examples, seq_len)
        start = int(self.offsets[i])
        rename = dict(zip(self.components[i].symbols, self.symbols[start:start + len(self.components[i].symbols)]))
        if data.texts is not None:
            return replace(data, texts=[" ".join(rename[w] for w in t.split(" ")) for t in data.texts],
                           source=f"mixture/{name}")
        return replace(data, tokens=[[rename[w] for w in row] for row in data.tokens], source=f"mixture/{name}")

    def render(self, ids) -> str:
        return " ".join(self.symbols[int(i)] for i in ids)

    def describe(self) -> dict:
        return {"components": {c.name: {"world": c.world, "weight": float(w), "first_symbol_id": int(off),
                                         "n_symbols": len(m.symbols), **m.describe()}
                               for c, w, off, m in zip(self.params.components, self.weights, self.offsets, self.components)}}
