"""What a run whose Prometheus was alive but not ready within ``prometheus.ready_timeout`` must say, on either
runtime (tests/test_ready_timeout.py, tests/k8s/test_ready_timeout_kubernetes.py): FAILED, not ERROR; the fault's
error names the budget, /-/healthy answering and /-/ready never, and the WAL replay from Prometheus' own log; the
fault's record stops at "healthy"; the second fault is not injected; the recovery check says the same."""

from __future__ import annotations

from harness.results.model import FaultRecord, RunResult, Status


def assert_alive_but_not_ready(result: RunResult, budget_s: int) -> FaultRecord:
    assert result.verdict is Status.FAILED and result.complete and result.error is None
    assert [(f.action, f.status) for f in result.faults] == [("sigkill", Status.FAILED)], [
        (f.action, f.status, f.ready_at_s, f.error) for f in result.faults
    ]
    [fault] = result.faults
    error = fault.error or ""
    assert f"was alive but not ready within {budget_s} s (prometheus.ready_timeout)" in error, error
    assert "and still did when the wait gave up, and /-/ready never answered 200" in error, error
    assert "by its log it had been replaying its WAL for " in error, error
    # How far it got is in the record: its process started and answered /-/healthy, never /-/ready.
    assert fault.process_up_at_s is not None and fault.ready_at_s is None and fault.first_sample_at_s is None
    assert fault.stages[-1].stage == "healthy", fault.stages
    assert any("not injected" in e.message and "2 (restart)" in e.message for e in result.events)
    checks = {c.name: c for c in result.checks}
    assert checks["recovery"].status is Status.FAILED
    assert f"alive but not ready within {budget_s} s" in checks["recovery"].reason
    return fault
