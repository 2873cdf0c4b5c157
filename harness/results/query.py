"""Questions asked of the stored results of earlier runs, read back through ``store.load_result``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from harness.errors import UsageError
from harness.results.model import RunResult
from harness.results.store import RESULT_FILE, load_result

# How many earlier runs of a scenario are read for a replay measured on its storage: nightly results keep every
# night, and the newest runs on the same storage say what it does now.
EARLIER_RUNS_READ = 20


def earlier_results(scenario_reports: Path, current: Path) -> Iterator[RunResult]:
    """The stored results of a scenario's earlier runs, newest first, at most ``EARLIER_RUNS_READ`` of them; a file of
    another schema version or a broken one is skipped (not evidence either way)."""
    run_dirs = sorted(scenario_reports.iterdir(), reverse=True) if scenario_reports.is_dir() else []
    read = 0
    for run_dir in run_dirs:
        if read >= EARLIER_RUNS_READ:
            return
        if run_dir == current or not (run_dir / RESULT_FILE).is_file():
            continue
        read += 1
        try:
            yield load_result(run_dir)
        except UsageError:
            continue


def previous_wal_replay_s(scenario_reports: Path, current: Path) -> float | None:
    """The longest WAL replay of the newest earlier run of this scenario: what the probes must outlast."""
    for previous in earlier_results(scenario_reports, current):
        replays = [f.wal_replay_s for f in previous.faults if f.wal_replay_s is not None]
        if replays:
            return max(replays)
    return None
