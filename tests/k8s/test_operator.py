"""Operator mode (``prometheus.deploy: operator``): a ``monitoring.coreos.com/v1`` Prometheus resource for the real
prometheus-operator, built from its Go module by testbed/operator.py and run here as a host process.

1. the demo's shape on a local PV keeps every acknowledged sample through a SIGKILL (the kubelet restarts the
   container of the operator's pod) and a pod restart (exit 0, 0 lost);
2. ``redeploy`` deletes and recreates the Prometheus resource and hits the field notes' Released-PV trap (exit 1),
   as in statefulset mode.

The manifest tests at the top need no cluster. ``test_operator_absent.py`` has the runs without the CRD.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from harness.doctor.operator import check_operator
from harness.kube.contexts import load_inventory
from harness.kube.inventory import PROMETHEUS_CRD
from harness.results.model import Severity, Status
from harness.results.store import load_result
from harness.runtime.manifests.common import Names
from harness.runtime.manifests.prometheus import prometheus_resource, statefulset_manifest
from harness.scenario.model import Scenario
from harness.storage.base import operator_claim_name
from testbed import operator
from tests.k8s.conftest import LocalPv
from tests.k8s.helpers import (
    ROOT,
    assert_nothing_left,
    harness_run,
    run_into_the_released_pv_trap,
    write_scenario,
)


def scenario_model(storage: dict[str, Any], **prometheus: Any) -> Scenario:
    faults = prometheus.pop("faults", [])
    return Scenario.model_validate(
        {
            "name": "unit",
            "duration": "20s",
            "storage": storage,
            "prometheus": {"deploy": "operator", **prometheus},
            "faults": faults,
        },
        by_alias=True,
    )


# --- the Prometheus resource (no cluster) --------------------------------------------------------------------


def test_the_prometheus_resource_carries_the_statefulset_modes_claim_and_pod_settings() -> None:
    scenario = scenario_model(
        {"backend": "local", "path": "/mnt/disks/vol1", "node": "node-2", "claim": {"storage_class": "local-x"}},
        retention="2h",
        resources={"memory": "512Mi", "cpu_millicores": 250},
        extra_args=["--storage.tsdb.min-block-duration=30m", "--web.enable-admin-api"],
    )
    names = Names("unit", "abc123")
    resource = prometheus_resource(scenario, names, tools_image=None, scrape_secret=True)
    assert (resource["apiVersion"], resource["kind"]) == ("monitoring.coreos.com/v1", "Prometheus")
    assert resource["metadata"]["name"] == "unit" and resource["metadata"]["namespace"] == "harness-abc123"
    assert resource["metadata"]["labels"]["harness/run-id"] == "abc123"
    spec = resource["spec"]
    # The very claim template the harness' own StatefulSet uses: the operator names the claim the same way.
    sts = statefulset_manifest(scenario, names, tools_image=None)
    assert spec["storage"] == {"volumeClaimTemplate": sts["spec"]["volumeClaimTemplates"][0]}
    template = spec["storage"]["volumeClaimTemplate"]
    assert f"{template['metadata']['name']}-prometheus-{resource['metadata']['name']}-0" == operator_claim_name("unit")
    assert template["spec"]["storageClassName"] == "local-x"
    assert spec["securityContext"] == sts["spec"]["template"]["spec"]["securityContext"]
    assert spec["image"] == "localhost/harness/prometheus:latest" and spec["imagePullPolicy"] == "IfNotPresent"
    assert spec["version"] == "v2.42.0"
    assert spec["retention"] == "7200s" and spec["replicas"] == 1
    assert spec["resources"]["limits"] == {"memory": "512Mi", "cpu": "250m"}
    assert spec["enableRemoteWriteReceiver"] is True
    assert spec["additionalScrapeConfigs"] == {"name": "prometheus-unit-harness-scrape", "key": "scrape-configs.yaml"}
    # All resource selectors nil would make the operator leave the config to the user ("unmanaged").
    assert spec["serviceMonitorSelector"] == {"matchLabels": {"harness/run-id": "abc123"}}
    assert spec["additionalArgs"] == [
        {"name": "storage.tsdb.min-block-duration", "value": "30m"},
        {"name": "web.enable-admin-api"},
    ]
    assert spec["podMetadata"]["labels"]["harness/run-id"] == "abc123"
    assert "containers" not in spec and "reloadStrategy" not in spec  # no sidecar without a signal fault


def test_signal_faults_share_the_operators_pod_process_namespace_and_add_the_sidecar() -> None:
    scenario = scenario_model({"backend": "ephemeral", "size_limit": "1Gi"}, faults=[{"action": "sigkill", "at": "5s"}])
    spec = prometheus_resource(scenario, Names("unit", "r"), tools_image="tools:1", scrape_secret=False)["spec"]
    # ProcessSignal is how the operator sets shareProcessNamespace on its pod.
    assert spec["reloadStrategy"] == "ProcessSignal"
    [sidecar] = spec["containers"]
    assert sidecar["name"] == "harness-tools" and sidecar["image"] == "tools:1"
    assert spec["storage"] == {"emptyDir": {"sizeLimit": "1Gi"}}
    assert "additionalScrapeConfigs" not in spec


# --- on the cluster, with the real operator --------------------------------------------------------------------


@pytest.fixture(scope="module")
def prometheus_operator(
    kubeconfig: Path, local_cluster: bool, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Path]:
    """The operator, its CRDs and its reloader image on the local cluster, for this module; yields its log file.
    CRDs this fixture installed are removed again (with them any Prometheus resource left, none of ours)."""
    if not local_cluster:
        pytest.skip("the operator runs against the local cluster of testbed (its nodes get the reloader image)")
    if not operator.is_built():
        pytest.skip(
            f"the prometheus-operator is not built ({operator.cache_dir()} is absent): "
            "run `python3 -m testbed.operator build` (.ci/run does, in the background)"
        )
    from harness.kube.api import KubeApi

    api = KubeApi(str(kubeconfig))
    try:
        installed_here = not api.exists("CustomResourceDefinition", "prometheuses.monitoring.coreos.com")
    finally:
        api.close()
    operator.import_reloader()
    operator.apply_crds(kubeconfig)
    log = tmp_path_factory.mktemp("operator") / "operator.log"
    proc = operator.start(kubeconfig, log)
    try:
        yield log
    finally:
        operator.stop(proc)
        if installed_here:
            operator.delete_crds(kubeconfig)


@pytest.mark.cluster
def test_the_doctor_reads_the_installed_crd_from_the_cluster(
    prometheus_operator: Path, kubeconfig: Path, kube_context: str
) -> None:
    kube = load_inventory(str(kubeconfig), context=kube_context)
    assert kube.crds is not None and PROMETHEUS_CRD in kube.crds
    findings = check_operator(scenario_model({"backend": "ephemeral"}), kube)
    assert {f.check: f.severity for f in findings} == {"operator.crd": Severity.INFO, "operator.probes": Severity.INFO}


@pytest.mark.cluster
@pytest.mark.slow
def test_the_demo_in_operator_mode_keeps_everything_through_sigkill_and_restart(
    prometheus_operator: Path, kubeconfig: Path, api_client: Any, tmp_path: Path, local_pv: Callable[[str], LocalPv]
) -> None:
    """scenarios/demo.yaml's load on a local PV of node-2, deployed by the operator; its fio profiles left out (the
    statefulset mode's demo test measures them: fio does not depend on who owns the pod) and its reschedule replaced
    by a pod restart (a local PV cannot move)."""
    vol = local_pv("node-2")
    yaml = YAML()
    demo = yaml.load((ROOT / "scenarios" / "demo.yaml").read_text())
    demo["name"] = "k8s-operator-demo"
    demo["duration"] = "25s"
    demo["storage"] = {
        "backend": "local",
        "path": vol.path,
        "node": vol.node,
        "claim": {"storage_class": vol.storage_class, "size": "1Gi"},
        "volume": {"name": vol.pv},
    }
    demo["prometheus"]["deploy"] = "operator"
    del demo["loads"]["fio"]
    demo["faults"] = [{"action": "sigkill", "at": "8s"}, {"action": "restart", "at": "16s"}]
    scenario_file = tmp_path / "demo.yaml"
    with scenario_file.open("w") as f:
        yaml.dump(demo, f)
    proc = harness_run(scenario_file, tmp_path / "reports", kubeconfig)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    [result_file] = (tmp_path / "reports").glob("*/*/result.json")
    result = load_result(result_file.parent)
    assert result.verdict is Status.PASSED and result.complete
    kill, restart = result.faults
    assert (kill.action, restart.action) == ("sigkill", "restart")
    # SIGKILL: the same pod, its container restarted; restart: a new pod, which the operator's StatefulSet made.
    assert kill.instance_before.split(", container")[0] == kill.instance_after.split(", container")[0]
    assert kill.instance_after.endswith("container restart 1")
    assert restart.instance_before.split(" on ")[0] != restart.instance_after.split(" on ")[0]
    assert all("pod prometheus-k8s-operator-demo-0 " in f.instance_after for f in result.faults)
    assert all(c.lost == 0 and c.acknowledged > 0 for c in result.durability)
    # The operator mounts the claim's subPath prometheus-db (storage.disableMountSubPath unset, as in the chart).
    assert (Path(vol.path) / "prometheus-db" / "wal").is_dir()
    assert result.cluster is not None and result.cluster.volume is not None
    assert result.cluster.volume.pv == vol.pv
    # The real operator reconciled the run's resource (and not the harness' own StatefulSet code).
    assert f"harness-{result.run_id}" in prometheus_operator.read_text()
    assert_nothing_left(api_client, result.run_id, (vol.pv,), (vol.storage_class,))


@pytest.mark.cluster
@pytest.mark.slow
def test_redeploy_in_operator_mode_on_a_retained_pv_hits_the_stale_claim_ref(
    prometheus_operator: Path, kubeconfig: Path, api_client: Any, tmp_path: Path, local_pv: Callable[[str], LocalPv]
) -> None:
    """As ``test_redeploy_on_a_retained_pv_hits_the_stale_claim_ref`` in statefulset mode: the Prometheus resource
    (helm uninstall) and its claim are deleted, the PV (Retain) is Released with the old claimRef, and the new
    claim the operator's StatefulSet makes stays Pending."""
    vol = local_pv("node-1")
    scenario_file = write_scenario(
        tmp_path,
        f"""
version: 1
name: k8s-op-redeploy
duration: 20s
{vol.storage_yaml()}prometheus: {{deploy: operator}}
loads: {{tsdb: {{series: 50, interval: 1s}}}}
faults: [{{action: redeploy, at: 5s}}]
""",
    )
    result = run_into_the_released_pv_trap(scenario_file, tmp_path, kubeconfig, vol.pv)
    assert f"harness-{result.run_id}" in prometheus_operator.read_text()
    assert_nothing_left(api_client, result.run_id, (vol.pv,), (vol.storage_class,))


@pytest.mark.cluster
@pytest.mark.slow
def test_scale_zero_in_operator_mode_scales_through_the_prometheus_resource(
    prometheus_operator: Path, kubeconfig: Path, api_client: Any, tmp_path: Path, local_pv: Callable[[str], LocalPv]
) -> None:
    """The operator owns the StatefulSet and would put its replicas back: the fault patches the resource's
    ``replicas``, and the pod comes back with the same claim (0 lost)."""
    vol = local_pv("node-1")
    scenario_file = write_scenario(
        tmp_path,
        f"""
version: 1
name: k8s-op-scale
duration: 20s
{vol.storage_yaml()}prometheus: {{deploy: operator}}
loads: {{tsdb: {{series: 50, interval: 1s}}}}
faults: [{{action: scale_zero, at: 5s, down: 3s}}]
""",
    )
    proc = harness_run(scenario_file, tmp_path / "reports", kubeconfig)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    [result_file] = (tmp_path / "reports").glob("*/*/result.json")
    result = load_result(result_file.parent)
    [fault] = result.faults
    assert fault.status is Status.PASSED, fault.error
    assert "Prometheus resource scaled to 0" in fault.detail and "Prometheus resource scaled back to 1" in fault.detail
    assert fault.instance_before.split(" (uid ")[1][:8] != (fault.instance_after or "").split(" (uid ")[1][:8]
    assert all(c.lost == 0 and c.acknowledged > 0 for c in result.durability)
    assert_nothing_left(api_client, result.run_id, (vol.pv,), (vol.storage_class,))
