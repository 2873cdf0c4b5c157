"""Shared fixtures for the whole suite."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


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
