"""Scrape mode on the kubernetes runtime: the synthetic exporter runs as a pod of the run's namespace (busybox httpd
from the tools image), Prometheus scrapes it at the pod IP, and the harness hears about scrapes only through the API.

1. a local PV keeps everything Prometheus had shown before a SIGKILL and a pod restart (exit 0, 0 lost), with
   everything going through the API server's pod proxy (HARNESS_K8S_REACH=api-proxy);
2. the emptyDir baseline loses it with the pod (exit 1).

The manifest test at the top needs no cluster.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from harness.loads.busybox_exporter import scrapes
from harness.loads.tsdb import make_layout
from harness.results.model import Status
from harness.results.store import load_result
from harness.runtime import refuse_unsupported
from harness.runtime.cluster_exporter import EXPORTER, METRICS_PATH, PORT, exporter_manifests
from harness.runtime.manifests.common import Names
from harness.scenario.model import Scenario, TsdbLoad
from testbed.config import FIO_IMAGE
from tests.k8s.conftest import LocalPv
from tests.k8s.helpers import assert_nothing_left, harness_run, write_scenario


def test_the_exporter_is_a_busybox_pod_of_the_run() -> None:
    load = TsdbLoad.model_validate({"mode": "scrape", "series": 10, "interval": "1s"})
    config_map, pod = exporter_manifests(make_layout(load, "abc123", 0.0), Names("unit", "abc123"), "busybox:1.36")
    assert config_map["metadata"]["namespace"] == pod["metadata"]["namespace"] == "harness-abc123"
    assert config_map["data"]["metrics"].startswith("#!/bin/busybox sh\n")
    for obj in (config_map, pod):
        assert obj["metadata"]["labels"]["harness/run-id"] == "abc123"
        assert obj["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "prom-storage-harness"
    spec = pod["spec"]
    [container] = spec["containers"]
    assert container["image"] == "busybox:1.36"
    assert container["command"][:3] == ["/bin/busybox", "httpd", "-f"]
    assert {"containerPort": PORT, "name": "metrics"} in container["ports"]
    assert "readinessProbe" not in container and "livenessProbe" not in container  # a probe would log as a scrape
    [volume] = spec["volumes"]
    assert volume["configMap"]["items"] == [{"key": "metrics", "path": METRICS_PATH.lstrip("/"), "mode": 0o555}]
    assert spec["terminationGracePeriodSeconds"] == 1
    assert pod["metadata"]["name"] == EXPORTER


def test_scrape_mode_is_no_longer_refused() -> None:
    scenario = Scenario.model_validate(
        {"name": "unit", "duration": "20s", "storage": {"backend": "ephemeral"}, "loads": {"tsdb": {"mode": "scrape"}}}
    )
    refuse_unsupported("kubernetes", scenario)


@pytest.mark.cluster
@pytest.mark.slow
def test_scrape_mode_on_a_local_pv_keeps_everything_through_sigkill_and_restart_via_the_api_proxy(
    kubeconfig: Path, api_client: Any, tmp_path: Path, local_pv: Callable[[str], LocalPv]
) -> None:
    vol = local_pv("node-2")
    pv, sc = vol.pv, vol.storage_class
    # Prometheus hands new targets to its scrapers up to 5 s after it is ready (discovery updates are batched), so
    # each fault's recovery takes ~6 s here: the faults are 8 s apart. The first comes at 12 s for the same reason:
    # the first Prometheus scrapes nothing for up to 5 s after it is ready, and under a loaded CI run (2026-12-06) it
    # had scraped nothing by 8 s, so the checkpoint after the SIGKILL held no acknowledged sample.
    scenario_file = write_scenario(
        tmp_path,
        f"""
version: 1
name: k8s-scrape-local
duration: 28s
{vol.storage_yaml()}loads: {{tsdb: {{mode: scrape, series: 60, interval: 1s, churn: {{every: 5s, fraction: 0.2}}}}}}
faults:
  - {{action: sigkill, at: 12s}}
  - {{action: restart, at: 20s}}
""",
    )
    reports = tmp_path / "reports"
    proc = harness_run(scenario_file, reports, kubeconfig, HARNESS_K8S_REACH="api-proxy")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    [result_file] = reports.glob("*/*/result.json")
    result = load_result(result_file.parent)
    assert result.verdict is Status.PASSED and result.complete
    assert [f.action for f in result.faults] == ["sigkill", "restart"]
    for fault in result.faults:
        assert fault.status is Status.PASSED
        # Scraped by the new Prometheus, not by the deleted pod's, which scrapes on until its SIGTERM arrives.
        assert fault.process_up_at_s is not None and fault.first_sample_at_s is not None
        assert fault.first_sample_at_s > fault.process_up_at_s, fault
    after_kill, after_restart, final = result.durability
    assert all(c.lost == 0 for c in result.durability)
    # Scrapes resumed after the SIGKILL and were kept: the snapshot before the restart holds more than the first.
    assert 0 < after_kill.acknowledged < after_restart.acknowledged <= final.acknowledged
    exporter = result.environment.extra["scrape exporter"]
    assert exporter.startswith(f"pod harness-{result.run_id}/{EXPORTER} on node-"), exporter
    scrape_log = (result_file.parent / "logs" / "scrape-exporter.log").read_text()
    # The first pod (before and after its SIGKILL: same IP) and the pod that replaced it.
    assert len({client for _, client in scrapes(scrape_log)}) == 2, scrape_log
    assert_nothing_left(api_client, result.run_id, (pv,), (sc,))


@pytest.mark.cluster
@pytest.mark.slow
def test_scrape_mode_on_emptydir_loses_the_history_with_the_pod(
    kubeconfig: Path, api_client: Any, tmp_path: Path
) -> None:
    scenario_file = write_scenario(
        tmp_path,
        """
version: 1
name: k8s-scrape-ephemeral
duration: 16s
storage: {backend: ephemeral}
loads: {tsdb: {mode: scrape, series: 60, interval: 1s}}
faults: [{action: restart, at: 8s}]
""",
    )
    reports = tmp_path / "reports"
    proc = harness_run(scenario_file, reports, kubeconfig)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    [result_file] = reports.glob("*/*/result.json")
    result = load_result(result_file.parent)
    assert result.verdict is Status.FAILED and result.error is None
    [fault] = result.faults
    assert fault.status is Status.PASSED  # Prometheus came back, empty
    assert fault.process_up_at_s is not None and fault.first_sample_at_s is not None
    assert fault.first_sample_at_s > fault.process_up_at_s
    after_fault = result.durability[0]
    assert after_fault.acknowledged > 0 and after_fault.lost == after_fault.acknowledged
    history = next(c for c in result.checks if c.name == "history_survival")
    assert history.status is Status.FAILED and "lost" in history.reason
    assert_nothing_left(api_client, result.run_id)


@pytest.mark.cluster
@pytest.mark.slow
def test_an_exporter_image_without_busybox_stops_the_run_saying_so(
    kubeconfig: Path, api_client: Any, tmp_path: Path
) -> None:
    scenario_file = write_scenario(
        tmp_path,
        """
version: 1
name: k8s-scrape-no-busybox
duration: 10s
storage: {backend: ephemeral}
loads: {tsdb: {mode: scrape, series: 10, interval: 1s}}
""",
    )
    reports = tmp_path / "reports"
    started = time.monotonic()
    # The fio image of the local cluster has no /bin/busybox; elsewhere any image without it does the same.
    proc = harness_run(scenario_file, reports, kubeconfig, HARNESS_K8S_TOOLS_IMAGE=FIO_IMAGE)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert time.monotonic() - started < 60  # a start error, not the 120 s wait for the pod to run
    [result_file] = reports.glob("*/*/result.json")
    result = load_result(result_file.parent)
    error = result.error or ""
    assert f"the scrape-mode exporter cannot start: image {FIO_IMAGE}" in error, error
    assert "HARNESS_K8S_TOOLS_IMAGE" in error
    assert_nothing_left(api_client, result.run_id)
