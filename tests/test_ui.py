"""Console output prints messages literally: rich markup in data (paths, errors, names) is escaped, never rendered."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest
from rich.console import Console

from harness import ui
from harness.doctor.command import print_table
from harness.results.model import DoctorFinding, Severity

TRICKY = "[red]x[/red] in /tmp/a[1]/x [bold]"


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    buf = io.StringIO()
    monkeypatch.setattr(ui, "console", Console(file=buf, width=200, highlight=False, soft_wrap=True))
    yield buf


def test_info_warn_error_print_markup_literally(captured: io.StringIO) -> None:
    ui.info(TRICKY)
    ui.info(TRICKY, style="dim")
    ui.warn(TRICKY)
    ui.error(TRICKY)
    assert captured.getvalue().splitlines() == [TRICKY, TRICKY, f"warning: {TRICKY}", f"error: {TRICKY}"]


def test_markup_keeps_our_markup_and_escapes_the_values(captured: io.StringIO) -> None:
    line = ui.markup("[bold]{name}[/bold] -> {path}", name="[red]x[/red]", path="/tmp/a[1]/x")
    assert line.plain == "[red]x[/red] -> /tmp/a[1]/x" and any(s.style == "bold" for s in line.spans)
    ui.info(line)
    assert captured.getvalue() == "[red]x[/red] -> /tmp/a[1]/x\n"


def test_phases_without_a_terminal_print_descriptions_literally(captured: io.StringIO) -> None:
    with ui.phase(TRICKY, 1.0) as bar:
        bar.note(TRICKY)
        bar.update(description=TRICKY)
    lines = captured.getvalue().splitlines()
    assert lines[:3] == [f"{TRICKY} ...", f"  {TRICKY}", f"  {TRICKY}"] and lines[3].startswith(f"{TRICKY} done in")


def test_doctor_table_prints_data_literally() -> None:
    buf = io.StringIO()
    finding = DoctorFinding(
        check="[red]x[/red]", severity=Severity.WARNING, title=TRICKY, evidence="a[1]", why="[bold]", fix="/tmp/a[1]/x"
    )
    print_table([finding], title="doctor: a[1] [red]x[/red]", console=Console(file=buf, width=300, highlight=False))
    out = buf.getvalue()
    for text in ("doctor: a[1] [red]x[/red]", TRICKY, "a[1]", "[bold]", "/tmp/a[1]/x"):
        assert text in out
    assert "│ [red]x[/red]" in out  # the check column
