"""Terminal output: one rich console on stderr, progress bars for phases that take more than a moment.

Kept in one module so the pipeline says *what* is happening and this module decides *how* it is shown (and so
tests and CI logs get plain lines instead of redrawn bars). Messages are printed literally: paths and errors hold
``[`` (``/tmp/a[1]``, ``[bold]``) that rich would otherwise take as markup; a whole message takes a ``style``, and
lines mixing our own markup with data are built with ``markup()``, which escapes the data.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.text import Text

console = Console(stderr=True, highlight=False, soft_wrap=True)


def markup(template: str, **values: object) -> Text:
    """Our own markup in ``template`` with ``values`` (data: names, paths, reasons) escaped into its fields."""
    return Text.from_markup(template.format(**{k: escape(str(v)) for k, v in values.items()}))


def _literal(message: str | Text, style: str | None = None) -> Text:
    return message if isinstance(message, Text) else Text(message, style=style or "")


def info(message: str | Text, *, style: str | None = None) -> None:
    console.print(_literal(message, style))


def warn(message: str | Text) -> None:
    console.print(Text.assemble(("warning:", "yellow"), " ", _literal(message)))


def error(message: str | Text) -> None:
    console.print(Text.assemble(("error:", "red"), " ", _literal(message)), soft_wrap=True)


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
                console.print(Text(f"  {description}"))
            return
        done = time.monotonic() - self._started if completed is None else completed
        # description=None leaves the task's description as it is.
        # The description column renders markup: data in it is escaped.
        shown = None if description is None else escape(description)
        self._progress.update(self._task, completed=min(done, self.total), description=shown)

    def note(self, message: str) -> None:
        console.print(Text(f"  {message}"))


@contextmanager
def phase(description: str, total: float) -> Iterator[PhaseBar]:
    """A phase with a bar when the terminal can redraw; plain start/end lines otherwise (CI logs, pipes)."""
    started = time.monotonic()
    if not console.is_terminal:
        console.print(markup("[bold]{d}[/bold] ...", d=description))
        yield PhaseBar(None, None, total)
        console.print(markup("[bold]{d}[/bold] done in {s} s", d=description, s=f"{time.monotonic() - started:.1f}"))
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
        task = progress.add_task(escape(description), total=total)
        bar = PhaseBar(progress, task, total)
        yield bar
        progress.update(task, completed=total)
