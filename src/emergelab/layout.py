"""The study directory: where every artifact of a study lives (see DESIGN.md)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Layout:
    root: Path

    @property
    def spec(self) -> Path:
        return self.root / "study.yaml"

    @property
    def data(self) -> Path:
        return self.root / "data"

    def run(self, rung: str) -> Path:
        return self.root / "runs" / rung

    def checkpoints(self, rung: str) -> Path:
        return self.run(rung) / "checkpoints"

    def state(self, rung: str) -> Path:
        return self.run(rung) / "state"

    def logs(self, rung: str) -> Path:
        return self.run(rung) / "logs"

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

    @property
    def measurements(self) -> Path:
        return self.root / "measurements.parquet"

    @property
    def explanations(self) -> Path:
        return self.root / "explanations.json"

    @property
    def report(self) -> Path:
        return self.root / "report" / "index.html"

    @property
    def timings(self) -> Path:
        return self.root / "timings.json"
