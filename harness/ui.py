"""Terminal output: one rich console on stderr, progress bars for phases that take more than a moment.

Kept in one module so the pipeline says *what* is happening and this module decides *how* it is shown (and so
tests and CI logs get plain lines instead of redrawn bars).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn, TimeRemainingColumn

console = Console(stderr=True, highlight=False, soft_wrap=True)


def info(message: str) -> None:
    console.print(message)


def warn(message: str) -> None:
    console.print(f"[yellow]warning:[/yellow] {message}")


def error(message: str) -> None:
    console.print(f"[red]error:[/red] {message}", soft_wrap=True)


class PhaseBar:
    """A progress bar over a known duration or a known number of steps."""

    def __init__(self, progress: Progress | None, task: TaskID | None, total: float) -> None:
        self._progress = progress
        self._task = task
        self.total = total
        self._started = time.monotonic()

    def update(self, completed: float | None = None, description: str | None = None) -> None:
        if self._progress is None or self._task is None:
            if description:
                console.print(f"  {description}")
            return
        done = time.monotonic() - self._started if completed is None else completed
        # description=None leaves the task's description as it is.
        self._progress.update(self._task, completed=min(done, self.total), description=description)

    def note(self, message: str) -> None:
        console.print(f"  {message}")


@contextmanager
def phase(description: str, total: float) -> Iterator[PhaseBar]:
    """A phase with a bar when the terminal can redraw; plain start/end lines otherwise (CI logs, pipes)."""
    started = time.monotonic()
    if not console.is_terminal:
        console.print(f"[bold]{description}[/bold] ...")
        yield PhaseBar(None, None, total)
        console.print(f"[bold]{description}[/bold] done in {time.monotonic() - started:.1f} s")
        return
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TimeElapsedColumn(),
        TextColumn("/"),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )
    with progress:
        task = progress.add_task(description, total=total)
        bar = PhaseBar(progress, task, total)
        yield bar
        progress.update(task, completed=total)
