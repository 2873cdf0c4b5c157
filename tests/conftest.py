"""Shared fixtures for the whole suite."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(scope="session", autouse=True)
def harness_config(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Every run of the suite reads this harness config, never the user's: no kube context is allowed without
    --context, and the owner is the session's own, so what the suite's runs leave is told from anyone else's (other
    sessions', other engineers') and `harness cleanup --all-mine` in a test touches only this session's runs."""
    path = tmp_path_factory.mktemp("harness-config") / "config.yaml"
    path.write_text(f"owner: harness-tests-{uuid.uuid4().hex[:8]}\n")
    previous = os.environ.get("HARNESS_CONFIG")
    os.environ["HARNESS_CONFIG"] = str(path)
    try:
        yield path
    finally:
        if previous is None:
            os.environ.pop("HARNESS_CONFIG", None)
        else:
            os.environ["HARNESS_CONFIG"] = previous


@pytest.fixture
def public_tmp() -> Iterator[Path]:
    """A work directory every user can traverse (mode 0755 under /tmp).

    As root the local runtime runs Prometheus as the scenario's uid (1000), which cannot enter pytest's private
    temp tree (mode 0700, and pytest resets that mode whenever another session starts).
    """
    path = Path(tempfile.mkdtemp(prefix="harness-test-", dir="/tmp"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def area(tmp_path: Path, public_tmp: Path) -> tuple[Path, Path]:
    """Where a run writes its reports, and its work directory (traversable by Prometheus' uid)."""
    return tmp_path / "reports", public_tmp


# --- trend and browser tests: real stored runs -------------------------------------------------------------------

_TINY_SCENARIO = """\
name: nightly-probe
duration: 3s
storage: {backend: local}
loads:
  tsdb: {series: 50, interval: 1s}
  fio: [{profile: wal-append, runtime: 1s, size: 16Mi}, {profile: randwrite-4k, runtime: 1s, size: 16Mi}]
faults: [{action: sigkill, at: 1s}]
"""


@pytest.fixture(scope="session")
def real_runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two real runs (prometheus, fio, a SIGKILL) of a few seconds each, stored as `harness run` stores them: the
    material the trend and browser tests build nights and reports from. Returns the reports root."""
    import subprocess
    import sys

    reports = tmp_path_factory.mktemp("real-runs") / "reports"
    scenario = reports.parent / "nightly-probe.yaml"
    scenario.write_text(_TINY_SCENARIO)
    work = Path(tempfile.mkdtemp(prefix="harness-test-", dir="/tmp"))
    work.chmod(0o755)
    try:
        for _ in range(2):
            argv = ["run", str(scenario), "--reports", str(reports), "--workdir", str(work)]
            proc = subprocess.run(
                [sys.executable, "-m", "harness.cli", *argv],
                capture_output=True,
                text=True,
                check=False,
                timeout=180,
            )
            assert proc.returncode == 0, proc.stdout + proc.stderr
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return reports
