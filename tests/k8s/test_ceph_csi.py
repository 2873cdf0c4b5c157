"""ceph-csi's CephFS driver on the local cluster (testbed/ceph_csi.py): Prometheus' volume is provisioned by the real
driver through the StorageClass ``cephfs`` (``mounter: fuse``) with ``backend: dynamic``.

1. scenarios/cephfs-csi.yaml as shipped (SIGKILL, then a pod restart) keeps every acknowledged sample on the
   CephFS subvolume the driver made; the result names the driver, its class and the PV; the restart's recovery
   stages come from the API (a CSI volume that needs no attach has no SuccessfulAttachVolume event, and a kubelet
   sends no event for a NodeStage/NodePublish that succeeds: its ``csi_operations_seconds``, read through the
   API's node proxy, counts them, the ``volume staged`` and ``volume published`` stages, before the pod's
   PodReadyToStartContainers condition, the ``volumes mounted`` stage).
2. A redeploy on the class (reclaimPolicy Delete) loses the history (exit 1), with the doctor's warning in the
   result; both subvolumes are deleted by the driver with their claims.
3. The other conformance rows that need the driver, as shipped: scenarios/cephfs-csi-client-crash.yaml (the node
   plugin's restart takes ceph-fuse with it: exit 1).
4. The doctor's ceph-csi checks, each in the state it names, on the driver's real objects.
5. Last (it stops the driver): stopping the driver unmounts ceph-fuse's mounts and no other pod's volume.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.conformance import CEPH_CSI, CONFORMANCE, TESTBED_TESTS, Row
from harness.results.model import RecoveryStage, Severity, Status
from harness.results.store import load_result
from harness.runtime.kubernetes.csi_stages import POLL_S
from testbed import ceph_csi, config
from testbed.node import mounts_under
from tests.conformance_night import night_ends_as_the_row_says
from tests.k8s.helpers import (
    ROOT,
    assert_nothing_left,
    harness_run,
    run_into_the_delete_class_redeploy,
    run_volumes,
    write_scenario,
)

# The conformance rows that need ceph-csi (harness/conformance.py): cephfs-csi.yaml is run by the first test (which
# looks deeper into its result), the others by test_shipped_scenario_on_the_ceph_csi_class_ends_as_its_row_says.
CSI_ROWS = [row for row in CONFORMANCE if row.testbed == CEPH_CSI]
SHIPPED = "scenarios/cephfs-csi.yaml"


@pytest.fixture(scope="module")
def cephfs_csi(local_cluster: bool, kubeconfig: Path, api_client: Any) -> Iterator[ceph_csi.CephCsi]:
    """The driver, its Ceph and its class, started for this module only (a minute of daemons no other test needs)."""
    if not local_cluster:
        pytest.skip("ceph-csi runs as host processes of the local cluster's nodes: only with the local cluster")
    if not ceph_csi.built():
        pytest.skip(
            f"ceph-csi {ceph_csi.VERSION} is not built in {ceph_csi.cache_dir()}: run scripts/build-ceph-csi "
            "(needs Go, the module proxy and librados-dev librbd-dev libcephfs-dev; .ci/run does)"
        )
    driver = ceph_csi.CephCsi(api_client, kubeconfig, config.nodes(_node_count(api_client)))
    try:
        driver.start()
        yield driver
    finally:
        driver.stop()


def _node_count(api_client: Any) -> int:
    from kubernetes import client

    return len(client.CoreV1Api(api_client).list_node().items)


def _scenario(tmp_path: Path, name: str, duration: str, faults: str) -> Path:
    return write_scenario(
        tmp_path,
        f"""
version: 1
name: {name}
duration: {duration}
storage: {{backend: dynamic, storage_class: {ceph_csi.CLASS}, size: 1Gi}}
loads: {{tsdb: {{series: 100, interval: 1s}}}}
faults: {faults}
""",
    )


@pytest.mark.cluster
@pytest.mark.slow
@pytest.mark.root
def test_cephfs_csi_volume_keeps_everything_through_sigkill_and_restart(
    kubeconfig: Path, api_client: Any, tmp_path: Path, cephfs_csi: ceph_csi.CephCsi
) -> None:
    """scenarios/cephfs-csi.yaml as shipped: it must end as its conformance row's cluster outcome (exit 0, every
    check PASSED); the row needs the driver, which runs only on demand, here."""
    [row] = [r for r in CSI_ROWS if r.file == SHIPPED]
    assert row.kubernetes is not None and row.kubernetes.exit_code == 0
    proc = harness_run(ROOT / SHIPPED, tmp_path / "reports", kubeconfig)
    assert proc.returncode == 0, proc.stdout + proc.stderr + cephfs_csi.log_text()
    [result_file] = (tmp_path / "reports").glob("*/*/result.json")
    result = load_result(result_file.parent)
    assert result.verdict is Status.PASSED and result.complete
    assert {c.name: c.status.value for c in result.checks} == dict(row.kubernetes.checks)
    assert [f.action for f in result.faults] == ["sigkill", "restart"]
    assert all(c.lost == 0 and c.acknowledged > 0 for c in result.durability)
    # The doctor read the kubelets' CSINodes: every node registered the driver's node plugin.
    [csi_node] = [f for f in result.doctor if f.check == "dynamic.csi_node"]
    assert csi_node.severity is Severity.INFO and ceph_csi.DRIVER in csi_node.title, csi_node

    assert result.cluster is not None and result.cluster.volume is not None
    volume = result.cluster.volume
    assert volume.provisioner == ceph_csi.DRIVER and volume.storage_class == ceph_csi.CLASS
    assert volume.reclaim_policy == "Delete" and volume.pv is not None and volume.pv.startswith("pvc-")
    # The restart made a new pod: its volume was staged and published again by the node plugin (ceph-fuse).
    restart = result.faults[1]
    stages = {m.stage: m for m in restart.stages}
    assert "volumes_mounted" in stages and stages["volumes_mounted"].source.startswith("API: "), stages
    assert "volume_attached" not in stages  # attachRequired: false, as upstream's CSIDriver for CephFS
    _assert_csi_stages(restart.stages, restart.stages_note)
    assert run_volumes(cephfs_csi, result.run_id) == []  # the driver deleted its subvolume with the claim
    assert_nothing_left(api_client, result.run_id)


def _assert_csi_stages(marks: list[RecoveryStage], note: str) -> None:
    """The new pod's NodeStageVolume and NodePublishVolume, from the kubelet's metrics: staged, then published,
    neither after the volumes were mounted (that condition's whole second included), each with the poll's
    resolution (well under the second of the API's timestamps, the time until the next poll of a node)."""
    by = {m.stage: m for m in marks}
    assert "volume_staged" in by and "volume_published" in by, (note, marks)
    staged, published, mounted = by["volume_staged"], by["volume_published"], by["volumes_mounted"]
    order = [m.stage for m in marks]
    assert order.index("volume_staged") < order.index("volume_published") < order.index("volumes_mounted")
    assert staged.at_s <= published.at_s <= mounted.at_s + mounted.resolution_s, marks
    for m, method in ((staged, "NodeStageVolume"), (published, "NodePublishVolume")):
        assert m.source.startswith("kubelet metric csi_operations_seconds via the API (node "), m
        assert f"{method} took " in m.source and "(grpc OK)" in m.source and "failed" not in m.source, m
        assert 0 < m.resolution_s < 3 * POLL_S + 1, m  # a second for the scheduled time's truncation, at worst
    assert note == "", note


@pytest.mark.cluster
@pytest.mark.slow
@pytest.mark.root
def test_redeploy_on_the_cephfs_class_loses_the_history_and_the_doctor_said_so(
    kubeconfig: Path, api_client: Any, tmp_path: Path, cephfs_csi: ceph_csi.CephCsi
) -> None:
    scenario_file = _scenario(tmp_path, "k8s-cephfs-csi-redeploy", "20s", "[{action: redeploy, at: 6s}]")
    result = run_into_the_delete_class_redeploy(scenario_file, tmp_path, kubeconfig, cephfs_csi.log_text)
    assert run_volumes(cephfs_csi, result.run_id) == []
    assert_nothing_left(api_client, result.run_id)
    # The kubelet unstaged both volumes: no ceph-fuse mount of the driver's is left on a node.
    left = [m for m in Path("/proc/self/mounts").read_text().splitlines() if str(config.STATE_ROOT) in m]
    assert not [m for m in left if m.startswith("ceph-fuse")], left


def test_every_row_needing_ceph_csi_is_run_here() -> None:
    assert TESTBED_TESTS[CEPH_CSI] == Path(__file__).relative_to(ROOT).as_posix()
    assert SHIPPED in [r.file for r in CSI_ROWS]


OTHER_CSI_ROWS = [r for r in CSI_ROWS if r.file != SHIPPED]


@pytest.mark.cluster
@pytest.mark.slow
@pytest.mark.root
@pytest.mark.parametrize("row", OTHER_CSI_ROWS, ids=[r.name for r in OTHER_CSI_ROWS])
def test_shipped_scenario_on_the_ceph_csi_class_ends_as_its_row_says(
    row: Row,
    *,
    on_the_cluster: tuple[dict[str, str], tuple[str, ...]],
    api_client: Any,
    tmp_path: Path,
    cephfs_csi: ceph_csi.CephCsi,
) -> None:
    """The file as shipped, through ``harness nightly --runtime kubernetes`` as the other cluster rows
    (tests/k8s/test_conformance_cluster.py), ends as its row says. For cephfs-csi-client-crash.yaml: the node
    plugin's restart (the file's own ``python -m testbed ceph-csi restart-node-plugin {node}``) kills the pod's
    ceph-fuse, Prometheus refuses every write with the mount's "transport endpoint is not connected" and does not
    recover (exit 1); the pod's teardown still unmounts the dead mount and the driver deletes the subvolume.
    Fails when the restart leaves the client alive (then Prometheus takes writes: exit 0)."""
    assert row.kubernetes is not None
    env, args = on_the_cluster
    result = night_ends_as_the_row_says(row.file, row.kubernetes, tmp_path / "results", *args, env=env)
    crashes = [f for f in result["faults"] if f["action"] == "ceph_client_crash"]
    for crash in crashes:
        assert "ran node_plugin_restart for node" in crash["detail"], crash["detail"]
        assert "Prometheus refused its first remote write" in crash["detail"], crash["detail"]
        assert any("transport endpoint is not connected" in e for e in crash["write_errors"]), crash["write_errors"]
    assert run_volumes(cephfs_csi, result["run_id"]) == []
    for node in cephfs_csi.nodes:  # the dead mount and its bind into the pod went with the pod
        assert mounts_under(node.kubelet_root, ceph_csi.CEPH_FUSE_FSTYPE) == [], node.name
    assert_nothing_left(api_client, result["run_id"])


@pytest.mark.cluster
@pytest.mark.root
def test_the_doctor_checks_a_ceph_csi_class_its_secrets_and_its_cluster_map(
    kubeconfig: Path, kube_context: str, api_client: Any, cephfs_csi: ceph_csi.CephCsi
) -> None:
    """Each ``ceph_csi.*`` finding (harness/doctor/ceph_csi.py) in the state it names, read from the running driver's
    objects: the test bed's class (mounter fuse: a warning; its Secret has adminID/adminKey; its clusterID is in
    ConfigMap ceph-csi/ceph-csi-config), and classes of this test's own (deleted after) whose clusterID the map
    lacks (with mounter kernel), whose node-stage Secret does not exist, whose Secret lacks the admin keys."""
    from kubernetes import client

    from harness.doctor.dynamic import class_findings
    from harness.kube.contexts import load_inventory
    from harness.scenario.model import DynamicStorage

    core, storage = client.CoreV1Api(api_client), client.StorageV1Api(api_client)
    ns = ceph_csi.NAMESPACE
    user_only = "doctor-test-user-only"
    core.create_namespaced_secret(
        ns, client.V1Secret(metadata=client.V1ObjectMeta(name=user_only), string_data={"userID": "u", "userKey": "k"})
    )
    own = {
        "cephfs-doctor-bad-id": {"clusterID": "not-in-the-map", "mounter": "kernel"},
        "cephfs-doctor-no-secret": {"csi.storage.k8s.io/node-stage-secret-name": "doctor-test-absent"},
        "cephfs-doctor-user-keys": {
            "csi.storage.k8s.io/provisioner-secret-name": user_only,
            "csi.storage.k8s.io/node-stage-secret-name": user_only,
        },
    }
    base = storage.read_storage_class(ceph_csi.CLASS)
    try:
        for name, changed in own.items():
            storage.create_storage_class(
                client.V1StorageClass(
                    metadata=client.V1ObjectMeta(name=name),
                    provisioner=ceph_csi.DRIVER,
                    parameters={**base.parameters, **changed},
                    reclaim_policy="Delete",
                )
            )
        inventory = load_inventory(str(kubeconfig), context=kube_context)

        def findings(name: str) -> dict[str, Any]:
            spec = DynamicStorage.model_validate({"backend": "dynamic", "storage_class": name})
            return {f.check: f for f in class_findings(spec, inventory) if f.check.startswith("ceph_csi.")}

        shipped = findings(ceph_csi.CLASS)
        assert shipped["ceph_csi.mounter"].severity is Severity.WARNING, shipped
        assert shipped["ceph_csi.secrets"].severity is Severity.INFO, shipped["ceph_csi.secrets"]
        secrets = shipped["ceph_csi.secrets"]
        assert f"secret {ns}/{ceph_csi.SECRET} (node-stage) has adminID, adminKey" in secrets.evidence, secrets
        cluster_id = shipped["ceph_csi.cluster_id"]
        assert cluster_id.severity is Severity.INFO and f"configmap {ns}/{ceph_csi.CONFIG_MAP}" in cluster_id.title

        bad_id = findings("cephfs-doctor-bad-id")
        assert bad_id["ceph_csi.cluster_id"].severity is Severity.BLOCKER, bad_id["ceph_csi.cluster_id"]
        assert ceph_csi.CLUSTER_ID in bad_id["ceph_csi.cluster_id"].evidence  # what the map has instead
        assert bad_id["ceph_csi.mounter"].severity is Severity.INFO and bad_id["ceph_csi.secrets"].severity is (
            Severity.INFO
        )
        no_secret = findings("cephfs-doctor-no-secret")["ceph_csi.secrets"]
        assert no_secret.severity is Severity.BLOCKER, no_secret
        assert f"secret {ns}/doctor-test-absent (node-stage) does not exist" in no_secret.evidence
        user_keys = findings("cephfs-doctor-user-keys")["ceph_csi.secrets"]
        assert user_keys.severity is Severity.BLOCKER, user_keys
        assert f"secret {ns}/{user_only} (provisioner) lacks adminID, adminKey" in user_keys.evidence
    finally:
        for name in own:
            ceph_csi.ignore_404(storage.delete_storage_class, name)
        ceph_csi.ignore_404(core.delete_namespaced_secret, user_only, ns)


# Last: it stops the driver the module shares (pytest runs a module's tests in file order).
@pytest.mark.cluster
@pytest.mark.root
def test_stopping_the_driver_leaves_the_other_pods_volumes_mounted(
    tmp_path: Path, cephfs_csi: ceph_csi.CephCsi
) -> None:
    """The stop unmounts what ceph-fuse left under a kubelet's root and nothing else: the other cluster tests' pods
    run on the same kubelets meanwhile (three workers), and a lazy unmount of one of their volumes between the
    kubelet's bind and containerd's left the container on the bare directory (permission denied, in CI)."""
    node = cephfs_csi.nodes[0]
    source = tmp_path / "volume"
    source.mkdir()
    target = node.kubelet_root / "pods" / f"harness-test-{tmp_path.name}" / "volumes" / "kubernetes.io~local-volume"
    target.mkdir(parents=True)
    subprocess.run(["mount", "--bind", str(source), str(target)], check=True, timeout=30)
    try:
        cephfs_csi.stop()  # the module's fixture stops it again at the end: idempotent
        assert str(target) in mounts_under(node.kubelet_root)
        assert mounts_under(node.kubelet_root, ceph_csi.CEPH_FUSE_FSTYPE) == []
    finally:
        subprocess.run(["umount", str(target)], check=False, timeout=30)
        shutil.rmtree(target.parent.parent, ignore_errors=True)
