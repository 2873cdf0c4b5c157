"""The benchmark code cannot rot: `python -m benchmarks.run --quick` runs every section against the real prometheus,
promtool and fio binaries and writes a report with all six sections. The numbers are never asserted (a smoke run's
sizes are too small to mean anything, and the machine is shared)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.leftovers import ROOT, left_behind

pytestmark = pytest.mark.slow

SECTIONS = [
    "## 1. fio overhead",
    "## 2. Load generator vs the peers",
    "## 3. Prometheus' own ceiling",
    "## 4. Verification cost",
    "## 5. Ledger overhead",
    "## 6. Scale past one generator",
]


@pytest.mark.skipif(
    not all(shutil.which(b) for b in ("prometheus", "promtool", "fio")),
    reason="needs the prometheus and fio Debian packages (prometheus, promtool, fio)",
)
def test_quick_benchmark_writes_all_six_sections(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    tmp_path.chmod(0o755)
    work.chmod(0o755)  # Prometheus may run as the scenario's uid when the harness runs as root
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--quick", "--reports", str(tmp_path / "reports"),
         "--workdir", str(work)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    [report] = (tmp_path / "reports" / "benchmarks").glob("*/report.md")
    text = report.read_text()
    for title in SECTIONS:
        assert title in text
    assert "Could not run" not in text
    assert "| shards | acknowledged samples/s" in text
    doc = json.loads(report.with_name("report.json").read_text())
    assert set(doc["results"]) == {
        "fio_overhead", "load_peers", "promtool_ceiling", "verify_cost", "ledger_cost", "sharding"
    }  # fmt: skip
    assert [s["ledger_exact"] for s in doc["results"]["sharding"]["summary"]] == [True, True]
    assert doc["machine"]["cores"]
    assert list(work.iterdir()) == []  # the run's data directory is gone
    assert left_behind(work) == []  # and none of its processes is left
