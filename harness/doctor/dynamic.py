"""Dynamic-StorageClass checks: the class the scenario claims from, read from the live cluster.

The class must exist (else the finding names the classes that do) and name the provisioner the scenario expects; its
``volumeBindingMode`` decides where the volume is made (before the pod is scheduled, or on the pod's node), its
``allowVolumeExpansion`` whether the TSDB can grow in place, and its ``reclaimPolicy`` what a redeploy that deletes
the claim does to the data: ``Delete`` throws the TSDB away with the claim (the field notes' Released-PV trap in
reverse), ``Retain`` keeps it on a Released PV that no new claim will bind.
"""

from __future__ import annotations

from harness.doctor.ceph_csi import ceph_csi_findings
from harness.doctor.fmt import bullets
from harness.kube.inventory import KubeInventory, StorageClassInfo
from harness.results.model import DoctorFinding, Severity
from harness.scenario.model import DynamicStorage
from harness.storage.base import NO_PROVISIONER

# Provisioners that make a directory or logical volume on one node and pin the PV there by nodeAffinity. They need the
# scheduler's node (WaitForFirstConsumer): rancher's local-path fails with "configuration error, no node was specified"
# under Immediate. A provisioner is recognised by these words in its name (a renamed one is not).
NODE_LOCAL_WORDS = ("local", "hostpath", "host-path", "lvm")


def node_local(provisioner: str) -> bool:
    return any(word in provisioner.lower() for word in NODE_LOCAL_WORDS)


def check_dynamic(spec: DynamicStorage, *, runtime: str, refusal: str | None) -> list[DoctorFinding]:
    """What the doctor can say without the cluster: a dynamic class needs one."""
    if runtime != "local" or refusal is None:
        return []
    return [
        DoctorFinding(
            check="dynamic.needs_cluster",
            severity=Severity.BLOCKER,
            title=f"StorageClass {spec.storage_class} can only be used in a cluster",
            evidence=f"storage.backend: dynamic, storage_class: {spec.storage_class}; runtime: local.",
            why=refusal,
            fix="Run with --runtime kubernetes (and --kubeconfig to let the doctor read the class).",
        )
    ]


def class_findings(spec: DynamicStorage, inventory: KubeInventory) -> list[DoctorFinding]:
    """The class as the cluster has it; a missing class or another provisioner blocks, the rest warns or informs."""
    sc = inventory.storage_class(spec.storage_class)
    if sc is None:
        return [_missing(spec, inventory)]
    if sc.provisioner == NO_PROVISIONER or (spec.provisioner is not None and sc.provisioner != spec.provisioner):
        return [_wrong_provisioner(spec, sc, inventory.source)]
    found = (_binding_mode(sc, inventory.source), _csi_registration(sc, inventory), _expansion(sc, spec), _reclaim(sc))
    return [f for f in found if f is not None] + ceph_csi_findings(sc, inventory)


def _csi_registration(sc: StorageClassInfo, inventory: KubeInventory) -> DoctorFinding | None:
    """Whether the kubelets can mount what a CSI provisioner makes: each node's kubelet registers the driver's node
    plugin (its CSINode lists it). A provisioner that is no CSI driver here (no CSIDriver object, no node lists it:
    an in-tree plugin, or rancher's local-path, which makes local PVs) is not checked, nor where CSINodes were not
    read."""
    driver = sc.provisioner
    if inventory.csi_drivers is None or any(n.csi_drivers is None for n in inventory.nodes) or not inventory.nodes:
        return None
    registered = [n.name for n in inventory.nodes if driver in (n.csi_drivers or ())]
    if driver not in inventory.csi_drivers and not registered:
        return None
    schedulable = [n.name for n in inventory.nodes if n.schedulable]
    lacking = [name for name in schedulable if name not in registered]
    evidence = (
        f"storageclass/{sc.name}: provisioner {driver}; CSIDriver {driver} "
        f"{'exists' if driver in inventory.csi_drivers else 'does not exist'}; registered by the kubelets of: "
        f"{', '.join(registered) or 'no node'} (CSINode spec.drivers); schedulable nodes: "
        f"{', '.join(schedulable) or 'none'}. Inventory: {inventory.source}."
    )
    fix = (
        f"Deploy the driver's node plugin (its DaemonSet, with node-driver-registrar) on every node that may run "
        f"Prometheus, and check `kubectl get csinode -o yaml` lists {driver}; or pin Prometheus to the nodes that "
        "have it (nodeSelector)."
    )
    if not registered:
        return DoctorFinding(
            check="dynamic.csi_node",
            severity=Severity.BLOCKER,
            title=f"No node runs the node plugin of {driver}: its volumes cannot be mounted",
            evidence=evidence,
            why="The controller may still provision the volume, but the kubelet cannot stage or publish it: "
            f"Prometheus' pod waits in ContainerCreating (\"driver name {driver} not found in the list of "
            'registered CSI drivers") until the run gives up.',
            fix=fix,
        )
    if lacking:
        return DoctorFinding(
            check="dynamic.csi_node",
            severity=Severity.WARNING,
            title=f"The node plugin of {driver} is missing on {', '.join(lacking)}",
            evidence=evidence,
            why="A Prometheus pod scheduled there (first start, or a reschedule after a node fault) cannot mount its "
            "volume and waits in ContainerCreating.",
            fix=fix,
        )
    return DoctorFinding(
        check="dynamic.csi_node",
        severity=Severity.INFO,
        title=f"The node plugin of {driver} is registered on every schedulable node ({', '.join(registered)})",
        evidence=evidence,
    )


def _describe(sc: StorageClassInfo) -> str:
    params = ", ".join(f"{k}={v}" for k, v in sorted(sc.parameters.items())) or "none"
    return (
        f"storageclass/{sc.name}: provisioner {sc.provisioner}, volumeBindingMode {sc.volume_binding_mode}, "
        f"reclaimPolicy {sc.reclaim_policy}, allowVolumeExpansion {str(sc.allow_volume_expansion).lower()}, "
        f"parameters {params}"
    )


def _missing(spec: DynamicStorage, inventory: KubeInventory) -> DoctorFinding:
    have = [f"{sc.name} ({sc.provisioner})" for sc in inventory.storage_classes]
    return DoctorFinding(
        check="dynamic.class",
        severity=Severity.BLOCKER,
        title=f"StorageClass {spec.storage_class} does not exist",
        evidence=f"classes in the cluster: {', '.join(have) or 'none'}. Inventory: {inventory.source}.",
        why="The claim names a class nobody provisions for: it stays Pending "
        f'(storageclass.storage.k8s.io "{spec.storage_class}" not found) and Prometheus never starts. The harness '
        "never creates a class for a dynamic scenario: the provisioner behind it is the thing under test.",
        fix=bullets(
            [
                "Set storage.storage_class to one of the classes listed.",
                "Or install the provisioner and its StorageClass first (e.g. the Ceph CSI driver's RBD class).",
            ]
        ),
    )


def _wrong_provisioner(spec: DynamicStorage, sc: StorageClassInfo, source: str) -> DoctorFinding:
    expected = spec.provisioner or "a dynamic provisioner"
    return DoctorFinding(
        check="dynamic.provisioner",
        severity=Severity.BLOCKER,
        title=f"StorageClass {sc.name} is provisioned by {sc.provisioner}, not {expected}",
        evidence=f"{_describe(sc)}. Inventory: {source}.",
        why="The run would measure another storage than the scenario names"
        if sc.provisioner != NO_PROVISIONER
        else "kubernetes.io/no-provisioner makes no volumes: the claim binds only a PV someone created by hand, "
        "or stays Pending.",
        fix=bullets(
            [
                "Name the class of the provisioner you mean to test in storage.storage_class.",
                "Or correct storage.provisioner (leave it out to accept any provisioner)."
                if sc.provisioner != NO_PROVISIONER
                else "For hand-made PVs use storage.backend local, nfs or iscsi, which create the PV.",
            ]
        ),
    )


def _binding_mode(sc: StorageClassInfo, source: str) -> DoctorFinding:
    evidence = f"{_describe(sc)}. Inventory: {source}."
    local = node_local(sc.provisioner)
    if sc.volume_binding_mode == "WaitForFirstConsumer":
        return DoctorFinding(
            check="dynamic.binding_mode",
            severity=Severity.INFO,
            title=f"StorageClass {sc.name} binds WaitForFirstConsumer: the volume is made once the pod is scheduled",
            evidence=evidence,
            why="The provisioner creates the volume for the node (or zone) the scheduler chose for Prometheus."
            + (
                " A node-local provisioner pins the PV to that node by nodeAffinity: a reschedule cannot move "
                "Prometheus off it, and while that node is down there is no Prometheus."
                if local
                else ""
            ),
        )
    return DoctorFinding(
        check="dynamic.binding_mode",
        severity=Severity.BLOCKER if local else Severity.WARNING,
        title=f"StorageClass {sc.name} binds {sc.volume_binding_mode}: the volume is made before the pod is scheduled",
        evidence=evidence,
        why=(
            "A node-local provisioner needs the node the scheduler picked: under Immediate there is none, so "
            'local-path fails the claim ("configuration error, no node was specified") and it stays Pending.'
            if local
            else "The provisioner picks the zone or node without knowing the pod: a zonal disk may land where "
            "Prometheus cannot be scheduled (volume node affinity conflict)."
        ),
        fix=f"Use a class with volumeBindingMode: WaitForFirstConsumer (a copy of {sc.name} with that mode; the mode "
        "of an existing class cannot be changed).",
    )


def _expansion(sc: StorageClassInfo, spec: DynamicStorage) -> DoctorFinding | None:
    if sc.allow_volume_expansion:
        return None
    return DoctorFinding(
        check="dynamic.expansion",
        severity=Severity.WARNING,
        title=f"StorageClass {sc.name} does not allow volume expansion",
        evidence=f"{_describe(sc)}; the claim requests {spec.size_bytes} bytes.",
        why="The TSDB grows with retention and series; when the volume is full Prometheus fails its WAL writes "
        "(and a torn WAL record costs acknowledged samples at the next restart). Without expansion the only way to "
        "a bigger volume is a new claim, i.e. a new, empty TSDB or a copy made by hand.",
        fix=bullets(
            [
                "Set allowVolumeExpansion: true on the class (when its provisioner supports resizing), then raise "
                "the claim's request.",
                "Or size the claim for the retention up front (retention.size below the volume size).",
            ]
        ),
    )


def _reclaim(sc: StorageClassInfo) -> DoctorFinding:
    evidence = f"{_describe(sc)}."
    if sc.reclaim_policy == "Delete":
        return DoctorFinding(
            check="dynamic.reclaim_delete",
            severity=Severity.WARNING,
            title=f"StorageClass {sc.name} has reclaimPolicy Delete: a redeploy that deletes the claim "
            "deletes the TSDB",
            evidence=evidence,
            why="The PV the provisioner makes inherits the class's reclaimPolicy. `helm uninstall` followed by a "
            "`kubectl delete pvc` (or deleting the namespace) deletes the claim, the provisioner then deletes the "
            "volume and all metric history with it, and the new claim gets a new, empty volume: the field notes' "
            "Released-PV trap in reverse (there the data stayed but no claim could bind it).",
            fix=bullets(
                [
                    "Use a class with reclaimPolicy: Retain for Prometheus (a copy of this one: the policy of an "
                    "existing class cannot be changed).",
                    "Or set persistentVolumeReclaimPolicy: Retain on the PV once it is made: `kubectl patch pv <pv> "
                    '-p \'{"spec":{"persistentVolumeReclaimPolicy":"Retain"}}\'`.',
                ]
            ),
        )
    return DoctorFinding(
        check="dynamic.reclaim",
        severity=Severity.INFO,
        title=f"StorageClass {sc.name} has reclaimPolicy {sc.reclaim_policy}: the volume outlives its claim",
        evidence=evidence,
        why="A redeploy that deletes the claim leaves the PV Released with the old claim's claimRef: the new claim "
        "gets a new, empty volume from the provisioner, and the history waits on the Released PV until its claimRef "
        "is cleared and a claim names it (spec.volumeName).",
    )


__all__ = ["check_dynamic", "class_findings", "node_local"]
