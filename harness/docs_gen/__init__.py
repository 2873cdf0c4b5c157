"""The documentation site's reference pages, generated from the code so they cannot drift from it.

``python -m harness.docs_gen --write docs/reference`` writes them; ``--check`` says which are stale (exit 1), and
``tests/test_docs.py`` holds the files equal to what this module makes now. The pages:

- ``scenario.md``: every key of a scenario file, from the pydantic models (``harness.scenario.model.Scenario``):
  nested models flattened to dotted key paths (``storage.claim.size``), one table per storage backend and per
  fault action (the two discriminated unions);
- ``cli.md``: every command and option of ``harness``, from its argument parser (``harness.cli.build_parser``);
- ``settings.md``: every ``HARNESS_*`` variable, from ``harness.settings.markdown_table``;
- ``results.md``: the result schema version and its format history (``harness.results.model``);
- ``conformance.md``: every shipped scenario file with how it must end on each runtime, and the nightly set
  (``harness.conformance``);
- ``_field-notes.md``: not a page but the sections ``docs/field-notes.md`` includes, the commands and verdicts of the
  field notes replayed step by step (``harness.docs_gen.field_notes``, from the conformance rows).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from harness.docs_gen.field_notes import field_notes_page
from harness.docs_gen.markdown import COMMAND, DEFAULT_DIR
from harness.docs_gen.pages import cli_page, conformance_page, results_page, settings_page
from harness.docs_gen.scenario import scenario_page

# --- writing and checking -----------------------------------------------------------------------------------------

PAGES: dict[str, Callable[[], str]] = {
    "scenario.md": scenario_page,
    "cli.md": cli_page,
    "settings.md": settings_page,
    "results.md": results_page,
    "conformance.md": conformance_page,
    "_field-notes.md": field_notes_page,
}


def pages() -> dict[str, str]:
    """File name -> the page as it must be now."""
    return {name: make() for name, make in PAGES.items()}


def stale(directory: Path) -> list[str]:
    """The pages under ``directory`` that differ from what this module makes now (or are missing)."""
    return [
        name
        for name, text in pages().items()
        if not (directory / name).is_file() or (directory / name).read_text() != text
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.docs_gen", description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", metavar="DIR", nargs="?", const=str(DEFAULT_DIR), help="write the pages to DIR")
    mode.add_argument("--check", metavar="DIR", nargs="?", const=str(DEFAULT_DIR), help="exit 1 if a page is stale")
    args = parser.parse_args(argv)
    if args.write:
        directory = Path(args.write)
        directory.mkdir(parents=True, exist_ok=True)
        for name, text in pages().items():
            (directory / name).write_text(text)
            print(directory / name)
        return 0
    names = stale(Path(args.check))
    for name in names:
        print(f"{Path(args.check) / name}: stale; run {COMMAND}", file=sys.stderr)
    return 1 if names else 0


__all__ = ["COMMAND", "DEFAULT_DIR", "PAGES", "main", "pages", "stale"]
