"""One row of the conformance table (harness/conformance.py) run through ``harness nightly`` and held to the row:
what tests/test_conformance.py does on the local runtime and tests/k8s/test_conformance_cluster.py on the cluster."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from harness.conformance import Expect
from tests.leftovers import ROOT


def night_ends_as_the_row_says(
    row_file: str,
    expect: Expect,
    results: Path,
    *args: str,
    env: dict[str, str] | None = None,
    overrides: tuple[str, ...] = (),
) -> dict[str, Any]:
    """``harness nightly --set FILE=CODE`` (plus ``args``, and ``--override`` for each of ``overrides``) for one row:
    the night must pass (the run's exit code is the row's) and the stored run's checks must be exactly the row's, with
    its statuses; the run records the file and the overrides it had, no others. Returns that result.json."""
    argv = [sys.executable, "-m", "harness.cli", "nightly", "--results", str(results), *args]
    argv += ["--set", f"{row_file}={expect.exit_code}"]
    argv += [arg for setting in overrides for arg in ("--override", setting)]
    night = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, env=env, check=False, timeout=900)
    said = night.stdout + night.stderr
    summary_file = next(results.glob("nightly/*/nightly.json"), None)
    assert summary_file is not None, said
    steps = json.loads(summary_file.read_text())["steps"]
    run = next(s for s in steps if s["step"] == "run")
    log = Path(run["files"]["log"]).read_text(errors="replace") if "log" in run["files"] else ""
    assert run["outcome"] == "passed", f"{run['message']}\n{log[-4000:]}"
    assert night.returncode == 0, said
    result: dict[str, Any] = json.loads((Path(run["files"]["run_dir"]) / "result.json").read_text())
    assert (result["scenario_file"], result["overrides"]) == (row_file, list(overrides))
    checks = {c["name"]: c["status"] for c in result["checks"]}
    reasons = {c["name"]: c.get("reason") for c in result["checks"]}
    assert checks == dict(expect.checks), reasons
    return result
