"""Rich progress bars that can be silenced (``--quiet``) and stay off on non-main DDP ranks."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn, TimeRemainingColumn

__all__ = ["progress_bar", "stage_progress", "console"]

console = Console(stderr=True)


class _Silent:
    def add_task(self, *args, **kwargs) -> TaskID:
        return TaskID(0)

    def update(self, *args, **kwargs) -> None:
        pass

    def advance(self, *args, **kwargs) -> None:
        pass

    def remove_task(self, *args, **kwargs) -> None:
        pass

    def log(self, *args, **kwargs) -> None:
        pass


@contextlib.contextmanager
def progress_bar(enabled: bool = True) -> Iterator[Progress | _Silent]:
    if not enabled:
        yield _Silent()
        return
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
        console=console,
        transient=False,
    ) as p:
        yield p


@contextlib.contextmanager
def stage_progress(enabled: bool = True) -> Iterator[Callable[[str, int, int], None]]:
    """A ``progress(stage, done, total)`` callback (what the latency-table builders report) drawing one bar per stage,
    with the time elapsed and left: a table takes minutes to hours, and a silent wait looks like a hang."""
    with progress_bar(enabled) as bar:
        tasks: dict[str, TaskID] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total, info="")
            bar.update(tasks[stage], completed=done)

        yield progress
