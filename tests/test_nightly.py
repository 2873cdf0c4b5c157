"""`harness nightly` for real: nights of a fio-only scenario (real fio on this host's disk, no Prometheus) run by the
gate itself, the last one with the same scenario throttled by fio's rate_iops, the stand-in for a slower volume.

The history is built once, in the order a CI cache would hold it: a night that expects the passing scenario to fail
(the gate must fail it), one plain `harness run`, a good night (compared with the two runs before it), then the
throttled night (compared with the three before it, pooled). These tests prove the gate's plumbing, not compare's
noise handling (tests/test_compare_real.py and benchmark section 7 face real noise): every night is capped by fio's
rate_iops, the good ones at 2,000 IOPS and the throttled one at 200, so what is asserted holds whatever else this
machine runs. Uncapped, a good night ran at a third of its baseline's IOPS while other test workers filled disks
(CI, 2026-12-06: 372 -> 120 MiB/s), a regression compare rightly reported.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.test_compare import parse_xml
from tests.test_compare_real import IOPS, SCENARIO, harness
from tests.test_trend import harness as in_process

pytestmark = pytest.mark.slow

REPEAT = 6  # per run: 12-18 pooled repetitions against 6 reach compare's p < 0.002 for a step this large
CAP = ", rate_iops: 2000"  # far below what this disk does under a busy suite (30,000+ IOPS), so fio holds it exactly
THROTTLE = ", rate_iops: 200"


@dataclass(frozen=True)
class NightDone:
    done: subprocess.CompletedProcess[str]
    directory: Path  # <results>/nightly/<utc>/
    summary: dict[str, Any]

    def step(self, kind: str) -> dict[str, Any]:
        (step,) = (s for s in self.summary["steps"] if s["step"] == kind)
        return step


@dataclass
class History:
    root: Path
    results: Path
    wrong: NightDone | None = None
    good: NightDone | None = None
    regressed: NightDone | None = None

    def scenario(self, file: str, extra: str = "") -> Path:
        path = self.root / file
        path.write_text(SCENARIO.format(repeat=REPEAT, extra=extra))
        return path

    def night(self, *args: str) -> NightDone:
        before = set((self.results / "nightly").glob("*"))
        done = harness("nightly", "--results", str(self.results), *args)
        (directory,) = set((self.results / "nightly").glob("*")) - before
        return NightDone(done, directory, json.loads((directory / "nightly.json").read_text()))


@pytest.fixture(scope="module")
def history() -> Iterator[History]:
    root = Path(tempfile.mkdtemp(prefix="harness-nightly-", dir="/tmp"))
    root.chmod(0o755)
    try:
        made = History(root, root / "results")
        plain = made.scenario("fio-noise.yaml", CAP)
        made.wrong = made.night("--set", f"{plain}=1")
        seeded = harness("run", str(plain), "--reports", str(made.results), "--no-report")
        assert seeded.returncode == 0, seeded.stdout + seeded.stderr
        made.good = made.night("--set", f"{plain}=0")
        # Another file, the same scenario name: tonight's runs land in the same history.
        throttled = made.scenario("fio-noise-throttled.yaml", THROTTLE)
        made.regressed = made.night("--set", f"{throttled}=0")
        yield made
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_a_good_night_passes_and_a_throttled_one_fails_naming_the_regression(history: History) -> None:
    good, regressed = history.good, history.regressed
    assert good is not None and regressed is not None
    assert good.done.returncode == 0, good.done.stdout + good.done.stderr
    assert good.summary["passed"] is True and good.summary["findings"] == []
    assert good.step("compare")["outcome"] == "passed"
    assert "no regression against the previous 2 run(s)" in good.step("compare")["message"]
    assert "fio-noise: run PASSED" in good.done.stdout and "night PASSED" in good.done.stdout

    assert regressed.done.returncode == 1, regressed.done.stdout + regressed.done.stderr
    compare = regressed.step("compare")
    assert compare["outcome"] == "failed" and compare["exit_code"] == 1
    assert "regression against the previous 3 run(s)" in compare["message"] and IOPS in compare["message"]
    assert regressed.step("run")["outcome"] == "passed"
    # Four nights are too few to confirm a change point: the trend marks it possible (below); compare is the gate.
    assert regressed.step("trend")["outcome"] == "passed"
    assert regressed.summary["passed"] is False and any(IOPS in f for f in regressed.summary["findings"])
    fio_line = next(line for line in regressed.done.stdout.splitlines() if line.startswith("fio-noise: "))
    assert "compare FAILED" in fio_line and IOPS in fio_line
    assert "night FAILED" in regressed.done.stdout

    cases = {c.get("name"): c for c in parse_xml(regressed.directory / "nightly.xml").iter("testcase")}
    assert set(cases) == {"run fio-noise", "compare fio-noise", "trend"}
    failure = cases["compare fio-noise"].find("failure")
    assert failure is not None and IOPS in failure.get("message", "")
    assert cases["run fio-noise"].find("failure") is None and cases["trend"].find("failure") is None
    # Each step's own files beside the summary, and the comparison's report in the run's directory.
    for name in ("fio-noise-run.xml", "fio-noise-run.json", "fio-noise-compare.xml", "fio-noise-compare.json"):
        assert (regressed.directory / name).is_file(), name
    for name in ("trend.html", "trend.xml", "trend.json"):
        assert (regressed.directory / name).is_file(), name
    assert Path(compare["files"]["html"]).is_file() and Path(compare["files"]["html"]).name == "compare-previous.html"
    trend = json.loads((regressed.directory / "trend.json").read_text())
    (scenario,) = trend["scenarios"]
    assert scenario["name"] == "fio-noise" and scenario["nights"] == 4
    iops = next(m for m in scenario["metrics"] if m["metric"] == IOPS)
    assert iops["latest"] == pytest.approx(200, rel=0.1) and iops["fails"] is False
    # The step is marked once, at the throttled night (not an earlier one), for the worse, on its size alone.
    tonight = Path(regressed.step("run")["files"]["run_dir"]).name
    marked = [(c["run"], c["kind"], c["worse"], c["confirmed"]) for c in iops["changes"]]
    assert marked == [(tonight, "possible regression", True, False)], iops["changes"]


def test_a_scenario_ending_otherwise_than_it_must_fails_the_night(history: History) -> None:
    wrong = history.wrong
    assert wrong is not None
    assert wrong.done.returncode == 1, wrong.done.stdout + wrong.done.stderr
    run = wrong.step("run")
    assert run["outcome"] == "failed" and run["exit_code"] == 0
    assert run["message"] == "exit 0 (PASSED), must be 1 (FAILED)"
    assert wrong.step("compare")["outcome"] == "skipped"  # the first run of its history
    assert wrong.summary["findings"] == [f"run fio-noise: {run['message']}"]
    failure = next(
        c for c in parse_xml(wrong.directory / "nightly.xml").iter("testcase") if c.get("name") == "run fio-noise"
    ).find("failure")
    assert failure is not None and failure.get("message") == run["message"]
    assert "fio-noise: run FAILED: exit 0 (PASSED), must be 1 (FAILED)" in wrong.done.stdout


@pytest.mark.parametrize(
    ("spec", "said"),
    [
        ("scenarios/demo.yaml", "not FILE=CODE"),
        ("scenarios/demo.yaml=2", "not FILE=CODE"),
        ("missing.yaml=0", "missing.yaml: no such scenario file"),
        (",", "names no scenario"),
    ],
)
def test_a_bad_set_exits_2_before_anything_runs(spec: str, said: str, tmp_path: Path) -> None:
    # In this process: nothing starts, and a second of imports per case is saved.
    done = in_process("nightly", "--results", str(tmp_path / "results"), f"--set={spec}")
    assert done.returncode == 2, done.stdout + done.stderr
    assert said in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "results").exists()


def test_an_invalid_scenario_in_the_set_is_named_with_its_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(SCENARIO.format(repeat=REPEAT, extra=", rate_iop: 10"))
    done = in_process("nightly", "--results", str(tmp_path / "results"), "--set", f"{bad}=0")
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"{bad}:8:" in done.stderr and "rate_iop" in done.stderr and "Traceback" not in done.stderr


def test_a_run_that_breaks_is_an_error_of_the_night_not_a_finding(tmp_path: Path) -> None:
    # A kube context that does not exist: `harness run` stops at once with exit 2 (nothing is touched anywhere).
    plain = tmp_path / "fio-noise.yaml"
    plain.write_text(SCENARIO.format(repeat=1, extra=""))
    results = tmp_path / "results"
    done = in_process(
        "nightly",
        "--results",
        str(results),
        "--runtime",
        "kubernetes",
        "--context",
        "no-such-context",
        "--set",
        f"{plain}=0",
    )
    assert done.returncode == 2, done.stdout + done.stderr
    (night,) = (results / "nightly").iterdir()
    summary = json.loads((night / "nightly.json").read_text())
    run = next(s for s in summary["steps"] if s["step"] == "run")
    assert run["outcome"] == "error" and run["exit_code"] == 2 and "no-such-context" in run["message"]
    assert summary["findings"] == [] and summary["errors"] == [f"run fio-noise: {run['message']}"]
    error = next(c for c in parse_xml(night / "nightly.xml").iter("testcase") if c.get("name") == "run fio-noise")
    assert error.find("error") is not None and "night ERROR" in done.stdout


def test_the_parser_does_not_import_the_reports() -> None:
    # `harness nightly`'s defaults come from harness.nightly; every command's start builds the parser, and none should
    # pay for pandas, SciPy and matplotlib (harness.report) before it needs them.
    code = (
        "import sys; from harness.cli import build_parser; build_parser(); "
        "print(sorted(m for m in sys.modules if m.startswith(('harness.report', 'pandas', 'scipy', 'matplotlib'))))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert done.stdout.strip() == "[]", done.stdout + done.stderr
