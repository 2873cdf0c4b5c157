"""The probe budget against the WAL replay this scenario will need, estimated from a replay rate measured on the same
storage by an earlier run: it warns when the budget is shorter than that replay, and says it fits when it is not."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from harness.cli import main
from harness.doctor.probes import ReplayRate, check_probes, needed_replay_samples, replay_rate
from harness.results.env import collect
from harness.results.model import FaultRecord, IngestPoint, RunResult, Severity
from harness.results.store import save_result
from harness.scenario.loader import load_scenario
from harness.scenario.model import Probes

STORAGE = {"backend": "ephemeral"}


def _scenario(tmp_path: Path, series: int, startup: dict[str, Any] | None = None) -> Path:
    doc: dict[str, Any] = {
        "name": f"replay-{series}",
        "duration": "10m",
        "storage": STORAGE,
        "loads": {"tsdb": {"series": series, "interval": "15s"}},
        "faults": [{"action": "sigkill", "at": "8m"}],
    }
    if startup is not None:
        doc["prometheus"] = {"probes": {"startup": startup}}
    path = tmp_path / f"replay-{series}.yaml"
    path.write_text(json.dumps(doc))
    return path


def _stored_run(
    tmp_path: Path, storage: dict[str, Any], *, replay_s: float = 4.0, run_dir: Path | None = None, name: str = "small"
) -> Path:
    """A run that replayed 2,000,000 samples (20k series at 1 s for 100 s) in ``replay_s``: by default 4 s, 500,000
    samples/s."""
    run_dir = run_dir or tmp_path / "runs" / "20261206T000000Z-x"
    run_dir.mkdir(parents=True)
    result = RunResult(
        run_id="previous",
        scenario_name=name,
        scenario={"storage": storage},
        runtime="local",
        started_at=datetime.now(UTC),
        t0_unix_s=1.0,
        environment=collect("local"),
        ingest=[IngestPoint(t_s=float(t), acked_samples=20_000, failed_samples=0) for t in range(200)],
        faults=[
            FaultRecord(
                index=0,
                action="sigkill",
                scheduled_at_s=100,
                injected_at_s=100,
                instance_before="x",
                wal_replay_s=replay_s,
            )
        ],
    )
    save_result(run_dir, result)
    return run_dir


def test_the_rate_comes_from_a_run_on_the_same_storage_only(tmp_path: Path) -> None:
    from harness.results.store import load_result

    result = load_result(_stored_run(tmp_path, STORAGE))
    rate = replay_rate(result, STORAGE)
    assert rate is not None
    assert rate.samples_per_s == 500_000
    assert "2,000,000 samples replayed in 4 s" in rate.source
    assert replay_rate(result, {"backend": "local", "path": "/elsewhere"}) is None


def test_needed_samples_are_the_series_over_the_wal_window(tmp_path: Path) -> None:
    # 1M series every 15 s until the SIGKILL at 8 min.
    assert needed_replay_samples(load_scenario(_scenario(tmp_path, 1_000_000))) == 32_000_000


@pytest.mark.parametrize(
    ("needed", "severity", "title"),
    [
        # 1M series at 15 s for 8 min: 32M samples at 500k/s is 64 s, longer than 3 x 15 s.
        (32_000_000, Severity.WARNING, "WAL replay (about 64 s) will outlast the probe budget (45 s): restart loop"),
        # 20k series: 640k samples, 1.3 s.
        (640_000, Severity.INFO, "WAL replay (about 1.3 s) fits the probe budget (45 s): comfortable"),
    ],
)
def test_the_estimate_fires_when_the_budget_is_shorter_than_the_replay(
    needed: int, severity: Severity, title: str
) -> None:
    probes = Probes.model_validate({"startup": {"period": "15s", "failure_threshold": 3}})
    # A previous replay time that fits is not what decides: the estimate for this scenario's WAL is.
    (f,) = check_probes(probes, 1.0, ReplayRate(500_000, "run x"), needed)
    assert (f.severity, f.title) == (severity, title)
    if severity is Severity.WARNING:
        assert "failureThreshold >= 9 at period 15 s" in f.fix


def test_doctor_command_estimates_from_the_previous_run_on_this_storage(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    short = {"period": "15s", "failure_threshold": 3}
    # As a run stores it: the scenario's storage section dumped with its defaults.
    stored = load_scenario(_scenario(tmp_path, 1, short)).storage.model_dump(mode="json", by_alias=True)
    previous = _stored_run(tmp_path, stored)
    for series, severity in ((1_000_000, "WARNING"), (20_000, "INFO")):
        path = _scenario(tmp_path, series, short)
        assert main(["doctor", str(path), "--json", "--previous-run", str(previous)]) == 0
        doc = json.loads(capsys.readouterr().out)
        (budget,) = [f for f in doc["findings"] if f["check"] == "probes.budget"]
        assert budget["severity"] == severity, budget
        assert "measured on this storage: 500,000 samples/s" in budget["evidence"]


@pytest.mark.slow
def test_harness_run_estimates_from_the_newest_earlier_run_on_this_storage(tmp_path: Path, public_tmp: Path) -> None:
    """`harness run` asks the doctor with the replay rate of the newest earlier run of the scenario on the same
    storage, found in its --reports: a slow replay there (500 samples/s) makes this run's WAL (1,000 series at 1 s
    for 5 s) outlast a 2 s startup budget. An earlier run on other storage gives no rate: its replay time decides."""
    from tests.cli import harness_cli

    doc = {
        "name": "replay-run",
        "duration": "5s",
        "storage": STORAGE,
        "prometheus": {"probes": {"startup": {"period": "1s", "failure_threshold": 2}}},
        "loads": {"tsdb": {"series": 1000, "interval": "1s"}},
    }
    path = tmp_path / "replay-run.yaml"
    path.write_text(json.dumps(doc))
    stored = load_scenario(path).storage.model_dump(mode="json", by_alias=True)
    for storage, estimated in ((stored, True), ({"backend": "local", "path": "/elsewhere"}, False)):
        reports = tmp_path / f"reports-{estimated}"
        earlier = reports / "replay-run" / "20200101T000000Z-earlier"
        _stored_run(tmp_path, storage, replay_s=4000.0, run_dir=earlier, name="replay-run")
        run = harness_cli("run", str(path), "--reports", str(reports), "--workdir", str(public_tmp), "--no-report")
        result = run.expect(0).result
        (budget,) = [f for f in result.doctor if f.check == "probes.budget"]
        assert budget.severity is Severity.WARNING, budget
        if estimated:
            assert budget.title == "WAL replay (about 10 s) will outlast the probe budget (2 s): restart loop"
            assert "measured on this storage: 500 samples/s" in budget.evidence, budget.evidence
        else:  # the earlier run's own replay time, as it was
            assert budget.title.startswith("WAL replay (4000 s) outlasts the probe budget (2 s)"), budget.title
