"""Modular world: (a + b) mod p trained on a fraction of all pairs — grokking and Fourier features."""
from __future__ import annotations

import copy
from functools import cached_property

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from emergelab.corpus.labelled import LabelledData
from emergelab.worlds.base import LatentSet, Link, TaskExample, TaskSet, World

#: equal-width bins of a cosine/sine value in [−1, 1]: the classes of a Fourier latent
FOURIER_BINS = ["[-1,-0.5)", "[-0.5,0)", "[0,0.5)", "[0.5,1]"]


class ModularParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    p: int = Field(97, ge=3, le=4096, description="the modulus")
    train_fraction: float = Field(0.3, gt=0, lt=1, description="fraction of the p² pairs trained on")
    fourier_k: list[int] = Field(default_factory=lambda: [1, 2], description="frequencies of the Fourier latents")

    @field_validator("fourier_k")
    @classmethod
    def _k(cls, v: list[int]) -> list[int]:
        if any(k < 1 for k in v):
            raise ValueError("fourier_k values must be ≥ 1")
        return sorted(set(v))


def answer_fourier_bin(fn, k: int, a: np.ndarray, b: np.ndarray, p: int) -> np.ndarray:
    """The bin of fn(2πk(a+b)/p) for the pairs (a, b)."""
    return fourier_bin(fn(2 * np.pi * k * (np.asarray(a) + np.asarray(b)) / p))


def fourier_bin(x: np.ndarray) -> np.ndarray:
    """Class of cos/sin values in [−1, 1]: 4 equal-width bins (index into FOURIER_BINS)."""
    return np.minimum(np.floor((np.asarray(x) + 1.0) * 2.0), 3).astype(np.int64)


class ModularWorld(World):
    """Examples ``a + b = c ;`` with c = (a + b) mod p; a seeded ``train_fraction`` of the p² pairs is
    the training split, the rest is held out.

    Tasks: ``mod_heldout`` (pairs never trained on: generalisation, which groks late) and ``mod_train``
    (trained pairs: memorisation). Held-out blocks are held-out pairs, so the held-out loss is the test
    loss. Latents ``cos_k{k}`` / ``sin_k{k}``: at the a token cos/sin(2πk·a/p), at the b token the same of
    b, at the ``=`` token the same of a+b — each discretised into 4 equal-width bins of [−1, 1]; −1 elsewhere.
    """

    name = "modular"
    summary = "(a + b) mod p on a training fraction of pairs; grokking, Fourier features"
    Params = ModularParams
    _stream = "train"

    @property
    def symbols(self) -> list[str]:
        return [str(i) for i in range(self.params.p)] + ["+", "=", ";"]

    @property
    def _plus(self) -> int:
        return self.params.p

    @cached_property
    def split(self) -> tuple[np.ndarray, np.ndarray]:
        """(train pairs [n_train, 2], held-out pairs [n_heldout, 2]); n_train = round(fraction · p²)."""
        p = self.params.p
        order = self.rng("split").permutation(p * p)
        n_train = min(max(1, round(self.params.train_fraction * p * p)), p * p - 1)
        pairs = np.stack([order // p, order % p], axis=1)
        return pairs[:n_train], pairs[n_train:]

    def encode(self, pairs: np.ndarray) -> np.ndarray:
        """[N, 6] rows ``a + b = c ;``."""
        p, plus = self.params.p, self._plus
        a, b = pairs[:, 0], pairs[:, 1]
        n = len(pairs)
        return np.stack([a, np.full(n, plus), b, np.full(n, plus + 1), (a + b) % p, np.full(n, plus + 2)], axis=1)

    def _stream_of(self, rng: np.random.Generator, pairs: np.ndarray, n_tokens: int) -> tuple[np.ndarray, np.ndarray]:
        chosen = pairs[rng.integers(0, len(pairs), size=-(-n_tokens // 6))]
        return self.encode(chosen).reshape(-1)[:n_tokens], chosen

    def train_blocks(self, n_blocks: int, seq_len: int) -> np.ndarray:
        pairs = self.split[1] if self._stream == "heldout" else self.split[0]
        ids, _ = self._stream_of(self.stream_rng(self._stream), pairs, n_blocks * seq_len)
        return ids.reshape(n_blocks, seq_len)

    def sum_grid(self) -> tuple[np.ndarray, np.ndarray]:
        """(the prompts ``a + b =`` of all p² pairs, a-major [p², 4] symbol ids; the training pairs' mask [p, p]) —
        what the Fourier progress measures (evaluate/fourier.py) read the model's logits on."""
        p = self.params.p
        grid = np.stack(np.meshgrid(np.arange(p), np.arange(p), indexing="ij"), axis=-1).reshape(-1, 2)
        train = np.zeros((p, p), dtype=bool)
        train[self.split[0][:, 0], self.split[0][:, 1]] = True
        return self.encode(grid)[:, :4], train

    def heldout_world(self) -> "ModularWorld":
        other = copy.copy(self)
        other._stream = "heldout"
        return other

    def tasks(self, n_examples: int) -> list[TaskSet]:
        p = self.params.p
        out = []
        for name, pairs, what in (("mod_heldout", self.split[1], "held-out pairs (generalisation)"),
                                  ("mod_train", self.split[0], "training pairs (memorisation)")):
            rng = self.rng(f"task/{name}")
            idx = rng.permutation(len(pairs))[:n_examples] if n_examples <= len(pairs) else rng.integers(0, len(pairs), n_examples)
            rows = self.encode(pairs[idx])
            examples = [TaskExample(prompt=r[:4].tolist(), target=[int(r[4])]) for r in rows]
            out.append(TaskSet(name, f"(a + b) mod {p} on {what}", examples,
                               {"exact_match": 1 / p, "token_accuracy": 1 / p}, fewshot_delimiter=[self._plus + 2]))
        return out

    def labelled_tasks(self) -> dict[str, str]:
        """``sum_cos_k{k}`` / ``sum_sin_k{k}``: classify a prompt ``a + b =`` by the Fourier bin of a+b."""
        return {f"sum_{fn}_k{k}": "classify" for k in self.params.fourier_k for fn in ("cos", "sin")}

    def _labelled(self, name: str, kind: str, n_examples: int, seq_len: int):
        """Prompts of held-out pairs (never trained on), labelled with the bin of cos/sin(2πk·(a+b)/p) —
        the latent the probe reads at ``=``, learned from few labels; at most every held-out pair."""

        fn, k = name.split("_")[1], int(name.rsplit("_k", 1)[1])
        pairs = self.split[1][self.rng(f"labelled/{name}").permutation(len(self.split[1]))[:n_examples]]
        p, syms = self.params.p, self.symbols
        texts = [" ".join(syms[int(t)] for t in row[:4]) for row in self.encode(pairs)]
        bins = fourier_bin({"cos": np.cos, "sin": np.sin}[fn](2 * np.pi * k * pairs.sum(axis=1) / p))
        return LabelledData.from_texts(texts, [FOURIER_BINS[b] for b in bins], source=f"modular/{name}")

    def latents(self, n_sequences: int, seq_len: int) -> list[LatentSet]:
        p = self.params.p
        ids, chosen = self._stream_of(self.rng("latent"), self.split[0], n_sequences * seq_len)
        n_ex = len(chosen)
        out = []
        for k in self.params.fourier_k:
            for fn_name, fn in (("cos", np.cos), ("sin", np.sin)):
                lab = np.full((n_ex, 6), -1, dtype=np.int64)
                a, b = chosen[:, 0], chosen[:, 1]
                lab[:, 0] = fourier_bin(fn(2 * np.pi * k * a / p))
                lab[:, 2] = fourier_bin(fn(2 * np.pi * k * b / p))
                lab[:, 3] = fourier_bin(fn(2 * np.pi * k * (a + b) / p))
                labels = lab.reshape(-1)[:n_sequences * seq_len].reshape(n_sequences, seq_len)
                out.append(LatentSet(f"{fn_name}_k{k}", f"{fn_name}(2π·{k}·x/{p}) of the input (a, b, or a+b at '='), "
                                                        "in 4 bins", ids.reshape(n_sequences, seq_len), labels, FOURIER_BINS))
        return out + self._answer_latents(ids.reshape(n_sequences, seq_len), chosen, n_sequences, seq_len)

    def _answer_latents(self, ids: np.ndarray, chosen: np.ndarray, n_sequences: int, seq_len: int) -> list[LatentSet]:
        """cos/sin(2πk(a+b)/p) read at the '=' position only, where the model must have computed the answer: its
        token is always '=', so a per-token control cannot read the label off the input (Nanda et al.'s key
        frequencies of the answer)."""
        p, out = self.params.p, []
        a, b = chosen[:, 0], chosen[:, 1]
        for k in self.params.fourier_k:
            for fn_name, fn in (("cos", np.cos), ("sin", np.sin)):
                lab = np.full((len(chosen), 6), -1, dtype=np.int64)
                lab[:, 3] = answer_fourier_bin(fn, k, a, b, p)
                labels = lab.reshape(-1)[:n_sequences * seq_len].reshape(n_sequences, seq_len)
                out.append(LatentSet(f"answer_{fn_name}_k{k}", f"{fn_name}(2π·{k}·(a+b)/{p}) at '=', in 4 bins", ids,
                                     labels, FOURIER_BINS))
        return out

    def mechanisms(self) -> list[Link]:
        why = "the Fourier features of the answer at '=' (Nanda et al. 2023) carry held-out addition"
        return [Link(task, f"answer_{fn}_k{k}", why) for task in ("mod_heldout", "mod_train")
                for k in self.params.fourier_k for fn in ("cos", "sin")]
