"""`harness compare` over real stored runs: tiny fio-only scenarios run by `harness run` (fio on this host's disk,
Prometheus started and stopped), one of them throttled with fio's rate_iops, the stand-in for a slower volume.

The throttle takes randwrite-4k from tens of thousands of IOPS to 1,000 (fio enforces the cap): a regression
whatever this machine's noise. Identical runs are compared the way the nightly gate compares them: the latest run
against the ``BASELINE_RUNS`` before it, pooled, so the comparison meets this machine's run-to-run noise (another
test on the cores that minute). That comparison CAN fail: its sides are large enough for a p-value below the level
(asserted), and a false alarm fails the test; `benchmarks/false_alarms.py` (section 7 of `python -m benchmarks.run`)
measures how often that happens, for this form and for one run against one.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.nightly import BASELINE_RUNS
from harness.report.compare import ALPHA
from harness.report.stats import min_p_value
from harness.results.store import RESULT_FILE, load_result
from tests.cli import harness_cli
from tests.test_compare import parse_xml

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
IOPS = "randwrite-4k write IOPS"
REPEAT = 8  # per run

SCENARIO = """\
name: fio-noise
description: randwrite-4k only, {repeat} short repetitions; no write load, no faults
duration: 1s
storage: {{backend: local}}
loads:
  tsdb: null
  fio:
    - {{profile: randwrite-4k, runtime: 500ms, size: 16Mi, repeat: {repeat}{extra}}}
checks:
  history_survival: {{enabled: false}}
"""


def harness(*args: str) -> subprocess.CompletedProcess[str]:
    """The process alone, as tests/test_nightly.py (which imports it) keeps it."""
    return harness_cli(*args).process


class Runs:
    """``BASELINE_RUNS + 1`` identical runs made one after the other (``plain``, oldest first, as nights are) and one
    throttled to 1,000 IOPS, all stored under ``reports``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.reports = root / "reports"
        self.work = root / "work"
        self.work.mkdir()
        self.plain: list[Path] = []
        self.throttled = Path()

    def run(self, extra: str = "", *flags: str) -> Path:
        scenario = self.root / "fio-noise.yaml"
        scenario.write_text(SCENARIO.format(repeat=REPEAT, extra=extra))
        where = ["--reports", str(self.reports), "--workdir", str(self.work), "--no-report"]
        return harness_cli("run", str(scenario), *where, *flags).expect(0).run_dir


@pytest.fixture(scope="module")
def runs() -> Iterator[Runs]:
    # As root, the local runtime runs Prometheus as the scenario's uid: the work area must be traversable.
    root = Path(tempfile.mkdtemp(prefix="harness-compare-", dir="/tmp"))
    root.chmod(0o755)
    try:
        made = Runs(root)
        made.plain = [made.run() for _ in range(BASELINE_RUNS + 1)]
        made.throttled = made.run(", rate_iops: 1000")
        yield made
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_a_throttled_run_is_a_regression_named_in_junit_and_json(runs: Runs, tmp_path: Path) -> None:
    junit, summary, html = tmp_path / "compare.xml", tmp_path / "compare.json", tmp_path / "compare.html"
    done = harness_cli(
        "compare",
        str(runs.plain[0]),
        str(runs.throttled),
        "--junit",
        str(junit),
        "--json",
        str(summary),
        "-o",
        str(html),
    )
    done.expect(1)
    verdict_line = next(line for line in done.stdout.splitlines() if "regression(s): " in line)
    assert IOPS in verdict_line
    # A throttle stands for a slower volume: a storage comparison, named, and judged.
    assert (
        done.stdout.startswith("storage comparison") and "fio throttled (randwrite-4k --rate_iops=1000)" in done.stdout
    )
    data = json.loads(summary.read_text())
    metric = next(m for m in data["comparisons"][0]["metrics"] if m["metric"] == IOPS)
    assert data["regressed"] is True and metric["status"] == "regression" and metric["fails"] is True
    assert (metric["n_baseline"], metric["n_candidate"]) == (REPEAT, REPEAT)
    assert metric["candidate_median"] == pytest.approx(1000, rel=0.05) and metric["worse_pct"] > 50
    assert metric["p_adjusted"] < 0.002
    case = next(c for c in parse_xml(junit).iter("testcase") if c.get("name") == IOPS)
    failure = case.find("failure")
    assert failure is not None
    message = failure.get("message", "")
    assert message.startswith(f"{IOPS}: baseline ") and " IOPS (n=8), fio-noise/" in message
    assert "change -" in message and "(p=<0.001, adjusted" in message
    assert "REGRESSED" in html.read_text(encoding="utf-8")


def test_the_latest_run_against_the_nights_before_it_exits_0_and_bad_inputs_are_left_out(
    runs: Runs, tmp_path: Path
) -> None:
    junit, summary = tmp_path / "noise.xml", tmp_path / "noise.json"
    truncated = tmp_path / "truncated"
    truncated.mkdir()
    (truncated / RESULT_FILE).write_text((runs.plain[0] / RESULT_FILE).read_text()[:300])
    *before, latest = runs.plain
    done = harness_cli(
        "compare",
        "--baseline",
        *map(str, before),
        "--candidate",
        str(latest),
        str(tmp_path / "missing"),
        str(truncated),
        "--junit",
        str(junit),
        "--json",
        str(summary),
    )
    done.expect(0)
    assert "left out" in done.stderr and "missing: no result here" in done.stderr
    data = json.loads(summary.read_text())
    assert data["regressed"] is False and data["kind"] == "same setup"
    assert {Path(s["path"]).name: s["reason"].split(" (")[0] for s in data["skipped"]} == {
        "missing": "no result here",
        "truncated": "truncated or not JSON",
    }
    metrics = data["comparisons"][0]["metrics"]
    metric = next(m for m in metrics if m["metric"] == IOPS)
    sizes = (BASELINE_RUNS * REPEAT, REPEAT)
    assert metric["sample_unit"] == "repetition" and (metric["n_baseline"], metric["n_candidate"]) == sizes
    # This comparison can fail: the repetitions' test can reach the level over the whole family, and the test of the
    # run against the nights' own spread (Student's t) has no floor. A false alarm fails this test.
    family = sum(m["p_adjusted"] is not None for m in metrics)
    assert metric["p_runs"] is not None and min_p_value(*sizes) * family < ALPHA
    root = parse_xml(junit)
    assert root.get("failures") == "0"
    assert {c.get("name") for c in root.iter("testcase") if c.find("skipped") is not None} >= {
        str(tmp_path / "missing"),
        str(truncated),
    }


def test_a_real_run_writes_its_checks_as_junit_and_json(runs: Runs, tmp_path: Path) -> None:
    junit, summary = tmp_path / "run.xml", tmp_path / "run.json"
    run_dir = runs.run("", "--junit", str(junit), "--json", str(summary))
    data = json.loads(summary.read_text())
    assert data["verdict"] == "PASSED" and data["gate_passed"] is True and data["run_id"] in run_dir.name
    cases = {c.get("name"): c for c in parse_xml(junit).iter("testcase")}
    assert set(cases) == {"recovery", "gate: verdict is PASSED"}
    assert cases["recovery"].find("skipped") is not None  # no faults in this scenario
    stored = load_result(run_dir)
    assert [(j.job, j.repetition) for j in stored.fio] == [("randwrite-4k", k) for k in range(1, REPEAT + 1)]
    assert [j.name for j in stored.fio][:2] == ["randwrite-4k", "randwrite-4k.r2"]
