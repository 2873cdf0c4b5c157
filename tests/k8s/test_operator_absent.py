"""Operator mode on a cluster without the prometheus-operator's CRDs: an ERROR (exit 2) that says so, before the run
creates anything. Its own module: test_operator.py's fixture installs the CRDs for the duration of that module."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from harness.results.store import load_result
from tests.k8s.test_runtime_kubernetes import harness_run, write_scenario


@pytest.mark.cluster
@pytest.mark.slow
def test_operator_mode_without_the_crd_is_an_error_and_creates_nothing(
    kubeconfig: Path, api_client: Any, tmp_path: Path
) -> None:
    from kubernetes import client, watch

    crds = client.ApiextensionsV1Api(api_client).list_custom_resource_definition().items
    if any(c.metadata.name == "prometheuses.monitoring.coreos.com" for c in crds):
        pytest.skip("the Prometheus CRD is installed on this cluster (by someone else): cannot show its absence")
    core = client.CoreV1Api(api_client)
    since = core.list_namespace().metadata.resource_version
    scenario_file = write_scenario(
        tmp_path,
        """
version: 1
name: k8s-op-absent
duration: 10s
storage: {backend: ephemeral}
prometheus: {deploy: operator}
loads: {tsdb: {series: 10, interval: 1s}}
""",
    )
    proc = harness_run(scenario_file, tmp_path / "reports", kubeconfig)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    output = proc.stdout + proc.stderr
    assert "the Prometheus CRD is not installed" in output and "Traceback" not in output
    [result_file] = (tmp_path / "reports").glob("*/*/result.json")
    run_id = load_result(result_file.parent).run_id
    # Every namespace event since just before the run: the run's namespace was never created.
    events = watch.Watch().stream(core.list_namespace, resource_version=since, timeout_seconds=2)
    added = [e["object"].metadata.name for e in events if e["type"] == "ADDED"]
    assert f"harness-{run_id}" not in added
