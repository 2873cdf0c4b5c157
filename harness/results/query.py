"""Questions asked of the stored results of earlier runs, read back through ``store.load_result``."""

from __future__ import annotations

from pathlib import Path

from harness.errors import UsageError
from harness.results.store import RESULT_FILE, load_result


def previous_wal_replay_s(scenario_reports: Path, current: Path) -> float | None:
    """The longest WAL replay of the newest earlier run of this scenario: what the probes must outlast."""
    for run_dir in sorted(scenario_reports.iterdir(), reverse=True) if scenario_reports.is_dir() else []:
        if run_dir == current or not (run_dir / RESULT_FILE).is_file():
            continue
        try:
            previous = load_result(run_dir)
        except UsageError:  # another schema version or a broken file: not evidence either way
            continue
        replays = [f.wal_replay_s for f in previous.faults if f.wal_replay_s is not None]
        if replays:
            return max(replays)
    return None
