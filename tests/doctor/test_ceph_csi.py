"""The ceph-csi class checks (harness/doctor/ceph_csi.py) on inventories written by hand, for what the local cluster
cannot show: a user who may not read the Secrets or list the ConfigMaps (unknown, never missing), a class without a
clusterID or Secret parameters, an RBD class (no mounter check, user keys), a map that is nowhere to be found, and
a class of another provisioner (no finding). tests/k8s/test_ceph_csi.py shows each finding on the real driver."""

from __future__ import annotations

from harness.doctor.ceph_csi import ceph_csi_findings
from harness.kube.inventory import CephCsiFacts, KubeInventory, StorageClassInfo, ceph_csi_kind
from harness.results.model import DoctorFinding, Severity

SECRETS = {
    f"csi.storage.k8s.io/{step}-secret-{what}": value
    for step in ("provisioner", "node-stage")
    for what, value in (("name", "s"), ("namespace", "rook-ceph"))
}


def _found(sc: StorageClassInfo, facts: CephCsiFacts | None) -> dict[str, DoctorFinding]:
    return {f.check: f for f in ceph_csi_findings(sc, KubeInventory(storage_classes=(sc,), ceph_csi=facts))}


def test_the_driver_is_known_by_upstreams_and_rooks_names_and_no_other_class_is_checked() -> None:
    assert ceph_csi_kind("cephfs.csi.ceph.com") == "cephfs" and ceph_csi_kind("rook-ceph.rbd.csi.ceph.com") == "rbd"
    assert ceph_csi_kind("rancher.io/local-path") is None and ceph_csi_kind("xcephfs.csi.ceph.com") is None
    assert _found(StorageClassInfo("lp", "rancher.io/local-path"), None) == {}


def test_what_may_not_be_read_is_unknown_and_what_the_class_lacks_blocks() -> None:
    rbd = StorageClassInfo("rbd", "rook-ceph.rbd.csi.ceph.com", parameters={"clusterID": "c1", **SECRETS})
    unknown = CephCsiFacts(secrets={("rook-ceph", "s"): None}, cluster_ids=None, searched=("rook-ceph",))
    found = _found(rbd, unknown)
    assert "ceph_csi.mounter" not in found  # RBD has no fuse mounter
    assert found["ceph_csi.secrets"].severity is Severity.INFO and "not readable" in found["ceph_csi.secrets"].evidence
    assert found["ceph_csi.cluster_id"].severity is Severity.INFO and "not known" in found["ceph_csi.cluster_id"].title
    keyed = CephCsiFacts(secrets={("rook-ceph", "s"): ("adminID", "adminKey")}, cluster_ids={}, searched=("rook-ceph",))
    found = _found(rbd, keyed)
    assert found["ceph_csi.secrets"].severity is Severity.BLOCKER and "lacks userID, userKey" in (
        found["ceph_csi.secrets"].evidence
    )
    assert found["ceph_csi.cluster_id"].severity is Severity.WARNING  # no map found at all: it may live elsewhere
    bare = StorageClassInfo("bare", "cephfs.csi.ceph.com", parameters={"mounter": "kernel"})
    found = _found(bare, CephCsiFacts(secrets={}, cluster_ids={"c1": "configmap x/y"}, searched=()))
    assert found["ceph_csi.cluster_id"].severity is Severity.BLOCKER and "names no clusterID" in (
        found["ceph_csi.cluster_id"].title
    )
    assert found["ceph_csi.secrets"].severity is Severity.BLOCKER
    assert "no provisioner Secret" in found["ceph_csi.secrets"].evidence
    assert "no node-stage Secret" in found["ceph_csi.secrets"].evidence
    assert found["ceph_csi.mounter"].severity is Severity.INFO
