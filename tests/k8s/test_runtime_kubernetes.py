"""The kubernetes runtime: `harness run --runtime kubernetes` against the real cluster of testbed.

1. the emptyDir baseline loses its history when the pod is deleted, in a cluster too (exit 1);
2. a local PV keeps every acknowledged sample through a SIGKILL (container restarted by the kubelet in the same pod)
   and a pod restart (exit 0, 0 lost);
3. cleanup leaves no namespace, PV, StorageClass or cordoned node behind, and never touches a PV it did not create.

The manifest tests at the top need no cluster: they check what the runtime would create.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from harness.faults import injectors
from harness.report import render_report
from harness.results.model import Status
from harness.results.store import load_result
from harness.runtime.manifests.common import Names
from harness.runtime.manifests.prometheus import statefulset_manifest
from harness.runtime.manifests.volumes import volume_manifest
from harness.scenario.model import Scenario
from harness.storage.base import operator_claim_name
from harness.undo import UndoLog
from tests.k8s.conftest import LocalPv
from tests.k8s.helpers import (
    ROOT,
    assert_nothing_left,
    context_of,
    field_notes_nfs_storage,
    harness_run,
    reschedule_runtime,
    run_into_the_released_pv_trap,
    write_scenario,
)
from tests.leftovers import wait_for_load_phase


def scenario_model(storage: dict[str, Any], faults: list[dict[str, str]] | None = None) -> Scenario:
    return Scenario.model_validate(
        {"name": "unit", "duration": "20s", "storage": storage, "faults": faults or []}, by_alias=True
    )


# --- manifests (no cluster) ----------------------------------------------------------------------------------


def test_statefulset_is_the_operators_shape() -> None:
    scenario = scenario_model({"backend": "local", "path": "/mnt/disks/vol1", "node": "node-2"})
    names = Names("unit", "abc123")
    sts = statefulset_manifest(scenario, names, tools_image=None)
    assert sts["metadata"]["name"] == "prometheus-unit"
    [template] = sts["spec"]["volumeClaimTemplates"]
    assert template["metadata"]["name"] == "prometheus-unit-db"
    assert f"{template['metadata']['name']}-{sts['metadata']['name']}-0" == operator_claim_name("unit") == names.claim
    assert template["spec"]["storageClassName"] == "local-storage"
    pod = sts["spec"]["template"]["spec"]
    assert pod["securityContext"] == {"runAsUser": 1000, "runAsGroup": 2000, "runAsNonRoot": True, "fsGroup": 2000}
    [container] = pod["containers"]  # no sidecar without a signal fault
    assert "shareProcessNamespace" not in pod
    assert {"--storage.tsdb.path=/prometheus", "--web.enable-remote-write-receiver"} <= set(container["args"])
    assert container["startupProbe"]["httpGet"]["path"] == "/-/ready"
    assert container["startupProbe"]["failureThreshold"] == 60
    assert container["livenessProbe"]["httpGet"]["path"] == "/-/healthy"
    assert {"name": "prometheus-unit-db", "mountPath": "/prometheus"} in container["volumeMounts"]
    for obj in (sts, template, sts["spec"]["template"]):
        assert obj["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "prom-storage-harness"
        assert obj["metadata"]["labels"]["harness/run-id"] == "abc123"


def test_signal_faults_add_a_sidecar_in_a_shared_process_namespace() -> None:
    scenario = scenario_model({"backend": "ephemeral", "size_limit": "1Gi"}, [{"action": "sigkill", "at": "5s"}])
    pod = statefulset_manifest(scenario, Names("unit", "r"), tools_image="tools:1")["spec"]["template"]["spec"]
    assert pod["shareProcessNamespace"] is True
    assert [c["name"] for c in pod["containers"]] == ["prometheus", "harness-tools"]
    assert {"name": "prometheus-unit-db", "emptyDir": {"sizeLimit": "1Gi"}} in pod["volumes"]


def test_volumes_per_backend() -> None:
    names = Names("unit", "r")
    local = volume_manifest(scenario_model({"backend": "local", "path": "/mnt/d", "node": "node-2"}), names)
    assert local is not None
    assert local["metadata"]["name"] == "harness-unit"
    assert local["spec"]["local"] == {"path": "/mnt/d"}
    assert local["spec"]["persistentVolumeReclaimPolicy"] == "Retain"
    assert local["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"] == [
        {"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": ["node-2"]}]}
    ]
    nfs = volume_manifest(
        scenario_model(
            {
                "backend": "nfs",
                "server": "172.17.73.37",
                "export": "/vol/k8s-prometheus/prometheus_db",
                "claim": {"selector": {"app": "wsg-prometheus"}},
                "volume": {"labels": {"app": "wsg-prometheus"}},
            }
        ),
        names,
    )
    assert nfs is not None
    assert nfs["spec"]["nfs"] == {"server": "172.17.73.37", "path": "/vol/k8s-prometheus/prometheus_db"}
    assert nfs["spec"]["storageClassName"] == ""
    assert nfs["metadata"]["labels"]["app"] == "wsg-prometheus"
    iscsi = volume_manifest(
        scenario_model({"backend": "iscsi", "target_portal": "172.17.73.37:3260", "iqn": "iqn.2020-02.com:wsg"}),
        names,
    )
    assert iscsi is not None
    assert iscsi["spec"]["iscsi"] == {
        "targetPortal": "172.17.73.37:3260",
        "iqn": "iqn.2020-02.com:wsg",
        "lun": 0,
        "fsType": "ext4",
    }
    assert volume_manifest(scenario_model({"backend": "ephemeral"}), names) is None


# --- on the cluster ------------------------------------------------------------------------------------------


@pytest.mark.cluster
@pytest.mark.slow
def test_ephemeral_restart_loses_history(kubeconfig: Path, api_client: Any, tmp_path: Path) -> None:
    scenario_file = write_scenario(
        tmp_path,
        """
version: 1
name: k8s-ephemeral
duration: 25s
storage: {backend: ephemeral}
loads: {tsdb: {series: 200, interval: 1s}}
faults: [{action: restart, at: 10s}]
""",
    )
    proc = harness_run(scenario_file, tmp_path / "reports", kubeconfig)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    [result_file] = (tmp_path / "reports").glob("*/*/result.json")
    result = load_result(result_file.parent)
    assert result.runtime == "kubernetes" and result.complete
    assert result.verdict is Status.FAILED
    [fault] = result.faults
    assert fault.action == "restart" and fault.error is None
    assert fault.instance_before.split(" (uid ")[1][:8] != fault.instance_after.split(" (uid ")[1][:8]
    after_fault = result.durability[0]
    assert after_fault.acknowledged > 0 and after_fault.lost == after_fault.acknowledged  # all history gone
    assert_nothing_left(api_client, result.run_id)


@pytest.mark.cluster
@pytest.mark.slow
def test_the_demo_on_a_local_pv_measures_the_pv_with_fio_and_keeps_everything_through_sigkill_and_restart(
    kubeconfig: Path, api_client: Any, tmp_path: Path, node_dir: Callable[[str, str], str]
) -> None:
    """scenarios/demo.yaml (its fio profiles and write load) on a local PV of node-2, with its reschedule replaced
    by a pod restart (a local PV cannot move: that is what the reschedule test shows)."""
    tag = uuid.uuid4().hex[:8]
    path = node_dir("node-2", f"runtime-{tag}")
    pv, sc = f"harness-pv-{tag}", f"local-{tag}"
    yaml = YAML()
    demo = yaml.load((ROOT / "scenarios" / "demo.yaml").read_text())
    demo["name"] = "k8s-demo"
    demo["storage"] = {
        "backend": "local",
        "path": path,
        "node": "node-2",
        "claim": {"storage_class": sc, "size": "1Gi"},
        "volume": {"name": pv},
    }
    demo["faults"] = [{"action": "sigkill", "at": "10s"}, {"action": "restart", "at": "20s"}]
    scenario_file = tmp_path / "demo.yaml"
    with scenario_file.open("w") as f:
        yaml.dump(demo, f)
    proc = harness_run(scenario_file, tmp_path / "reports", kubeconfig)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    [result_file] = (tmp_path / "reports").glob("*/*/result.json")
    result = load_result(result_file.parent)
    assert result.verdict is Status.PASSED and result.complete

    # fio ran in pods on that very PV, before Prometheus, and removed its files.
    assert [j.profile for j in result.fio] == ["wal-append", "randwrite-4k"]
    for job in result.fio:
        assert job.error is None and job.write is not None and job.write.iops > 0 and job.write.timeseries
        assert job.measured_on is not None and " on node node-2, claim " in job.measured_on
        assert f"(pv/{pv})" in job.measured_on
        assert (result_file.parent / f"fio-{job.name}.json").is_file()
    assert result.environment.fio_version
    assert not [p.name for p in Path(path).iterdir() if p.name.startswith("harness-fio-")]

    kill, restart = result.faults
    assert (kill.action, restart.action) == ("sigkill", "restart")
    # SIGKILL: the same pod on node-2, its container restarted; restart: a new pod, pinned back to node-2 by the PV.
    assert kill.instance_before.split(", container")[0] == kill.instance_after.split(", container")[0]
    assert kill.instance_after.endswith("container restart 1")
    assert restart.instance_before.split(" on ")[0] != restart.instance_after.split(" on ")[0]
    assert all("on node-2" in f.instance_after for f in result.faults)
    assert kill.wal_replay_s is not None  # read from the restarted container's log
    assert all(c.lost == 0 and c.acknowledged > 0 for c in result.durability)
    assert (Path(path) / "wal").is_dir()

    # Recovery by Kubernetes stage, from the API's own timestamps where it has them.
    kill_stages = [s.stage for s in kill.stages]
    assert kill_stages == ["injected", "container_ended", "container_started", "healthy", "ready", "first_sample"]
    restart_stages = [s.stage for s in restart.stages]
    assert restart_stages[:5] == ["injected", "pod_created", "scheduled", "volumes_mounted", "container_started"]
    assert restart_stages[-3:] == ["healthy", "ready", "first_sample"]
    assert all(s.source.startswith("API: ") and s.resolution_s == 1.0 for s in restart.stages[1:5])
    # A local PV has no CSI driver to stage or publish it: said once, for the new pod only.
    assert (
        kill.stages_note == "" and restart.stages_note == f"pv/{pv} is not a CSI volume (local {path}): no CSI stages"
    )
    for fault in result.faults:  # whole seconds, truncated: never more than a second before the injection
        assert all(s.at_s > fault.injected_at_s - 1.0 for s in fault.stages)
    # The cluster's facts: versions, the node Prometheus ran on, the volume and its class.
    cluster = result.cluster
    assert cluster is not None and cluster.server_version.startswith("v1.")
    [node] = cluster.nodes
    assert node.name == "node-2" and node.kernel and node.kubelet.startswith("v1.")
    assert node.container_runtime.startswith("containerd://")
    assert cluster.volume is not None and cluster.volume.pv == pv and cluster.volume.source == f"local {path}"
    assert cluster.volume.provisioner == "kubernetes.io/no-provisioner" and cluster.volume.reclaim_policy == "Retain"
    html = render_report(result_file.parent).read_text()
    assert "Recovery by stage" in html and "PodScheduled" in html and "harness-fio-1-wal-append" in html
    assert "kubernetes.io/no-provisioner" in html and f"kernel {node.kernel}" in html
    assert_nothing_left(api_client, result.run_id, (pv,), (sc,))


@pytest.mark.cluster
@pytest.mark.slow
def test_scale_to_zero_and_back_keeps_a_local_pv(
    kubeconfig: Path, api_client: Any, tmp_path: Path, local_pv: Callable[[str], LocalPv]
) -> None:
    vol = local_pv("node-1")
    pv, sc = vol.pv, vol.storage_class
    scenario_file = write_scenario(
        tmp_path,
        f"""
version: 1
name: k8s-scale
duration: 25s
{vol.storage_yaml()}loads: {{tsdb: {{series: 100, interval: 1s}}}}
faults: [{{action: scale_zero, at: 6s, down: 5s}}]
""",
    )
    proc = harness_run(scenario_file, tmp_path / "reports", kubeconfig)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    [result_file] = (tmp_path / "reports").glob("*/*/result.json")
    result = load_result(result_file.parent)
    [fault] = result.faults
    assert fault.status is Status.PASSED
    assert "StatefulSet scaled to 0" in fault.detail and "5 s later StatefulSet scaled back to 1" in fault.detail
    assert fault.instance_before.split(" (uid ")[1][:8] != (fault.instance_after or "").split(" (uid ")[1][:8]
    assert all(c.lost == 0 and c.acknowledged > 0 for c in result.durability)
    assert_nothing_left(api_client, result.run_id, (pv,), (sc,))


@pytest.fixture
def nfs_export(public_tmp: Path) -> Iterator[tuple[Path, Any]]:
    """NFS-Ganesha on the host's 127.0.0.1 (where the kubelets run), exporting a directory owned 1000:2000."""
    from harness.datapath.servers import start_ganesha

    export = public_tmp / "export"
    export.mkdir()
    os.chown(export, 1000, 2000)
    server = start_ganesha(public_tmp / "ganesha", export, pseudo=str(export), v3=True)
    try:
        yield export, server
    finally:
        server.stop()


@pytest.mark.cluster
@pytest.mark.slow
@pytest.mark.skipif(not Path("/dev/fuse").exists(), reason="no /dev/fuse: the nodes' user-space NFS client needs FUSE")
def test_the_field_notes_nfs_pv_keeps_everything_through_sigkill_and_restart(
    kubeconfig: Path, api_client: Any, tmp_path: Path, local_cluster: bool, nfs_export: tuple[Path, Any]
) -> None:
    """The field notes' NFS setup: a PV with labels, a claim with their selector and no class. The real PV controller
    binds it, the kubelet's own nfs plugin mounts it (here through the harness's user-space client, the nodes'
    `mount` for NFS: this kernel has none), Prometheus is Ready and loses nothing over SIGKILL and a pod restart."""
    if not local_cluster:
        pytest.skip("the NFS server runs on this host's 127.0.0.1, which only the local cluster's nodes share")
    export, server = nfs_export
    tag = uuid.uuid4().hex[:8]
    scenario_file = write_scenario(
        tmp_path,
        f"""
version: 1
name: k8s-nfs
duration: 25s
{field_notes_nfs_storage(export, server.port, server.mount_port, tag)}loads: {{tsdb: {{series: 200, interval: 1s}}}}
faults:
  - {{action: sigkill, at: 8s}}
  - {{action: restart, at: 16s}}
""",
    )
    proc = harness_run(scenario_file, tmp_path / "reports", kubeconfig)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    [result_file] = (tmp_path / "reports").glob("*/*/result.json")
    result = load_result(result_file.parent)
    assert result.verdict is Status.PASSED and [f.status for f in result.faults] == [Status.PASSED] * 2
    assert all(c.lost == 0 and c.acknowledged > 0 for c in result.durability)
    assert (export / "wal").is_dir()  # Prometheus' WAL landed on the export, written as uid 1000
    assert (export / "wal").stat().st_uid == 1000
    assert_nothing_left(api_client, result.run_id, (f"harness-nfs-{tag}",))


@pytest.mark.cluster
@pytest.mark.slow
def test_a_pv_the_run_did_not_create_is_never_touched(kubeconfig: Path, api_client: Any, tmp_path: Path) -> None:
    from kubernetes import client

    core = client.CoreV1Api(api_client)
    pv = f"harness-foreign-{uuid.uuid4().hex[:8]}"
    core.create_persistent_volume(
        client.V1PersistentVolume(
            metadata=client.V1ObjectMeta(name=pv),
            spec=client.V1PersistentVolumeSpec(
                capacity={"storage": "1Gi"},
                access_modes=["ReadWriteOnce"],
                # A class of its own: with "" it was the smallest match for the claims of class "" that other cluster
                # tests make meanwhile (CI: iscsi-server-restart's claim bound it and Prometheus found /nonexistent).
                storage_class_name=pv,
                host_path=client.V1HostPathVolumeSource(path="/nonexistent"),
            ),
        )
    )
    try:
        scenario_file = write_scenario(
            tmp_path,
            f"""
version: 1
name: k8s-foreign
duration: 10s
storage: {{backend: local, path: /nonexistent, node: node-1, volume: {{name: {pv}}}}}
""",
        )
        # The doctor, reading the live cluster, stops the run first; past it (--skip-doctor) the runtime refuses too.
        for reports, args in ((tmp_path / "doctor", ()), (tmp_path / "runtime", ("--skip-doctor",))):
            proc = harness_run(scenario_file, reports, kubeconfig, *args)
            assert proc.returncode == 2, proc.stdout + proc.stderr
            assert f"PersistentVolume {pv} already exists and was not created by this run" in proc.stdout + proc.stderr
            kept = core.read_persistent_volume(pv)
            assert kept.metadata.deletion_timestamp is None
            [result_file] = reports.glob("*/*/result.json")
            assert_nothing_left(api_client, load_result(result_file.parent).run_id)
    finally:
        core.delete_persistent_volume(pv)


@pytest.mark.cluster
@pytest.mark.cluster_exclusive  # cordons a node
@pytest.mark.slow
def test_reschedule_on_a_local_pv_reports_the_node_affinity_conflict_and_uncordons(
    kubeconfig: Path, api_client: Any, tmp_path: Path, node_dir: Callable[[str, str], str]
) -> None:
    tag = uuid.uuid4().hex[:8]
    path = node_dir("node-2", f"runtime-{tag}")
    pv = f"harness-pv-{tag}"
    scenario_file = write_scenario(
        tmp_path,
        f"""
version: 1
name: k8s-local-move
duration: 20s
storage: {{backend: local, path: {path}, node: node-2, claim: {{storage_class: local-{tag}}}, volume: {{name: {pv}}}}}
loads: {{tsdb: {{series: 50, interval: 1s}}}}
faults: [{{action: reschedule, at: 5s}}]
""",
    )
    proc = harness_run(scenario_file, tmp_path / "reports", kubeconfig)
    # The pod cannot follow: that is the storage's finding (FAILED, exit 1), with the scheduler's own reason.
    assert proc.returncode == 1, proc.stdout + proc.stderr
    [result_file] = (tmp_path / "reports").glob("*/*/result.json")
    result = load_result(result_file.parent)
    assert result.verdict is Status.FAILED and result.error is None
    [fault] = result.faults
    error = fault.error or ""
    assert fault.status is Status.FAILED and "volume node affinity conflict" in error, error
    assert "to node-2 (cordoned or lost)" in error
    assert_nothing_left(api_client, result.run_id, (pv,), (f"local-{tag}",))


@pytest.mark.cluster
@pytest.mark.slow
def test_redeploy_on_a_retained_pv_hits_the_stale_claim_ref(
    kubeconfig: Path, api_client: Any, tmp_path: Path, node_dir: Callable[[str, str], str]
) -> None:
    tag = uuid.uuid4().hex[:8]
    path = node_dir("node-1", f"runtime-{tag}")
    pv = f"harness-pv-{tag}"
    scenario_file = write_scenario(
        tmp_path,
        f"""
version: 1
name: k8s-local-redeploy
duration: 20s
storage: {{backend: local, path: {path}, node: node-1, claim: {{storage_class: local-{tag}}}, volume: {{name: {pv}}}}}
loads: {{tsdb: {{series: 50, interval: 1s}}}}
faults: [{{action: redeploy, at: 5s}}]
""",
    )
    result = run_into_the_released_pv_trap(scenario_file, tmp_path, kubeconfig, pv)
    assert_nothing_left(api_client, result.run_id, (pv,), (f"local-{tag}",))


@pytest.mark.cluster
@pytest.mark.cluster_exclusive  # cordons a node
@pytest.mark.slow
def test_reschedule_on_ephemeral_moves_the_pod_and_loses_history(
    kubeconfig: Path, api_client: Any, tmp_path: Path
) -> None:
    scenario_file = write_scenario(
        tmp_path,
        """
version: 1
name: k8s-ephemeral-move
duration: 20s
storage: {backend: ephemeral}
loads: {tsdb: {series: 50, interval: 1s}}
faults: [{action: reschedule, at: 6s}]
""",
    )
    proc = harness_run(scenario_file, tmp_path / "reports", kubeconfig)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    [result_file] = (tmp_path / "reports").glob("*/*/result.json")
    result = load_result(result_file.parent)
    [fault] = result.faults
    assert fault.error is None
    before, after = (s.split(" on ")[1].split(",")[0] for s in (fault.instance_before, fault.instance_after))
    assert before != after, (fault.instance_before, fault.instance_after)
    assert result.durability[0].lost == result.durability[0].acknowledged > 0
    assert_nothing_left(api_client, result.run_id)


@pytest.mark.cluster
@pytest.mark.slow
def test_sigterm_keeps_the_emptydir_through_the_api_server_pod_proxy(
    kubeconfig: Path, api_client: Any, tmp_path: Path
) -> None:
    """A container restart keeps the pod's emptyDir; queries and remote write go through the API server."""
    scenario_file = write_scenario(
        tmp_path,
        """
version: 1
name: k8s-sigterm-proxy
duration: 20s
storage: {backend: ephemeral}
loads: {tsdb: {series: 100, interval: 1s}}
faults: [{action: sigterm, at: 8s}]
""",
    )
    proc = harness_run(scenario_file, tmp_path / "reports", kubeconfig, HARNESS_K8S_REACH="api-proxy")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    [result_file] = (tmp_path / "reports").glob("*/*/result.json")
    result = load_result(result_file.parent)
    [fault] = result.faults
    assert fault.detail.startswith("SIGTERM to Prometheus")
    assert fault.instance_after.endswith("container restart 1")
    assert all(c.lost == 0 and c.acknowledged > 0 for c in result.durability)
    assert_nothing_left(api_client, result.run_id)


@pytest.mark.cluster
@pytest.mark.cluster_exclusive  # cordons a node
@pytest.mark.slow
def test_stop_during_a_reschedule_uncordons_and_removes_everything(
    kubeconfig: Path, api_client: Any, tmp_path: Path, node_dir: Callable[[str, str], str]
) -> None:
    """What Ctrl-C does mid-fault: the pod is Pending on a cordoned node's PV; the cleanup unwinds the fault's undo
    (the uncordon, recorded before the cordon) and then stops the runtime, as the pipeline does."""
    from kubernetes import client

    from harness.runtime.kubernetes import KubernetesRuntime

    tag = uuid.uuid4().hex[:8]
    path = node_dir("node-2", f"runtime-{tag}")
    scenario = Scenario.model_validate(
        {
            "name": "k8s-interrupted",
            "duration": "20s",
            "storage": {
                "backend": "local",
                "path": path,
                "node": "node-2",
                "claim": {"storage_class": f"local-{tag}"},
                "volume": {"name": f"harness-pv-{tag}"},
            },
            "faults": [{"action": "reschedule", "at": "5s"}],
        }
    )
    runtime = KubernetesRuntime(
        scenario, tag[:6], logs_dir=tmp_path / "logs", kubeconfig=str(kubeconfig), context=context_of(kubeconfig)
    )
    undo = UndoLog()
    try:
        runtime.start([])
        injection = injectors()["reschedule"].inject(scenario.faults[0], runtime, undo)
        assert "node node-2 cordoned" in injection.detail
        assert undo.pending == ["uncordon node node-2"]
        node = client.CoreV1Api(api_client).read_node("node-2")
        assert node.spec.unschedulable is True
        assert node.metadata.annotations["harness/cordoned-by"] == tag[:6]  # so `harness cleanup` may undo it
        assert "(unscheduled)" in injection.instance_after  # pinned to node-2 by the PV, which is cordoned
    finally:
        assert undo.unwind() == []
        runtime.stop()
    assert_nothing_left(api_client, tag[:6], (f"harness-pv-{tag}",), (f"local-{tag}",))
    assert "harness/cordoned-by" not in (client.CoreV1Api(api_client).read_node("node-2").metadata.annotations or {})
    assert list((tmp_path / "logs").glob("prometheus-*.log")), "the deleted pod's log was not kept"


NETWORK_VOLUMES = {
    # 127.0.0.1 only: nothing answers there, and nothing should leave this machine anyway.
    "nfs": "{backend: nfs, server: 127.0.0.1, export: /export, claim: {storage_class: '', selector: {app: TAG}}, "
    "volume: {name: TAG, labels: {app: TAG}}}",
    "iscsi": "{backend: iscsi, target_portal: '127.0.0.1:3260', iqn: 'iqn.2020-02.com:wsg', lun: 1, "
    "claim: {storage_class: ''}, volume: {name: TAG}}",
}


@pytest.mark.cluster
@pytest.mark.slow
@pytest.mark.parametrize("backend", sorted(NETWORK_VOLUMES))
def test_a_network_volume_the_node_cannot_mount_fails_with_the_kubelets_reason(
    backend: str, kubeconfig: Path, api_client: Any, tmp_path: Path
) -> None:
    """The PV and claim bind (the API server accepts the PV this runtime writes), and where the node cannot mount it
    (nothing serves 127.0.0.1 there) the run stops within ready_timeout, naming the kubelet's FailedMount event
    instead of hanging. For iSCSI the event carries what iscsiadm said (the test bed's, testbed/iscsi_helper.py,
    in open-iscsi's words), as the kubelet's plugin quotes it."""
    tag = f"harness-{backend}-{uuid.uuid4().hex[:8]}"
    scenario_file = write_scenario(
        tmp_path,
        f"""
version: 1
name: k8s-{backend}
duration: 10s
storage: {NETWORK_VOLUMES[backend].replace("TAG", tag)}
prometheus: {{ready_timeout: 25s}}
loads: {{tsdb: {{series: 10}}}}
""",
    )
    proc = harness_run(scenario_file, tmp_path / "reports", kubeconfig, "--skip-doctor")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    [result_file] = (tmp_path / "reports").glob("*/*/result.json")
    result = load_result(result_file.parent)
    error = result.error or ""
    # Bounded by ready_timeout (25 s), part of which may have gone to earlier steps of the same deadline.
    assert re.search(r"gave up after 2[0-5](\.\d)? s waiting for Prometheus in pod", error), error
    assert "FailedMount" in error, error
    if backend == "iscsi":
        assert "iscsi: failed to sendtargets to portal 127.0.0.1:3260" in error, error
        assert "Could not perform SendTargets discovery" in error, error
    assert_nothing_left(api_client, result.run_id, (tag,))


@pytest.mark.cluster
@pytest.mark.cluster_exclusive  # cordons a node
@pytest.mark.slow
def test_a_node_cordoned_by_someone_else_stays_cordoned(kubeconfig: Path, api_client: Any, tmp_path: Path) -> None:
    from kubernetes import client

    core = client.CoreV1Api(api_client)
    runtime, scenario, run_id = reschedule_runtime("k8s-cordoned", kubeconfig, context_of(kubeconfig), tmp_path)
    node = ""
    try:
        runtime.start([])
        assert runtime.pod is not None
        node = runtime.pod.node
        core.patch_node(node, {"spec": {"unschedulable": True}})  # an operator's cordon, not the harness's
        undo = UndoLog()
        injection = injectors()["reschedule"].inject(scenario.faults[0], runtime, undo)
        assert f"node {node} was cordoned already" in injection.detail
        assert undo.pending == []  # nothing of ours to undo: the cordon is not ours
        runtime.wait_recovered(60)
        assert runtime.pod.node not in ("", node)
        runtime.stop()
        assert core.read_node(node).spec.unschedulable is True
    finally:
        runtime.stop()
        if node:
            core.patch_node(node, {"spec": {"unschedulable": False}})
    assert_nothing_left(api_client, run_id)


@pytest.mark.cluster
@pytest.mark.slow
def test_ctrl_c_during_the_load_removes_what_the_run_created(
    kubeconfig: Path, api_client: Any, tmp_path: Path, node_dir: Callable[[str, str], str]
) -> None:
    tag = uuid.uuid4().hex[:8]
    path = node_dir("node-1", f"runtime-{tag}")
    pv, sc = f"harness-pv-{tag}", f"local-{tag}"
    scenario_file = write_scenario(
        tmp_path,
        f"""
version: 1
name: k8s-interrupt
duration: 5m
storage: {{backend: local, path: {path}, node: node-1, claim: {{storage_class: {sc}}}, volume: {{name: {pv}}}}}
loads: {{tsdb: {{series: 50}}}}
faults: [{{action: sigkill, at: 4m}}]
""",
    )
    reports = tmp_path / "reports"
    argv = ["run", str(scenario_file), "--runtime", "kubernetes", "--context", context_of(kubeconfig)]
    argv += ["--reports", str(reports), "--no-report"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness.cli", *argv],
        cwd=ROOT,
        env={**os.environ, "KUBECONFIG": str(kubeconfig)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        result_file = wait_for_load_phase(reports, proc)
        time.sleep(2)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert result_file is not None
    result = load_result(result_file.parent)
    assert result.interrupted and result.verdict is Status.ERROR
    assert_nothing_left(api_client, result.run_id, (pv,), (sc,))


@pytest.mark.cluster
@pytest.mark.slow
def test_fio_on_the_emptydir_baseline_measures_the_pods_own_volume(
    kubeconfig: Path, api_client: Any, tmp_path: Path
) -> None:
    """One scenario runs on both runtimes: on an emptyDir, fio measures an emptyDir of the same definition."""
    scenario_file = write_scenario(
        tmp_path,
        """
name: k8s-fio-emptydir
duration: 8s
storage: {backend: ephemeral}
loads: {tsdb: {series: 50, interval: 1s}, fio: [{profile: wal-append, runtime: 2s}]}
""",
    )
    proc = harness_run(scenario_file, tmp_path / "reports", kubeconfig)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    [result_file] = (tmp_path / "reports").glob("*/*/result.json")
    result = load_result(result_file.parent)
    [job] = result.fio
    assert job.error is None and job.write is not None and job.write.io_bytes > 0
    assert job.measured_on is not None and "ephemeral volume" in job.measured_on and " on node node-" in job.measured_on
    assert not any("skipped" in e.message for e in result.events)
    assert result.durability and result.durability[-1].lost == 0
    assert_nothing_left(api_client, result.run_id)


@pytest.mark.cluster
@pytest.mark.slow
def test_the_doctor_of_a_run_sees_the_clusters_volumes(
    kubeconfig: Path, api_client: Any, tmp_path: Path, node_dir: Callable[[str, str], str]
) -> None:
    """`harness run --runtime kubernetes` simulates the binding against the live cluster, as `harness doctor
    --kubeconfig` does: a claim meant for an existing PV (volume.create: false) binds it. Against an empty inventory
    the doctor would stop the run with "no persistent volumes available for this claim"."""
    from kubernetes import client

    core = client.CoreV1Api(api_client)
    tag = uuid.uuid4().hex[:8]
    path = node_dir("node-1", f"existing-{tag}")
    pv = f"harness-existing-{tag}"
    affinity = client.V1VolumeNodeAffinity(
        required=client.V1NodeSelector(
            node_selector_terms=[
                client.V1NodeSelectorTerm(
                    match_expressions=[
                        client.V1NodeSelectorRequirement(key="kubernetes.io/hostname", operator="In", values=["node-1"])
                    ]
                )
            ]
        )
    )
    core.create_persistent_volume(
        client.V1PersistentVolume(
            metadata=client.V1ObjectMeta(name=pv, labels={"app": tag}),
            spec=client.V1PersistentVolumeSpec(
                capacity={"storage": "1Gi"},
                access_modes=["ReadWriteOnce"],
                storage_class_name="",
                persistent_volume_reclaim_policy="Retain",
                local=client.V1LocalVolumeSource(path=path),
                node_affinity=affinity,
            ),
        )
    )
    try:
        scenario_file = write_scenario(
            tmp_path,
            f"""
version: 1
name: k8s-existing-pv
duration: 4s
storage:
  {{backend: local, path: {path}, node: node-1, volume: {{create: false}},
   claim: {{storage_class: "", size: 1Gi, selector: {{app: "{tag}"}}}}}}
loads: {{tsdb: {{series: 20, interval: 1s}}}}
""",
        )
        proc = harness_run(scenario_file, tmp_path / "reports", kubeconfig)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        [result_file] = (tmp_path / "reports").glob("*/*/result.json")
        result = load_result(result_file.parent)
        binding = [f for f in result.doctor if f.check.startswith("k8s.binding")]
        assert binding and all(f.severity.value != "BLOCKER" for f in result.doctor), result.doctor
        assert any(pv in f.title + f.evidence for f in binding), binding
        assert any("kubeconfig" in f.evidence for f in binding)  # the live inventory, not "no cluster"
        assert_nothing_left(api_client, result.run_id)
    finally:
        core.delete_persistent_volume(pv)


@pytest.mark.cluster
@pytest.mark.slow
def test_ctrl_c_during_fio_in_a_pod_stops_fio_removes_its_files_and_the_pod(
    kubeconfig: Path, api_client: Any, tmp_path: Path, local_pv: Callable[[str], LocalPv]
) -> None:
    from kubernetes import client

    vol = local_pv("node-1")
    path, pv, sc = vol.path, vol.pv, vol.storage_class
    scenario_file = write_scenario(
        tmp_path,
        f"""
name: k8s-fio-interrupted
duration: 20s
{vol.storage_yaml()}loads:
  fio: [{{profile: randwrite-4k, runtime: 2m, size: 32Mi}}]
""",
    )
    reports = tmp_path / "reports"
    argv = [sys.executable, "-m", "harness.cli", "run", str(scenario_file), "--runtime", "kubernetes",
            "--context", context_of(kubeconfig), "--reports", str(reports), "--no-report"]  # fmt: skip
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    core = client.CoreV1Api(api_client)
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and proc.poll() is None:
            # fio is at work: its directory is on the volume.
            if any(p.name.startswith("harness-fio-") for p in Path(path).iterdir()):
                break
            time.sleep(0.2)
        assert proc.poll() is None, "the run ended before fio started"
        [run_dir] = reports.glob("*/*")
        namespace = f"harness-{run_dir.name.rsplit('-', 1)[1]}"
        assert [p.metadata.name for p in core.list_namespaced_pod(namespace).items] == ["harness-fio-1-randwrite-4k"]
        time.sleep(2)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=30)
    assert proc.returncode == 130, out + err
    result = load_result(run_dir)
    assert result.interrupted and result.fio == []
    assert not [p.name for p in Path(path).iterdir() if p.name.startswith("harness-fio-")]
    assert_nothing_left(api_client, result.run_id, (pv,), (sc,))
