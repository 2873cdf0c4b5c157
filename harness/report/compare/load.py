"""Loading the compared inputs: the stored results that can be read are compared, the others (missing, truncated,
foreign, newer schema) left out with the reason (``Skipped``); the comparisons of paths ``harness compare`` asks for."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from harness.errors import UsageError
from harness.report.compare.judge import compare_sides
from harness.report.compare.model import Comparison, Rules, Skipped
from harness.report.compare.render import render_comparison
from harness.results.model import RunResult
from harness.results.store import load_result


def load_inputs(paths: Sequence[Path]) -> tuple[list[tuple[Path, RunResult]], list[Skipped]]:
    """The results that can be read, and the others with the reason (missing, truncated, foreign, newer schema)."""
    loaded, skipped = [], []
    for path in paths:
        try:
            loaded.append((path, load_result(path)))
        except UsageError as e:
            # The message starts with the file it concerns (the run directory's result.json): once is enough.
            where, _, reason = str(e).partition(": ")
            skipped.append(Skipped(str(path), reason if where.startswith(str(path)) else str(e)))
    return loaded, skipped


def compare_paths(baseline: Sequence[Path], candidates: Sequence[Sequence[Path]], rules: Rules = Rules()) -> Comparison:
    """Load the sides' stored results (run directories or result.json files) and compare them.

    Unreadable inputs are left out and listed in ``Comparison.skipped``; UsageError when a side is left empty.
    """
    sides, skipped = [], []
    for i, paths in enumerate([baseline, *candidates]):
        loaded, bad = load_inputs(paths)
        skipped += bad
        if not loaded:
            what = "the baseline" if i == 0 else f"side {i}"
            reasons = "; ".join(f"{s.path}: {s.reason}" for s in bad) or "no inputs"
            raise UsageError(f"no usable result left for {what} ({reasons})")
        sides.append(loaded)
    return compare_sides(sides, rules, skipped=skipped)


def compare_runs(paths: list[Path], out: Path | None = None, rules: Rules = Rules()) -> Comparison:
    """Compare stored runs one by one, the first is the baseline; unreadable ones are left out and named. Exit-2
    material (UsageError) only when fewer than two usable runs remain. With ``out``, also writes the HTML."""
    loaded, skipped = load_inputs(paths)
    if len(loaded) < 2:
        reasons = "".join(f"\n  {s.path}: {s.reason}" for s in skipped)
        raise UsageError(
            f"compare needs at least two usable results (the first one is the baseline); {len(loaded)} of "
            f"{len(paths)} could be read{reasons}"
        )
    comparison = compare_sides([[r] for r in loaded], rules, skipped=skipped)
    if out is not None:
        render_comparison(comparison, out)
    return comparison
