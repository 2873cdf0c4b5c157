"""Faults end to end on the local runtime with the real prometheus: the registry, the undo log, and honest verdicts
when Prometheus does not come back (FAILED, exit 1, the fault kept in the result and the report)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.capabilities.signals import SignalControl
from harness.faults import injectors, needed_capabilities
from harness.results.model import Status
from harness.scenario.model import Scenario
from harness.undo import UndoLog
from tests.cli import harness_cli
from tests.test_pipeline import no_prometheus_left, scenario


def test_every_scenario_action_has_exactly_one_fault_module() -> None:
    defs = Scenario.model_json_schema()["$defs"]
    actions = {d["properties"]["action"]["const"] for name, d in defs.items() if name.endswith("Fault")}
    assert (
        actions
        == set(injectors())
        == {"sigkill", "sigterm", "restart", "reschedule", "redeploy", "scale_zero", "node_loss", "power_loss"}
        | {"io_errors", "io_latency", "disk_full", "server_restart", "second_writer", "kubelet_restart"}
        | {"ceph_client_crash", "ceph_osd_down", "ceph_mds_restart"}
    )


def test_signal_faults_ask_for_the_signal_capability() -> None:
    raw = {
        "name": "t",
        "duration": "1h",
        "storage": {"backend": "ephemeral"},
        "faults": [{"action": "restart", "at": "1s"}, {"action": "sigterm", "at": "2s"}],
    }
    faults = Scenario.model_validate(raw).faults
    assert needed_capabilities(faults[:1]) == frozenset()
    assert needed_capabilities(faults) == {SignalControl}


def test_undo_log_unwinds_newest_first_since_a_mark_and_reports_failures() -> None:
    done: list[str] = []
    undo = UndoLog()
    undo.record("a", lambda: done.append("a"))
    mark = undo.mark()
    undo.record("b", lambda: done.append("b"))

    def broken() -> None:
        raise OSError("device busy")

    undo.record("c", broken)
    undo.record("d", lambda: done.append("d"))
    assert undo.unwind_to(mark) == ["could not c: device busy"]
    assert done == ["d", "b"]
    assert undo.pending == ["a"]
    assert undo.unwind() == [] and done == ["d", "b", "a"] and undo.pending == []


@pytest.mark.slow
def test_a_fault_prometheus_does_not_recover_from_fails_the_run(area: tuple[Path, Path], tmp_path: Path) -> None:
    """A local PV pinned to its node (storage.node) cannot follow a reschedule: the pod is unschedulable, which is
    the storage's finding (exit 1), not a broken harness (exit 2); the fault stays in the result with its reason,
    the node is uncordoned by the fault's undo, and nothing is left running."""
    reports, work = area
    path = scenario(
        tmp_path,
        """
name: pinned-local-pv
duration: 10s
storage: {backend: local, node: node-a}
loads: {tsdb: {series: 50, interval: 1s}}
faults: [{action: sigkill, at: 2s}, {action: reschedule, at: 4s}, {action: restart, at: 6s}]
""",
    )
    done = harness_cli("run", str(path), "--reports", str(reports), "--workdir", str(work)).expect(1)
    run_dir, result = done.run_dir, done.result
    assert result.verdict is Status.FAILED and result.complete and result.error is None
    assert [(f.action, f.status) for f in result.faults] == [("sigkill", Status.PASSED), ("reschedule", Status.FAILED)]
    failed = result.faults[1]
    assert failed.error is not None and "volume node affinity conflict" in failed.error
    assert "node-a" in failed.error and "node node-a cordoned" in failed.detail
    checks = {c.name: c for c in result.checks}
    assert checks["recovery"].status is Status.FAILED and "did not recover" in checks["recovery"].reason
    # The history until the failed fault was checked; after it, it was not: PARTIAL, said, not guessed.
    assert checks["history_survival"].status is Status.PARTIAL
    assert "were never checked" in checks["history_survival"].reason
    assert any("not injected" in e.message and "3 (restart)" in e.message for e in result.events)
    html = (run_dir / "report.html").read_text()
    assert "volume node affinity conflict" in html
    assert no_prometheus_left(work)


@pytest.mark.slow
def test_faults_without_a_write_load_and_without_history_checks(area: tuple[Path, Path], tmp_path: Path) -> None:
    """``loads.tsdb: null`` with faults runs (recovery only); ``history_survival.enabled: false`` takes no
    checkpoint, not even after a fault."""
    reports, work = area
    no_load = scenario(
        tmp_path,
        """
name: no-load
duration: 5s
storage: {backend: ephemeral}
loads: {tsdb: null}
faults: [{action: sigkill, at: 2s}]
""",
    )
    result = harness_cli("run", str(no_load), "--reports", str(reports), "--workdir", str(work)).expect(0).result
    assert [f.status for f in result.faults] == [Status.PASSED] and result.durability == []
    assert {c.name: c.status for c in result.checks} == {"recovery": Status.PASSED}

    unchecked = scenario(
        tmp_path,
        """
name: unchecked
duration: 5s
storage: {backend: ephemeral}
loads: {tsdb: {series: 20, interval: 1s}}
faults: [{action: restart, at: 2s}]
checks: {history_survival: {enabled: false}}
""",
    )
    result = harness_cli("run", str(unchecked), "--reports", str(reports), "--workdir", str(work)).expect(0).result
    assert result.durability == [] and "history_survival" not in {c.name for c in result.checks}
    assert result.faults[0].status is Status.PASSED


@pytest.mark.slow
def test_scale_to_zero_and_back_keeps_a_volume_and_loses_an_emptydir(area: tuple[Path, Path], tmp_path: Path) -> None:
    """No Prometheus for ``down`` seconds: on persistent storage nothing acknowledged is lost and recovery counts from
    the scale back up; on the emptyDir baseline the new pod starts empty (exit 1)."""
    reports, work = area
    for backend, expected in (("local", 0), ("ephemeral", 1)):
        path = scenario(
            tmp_path,
            f"""
name: scale-{backend}
duration: 10s
storage: {{backend: {backend}}}
loads: {{tsdb: {{series: 50, interval: 1s}}}}
faults: [{{action: scale_zero, at: 3s, down: 3s}}]
""",
        )
        done = harness_cli("run", str(path), "--reports", str(reports), "--workdir", str(work), "--no-report")
        result = done.expect(expected).result
        [fault] = result.faults
        assert fault.status is Status.PASSED and fault.parameters["down"] == "3s"
        assert "scaled to 0" in fault.detail and "3 s later scaled back to 1" in fault.detail
        assert fault.injected_at_s >= 6.0  # the scale back up, not the scale down
        assert fault.recovery_s is not None and fault.recovery_s < 3.0
        after = result.durability[0]
        assert after.acknowledged > 0
        # The emptyDir baseline keeps only what was acknowledged by the new pod (a tick retried across the window).
        assert after.lost == 0 if backend == "local" else after.lost >= after.acknowledged // 2
    assert no_prometheus_left(work)
