"""Rich progress bars: one bar per rung with its step, loss, throughput and ETA."""
from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


class RungProgress:
    """Context manager; ``update(rung, done, total, loss)`` may be called from any stage."""

    def __init__(self, console: Console | None, label: str, rungs: list[str], total: int):
        self.enabled = console is not None
        self.label = label
        self._progress = Progress(
            TextColumn("[bold]{task.fields[label]}[/] {task.description:>10}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn(),
            console=console, transient=False, disable=not self.enabled,
        )
        self._tasks = {r: self._progress.add_task(r, total=total, label=label, info="") for r in rungs}

    def __enter__(self) -> "RungProgress":
        self._progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._progress.__exit__(*exc)

    def update(self, rung: str, done: int, total: int, loss: float | None = None, tokens_per_s: float | None = None) -> None:
        task = self._tasks.get(rung)
        if task is None:
            return
        info = f"loss {loss:.3f}" if loss is not None else ""
        if tokens_per_s is not None:
            info += f" {tokens_per_s / 1000:,.1f}k tok/s"
        self._progress.update(task, completed=done, total=total, info=info)
