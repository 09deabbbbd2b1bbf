"""The study directory: every path of a study (see DESIGN.md) and the readers that go with them.

Only this module spells a path inside a study. ``DataDir`` reads what the prepare stage wrote
(``data/``: manifest, tokenizer, training rows, held-out blocks, task sets, latent labels); stages
hand what it reads to the libraries, which know nothing of the study directory.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class DataDir:
    """``<study>/data``: the prepared corpus, tokenizer, tasks and latents."""

    root: Path

    @property
    def manifest_path(self) -> Path:
        return self.root / "manifest.json"

    @property
    def tokenizer(self) -> Path:
        return self.root / "tokenizer"

    def exists(self) -> bool:
        return self.manifest_path.exists()

    def manifest(self) -> dict:
        return json.loads(self.manifest_path.read_text(encoding="utf-8"))

    @staticmethod
    def replica_suffix(seed: int | None) -> str:
        """File suffix of a replicate's training rows (``train@seed1.npy``); none for the study's own seed."""
        return "" if seed is None else f"@seed{seed}"

    def blocks(self, name: str = "train") -> np.ndarray:
        """[N, T] token ids of the training rows or of the held-out blocks (memory-mapped)."""
        return np.load(self.root / f"{name}.npy", mmap_mode="r", allow_pickle=False)

    def train_rows(self, replica: int | None = None) -> dict[str, np.ndarray]:
        """The training rows (of a replicate seed, or the study's own): ``input_ids`` [N, T], plus NSP's
        ``token_type_ids`` and ``next_sentence_label``."""
        suffix = self.replica_suffix(replica)
        rows = {"input_ids": self.blocks(f"train{suffix}")}
        pairs = self.root / f"train_pairs{suffix}.npz"
        if pairs.exists():
            with np.load(pairs, allow_pickle=False) as z:
                rows.update({k: z[k] for k in ("token_type_ids", "next_sentence_label")})
        return rows

    def task(self, name: str) -> list[dict]:
        """A world task's examples (token ids): ``prompt``, ``target`` and, for multiple choice, ``choices``."""
        with open(self.root / "tasks" / f"{name}.jsonl", encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]

    def latent(self, name: str) -> dict[str, np.ndarray]:
        """A latent's ``input_ids`` [N, T] and ``labels`` ([N, T] per token, −1 where undefined, or [N])."""
        with np.load(self.root / "latents" / f"{name}.npz", allow_pickle=False) as z:
            return {k: z[k] for k in z.files}


@dataclass(frozen=True)
class Layout:
    root: Path

    # ------------------------------------------------------------ the study

    @property
    def spec(self) -> Path:
        return self.root / "study.yaml"

    @property
    def lock(self) -> Path:
        return self.root / ".lock"

    @property
    def timings(self) -> Path:
        return self.root / "timings.json"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @cached_property
    def data_dir(self) -> DataDir:
        return DataDir(self.data)

    # ------------------------------------------------------------ training runs

    def run(self, rung: str) -> Path:
        return self.root / "runs" / rung

    def checkpoints(self, rung: str) -> Path:
        return self.run(rung) / "checkpoints"

    def checkpoint(self, rung: str, step: int) -> Path:
        return self.checkpoints(rung) / f"step-{step:06d}"

    def state(self, rung: str) -> Path:
        return self.run(rung) / "state"

    def logs(self, rung: str) -> Path:
        return self.run(rung) / "logs"

    @staticmethod
    def owner_of(checkpoint: Path) -> "Layout | None":
        """The study a checkpoint directory (``<study>/runs/<rung>/checkpoints/step-N``) belongs to, if any."""
        up = Path(checkpoint).resolve().parents
        if len(up) < 4 or up[0].name != "checkpoints" or up[2].name != "runs":
            return None
        lay = Layout(up[3])
        return lay if lay.spec.exists() else None

    # ------------------------------------------------------------ measurements

    @property
    def parts(self) -> Path:
        return self.root / "parts"

    def part(self, source: str, rung: str, step: int | None = None) -> Path:
        name = f"step-{step:06d}.parquet" if step is not None else "all.parquet"
        return self.parts / source / rung / name

    def finetune_part(self, rung: str, step: int | None, method: str, n_labels: int | None, seed: int) -> Path:
        """One fine-tuning run's rows: ``parts/finetune/<rung>/step-NNNNNN|scratch/<method>/n<k>|nall/seed<s>.parquet``
        (``scratch``: the rung's architecture from random weights), named as ``finetune.sweep`` names run folders."""
        base = "scratch" if step is None else f"step-{step:06d}"
        k = "nall" if n_labels is None else f"n{n_labels}"
        return self.parts / "finetune" / rung / base / method / k / f"seed{seed}.parquet"

    def parts_digest(self) -> str:
        """A digest of every part's name, size and mtime: it changes when any part is added, redone or removed."""
        h = hashlib.sha256()
        for p in sorted(self.parts.rglob("*.parquet")) if self.parts.exists() else []:
            st = p.stat()
            h.update(f"{p.relative_to(self.parts)}:{st.st_size}:{st.st_mtime_ns}\n".encode())
        return h.hexdigest()

    @property
    def measurements(self) -> Path:
        return self.root / "measurements.parquet"

    @property
    def suite_audit(self) -> Path:
        """An external suite's checkpoints (where each comes from, its step and weights sha256) and their audit."""
        return self.root / "suite_audit.json"

    @property
    def explanations(self) -> Path:
        return self.root / "explanations.json"

    @property
    def report_dir(self) -> Path:
        return self.root / "report"

    @property
    def report(self) -> Path:
        return self.report_dir / "index.html"

    @property
    def stamps(self) -> Path:
        """Per whole-study output (measurements, explanations, report): the inputs it was made from."""
        return self.root / ".stamps"

    def stamp(self, name: str) -> Path:
        return self.stamps / f"{name}.json"
