"""The one way the tests run the harness command: ``python -m harness.cli ARGS`` as a subprocess of this Python, from
the repository's root, bounded in time; the process and, when the command stored a run, that run's result.

    done = harness_cli("run", str(scenario), "--reports", str(reports))
    done.expect(1)                   # the exit code, or fail showing stdout and stderr
    done.result.faults               # the new run's result.json, loaded by the harness's own loader
    done.run_dir / "logs"            # the directory it was stored in

Which run is new is told by the result files under ``--reports`` before and after the command, so a reports
directory several runs share still names the one this command stored. A plain function rather than a fixture:
module- and session-scoped fixtures (runs made once for many tests) run the command too.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from harness.results.model import RunResult
from harness.results.store import RESULT_FILE, load_result

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT_S = 300  # what every copy this replaces allowed: a run the tests make to its end takes well under it


def command(*args: str, code: str | None = None) -> list[str]:
    """The argv of ``harness ARGS`` (for a test that starts it itself to signal it mid-run). With ``code``, that
    Python source runs in place of ``-m harness.cli``, with ARGS as its ``sys.argv[1:]``: a harness with one part
    swapped for a test's own before ``harness.cli.main`` runs."""
    return [sys.executable, *(["-c", code] if code is not None else ["-m", "harness.cli"]), *args]


def stored(reports: Path | None) -> set[Path]:
    """The result files under ``reports`` now."""
    # <reports>/<scenario>/<utc>-<run id>/result.json: how `harness run` stores a run
    return set(reports.glob(f"*/*/{RESULT_FILE}")) if reports is not None else set()


def _reports_of(args: Sequence[str]) -> Path | None:
    if "--reports" in args[:-1]:
        return Path(args[list(args).index("--reports") + 1])
    return None


@dataclass(frozen=True)
class CliRun:
    """One finished ``harness ARGS``: the process, and the result files it stored under ``--reports``."""

    process: subprocess.CompletedProcess[str]
    result_files: list[Path] = field(default_factory=list)

    @property
    def returncode(self) -> int:
        return self.process.returncode

    @property
    def stdout(self) -> str:
        return self.process.stdout

    @property
    def stderr(self) -> str:
        return self.process.stderr

    @property
    def output(self) -> str:
        """stdout, then stderr: what a user at a terminal reads."""
        return self.process.stdout + self.process.stderr

    def expect(self, returncode: int) -> CliRun:
        """This run, once its exit code is ``returncode``; otherwise the test fails with everything it said."""
        assert self.returncode == returncode, f"exit {self.returncode}, expected {returncode}:\n{self.output}"
        return self

    @property
    def result_file(self) -> Path:
        """The one result.json this command stored (the test fails if it stored none, or more than one)."""
        assert len(self.result_files) == 1, f"stored {len(self.result_files)} results, expected one:\n{self.output}"
        return self.result_files[0]

    @property
    def run_dir(self) -> Path:
        return self.result_file.parent

    @cached_property
    def result(self) -> RunResult:
        """The stored run, loaded as every reader of it loads it (``harness.results.store.load_result``)."""
        return load_result(self.result_file)


def harness_cli(
    *args: str,
    reports: Path | None = None,
    env: dict[str, str] | None = None,
    cwd: Path = ROOT,
    timeout_s: float = TIMEOUT_S,
    code: str | None = None,
) -> CliRun:
    """``harness ARGS`` to its end (``timeout_s`` at most), with ``env`` over this process's environment (``code``:
    see ``command``). The new result files are looked for under ``reports``, by default the ``--reports`` the
    arguments name."""
    reports = reports if reports is not None else _reports_of(args)
    before = stored(reports)
    process = subprocess.run(
        command(*args, code=code),
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, **env} if env is not None else None,
        check=False,
        timeout=timeout_s,
    )
    return CliRun(process, sorted(stored(reports) - before))
