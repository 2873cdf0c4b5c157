"""Operator mode without a prometheus-operator: without its CRD the run is an ERROR (exit 2) that says so before it
creates anything; with the CRD but no operator running, an ERROR that says no operator reconciled the resource, and
the run removes what it created. Its own module: test_operator.py's fixture installs the CRDs and runs the operator
for the duration of that module."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from harness.results.store import load_result
from testbed import operator
from tests.k8s.helpers import assert_nothing_left, harness_run, write_scenario


@pytest.mark.cluster
@pytest.mark.cluster_exclusive  # watches every namespace: nothing may be created meanwhile
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
    # The doctor, reading the live cluster, stops the run first (operator.crd); past it (--skip-doctor), the runtime's
    # own check says the same before anything is created.
    for args, said in (
        ((), "doctor: The Prometheus CRD is not installed"),
        (("--skip-doctor",), "the Prometheus CRD is not installed"),
    ):
        reports = tmp_path / "reports" / (args[0].strip("-") if args else "doctor")
        proc = harness_run(scenario_file, reports, kubeconfig, *args)
        output = proc.stdout + proc.stderr
        assert proc.returncode == 2, output
        assert said in output and "Prometheus CRD is not installed" in output, output
        assert "Traceback" not in output
        [result_file] = reports.glob("*/*/result.json")
        run_id = load_result(result_file.parent).run_id
        # Every namespace event since just before the first run: the run's namespace was never created.
        events = watch.Watch().stream(core.list_namespace, resource_version=since, timeout_seconds=2)
        added = [e["object"].metadata.name for e in events if e["type"] == "ADDED"]
        assert f"harness-{run_id}" not in added


@pytest.mark.cluster
@pytest.mark.slow
def test_operator_mode_with_the_crd_but_no_operator_is_an_error_and_cleans_up(
    kubeconfig: Path, api_client: Any, tmp_path: Path
) -> None:
    from kubernetes import client

    if not operator.is_built():
        pytest.skip(f"the prometheus-operator's CRDs come with its build ({operator.cache_dir()} is absent)")
    crds = client.ApiextensionsV1Api(api_client).list_custom_resource_definition().items
    if any(c.metadata.name == "prometheuses.monitoring.coreos.com" for c in crds):
        pytest.skip("the Prometheus CRD is installed on this cluster (by someone else, maybe with an operator)")
    operator.apply_crds(kubeconfig)
    try:
        scenario_file = write_scenario(
            tmp_path,
            """
version: 1
name: k8s-op-none
duration: 10s
storage: {backend: ephemeral}
prometheus: {deploy: operator}
loads: {tsdb: {series: 10, interval: 1s}}
""",
        )
        proc = harness_run(scenario_file, tmp_path / "reports", kubeconfig, HARNESS_K8S_OPERATOR_WAIT="5")
    finally:
        operator.delete_crds(kubeconfig)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 2, output
    assert "no operator reconciled the Prometheus resource" in output and "within 5 s" in output, output
    assert "Traceback" not in output
    [result_file] = (tmp_path / "reports").glob("*/*/result.json")
    assert_nothing_left(api_client, load_result(result_file.parent).run_id)
