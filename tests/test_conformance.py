"""Every shipped scenario, as shipped, ends as its row of the conformance table says (harness/conformance.py).

Each local row runs through ``harness nightly --set FILE=CODE`` itself, so the nightly path is what proves the
files: the night must pass (the run's exit code is the row's), and the stored run's checks must be exactly the row's
checks with the row's statuses. A file in ``scenarios/`` without a row, or a row without its file, fails the suite.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness.conformance import CONFORMANCE, Row, nightly_set
from harness.nightly import NIGHTLY
from tests.leftovers import ROOT

LOCAL_ROWS = [row for row in CONFORMANCE if row.local is not None]


def test_every_scenario_file_has_exactly_one_row() -> None:
    shipped = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "scenarios").glob("*.yaml"))
    tabled = [row.file for row in CONFORMANCE]
    assert len(tabled) == len(set(tabled)), "a file has two rows"
    assert sorted(tabled) == shipped, "scenarios/ and harness/conformance.py disagree: add or remove the row"
    for row in CONFORMANCE:
        assert row.local is not None or row.why, f"{row.file}: why it does not run on the local runtime"
        assert row.kubernetes is not None or row.why_not_kubernetes, f"{row.file}: why it has no cluster row"


def test_the_nightly_set_is_the_tables_nightly_rows() -> None:
    assert nightly_set() == NIGHTLY
    assert NIGHTLY["scenarios/ephemeral-baseline.yaml"] == 1, "the emptyDir baseline must lose its history"


@pytest.mark.slow
@pytest.mark.root(reason="the shipped scenarios mount images, serve NFS and iSCSI and chown as root")
@pytest.mark.parametrize("row", LOCAL_ROWS, ids=[r.name for r in LOCAL_ROWS])
def test_shipped_scenario_ends_as_its_row_says_on_the_local_runtime(row: Row, tmp_path: Path) -> None:
    assert row.local is not None
    results = tmp_path / "results"
    argv = [sys.executable, "-m", "harness.cli", "nightly", "--results", str(results)]
    argv += ["--set", f"{row.file}={row.local.exit_code}"]
    night = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, check=False, timeout=900)
    said = night.stdout + night.stderr
    summary_file = next(results.glob("nightly/*/nightly.json"), None)
    assert summary_file is not None, said
    steps = json.loads(summary_file.read_text())["steps"]
    run = next(s for s in steps if s["step"] == "run")
    log = Path(run["files"]["log"]).read_text(errors="replace") if "log" in run["files"] else ""
    assert run["outcome"] == "passed", f"{run['message']}\n{log[-4000:]}"
    assert night.returncode == 0, said
    result = json.loads((Path(run["files"]["run_dir"]) / "result.json").read_text())
    checks = {c["name"]: c["status"] for c in result["checks"]}
    reasons = {c["name"]: c.get("reason") for c in result["checks"]}
    assert checks == dict(row.local.checks), reasons
