"""Prometheus alive but not ready within ``prometheus.ready_timeout`` on the kubernetes runtime, end to end on the
local cluster with the real prometheus image and the real write load: after a SIGKILL the kubelet restarts the
container on its local PV, where it replays a WAL longer than the budget. That is the storage or Prometheus not
holding (FAILED, exit 1), not a broken harness (ERROR, exit 2); the run says why, and leaves nothing behind."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from harness.report import render_report
from harness.results.model import Status
from harness.results.store import load_result
from tests.k8s.conftest import LocalPv
from tests.k8s.helpers import assert_nothing_left, harness_run, write_scenario
from tests.test_compare import parse_xml

# On kubernetes the budget runs from the injection: the kubelet's restart of the container is in it (/-/healthy
# 1.5-2 s after the kill here), as the first deployment is (ready 1.4-2.3 s after the StatefulSet's creation). Every
# series replaced at every tick: after 12 s of load the WAL's replay took 4.4-8.1 s (the writer keeps up less well
# with the cluster on the same 2 cores), /-/ready 5.9-9.8 s after the kill.
READY_TIMEOUT_S = 4


@pytest.mark.cluster
@pytest.mark.slow
def test_a_wal_replay_longer_than_ready_timeout_fails_the_run_saying_prometheus_was_alive_and_replaying(
    kubeconfig: Path, api_client: Any, tmp_path: Path, local_pv: Callable[[str], LocalPv]
) -> None:
    vol = local_pv("node-1")
    scenario_file = write_scenario(
        tmp_path,
        f"""
name: k8s-slow-replay
duration: 16s
{vol.storage_yaml()}prometheus: {{ready_timeout: {READY_TIMEOUT_S}s}}
loads: {{tsdb: {{series: 60000, interval: 1s, churn: {{every: 1s, fraction: 1.0}}}}}}
faults: [{{action: sigkill, at: 12s}}, {{action: restart, at: 15s}}]
""",
    )
    junit = tmp_path / "run.xml"
    proc = harness_run(scenario_file, tmp_path / "reports", kubeconfig, "--skip-doctor", "--junit", str(junit))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    [result_file] = (tmp_path / "reports").glob("*/*/result.json")
    result = load_result(result_file.parent)
    assert result.verdict is Status.FAILED and result.complete and result.error is None
    assert [(f.action, f.status) for f in result.faults] == [("sigkill", Status.FAILED)]
    [fault] = result.faults
    error = fault.error or ""
    assert f"was alive but not ready within {READY_TIMEOUT_S} s (prometheus.ready_timeout)" in error, error
    assert "and still did when the wait gave up, and /-/ready never answered 200" in error, error
    assert "by its log it had been replaying its WAL for " in error, error
    assert "container restart 1" in error and "the pod: pod harness-" in error, error
    # How far it got: the kubelet restarted the container in the same pod, which answered /-/healthy, not /-/ready.
    assert fault.process_up_at_s is not None and fault.ready_at_s is None and fault.first_sample_at_s is None
    assert [s.stage for s in fault.stages] == ["injected", "container_ended", "container_started", "healthy"]
    assert any("not injected" in e.message and "2 (restart)" in e.message for e in result.events)
    checks = {c.name: c for c in result.checks}
    assert checks["recovery"].status is Status.FAILED
    assert f"alive but not ready within {READY_TIMEOUT_S} s" in checks["recovery"].reason
    assert "alive but not ready within" in render_report(result_file.parent).read_text()
    failures = [f.get("message", "") for f in parse_xml(junit).iter("failure")]
    assert any("alive but not ready within" in m for m in failures), failures
    assert_nothing_left(api_client, result.run_id, (vol.pv,), (vol.storage_class,))
