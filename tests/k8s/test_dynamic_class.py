"""A dynamic StorageClass (``storage.backend: dynamic``) against a real provisioner: rancher's local-path-provisioner
(tests/k8s/local_path.py) on the local cluster.

1. SIGKILL and a pod restart keep every acknowledged sample on the volume the provisioner made, and the result names
   the provisioner, its class and that PV;
2. a redeploy (claim deleted) on a class with ``reclaimPolicy: Delete`` loses the history (exit 1), the fault's record
   says why, and the doctor warned before the run;
3. cleanup deletes the claim, so the provisioner deletes the PV it made for the run, and no other PV is touched;
4. `harness cleanup` of a killed run says so before it happens (``--dry-run``): deleting the namespace deletes the
   volume of the claim and its data, naming the claim, the PV and its class.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from harness.report import render_report
from harness.results.model import Severity, Status
from harness.results.store import load_result
from tests.k8s.helpers import (
    assert_nothing_left,
    harness_run,
    run_into_the_delete_class_redeploy,
    run_volumes,
    write_scenario,
)
from tests.k8s.local_path import LocalPathProvisioner


def _scenario(tmp_path: Path, storage_class: str, name: str, duration: str, faults: str) -> Path:
    return write_scenario(
        tmp_path,
        f"""
version: 1
name: {name}
duration: {duration}
storage: {{backend: dynamic, storage_class: {storage_class}, size: 1Gi}}
loads: {{tsdb: {{series: 100, interval: 1s}}}}
faults: {faults}
""",
    )


def _bystander(api_client: Any, storage_class: str) -> str:
    """A PV of the run's own class that its claim cannot take (too small): the run must leave it as it is."""
    from kubernetes import client

    name = f"bystander-{uuid.uuid4().hex[:8]}"
    client.CoreV1Api(api_client).create_persistent_volume(
        client.V1PersistentVolume(
            metadata=client.V1ObjectMeta(name=name, labels={"harness.prom/test": "1"}),
            spec=client.V1PersistentVolumeSpec(
                capacity={"storage": "1Mi"},
                access_modes=["ReadWriteOnce"],
                storage_class_name=storage_class,
                persistent_volume_reclaim_policy="Delete",
                host_path=client.V1HostPathVolumeSource(path=f"/nonexistent/{name}"),
            ),
        )
    )
    return name


@pytest.mark.cluster
@pytest.mark.slow
def test_a_dynamic_class_keeps_everything_through_sigkill_and_restart(
    kubeconfig: Path, api_client: Any, tmp_path: Path, local_path: LocalPathProvisioner
) -> None:
    from kubernetes import client

    core = client.CoreV1Api(api_client)
    bystander = _bystander(api_client, local_path.delete_class)
    try:
        scenario_file = _scenario(
            tmp_path,
            local_path.delete_class,
            "k8s-dynamic",
            "25s",
            "[{action: sigkill, at: 8s}, {action: restart, at: 16s}]",
        )
        proc = harness_run(scenario_file, tmp_path / "reports", kubeconfig)
        assert proc.returncode == 0, proc.stdout + proc.stderr + local_path.log_text()[-3000:]
        [result_file] = (tmp_path / "reports").glob("*/*/result.json")
        result = load_result(result_file.parent)
        assert result.verdict is Status.PASSED and result.complete
        assert [f.action for f in result.faults] == ["sigkill", "restart"]
        assert all(c.lost == 0 and c.acknowledged > 0 for c in result.durability)

        # The result names the provisioner, its class and the PV it made for the claim.
        assert result.cluster is not None and result.cluster.volume is not None
        volume = result.cluster.volume
        assert volume.provisioner == local_path.name and volume.storage_class == local_path.delete_class
        assert volume.volume_binding_mode == "WaitForFirstConsumer" and volume.reclaim_policy == "Delete"
        assert volume.pv is not None and volume.pv.startswith("pvc-")
        assert volume.source is not None and volume.source.startswith("hostPath ") and local_path.tag in volume.source
        html = render_report(result_file.parent).read_text()
        assert f"{local_path.name}, WaitForFirstConsumer" in html and volume.pv in html
        doctor = {f.check: f for f in result.doctor}
        assert doctor["dynamic.binding_mode"].severity is Severity.INFO
        assert doctor["dynamic.reclaim_delete"].severity is Severity.WARNING

        # Cleanup: the claim went with the namespace, the provisioner deleted its PV; the bystander is untouched.
        assert run_volumes(local_path, result.run_id) == []
        assert volume.pv not in {pv.metadata.name for pv in core.list_persistent_volume().items}
        kept = core.read_persistent_volume(bystander)
        assert kept.status.phase == "Available" and kept.metadata.deletion_timestamp is None
        assert_nothing_left(api_client, result.run_id)
    finally:
        core.delete_persistent_volume(bystander)


@pytest.mark.cluster
@pytest.mark.slow
def test_redeploy_on_reclaim_delete_loses_the_history_and_the_doctor_said_so(
    kubeconfig: Path, api_client: Any, tmp_path: Path, local_path: LocalPathProvisioner
) -> None:
    scenario_file = _scenario(
        tmp_path, local_path.delete_class, "k8s-dynamic-redeploy", "20s", "[{action: redeploy, at: 6s}]"
    )
    result = run_into_the_delete_class_redeploy(scenario_file, tmp_path, kubeconfig, local_path.log_text)
    # Two volumes were made (before and after the redeploy) and both are gone with their claims.
    assert result.cluster is not None and result.cluster.volume is not None and result.cluster.volume.pv
    assert run_volumes(local_path, result.run_id) == []
    assert "Deleting volume" in local_path.log_text() or "has been deleted" in local_path.log_text()
    assert_nothing_left(api_client, result.run_id)


@pytest.mark.cluster
@pytest.mark.slow
def test_redeploy_on_reclaim_retain_leaves_the_history_on_a_released_pv(
    kubeconfig: Path, api_client: Any, tmp_path: Path, local_path: LocalPathProvisioner
) -> None:
    """The field notes' trap with a provisioner: the old PV stays Released with the deleted claim's claimRef, so the
    new claim gets a new, empty volume; the history is on the Released PV, which the run leaves as Retain says."""
    from kubernetes import client

    scenario_file = _scenario(
        tmp_path, local_path.retain_class, "k8s-dynamic-retain", "20s", "[{action: redeploy, at: 6s}]"
    )
    proc = harness_run(scenario_file, tmp_path / "reports", kubeconfig)
    assert proc.returncode == 1, proc.stdout + proc.stderr + local_path.log_text()[-3000:]
    [result_file] = (tmp_path / "reports").glob("*/*/result.json")
    result = load_result(result_file.parent)
    assert result.verdict is Status.FAILED
    assert "dynamic.reclaim_delete" not in {f.check for f in result.doctor}
    [fault] = result.faults
    claim = f"harness-{result.run_id}/prometheus-k8s-dynamic-retain-db-prometheus-k8s-dynamic-retain-0"
    assert f"(reclaimPolicy Retain) is Released and still carries claimRef {claim}" in fault.detail, fault.detail
    after = result.durability[0]
    assert after.acknowledged > 0 and after.lost == after.acknowledged
    # Both volumes the provisioner made are left, Released: Retain keeps the data, the harness deletes no PV.
    left = run_volumes(local_path, result.run_id)
    try:
        assert len(left) == 2, left
        core = client.CoreV1Api(api_client)
        assert {core.read_persistent_volume(name).status.phase for name in left} == {"Released"}
        assert_nothing_left(api_client, result.run_id)
    finally:
        for name in left:
            client.CoreV1Api(api_client).delete_persistent_volume(name)


@pytest.mark.cluster
@pytest.mark.slow
def test_cleanup_of_a_killed_dynamic_run_says_the_namespace_takes_the_volumes_data(
    kubeconfig: Path, kube_context: str, api_client: Any, tmp_path: Path, local_path: LocalPathProvisioner
) -> None:
    """The PV the provisioner made for a run's claim carries no run marks, so cleanup does not set it to Retain:
    with the class's reclaimPolicy Delete the namespace takes it, data and all. The dry run must say that (it used
    to say the data is never deleted), and the cleanup must then do what it said. (The runtime is driven as the
    pipeline drives it, then abandoned without its stop, as a SIGKILL abandons it.)"""
    from kubernetes import client

    from harness.runtime.kubernetes import KubernetesRuntime
    from harness.scenario.model import Scenario
    from harness.wait import wait_for
    from tests.leftovers import cleanup

    core = client.CoreV1Api(api_client)
    scenario = Scenario.model_validate(
        {
            "name": "k8s-dynamic-killed",
            "duration": "20s",
            "storage": {"backend": "dynamic", "storage_class": local_path.delete_class, "size": "1Gi"},
        }
    )
    run_id = uuid.uuid4().hex[:6]
    namespace = f"harness-{run_id}"
    runtime = KubernetesRuntime(
        scenario, run_id, logs_dir=tmp_path / "logs", kubeconfig=str(kubeconfig), context=kube_context
    )
    try:
        runtime.start([])
        claim = runtime.names.claim
        pv = core.read_namespaced_persistent_volume_claim(claim, namespace).spec.volume_name
        assert pv and run_volumes(local_path, run_id) == [pv]
        runtime.api.close()  # killed: no stop

        env = {"KUBECONFIG": str(kubeconfig)}
        named = ("--run", run_id, "--context", kube_context, "--workdir", str(tmp_path))
        fate = (
            f"namespace {namespace} (and all in it; its claim {claim} is bound to PersistentVolume {pv} of "
            f"StorageClass {local_path.delete_class}, reclaimPolicy Delete: deleting the namespace deletes that "
            "volume and the data on it)"
        )
        dry = cleanup(*named, "--dry-run", env=env)
        assert dry.returncode == 0, dry.stdout + dry.stderr
        assert f"would remove {fate}" in dry.stdout, dry.stdout
        assert core.read_persistent_volume(pv).status.phase == "Bound"  # a dry run removes nothing

        done = cleanup(*named, env=env)
        assert done.returncode == 0, done.stdout + done.stderr
        assert f"removed {fate}" in done.stdout, done.stdout
        wait_for(
            lambda: not run_volumes(local_path, run_id),
            what=f"the provisioner to delete pv/{pv} after its claim went with the namespace",
            timeout_s=120,
            interval_s=1,
        )
    finally:
        if core.list_namespace(field_selector=f"metadata.name={namespace}").items:
            core.delete_namespace(namespace)


def test_the_local_runtime_refuses_a_dynamic_class_with_exit_2(tmp_path: Path) -> None:
    """No cluster needed: refused before anything is created, with the reason."""
    import subprocess
    import sys

    from tests.k8s.helpers import ROOT

    scenario_file = _scenario(tmp_path, "any-class", "local-dynamic", "10s", "[]")
    reports = tmp_path / "reports"
    argv = ["run", str(scenario_file), "--runtime", "local", "--reports", str(reports), "--no-report"]
    proc = subprocess.run(
        [sys.executable, "-m", "harness.cli", *argv],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
        timeout=60,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out
    assert "a dynamic class needs a cluster" in out and "Traceback" not in out
    assert not list(reports.glob("*/*/result.json"))


@pytest.mark.cluster
def test_the_doctor_blocks_a_csi_class_whose_node_plugin_no_kubelet_registered(
    kubeconfig: Path, api_client: Any, tmp_path: Path
) -> None:
    """A CSIDriver and a class of it, with no node plugin on any node: the doctor (reading the live CSINodes) stops
    the run before anything is created, naming the kubelet's own error; the class and driver are the test's."""
    from kubernetes import client

    driver = f"harness-test-{uuid.uuid4().hex[:8]}.csi.example.com"
    storage = client.StorageV1Api(api_client)
    storage.create_csi_driver(
        client.V1CSIDriver(metadata=client.V1ObjectMeta(name=driver), spec=client.V1CSIDriverSpec())
    )
    storage.create_storage_class(
        client.V1StorageClass(
            metadata=client.V1ObjectMeta(name=driver), provisioner=driver, volume_binding_mode="WaitForFirstConsumer"
        )
    )
    try:
        scenario_file = write_scenario(
            tmp_path, f"name: k8s-csi-absent\nduration: 10s\nstorage: {{backend: dynamic, storage_class: {driver}}}\n"
        )
        proc = harness_run(scenario_file, tmp_path / "reports", kubeconfig)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert f"No node runs the node plugin of {driver}" in proc.stdout + proc.stderr
        [result_file] = (tmp_path / "reports").glob("*/*/result.json")
        result = load_result(result_file.parent)
        [blocker] = [f for f in result.doctor if f.check == "dynamic.csi_node"]
        assert blocker.severity is Severity.BLOCKER and "registered by the kubelets of: no node" in blocker.evidence
        assert_nothing_left(api_client, result.run_id)
    finally:
        storage.delete_storage_class(driver)
        storage.delete_csi_driver(driver)
