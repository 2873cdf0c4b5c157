"""The benchmark code cannot rot: `python -m benchmarks.run --quick` runs every section against the real prometheus,
promtool and fio binaries and writes a report with all six sections. The numbers are never asserted (a smoke run's
sizes are too small to mean anything, and the machine is shared).

Section 3 (promtool's ceiling) reads 20kseries.json from the prometheus Go module, which only Go can download when
the module cache lacks it: it is run on its own, and skipped, naming Go, where neither is here; the other five sections
run everywhere prometheus and fio do."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from benchmarks.common import prometheus_binaries
from benchmarks.promtool_ceiling import cached_series_file
from tests.leftovers import ROOT, left_behind

pytestmark = pytest.mark.slow

SECTIONS = {
    "fio_overhead": "## 1. fio overhead",
    "load_peers": "## 2. Load generator vs the peers",
    "promtool_ceiling": "## 3. Prometheus' own ceiling",
    "verify_cost": "## 4. Verification cost",
    "ledger_cost": "## 5. Ledger overhead",
    "sharding": "## 6. Scale past one generator",
    "false_alarms": "## 7. Compare's false alarms on identical runs",
}
GO_SECTION = "promtool_ceiling"

needs_binaries = pytest.mark.skipif(
    not all(shutil.which(b) for b in ("prometheus", "promtool", "fio")),
    reason="needs the prometheus and fio Debian packages (prometheus, promtool, fio)",
)


def quick_benchmark(tmp_path: Path, sections: list[str], *extra: str) -> tuple[str, dict[str, Any]]:
    """`python -m benchmarks.run --quick --sections ...` to the end: its report.md and report.json."""
    work = tmp_path / "work"
    work.mkdir()
    tmp_path.chmod(0o755)
    work.chmod(0o755)  # Prometheus may run as the scenario's uid when the harness runs as root
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--quick", "--reports", str(tmp_path / "reports"),
         "--workdir", str(work), "--sections", ",".join(sections), *extra],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    [report] = (tmp_path / "reports" / "benchmarks").glob("*/report.md")
    text = report.read_text()
    for title in SECTIONS.values():
        assert title in text  # every section has its heading, a section not run says so under it
    assert "Could not run" not in text
    assert text.count("Not run: not among --sections.") == len(SECTIONS) - len(sections)
    doc = json.loads(report.with_name("report.json").read_text())
    assert set(doc["results"]) == set(sections)
    assert doc["machine"]["cores"]
    assert list(work.iterdir()) == []  # the run's data directory is gone
    assert left_behind(work) == []  # and none of its processes is left
    return text, doc


@needs_binaries
def test_quick_benchmark_writes_every_section_but_the_one_that_needs_go(tmp_path: Path) -> None:
    text, doc = quick_benchmark(tmp_path, [k for k in SECTIONS if k not in (GO_SECTION, "false_alarms")])
    assert "| shards | acknowledged samples/s" in text
    assert [s["ledger_exact"] for s in doc["results"]["sharding"]["summary"]] == [True, True]
    # The check against every Prometheus here (Debian's 2.42, and 3.x where scripts/build-prometheus3 built it).
    verify = doc["results"]["verify_cost"]["summary"]
    assert {s["prometheus"] for s in verify} == set(prometheus_binaries()), verify
    assert all(s["lost"] == 0 and not s["errors"] and s["check_s"]["n"] == 1 for s in verify), verify


@needs_binaries
@pytest.mark.skipif(
    cached_series_file() is None and shutil.which("go") is None,
    reason="needs Go: promtool's ceiling reads 20kseries.json from the prometheus Go module, which is not in the Go "
    "module cache, and without a go binary (Debian package golang-go) it cannot be downloaded",
)
def test_quick_benchmark_measures_promtools_ceiling(tmp_path: Path) -> None:
    _, doc = quick_benchmark(tmp_path, [GO_SECTION])
    assert doc["results"][GO_SECTION]["runs"]  # promtool printed its samples/sec


@needs_binaries
def test_quick_benchmark_counts_compares_false_alarms(tmp_path: Path) -> None:
    """Section 7 with one comparison of each form (N + 3 = 4 identical short runs): it runs and reports a count."""
    text, doc = quick_benchmark(tmp_path, ["false_alarms"], "--false-alarms", "1")
    assert "false alarm" in text.lower()
    assert doc["results"]["false_alarms"]
