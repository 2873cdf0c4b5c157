"""Run directories and atomic writes: ``reports/<scenario>/<utc-timestamp>-<id>/result.json`` and friends.

A result is written with write-to-temp + fsync + rename, so a crash or Ctrl-C never leaves half a JSON file: an
interrupted run leaves the last complete snapshot, marked incomplete.
"""

from __future__ import annotations

import json
import os
import secrets
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from pydantic import ValidationError

from harness.errors import UsageError
from harness.fmt import shorten
from harness.results.migrate import migrate, oldest_readable
from harness.results.model import RESULT_SCHEMA_VERSION, RunResult

RESULT_FILE = "result.json"
REPORT_FILE = "report.html"


def new_run_dir(reports_root: Path, scenario_name: str, now: datetime | None = None) -> tuple[str, Path]:
    now = now or datetime.now(UTC)
    run_id = secrets.token_hex(3)
    path = reports_root / scenario_name / f"{now.strftime('%Y%m%dT%H%M%SZ')}-{run_id}"
    path.mkdir(parents=True, exist_ok=False)
    return run_id, path


def atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_result(run_dir: Path, result: RunResult) -> Path:
    path = run_dir / RESULT_FILE
    atomic_write_text(path, result.model_dump_json(indent=2))
    return path


def load_result(path: Path) -> RunResult:
    """Load ``result.json`` (or a run directory holding one); refuse other schema versions clearly."""
    if path.is_dir():
        path = path / RESULT_FILE
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{path}: no result here (expected a run directory or its {RESULT_FILE})") from None
    except json.JSONDecodeError as e:
        raise UsageError(f"{path}: truncated or not JSON ({e})") from None
    version = raw.get("schema_version") if isinstance(raw, dict) else None
    if not isinstance(version, int) or isinstance(version, bool):
        raise UsageError(f"{path}: not a result file of this harness (no integer schema_version)")
    if version > RESULT_SCHEMA_VERSION:
        raise UsageError(
            f"{path}: written by a newer harness (result schema version {version}; this one reads versions "
            f"{oldest_readable()} to {RESULT_SCHEMA_VERSION}): upgrade the harness to read it"
        )
    if version < oldest_readable():
        raise UsageError(
            f"{path}: result schema version {version} is older than this harness can read "
            f"({oldest_readable()} to {RESULT_SCHEMA_VERSION})"
        )
    try:
        return RunResult.model_validate(migrate(raw))
    except (ValidationError, KeyError, TypeError, ValueError) as e:
        raise UsageError(
            f"{path}: result file does not match schema version {version}:\n{shorten(str(e), 800)}"
        ) from None
