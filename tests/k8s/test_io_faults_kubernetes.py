"""``power_loss``, ``io_errors`` and ``io_latency`` on the local cluster: the fault layer
(``harness.datapath.fault_fuse``) runs
as a privileged native sidecar in Prometheus' pod, mounted over the volume and reaching Prometheus' container by
mount propagation; the runtime commands it by exec. EIO on the WAL's writes and fsyncs: Prometheus rejects the writes
(HTTP 500, `input/output error`), takes writes again once the errors stop and loses nothing while it runs, but the
restart after it repairs the WAL at the torn record and loses what was acknowledged after the errors
(prometheus/prometheus#13027, as on the local runtime). A delay loses nothing. A power cut (the layer kills
Prometheus and drops what was not fsynced, in one request) loses acknowledged samples back to the last fsync, where a
SIGKILL loses none."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from harness.results.model import Status
from harness.results.store import load_result
from tests.k8s.conftest import LocalPv
from tests.k8s.helpers import assert_nothing_left, harness_run, write_scenario
from tests.test_power_loss import assert_the_cut_lost_what_came_after_the_last_fsync

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.slow,
    pytest.mark.skipif(not Path("/dev/fuse").exists(), reason="no /dev/fuse: the fault layer's sidecar needs FUSE"),
]


def _scenario(name: str, vol: LocalPv, faults: str, duration: str) -> str:
    return (
        f"name: {name}\nduration: {duration}\n{vol.storage_yaml()}"
        "prometheus: {privileged_helper: true}\nloads: {tsdb: {series: 500, interval: 1s}}\n"
        f"faults: [{faults}]\nchecks: {{history_survival: {{max_samples_lost: 0}}, max_recovery: 60s}}\n"
    )


def test_eio_on_wal_writes_in_a_pod_is_rejected_and_the_restart_after_it_loses_what_came_after(
    kubeconfig: Path, api_client: Any, tmp_path: Path, local_pv: Callable[[str], LocalPv], writer_image: str
) -> None:
    vol = local_pv("node-1")
    faults = "{action: io_errors, at: 4s, for: 4s, methods: [write, fsync], path: wal}, {action: sigkill, at: 12s}"
    reports = tmp_path / "reports"
    text = _scenario("k8s-io-errors", vol, faults, "20s")
    proc = harness_run(write_scenario(tmp_path, text), reports, kubeconfig, HARNESS_K8S_WRITER_IMAGE=writer_image)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    [result_file] = reports.glob("*/*/result.json")
    result = load_result(result_file)
    assert [(f.action, f.status) for f in result.faults] == [("io_errors", Status.PASSED), ("sigkill", Status.PASSED)]
    errors, sigkill = result.faults
    assert "EIO on 100% of write, fsync under wal/" in errors.detail and "the layer failed" in errors.detail
    assert "fault layer's sidecar" in errors.detail, errors.detail
    assert result.environment.data_access is not None and "privileged sidecar" in result.environment.data_access
    assert errors.write_failures.get("rejected", 0) > 0, errors.write_failures
    assert any("input/output error" in e for e in errors.write_errors), errors.write_errors
    assert any("write to WAL" in line for line in errors.prometheus_log), errors.prometheus_log
    assert errors.lifted_at_s is not None and errors.first_sample_at_s is not None
    assert errors.first_sample_at_s >= errors.lifted_at_s
    after_errors, after_sigkill, final = result.durability
    assert after_errors.acknowledged > 0 and after_errors.lost == 0
    assert after_sigkill.lost > 0 and after_sigkill.mismatched_values == 0  # #13027 in the pod as on the host
    assert result.t0_unix_s is not None and after_sigkill.loss_window_start_unix_ms is not None
    assert after_sigkill.loss_window_start_unix_ms >= (result.t0_unix_s + errors.injected_at_s) * 1000
    assert after_sigkill.loss_window_end_unix_ms is not None
    assert after_sigkill.loss_window_end_unix_ms <= (result.t0_unix_s + sigkill.injected_at_s) * 1000
    assert final.lost == after_sigkill.lost
    assert {c.name: c.status for c in result.checks}["history_survival"] is Status.FAILED
    # The layer unmounted with its pod: the node's directory holds Prometheus' data, nothing mounted over it.
    assert (Path(vol.path) / "wal").is_dir()
    assert vol.path not in Path("/proc/self/mountinfo").read_text()
    assert_nothing_left(api_client, result.run_id, (vol.pv,), (vol.storage_class,))


def test_latency_on_wal_writes_in_a_pod_loses_nothing(
    kubeconfig: Path, api_client: Any, tmp_path: Path, local_pv: Callable[[str], LocalPv], writer_image: str
) -> None:
    vol = local_pv("node-1")
    faults = "{action: io_latency, at: 4s, for: 4s, methods: [write], path: wal, delay: 200ms}"
    reports = tmp_path / "reports"
    text = _scenario("k8s-io-latency", vol, faults, "14s")
    proc = harness_run(write_scenario(tmp_path, text), reports, kubeconfig, HARNESS_K8S_WRITER_IMAGE=writer_image)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    [result_file] = reports.glob("*/*/result.json")
    result = load_result(result_file)
    [latency] = result.faults
    assert latency.status is Status.PASSED and "the layer delayed" in latency.detail, latency.detail
    assert all(c.lost == 0 and c.acknowledged > 0 for c in result.durability)
    assert_nothing_left(api_client, result.run_id, (vol.pv,), (vol.storage_class,))


def test_a_power_cut_in_a_pod_loses_what_was_acknowledged_since_the_last_fsync_and_sigkill_none(
    kubeconfig: Path, api_client: Any, tmp_path: Path, local_pv: Callable[[str], LocalPv], writer_image: str
) -> None:
    """SIGTERM (a clean shutdown fsyncs the WAL segment), SIGKILL, then the power cut, each restarting the container
    in the same pod, whose layer sidecar stays: it knows the shutdown's fsync when it cuts."""
    vol = local_pv("node-1")
    faults = "{action: sigterm, at: 3s}, {action: sigkill, at: 10s}, {action: power_loss, at: 18s}"
    reports = tmp_path / "reports"
    text = _scenario("k8s-power-loss", vol, faults, "26s").replace("series: 500", "series: 50")
    proc = harness_run(write_scenario(tmp_path, text), reports, kubeconfig, HARNESS_K8S_WRITER_IMAGE=writer_image)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    [result_file] = reports.glob("*/*/result.json")
    result = load_result(result_file)
    # The fault is timed when the harness sends the exec; the layer cuts when it arrives, a moment later: samples
    # acknowledged in between are lost too.
    cut = assert_the_cut_lost_what_came_after_the_last_fsync(result, slack_ms=1000)
    assert "SIGKILL to Prometheus (pid" in cut.detail and "in the same request" in cut.detail, cut.detail
    assert "the last fsync under wal/ was" in cut.detail
    assert cut.first_sample_at_s is not None  # Prometheus came back on what was durable
    assert {c.name: c.status for c in result.checks}["history_survival"] is Status.FAILED
    assert_nothing_left(api_client, result.run_id, (vol.pv,), (vol.storage_class,))
