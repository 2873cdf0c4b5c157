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
