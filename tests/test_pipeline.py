"""End to end on the local runtime with the real prometheus and fio binaries: the issue's acceptance cases.

1. the demo scenario passes with 0 samples lost after a SIGKILL and a reschedule on persistent storage;
2. the emptyDir baseline fails (exit 1) and reports the pre-reschedule history as lost: the oracle can fail;
3. a malformed scenario exits 2 with file:line errors (tests/test_scenario.py);
plus Ctrl-C keeping a partial result, scrape mode, re-rendering and comparing stored results.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from harness.loads.ledger import Ledger
from harness.results.model import RESULT_SCHEMA_VERSION, Status
from harness.results.store import load_result
from tests.cli import command, harness_cli
from tests.leftovers import wait_for_load_phase

ROOT = Path(__file__).resolve().parent.parent


def run_dirs(reports: Path) -> list[Path]:
    return sorted(p.parent for p in reports.glob("*/*/result.json"))


def scenario(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "scenario.yaml"
    path.write_text(text)
    return path


def no_prometheus_left(work: Path) -> bool:
    out = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True).stdout
    return str(work) not in out


@pytest.mark.slow
def test_shipped_demo_passes_with_nothing_lost(area: tuple[Path, Path]) -> None:
    reports, work = area
    done = harness_cli("run", "scenarios/demo.yaml", "--reports", str(reports), "--workdir", str(work)).expect(0)
    run_dir, result = done.run_dir, done.result
    assert result.verdict is Status.PASSED and result.complete
    assert [f.action for f in result.faults] == ["sigkill", "reschedule"]
    assert all(f.error is None and f.first_sample_at_s is not None for f in result.faults)
    assert [c.label for c in result.durability][-1] == "final"
    assert all(c.lost == 0 and c.acknowledged > 0 for c in result.durability)
    assert {j.profile for j in result.fio} == {"wal-append", "randwrite-4k"}
    assert all(j.write is not None and j.write.iops > 0 for j in result.fio)
    assert result.environment.prometheus_version and result.environment.fio_version
    assert result.environment.data_filesystem
    assert (run_dir / "report.html").stat().st_size > 10_000
    assert (run_dir / "tsdb-ledger.json").exists()
    assert list(work.iterdir()) == []  # the work area is cleaned up
    assert no_prometheus_left(work)


@pytest.mark.slow
def test_shipped_ephemeral_baseline_loses_history(area: tuple[Path, Path]) -> None:
    reports, work = area
    done = harness_cli("run", "scenarios/ephemeral-baseline.yaml", "--reports", str(reports), "--workdir", str(work))
    run_dir, result = done.expect(1).run_dir, done.result
    assert result.verdict is Status.FAILED
    by_label = {c.label: c for c in result.durability}
    # A SIGKILL restarts the container in the same pod: the emptyDir survives it.
    assert by_label["after fault 1 (sigkill)"].lost == 0
    # The reschedule makes a new pod with an empty emptyDir: everything the old pod acknowledged is gone. A write of
    # the last second before the fault that failed while no pod ran is retried (within the writer's retry bound of
    # 1 s, one tick of 500 series) and may be acknowledged by the new pod: that one is present, and rightly so.
    after = by_label["after fault 2 (reschedule)"]
    assert after.acknowledged > 0 and after.present <= 500 and after.lost == after.acknowledged - after.present
    assert after.lost >= after.acknowledged - 500
    assert after.lost_series_count == 500
    assert after.loss_window_start_unix_ms is not None and after.loss_window_end_unix_ms is not None
    history = next(c for c in result.checks if c.name == "history_survival")
    assert history.status is Status.FAILED and "lost" in history.reason
    assert (run_dir / "report.html").exists()


@pytest.mark.slow
def test_history_before_a_fault_never_recovered_from_is_partial(area: tuple[Path, Path], tmp_path: Path) -> None:
    """A SIGKILL Prometheus recovers from, then a reschedule it never recovers from (a local PV pinned to its node:
    the pod stays Pending). The checkpoint after the SIGKILL held, but what was acknowledged after it was never looked
    at: history_survival is PARTIAL, not PASSED, and says so in result.json, the JUnit, the report and the terminal.
    The run is FAILED (exit 1) from the recovery check."""
    reports, work = area
    path = scenario(
        tmp_path,
        """
name: partial
duration: 20s
storage: {backend: local, node: node-a}
loads: {tsdb: {series: 50, interval: 1s}}
faults: [{action: sigkill, at: 4s}, {action: reschedule, at: 10s}]
""",
    )
    junit = tmp_path / "run.xml"
    proc = harness_cli("run", str(path), "--reports", str(reports), "--workdir", str(work), "--junit", str(junit))
    assert "Traceback" not in proc.expect(1).stderr
    run_dir = proc.run_dir
    raw = json.loads((run_dir / "result.json").read_text())
    assert raw["verdict"] == "FAILED" and raw["schema_version"] == RESULT_SCHEMA_VERSION
    checks = {c["name"]: c for c in raw["checks"]}
    assert checks["recovery"]["status"] == "FAILED"
    history = checks["history_survival"]
    assert history["status"] == "PARTIAL", history
    # Prometheus' own count is complete all the same: the load let go of the process before fault 2 and never
    # reached another, so the two processes it wrote to were read once it could no longer reach them.
    assert checks["ack_count"]["status"] == "PASSED", checks["ack_count"]
    assert raw["server_acks"]["lifetimes"] == 2 and raw["server_acks"]["readings"][-1]["settled"]
    # What was checked (the checkpoint after fault 1) and what not (everything acknowledged after its cut-off, counted
    # from the ledger the run kept).
    [checkpoint] = raw["durability"]
    assert checkpoint["label"] == "after fault 1 (sigkill)" and checkpoint["lost"] == 0
    ledger = Ledger.load(run_dir / "tsdb-ledger.json")
    unchecked = ledger.acknowledged() - ledger.acknowledged(checkpoint["cutoff_unix_ms"])
    assert checkpoint["acknowledged"] > 0 and unchecked > 0
    reason = history["reason"]
    assert reason == (
        f"0 of {checkpoint['acknowledged']:,} acknowledged samples lost up to fault 1 (sigkill); Prometheus did not "
        f"recover after fault 2 (reschedule), so the {unchecked:,} samples acknowledged since the last checkpoint "
        "were never checked"
    )
    cases = ET.parse(junit).getroot().iter("testcase")  # noqa: S314 -- a file the harness just wrote
    case = next(c for c in cases if c.get("name") == "history_survival")
    failure = case.find("failure")
    assert failure is not None and failure.get("message") == f"PARTIAL: {reason}"
    html = (run_dir / "report.html").read_text()
    assert "<td>PARTIAL</td>" in html and reason in html
    assert f"PARTIAL history_survival: {reason}" in proc.stderr  # the terminal summary
    assert no_prometheus_left(work)


def test_scrape_mode_and_sigterm(area: tuple[Path, Path], tmp_path: Path) -> None:
    reports, work = area
    path = scenario(
        tmp_path,
        "name: scrape\nduration: 12s\nstorage: {backend: local}\nprometheus: {scrape_interval: 1s}\n"
        "loads: {tsdb: {mode: scrape, series: 200, interval: 1s}}\n"
        "faults: [{action: sigterm, at: 8s}]\n",
    )
    result = harness_cli("run", str(path), "--reports", str(reports), "--workdir", str(work)).expect(0).result
    assert result.durability[0].acknowledged > 0 and result.durability[0].lost == 0
    assert result.faults[0].first_sample_at_s is not None


def test_interrupt_keeps_the_partial_result_and_cleans_up(area: tuple[Path, Path], tmp_path: Path) -> None:
    reports, work = area
    path = scenario(
        tmp_path,
        "name: interrupted\nduration: 5m\nstorage: {backend: local}\nloads: {tsdb: {series: 100}}\n"
        "faults: [{action: sigkill, at: 4m}]\n",
    )
    proc = subprocess.Popen(
        command("run", str(path), "--reports", str(reports), "--workdir", str(work)),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for_load_phase(reports, proc, timeout_s=60)
    time.sleep(2)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    [run_dir] = run_dirs(reports)
    result = load_result(run_dir)
    assert result.interrupted and result.verdict is Status.ERROR
    assert (run_dir / "report.html").exists()
    assert list(work.iterdir()) == []
    assert no_prometheus_left(work)


def test_missing_prometheus_names_the_package(area: tuple[Path, Path], tmp_path: Path) -> None:
    reports, work = area
    path = scenario(
        tmp_path,
        "name: nobin\nduration: 5s\nstorage: {backend: ephemeral}\nprometheus: {binary: prometheus-not-installed}\n",
    )
    proc = harness_cli("run", str(path), "--reports", str(reports), "--workdir", str(work), "--skip-doctor").expect(2)
    assert "Traceback" not in proc.stderr
    assert "prometheus-not-installed" in proc.stderr and "apt-get install" in proc.stderr
    result = proc.result
    assert result.verdict is Status.ERROR and result.error


def test_report_rerender_and_compare(area: tuple[Path, Path], tmp_path: Path) -> None:
    reports, work = area
    path = scenario(
        tmp_path,
        "name: twice\nduration: 4s\nstorage: {backend: local}\nloads: {tsdb: {series: 50}}\n"
        "faults: [{action: sigkill, at: 2s}]\n",
    )
    first, second = (
        harness_cli("run", str(path), "--reports", str(reports), "--workdir", str(work)).expect(0).run_dir
        for _ in range(2)
    )
    (first / "report.html").unlink()
    harness_cli("report", str(first)).expect(0)
    assert (first / "report.html").exists()
    out = tmp_path / "compare.html"
    compared = harness_cli("compare", str(first), str(second), "-o", str(out))
    assert compared.returncode in (0, 1), compared.output
    assert out.exists() and "twice" in compared.stdout


@pytest.mark.root(reason="a loop-mounted ext4 image needs root")
def test_loop_mounted_ext4_volume(area: tuple[Path, Path], tmp_path: Path) -> None:
    reports, work = area
    path = scenario(
        tmp_path,
        "name: loop\nduration: 6s\nstorage: {backend: local, image: {filesystem: ext4, size: 256Mi}}\n"
        "loads: {tsdb: {series: 100}, fio: [{profile: wal-append, runtime: 1s, size: 16Mi}]}\n"
        "faults: [{action: reschedule, at: 3s}]\n",
    )
    result = harness_cli("run", str(path), "--reports", str(reports), "--workdir", str(work)).expect(0).result
    assert result.environment.data_filesystem == "ext4"
    assert result.environment.data_device and result.environment.data_device.startswith("/dev/loop")
    assert list(work.iterdir()) == []


def test_doctor_blocker_stops_the_run_before_anything_starts(area: tuple[Path, Path], tmp_path: Path) -> None:
    reports, work = area
    path = scenario(tmp_path, f"name: nopath\nduration: 5s\nstorage: {{backend: local, path: {tmp_path}/missing}}\n")
    proc = harness_cli("run", str(path), "--reports", str(reports), "--workdir", str(work)).expect(2)
    assert "does not exist" in proc.stderr and "fix:" in proc.stderr
    result = proc.result
    assert result.verdict is Status.ERROR
    assert [c.name for c in result.checks] == ["doctor"]
    assert result.faults == [] and result.fio == []
    assert result.doctor and (proc.run_dir / "report.html").exists()


def test_previous_wal_replay_is_read_from_the_newest_earlier_run(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from harness.results.env import collect
    from harness.results.model import FaultRecord, RunResult
    from harness.results.query import previous_wal_replay_s
    from harness.results.store import save_result

    root = tmp_path / "s"
    for name, replays in (("20260101T000000Z-a", [9.0]), ("20260102T000000Z-b", [1.5, 2.5])):
        (root / name).mkdir(parents=True)
        faults = [
            FaultRecord(
                index=i, action="sigkill", scheduled_at_s=1, injected_at_s=1, instance_before="x", wal_replay_s=r
            )
            for i, r in enumerate(replays)
        ]
        result = RunResult(
            run_id=name,
            scenario_name="s",
            scenario={},
            runtime="local",
            started_at=datetime.now(UTC),
            t0_unix_s=1.0,
            environment=collect("local"),
            faults=faults,
        )
        save_result(root / name, result)
    current = root / "20260103T000000Z-c"
    current.mkdir()
    assert previous_wal_replay_s(root, current) == 2.5
    assert previous_wal_replay_s(tmp_path / "none", current) is None


@pytest.mark.slow
def test_a_killed_run_leaves_no_prometheus_running(area: tuple[Path, Path], tmp_path: Path) -> None:
    """SIGKILL of `harness run` (no cleanup can run): the kernel ends its Prometheus with it (PR_SET_PDEATHSIG).
    What stays is its work directory, for `harness cleanup` (issue 9) to remove."""
    reports, work = area
    path = scenario(
        tmp_path,
        "name: killed\nduration: 5m\nstorage: {backend: local}\nloads: {tsdb: {series: 50}}\n",
    )
    argv = command("run", str(path), "--reports", str(reports), "--workdir", str(work))
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert wait_for_load_phase(reports, proc, timeout_s=60) is not None
        assert not no_prometheus_left(work)  # it runs now
    finally:
        proc.kill()
        proc.wait(timeout=30)
    deadline = time.monotonic() + 10
    while not no_prometheus_left(work) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert no_prometheus_left(work)


def test_a_fio_only_scenario_measures_and_stops_without_prometheus(area: tuple[Path, Path], tmp_path: Path) -> None:
    reports, work = area
    path = scenario(
        tmp_path,
        "name: fio-only\nduration: 10m\nstorage: {backend: local}\n"
        "loads: {tsdb: null, fio: [{profile: wal-append, runtime: 1s, size: 8Mi}]}\n",
    )
    result = harness_cli("run", str(path), "--reports", str(reports), "--workdir", str(work)).expect(0).result
    assert result.complete and result.verdict is Status.PASSED
    assert [j.profile for j in result.fio] == ["wal-append"] and result.fio[0].write is not None
    # No load phase: no t0, no Prometheus, and the 10 minutes of 'duration' were not waited for (the subprocess
    # timeout of 300 s would have stopped the test first).
    assert result.t0_unix_s is None and result.environment.prometheus_version is None
    assert any("Prometheus is not started" in e.message for e in result.events)
    assert no_prometheus_left(work) and list(work.iterdir()) == []


def test_a_relative_workdir_is_taken_from_where_the_harness_runs(area: tuple[Path, Path], tmp_path: Path) -> None:
    reports, work = area
    path = scenario(tmp_path, "name: relwork\nduration: 3s\nstorage: {backend: local}\nloads: {tsdb: {series: 10}}\n")
    harness_cli("run", str(path), "--reports", str(reports), "--workdir", work.name, cwd=work.parent).expect(0)
    assert list(work.iterdir()) == []


def test_a_workdir_that_does_not_exist_is_exit_2_before_anything_is_created(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from harness.cli import main

    reports, missing = tmp_path / "reports", tmp_path / "no-such-dir"
    assert (
        main(["run", str(ROOT / "scenarios" / "demo.yaml"), "--reports", str(reports), "--workdir", str(missing)]) == 2
    )
    err = capsys.readouterr().err
    assert f"--workdir {missing}: no such directory" in err and "Traceback" not in err
    assert not reports.exists() and not missing.exists()


def test_a_stage_the_runtime_read_from_before_the_fault_is_not_part_of_its_recovery() -> None:
    """A fault Prometheus runs through leaves its container as it was: the container's start, read from the API,
    is older than the fault and must not show as a recovery stage (the kubelet_restart of the local cluster)."""
    from harness.fault_phase import _stages
    from harness.runtime.base import Injection, Recovery, StageMark

    injection = Injection("kubelet_restart", 100.0, "pod", "pod", "detail")
    recovery = Recovery(
        131.0,
        131.5,
        None,
        stages=(
            StageMark("container_started", 40.0, "API: state.running.startedAt", resolution_s=1.0),
            StageMark("container_ended", 99.2, "API: lastState.terminated.finishedAt", resolution_s=1.0),
        ),
    )
    assert [s.stage for s in _stages(injection, recovery, t0=0.0)] == [
        "injected",
        "container_ended",
        "healthy",
        "ready",
    ]


def test_a_bug_during_a_run_is_an_error_that_cleans_up_and_keeps_the_result(
    area: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """An exception that is no HarnessError (a bug of ours, or of a library under us: the kubernetes client once
    refused a CSINode it had listed) ends the run as ERROR, exit 2, never 1 (that says the storage lost data): the
    run is cleaned up, its result and report are kept, and the traceback goes to the run's logs, not the terminal.
    The bug is injected (there is no real one to keep): Prometheus' start raises."""
    from harness.cli import main
    from harness.pipeline import Run
    from tests.leftovers import left_behind

    def bug(self: Run, runtime: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(Run, "step_prometheus", bug)
    reports, work = area
    path = tmp_path / "s.yaml"
    path.write_text("name: bug\nduration: 5s\nstorage: {backend: local}\nloads: {tsdb: {series: 10, interval: 1s}}\n")
    assert main(["run", str(path), "--reports", str(reports), "--workdir", str(work)]) == 2
    err = capsys.readouterr().err
    assert "internal error: RuntimeError: a bug" in err and "Traceback" not in err
    [result_file] = reports.glob("bug/*/result.json")
    result = load_result(result_file.parent)
    assert result.verdict is Status.ERROR and result.error and "RuntimeError: a bug" in result.error
    assert "Traceback" in (result_file.parent / "logs" / "traceback.txt").read_text()
    assert (result_file.parent / "report.html").is_file()
    assert left_behind(work) == [] and list(work.iterdir()) == []


def test_a_bug_in_any_command_is_one_line_and_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from harness.cli import main

    def bug(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr("harness.scenario.loader.load_scenario", bug)
    assert main(["validate", str(ROOT / "scenarios" / "demo.yaml")]) == 2
    err = capsys.readouterr().err
    assert "internal error: RuntimeError: a bug" in err and "Traceback" not in err
    saved = err.split("please report it with ", 1)[1].split(")")[0]
    assert "RuntimeError: a bug" in Path(saved).read_text()
    Path(saved).unlink()
