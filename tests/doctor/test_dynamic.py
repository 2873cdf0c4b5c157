"""The dynamic-StorageClass backend: its planned claim, the local runtime's refusal, and the doctor's class checks,
each with a case where it fires and one where it does not (inventories written by hand: the cluster tests in
tests/k8s/test_dynamic_class.py read a real one)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from harness.doctor import blocking, run_doctor
from harness.doctor.binding import check_binding
from harness.errors import UsageError
from harness.kube.inventory import KubeInventory, NodeInfo, StorageClassInfo
from harness.results.model import DoctorFinding, Severity
from harness.runtime import refuse_unsupported
from harness.runtime.manifests.common import Names
from harness.runtime.manifests.prometheus import statefulset_manifest
from harness.runtime.manifests.volumes import claim_manifest, volume_manifest
from harness.storage import backend_for
from harness.storage.base import operator_claim_name
from tests.doctor.scenarios import scenario

NS = "monitoring"
NODES = (NodeInfo("node-1", {"kubernetes.io/hostname": "node-1"}),)
RBD = StorageClassInfo(
    "ceph-rbd",
    "rbd.csi.ceph.com",
    volume_binding_mode="Immediate",
    parameters={
        "clusterID": "c1",
        "pool": "k8s",
        # ceph-csi reads the Ceph user for each step from these (harness/doctor/ceph_csi.py checks them)
        **{
            f"csi.storage.k8s.io/{step}-secret-{what}": value
            for step in ("provisioner", "node-stage")
            for what, value in (("name", "csi-rbd-secret"), ("namespace", "ceph-csi"))
        },
    },
    reclaim_policy="Retain",
    allow_volume_expansion=True,
)
LOCAL_PATH = StorageClassInfo(
    "local-path", "rancher.io/local-path", volume_binding_mode="WaitForFirstConsumer", reclaim_policy="Delete"
)


def _storage(cls: str = "ceph-rbd", **extra: object) -> dict[str, object]:
    return {"backend": "dynamic", "storage_class": cls, "size": "5Gi", **extra}


def _findings(tmp_path: Path, storage: dict[str, object], *classes: StorageClassInfo) -> dict[str, DoctorFinding]:
    s = scenario(tmp_path, storage, name="dyn")
    inventory = KubeInventory(namespace=NS, nodes=NODES, storage_classes=classes, source="hand-written")
    found = run_doctor(s, runtime="kubernetes", kube=inventory)
    return {f.check: f for f in found if f.check.startswith("dynamic.")}


def test_the_planned_claim_names_the_class_and_no_pv_is_planned(tmp_path: Path) -> None:
    s = scenario(tmp_path, _storage(access_modes=["ReadWriteOncePod"]), name="dyn")
    backend = backend_for(s.storage)
    claim = backend.planned_claim(s.storage, s.name, NS)
    assert claim is not None
    assert (claim.namespace, claim.name) == (NS, operator_claim_name("dyn"))
    assert claim.storage_class == "ceph-rbd" and claim.request_bytes == 5 * 1024**3
    assert claim.access_modes == ("ReadWriteOncePod",) and claim.volume_mode == "Filesystem"
    assert claim.selector is None  # a claim with a selector is never provisioned
    assert backend.planned_volume(s.storage, s.name) is None
    assert backend.class_to_create(s.storage) is None
    names = Names("dyn", "r1")
    assert volume_manifest(s, names) is None
    made = claim_manifest(s, names)
    assert made is not None and made["spec"]["storageClassName"] == "ceph-rbd" and "selector" not in made["spec"]
    [template] = statefulset_manifest(s, names, tools_image=None)["spec"]["volumeClaimTemplates"]
    assert template["spec"]["storageClassName"] == "ceph-rbd"


def test_the_class_name_is_required(tmp_path: Path) -> None:
    from harness.errors import ScenarioError

    with pytest.raises(ScenarioError) as e:
        scenario(tmp_path, {"backend": "dynamic"}, name="dyn")
    assert "storage.storage_class" in str(e.value.problems[0])


def test_the_local_runtime_refuses_a_dynamic_class_before_anything(tmp_path: Path) -> None:
    s = scenario(tmp_path, _storage(), name="dyn")
    with pytest.raises(UsageError, match="a dynamic class needs a cluster"):
        refuse_unsupported("local", s)
    refuse_unsupported("kubernetes", s)  # no refusal there
    [finding] = [f for f in run_doctor(s, runtime="local") if f.check.startswith("dynamic.")]
    assert finding.check == "dynamic.needs_cluster" and finding.severity is Severity.BLOCKER
    on_cluster = run_doctor(s, runtime="kubernetes", kube=KubeInventory(namespace=NS, storage_classes=(RBD,)))
    assert "dynamic.needs_cluster" not in {f.check for f in on_cluster}


def test_other_backends_are_not_refused_locally(tmp_path: Path) -> None:
    refuse_unsupported("local", scenario(tmp_path, {"backend": "local"}, name="loc"))


def test_a_missing_class_names_the_classes_that_exist(tmp_path: Path) -> None:
    found = _findings(tmp_path, _storage("fast-ssd"), RBD, LOCAL_PATH)
    missing = found["dynamic.class"]
    assert missing.severity is Severity.BLOCKER and "fast-ssd does not exist" in missing.title
    assert "ceph-rbd (rbd.csi.ceph.com), local-path (rancher.io/local-path)" in missing.evidence
    assert set(found) == {"dynamic.class"}
    assert "dynamic.class" not in _findings(tmp_path, _storage(), RBD)


def test_the_expected_provisioner_is_checked(tmp_path: Path) -> None:
    wrong = _findings(tmp_path, _storage(provisioner="ebs.csi.aws.com"), RBD)
    assert set(wrong) == {"dynamic.provisioner"}
    assert wrong["dynamic.provisioner"].severity is Severity.BLOCKER
    assert "provisioned by rbd.csi.ceph.com, not ebs.csi.aws.com" in wrong["dynamic.provisioner"].title
    right = _findings(tmp_path, _storage(provisioner="rbd.csi.ceph.com"), RBD)
    assert "dynamic.provisioner" not in right
    manual = replace(RBD, provisioner="kubernetes.io/no-provisioner")
    assert _findings(tmp_path, _storage(), manual)["dynamic.provisioner"].severity is Severity.BLOCKER


def test_binding_mode(tmp_path: Path) -> None:
    # Immediate on a network disk: it works, but the disk's place is chosen without the pod.
    rbd = _findings(tmp_path, _storage(), RBD)["dynamic.binding_mode"]
    assert rbd.severity is Severity.WARNING and "binds Immediate" in rbd.title
    # Immediate on a node-local provisioner: local-path cannot provision at all.
    local_immediate = replace(LOCAL_PATH, volume_binding_mode="Immediate")
    blocked = _findings(tmp_path, _storage("local-path"), local_immediate)["dynamic.binding_mode"]
    assert blocked.severity is Severity.BLOCKER and "no node was specified" in blocked.why
    # WaitForFirstConsumer: no warning, only what it means for a node-local volume.
    # A class that does not exist has no binding mode to report.
    assert "dynamic.binding_mode" not in _findings(tmp_path, _storage("nope"), LOCAL_PATH)
    fine = _findings(tmp_path, _storage("local-path"), LOCAL_PATH)["dynamic.binding_mode"]
    assert fine.severity is Severity.INFO and "WaitForFirstConsumer" in fine.title
    assert "cannot move" in fine.why
    wffc_rbd = replace(RBD, volume_binding_mode="WaitForFirstConsumer")
    assert _findings(tmp_path, _storage(), wffc_rbd)["dynamic.binding_mode"].severity is Severity.INFO


def test_volume_expansion(tmp_path: Path) -> None:
    fixed = _findings(tmp_path, _storage("local-path"), LOCAL_PATH)["dynamic.expansion"]
    assert fixed.severity is Severity.WARNING and "does not allow volume expansion" in fixed.title
    assert "new claim" in fixed.why
    assert "dynamic.expansion" not in _findings(tmp_path, _storage(), RBD)


def test_reclaim_policy_delete_warns_that_a_redeploy_loses_the_tsdb(tmp_path: Path) -> None:
    delete = _findings(tmp_path, _storage("local-path"), LOCAL_PATH)
    warning = delete["dynamic.reclaim_delete"]
    assert warning.severity is Severity.WARNING and "reclaimPolicy Delete" in warning.title
    assert "Retain" in warning.fix and "dynamic.reclaim" not in delete
    retain = _findings(tmp_path, _storage(), RBD)
    assert "dynamic.reclaim_delete" not in retain
    assert retain["dynamic.reclaim"].severity is Severity.INFO and "Released" in retain["dynamic.reclaim"].why


def test_a_good_class_does_not_block_and_the_binding_says_it_provisions(tmp_path: Path) -> None:
    s = scenario(tmp_path, _storage(), name="dyn")
    inventory = KubeInventory(namespace=NS, nodes=NODES, storage_classes=(RBD,), source="hand-written")
    found = run_doctor(s, runtime="kubernetes", kube=inventory)
    assert not blocking(found)
    [binding] = [f for f in check_binding(s, inventory) if f.check == "k8s.binding"]
    assert binding.severity is Severity.INFO and 'StorageClass "ceph-rbd" will provision a new volume' in binding.title


def _csi_findings(
    tmp_path: Path, cls: StorageClassInfo, registered: dict[str, tuple[str, ...]]
) -> DoctorFinding | None:
    """The CSI node-plugin finding for ``cls`` on two schedulable nodes, each registering the drivers given."""
    nodes = tuple(replace(NodeInfo(name), csi_drivers=registered.get(name, ())) for name in ("node-1", "node-2"))
    s = scenario(tmp_path, _storage(cls.name), name="dyn")
    inventory = KubeInventory(
        namespace=NS, nodes=nodes, storage_classes=(cls,), csi_drivers=("rbd.csi.ceph.com",), source="hand-written"
    )
    return next((f for f in run_doctor(s, runtime="kubernetes", kube=inventory) if f.check == "dynamic.csi_node"), None)


@pytest.mark.parametrize(
    ("registered", "severity", "title"),
    [
        ({}, Severity.BLOCKER, "No node runs the node plugin of rbd.csi.ceph.com: its volumes cannot be mounted"),
        (
            {"node-1": ("rbd.csi.ceph.com",)},
            Severity.WARNING,
            "The node plugin of rbd.csi.ceph.com is missing on node-2",
        ),
        (
            {"node-1": ("rbd.csi.ceph.com",), "node-2": ("rbd.csi.ceph.com", "other")},
            Severity.INFO,
            "The node plugin of rbd.csi.ceph.com is registered on every schedulable node (node-1, node-2)",
        ),
    ],
)
def test_a_csi_class_needs_its_node_plugin_on_the_nodes(
    tmp_path: Path, registered: dict[str, tuple[str, ...]], severity: Severity, title: str
) -> None:
    found = _csi_findings(tmp_path, RBD, registered)
    assert found is not None and (found.severity, found.title) == (severity, title)
    if severity is Severity.BLOCKER:
        assert "not found in the list of registered CSI drivers" in found.why


def test_a_provisioner_that_is_no_csi_driver_and_an_unread_inventory_are_not_checked(tmp_path: Path) -> None:
    assert _csi_findings(tmp_path, LOCAL_PATH, {}) is None  # rancher's local-path makes local PVs: no CSI driver
    # A hand-written inventory (no CSINodes read) says nothing either way.
    assert "dynamic.csi_node" not in _findings(tmp_path, _storage(), RBD)
