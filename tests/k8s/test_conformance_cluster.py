"""The conformance table's cluster rows (harness/conformance.py): the same shipped files, as shipped, through
``harness nightly --runtime kubernetes`` on the cluster, each ending as its row says; nothing of theirs is left."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from harness.conformance import CONFORMANCE, Row
from tests.k8s.helpers import ROOT, assert_nothing_left

CLUSTER_ROWS = [row for row in CONFORMANCE if row.kubernetes is not None]

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


@pytest.mark.parametrize("row", CLUSTER_ROWS, ids=[r.name for r in CLUSTER_ROWS])
def test_shipped_scenario_ends_as_its_row_says_on_the_cluster(
    row: Row, kubeconfig: Path, kube_context: str, api_client: Any, tmp_path: Path
) -> None:
    assert row.kubernetes is not None
    results = tmp_path / "results"
    argv = [sys.executable, "-m", "harness.cli", "nightly", "--results", str(results), "--runtime", "kubernetes"]
    argv += ["--context", kube_context, "--set", f"{row.file}={row.kubernetes.exit_code}"]
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    night = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, env=env, check=False, timeout=900)
    said = night.stdout + night.stderr
    summary_file = next(results.glob("nightly/*/nightly.json"), None)
    assert summary_file is not None, said
    run = next(s for s in json.loads(summary_file.read_text())["steps"] if s["step"] == "run")
    log = Path(run["files"]["log"]).read_text(errors="replace")
    assert run["outcome"] == "passed", f"{run['message']}\n{log[-4000:]}"
    assert night.returncode == 0, said
    result = json.loads((Path(run["files"]["run_dir"]) / "result.json").read_text())
    assert result["runtime"] == "kubernetes"
    checks = {c["name"]: c["status"] for c in result["checks"]}
    assert checks == dict(row.kubernetes.checks), {c["name"]: c.get("reason") for c in result["checks"]}
    assert_nothing_left(api_client, result["run_id"])
