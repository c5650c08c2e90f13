"""A progress bar for training: batches done, loss, accuracy and time left."""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class TrainingProgress:
    """Context manager wrapping a rich progress bar; does nothing when ``enabled`` is False."""

    def __init__(
        self, total_steps: int | None, *, enabled: bool = True, completed: int = 0
    ) -> None:
        self.enabled = enabled
        self._progress: Progress | None = None
        self._task = None
        self._total = total_steps
        self._completed = completed

    def __enter__(self) -> TrainingProgress:
        if self.enabled:
            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[metrics]}"),
                TimeElapsedColumn(),
                TextColumn("left"),
                TimeRemainingColumn(),
                console=Console(stderr=True, soft_wrap=True),  # piped lines stay whole
            )
            self._progress.__enter__()
            self._task = self._progress.add_task(
                "train", total=self._total, completed=self._completed, metrics=""
            )
        return self

    def update(self, description: str, metrics: str, advance: int = 1) -> None:
        if self._progress is not None:
            self._progress.update(
                self._task, description=description, metrics=metrics, advance=advance
            )

    def log(self, message: str) -> None:
        if self._progress is not None:
            self._progress.console.print(message)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._progress is not None:
            self._progress.__exit__(exc_type, exc, tb)
