"""ceph-csi class checks: what a class of ceph-csi's CephFS or RBD driver needs beyond any dynamic class
(``harness.doctor.dynamic`` checks those: the class, its binding mode, the node plugin registered, the reclaim
policy).

- ``ceph_csi.mounter`` (CephFS): ``mounter: fuse`` runs ceph-fuse inside the node plugin, which upstream calls not
  production supported: a restart of the plugin leaves Prometheus on a dead mount (``ceph_client_crash`` measures
  it on a cluster).
- ``ceph_csi.secrets``: the Secrets the class names for provisioning, expansion and node staging exist and carry the
  keys the driver reads (CephFS: ``adminID``/``adminKey`` for dynamically provisioned volumes, RBD:
  ``userID``/``userKey``); a missing one leaves the claim Pending or the pod in ContainerCreating.
- ``ceph_csi.cluster_id``: the class's ``clusterID`` is in the driver's cluster map (a ConfigMap of the driver's
  namespace: upstream's ``ceph-csi-config``, Rook's ``rook-ceph-csi-config``); ceph-csi otherwise fails every
  call with "missing configuration for cluster ID".

What the doctor may not read (a Secret, the ConfigMaps) is said as unknown, never as missing.
"""

from __future__ import annotations

from harness.doctor.fmt import bullets
from harness.kube.inventory import CephCsiFacts, KubeInventory, StorageClassInfo, ceph_csi_kind, csi_secret_refs
from harness.results.model import DoctorFinding, Severity

# The keys each driver reads from a dynamically provisioned volume's Secrets (ceph-csi v3.12: internal/util/
# credentials.go; CephFS' node stage of a provisioned volume reads the admin credentials too).
KEYS = {"cephfs": ("adminID", "adminKey"), "rbd": ("userID", "userKey")}
# Without these the driver cannot make the volume or mount it.
NEEDED_STEPS = ("provisioner", "node-stage")
# What fails when a step's Secret is missing.
FAILS = {
    "provisioner": "the claim stays Pending (the provisioner cannot create the volume)",
    "controller-expand": "a resize of the claim fails",
    "node-stage": "Prometheus' pod waits in ContainerCreating (the kubelet's NodeStageVolume fails)",
}


def ceph_csi_findings(sc: StorageClassInfo, inventory: KubeInventory) -> list[DoctorFinding]:
    """The findings for a class of a ceph-csi driver; [] for any other class."""
    kind = ceph_csi_kind(sc.provisioner)
    if kind is None:
        return []
    found = [_mounter(sc)] if kind == "cephfs" else []
    found += [_secrets(sc, kind, inventory.ceph_csi), _cluster_id(sc, inventory.ceph_csi)]
    return found


def _mounter(sc: StorageClassInfo) -> DoctorFinding:
    mounter = sc.parameters.get("mounter", "")
    evidence = f"storageclass/{sc.name}: provisioner {sc.provisioner}, mounter {mounter or '(not set)'}."
    if mounter == "fuse":
        return DoctorFinding(
            check="ceph_csi.mounter",
            severity=Severity.WARNING,
            title=f"StorageClass {sc.name} mounts with ceph-fuse inside the node plugin (mounter: fuse)",
            evidence=evidence,
            why="ceph-csi runs the volume's ceph-fuse in its node plugin's container, and upstream calls the fuse "
            "mounter not production supported: when the plugin restarts (an upgrade, an OOM kill) ceph-fuse goes "
            "with it, the pod's mount answers 'Transport endpoint is not connected' and Prometheus refuses every "
            "write until its pod is replaced (ceph_client_crash on a cluster: exit 1).",
            fix=bullets(
                [
                    "Use mounter: kernel (the default where the nodes have the CephFS kernel client).",
                    "Or plan for it: never restart the node plugin under a running Prometheus without draining the "
                    "node first.",
                ]
            ),
        )
    return DoctorFinding(
        check="ceph_csi.mounter",
        severity=Severity.INFO,
        title=f"StorageClass {sc.name} mounts with the "
        f"{'kernel client' if mounter == 'kernel' else 'kernel client where the node has it (mounter not set)'}",
        evidence=evidence,
        why="A kernel mount belongs to the node, not to the node plugin's container: it outlives a plugin restart.",
    )


def _secrets(sc: StorageClassInfo, kind: str, facts: CephCsiFacts | None) -> DoctorFinding:
    refs = csi_secret_refs(sc.parameters)
    keys = KEYS[kind]
    problems: list[str] = []
    unknown: list[str] = []
    said: list[str] = []
    for step in NEEDED_STEPS:
        if step not in refs:
            problems.append(f"no {step} Secret (csi.storage.k8s.io/{step}-secret-name): {FAILS[step]}")
    for step, (namespace, name) in refs.items():
        where = f"secret {namespace}/{name} ({step})"
        have = facts.secrets.get((namespace, name), ()) if facts is not None else None
        if facts is not None and (namespace, name) not in facts.secrets:
            problems.append(f"{where} does not exist: {FAILS[step]}")
        elif have is None:
            unknown.append(where)
        elif lacking := [k for k in keys if k not in have]:
            has = ", ".join(have) or "no keys"
            problems.append(f"{where} lacks {', '.join(lacking)} (it has {has}): {FAILS[step]}")
        else:
            said.append(f"{where} has {', '.join(keys)}")
    evidence = f"storageclass/{sc.name}: " + "; ".join(problems + said + [f"{u} not readable" for u in unknown])
    if problems:
        return DoctorFinding(
            check="ceph_csi.secrets",
            severity=Severity.BLOCKER,
            title=f"StorageClass {sc.name}'s Secrets will not let {sc.provisioner} make or mount the volume",
            evidence=evidence,
            why=f"ceph-csi reads the Ceph user and key for each step from the Secret the class names ({kind}: "
            f"{' and '.join(keys)} for a provisioned volume); without it the step fails: " + "; ".join(problems),
            fix=f"Create the Secrets the class names with {' and '.join(keys)} (the Ceph user and its key, "
            "`ceph auth get-key client.<user>`), or point the class's csi.storage.k8s.io/*-secret-name/-namespace "
            "parameters at Secrets that have them (a class's parameters cannot be changed: recreate it).",
        )
    if unknown:
        return DoctorFinding(
            check="ceph_csi.secrets",
            severity=Severity.INFO,
            title=f"StorageClass {sc.name}'s Secrets could not all be read",
            evidence=evidence,
            why="This user may not read Secrets there: whether they carry the Ceph user and key is not known.",
        )
    return DoctorFinding(
        check="ceph_csi.secrets",
        severity=Severity.INFO,
        title=f"StorageClass {sc.name}'s Secrets carry the Ceph user and key for every step it names",
        evidence=evidence,
    )


def _cluster_id(sc: StorageClassInfo, facts: CephCsiFacts | None) -> DoctorFinding:
    cluster_id = sc.parameters.get("clusterID", "")
    missing_why = (
        f"ceph-csi looks the class's clusterID up in its cluster map (/etc/ceph-csi-config/config.json, from a "
        f"ConfigMap) for the monitors; for an ID it lacks every call fails with 'missing configuration for cluster "
        f'ID "{cluster_id}"\': the claim stays Pending.'
    )
    fix = (
        "Add the cluster to the driver's cluster map ConfigMap (clusterID: the Ceph cluster's fsid or the ID you "
        "chose, monitors: its monitors), or set the class's clusterID to one the map has (recreate the class)."
    )
    if not cluster_id:
        return DoctorFinding(
            check="ceph_csi.cluster_id",
            severity=Severity.BLOCKER,
            title=f"StorageClass {sc.name} names no clusterID",
            evidence=f"storageclass/{sc.name}: provisioner {sc.provisioner}, parameters without clusterID.",
            why=missing_why,
            fix=fix,
        )
    if facts is None or facts.cluster_ids is None:
        return DoctorFinding(
            check="ceph_csi.cluster_id",
            severity=Severity.INFO,
            title=f"Whether the driver's cluster map has clusterID {cluster_id} is not known",
            evidence=f"storageclass/{sc.name}: clusterID {cluster_id}; the ConfigMaps of "
            f"{', '.join(facts.searched) if facts else 'its Secrets namespaces'} could not be listed.",
            why="This user may not list ConfigMaps there.",
        )
    searched = ", ".join(facts.searched) or "(no namespace: the class names no Secret)"
    if cluster_id in facts.cluster_ids:
        return DoctorFinding(
            check="ceph_csi.cluster_id",
            severity=Severity.INFO,
            title=f"The driver's cluster map has clusterID {cluster_id} ({facts.cluster_ids[cluster_id]})",
            evidence=f"storageclass/{sc.name}: clusterID {cluster_id}; cluster maps found in the ConfigMaps of "
            f"{searched}: {', '.join(sorted(facts.cluster_ids))}.",
        )
    if not facts.cluster_ids:
        return DoctorFinding(
            check="ceph_csi.cluster_id",
            severity=Severity.WARNING,
            title=f"No cluster map of ceph-csi was found to check clusterID {cluster_id} against",
            evidence=f"storageclass/{sc.name}: clusterID {cluster_id}; no ConfigMap of {searched} holds a cluster "
            "map (a JSON list of clusterID and monitors).",
            why="The driver's cluster map usually lives in its own namespace beside its Secrets; it may be elsewhere, "
            f"or missing, and then {missing_why}",
            fix=fix,
        )
    return DoctorFinding(
        check="ceph_csi.cluster_id",
        severity=Severity.BLOCKER,
        title=f"clusterID {cluster_id} of StorageClass {sc.name} is not in the driver's cluster map",
        evidence=f"storageclass/{sc.name}: clusterID {cluster_id}; the cluster maps in the ConfigMaps of {searched} "
        f"have: {', '.join(f'{k} ({v})' for k, v in sorted(facts.cluster_ids.items()))}.",
        why=missing_why,
        fix=fix,
    )


__all__ = ["ceph_csi_findings"]
