"""The binding inventory: the cluster objects that decide volume binding (PersistentVolumes and their claims,
StorageClasses, Nodes) as small typed dataclasses, and ``KubeInventory``, what a cluster holds as the doctor
simulates it. A pure model: no import of the ``kubernetes`` client, so the binding simulation runs without a
cluster and is tested with hand-written inventories (``harness.kube.decode`` fills it from a real cluster).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

NodeSelectorOperator = Literal["In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"]
# The prometheus-operator's Prometheus resource: group, version, plural.
PROMETHEUS_API = ("monitoring.coreos.com", "v1", "prometheuses")

Manifest = dict[str, Any]
"""A Kubernetes object as the API documents it (what a YAML manifest holds): the runtime builds these."""


@dataclass(frozen=True)
class NodeSelectorRequirement:
    key: str
    operator: NodeSelectorOperator
    values: tuple[str, ...] = ()
    field: bool = False  # a matchFields requirement (only metadata.name exists)

    def matches(self, node: NodeInfo) -> bool:
        if self.field:
            # matchFields supports only metadata.name; anything else matches no node.
            value = node.name if self.key == "metadata.name" else None
            if self.key != "metadata.name":
                return False
        else:
            value = node.labels.get(self.key)
        if self.operator in ("In", "NotIn"):
            return (value is not None and value in self.values) == (self.operator == "In")
        if self.operator in ("Exists", "DoesNotExist"):
            return (value is not None) == (self.operator == "Exists")
        try:
            have, want = int(value or ""), int(self.values[0])
        except (ValueError, IndexError):
            return False
        return have > want if self.operator == "Gt" else have < want

    def __str__(self) -> str:
        vals = f" [{', '.join(self.values)}]" if self.values else ""
        return f"{self.key} {self.operator}{vals}"


@dataclass(frozen=True)
class NodeSelectorTerm:
    """All requirements must hold (AND); a PV's terms are alternatives (OR)."""

    requirements: tuple[NodeSelectorRequirement, ...]

    def matches(self, node: NodeInfo) -> bool:
        return all(r.matches(node) for r in self.requirements)

    def __str__(self) -> str:
        return " AND ".join(str(r) for r in self.requirements) or "(empty term: matches nothing)"


@dataclass(frozen=True)
class ClaimRef:
    namespace: str
    name: str
    uid: str = ""

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}" + (f" (uid {self.uid})" if self.uid else "")


@dataclass(frozen=True)
class PvInfo:
    name: str
    capacity_bytes: int
    storage_class: str = ""  # "" = no class
    access_modes: tuple[str, ...] = ("ReadWriteOnce",)
    volume_mode: str = "Filesystem"
    labels: dict[str, str] = field(default_factory=dict)
    phase: str = "Available"  # Available, Bound, Released, Failed, Pending
    claim_ref: ClaimRef | None = None
    node_affinity: tuple[NodeSelectorTerm, ...] = ()  # empty: any node
    reclaim_policy: str = "Retain"
    source: str = ""  # e.g. "nfs 172.17.73.37:/vol/x", for people reading the evidence
    deleting: bool = False
    # Where the data lives, as the PV's spec says it (e.g. {"nfs": {"server": ..., "path": ...}}): the storage
    # backends read their own kind from it (the doctor's shared-export check).
    volume_source: Manifest = field(default_factory=dict)

    def fits_node(self, node: NodeInfo) -> bool:
        return not self.node_affinity or any(term.matches(node) for term in self.node_affinity)


@dataclass(frozen=True)
class PvcInfo:
    namespace: str
    name: str
    storage_class: str | None  # None: not set (the default class, if any, is filled in at admission)
    request_bytes: int
    access_modes: tuple[str, ...] = ("ReadWriteOnce",)
    volume_mode: str = "Filesystem"
    selector: dict[str, str] | None = None  # matchLabels
    volume_name: str = ""
    phase: str = "Pending"
    uid: str = ""


# The CRD of the prometheus-operator's ``Prometheus`` resource (operator mode needs it installed).
PROMETHEUS_CRD = "prometheuses.monitoring.coreos.com"


@dataclass(frozen=True)
class StorageClassInfo:
    name: str
    provisioner: str
    volume_binding_mode: str = "Immediate"  # or WaitForFirstConsumer
    is_default: bool = False
    parameters: dict[str, str] = field(default_factory=dict)
    reclaim_policy: str = "Delete"
    allow_volume_expansion: bool = False


@dataclass(frozen=True)
class NodeInfo:
    name: str
    labels: dict[str, str] = field(default_factory=dict)
    schedulable: bool = True
    why_unschedulable: str = ""
    ready: bool = True
    ready_changed_unix_s: float | None = None  # the Ready condition's lastTransitionTime (whole seconds)
    # status.nodeInfo, for the result's cluster facts
    kernel: str = ""
    kubelet: str = ""
    container_runtime: str = ""
    os_image: str = ""
    # The CSI drivers whose node plugin the kubelet registered (its CSINode object), or None where not read.
    csi_drivers: tuple[str, ...] | None = None


# ceph-csi's drivers by name and what they serve; Rook registers them as ``<operator namespace>.<name>``.
CEPH_CSI_DRIVERS = {"cephfs.csi.ceph.com": "cephfs", "rbd.csi.ceph.com": "rbd"}
# The steps of a CSI volume whose Secret a class names (``csi.storage.k8s.io/<step>-secret-name`` and ``-namespace``).
CSI_SECRET_STEPS = ("provisioner", "controller-expand", "node-stage")


def ceph_csi_kind(provisioner: str | None) -> str | None:
    """ "cephfs" or "rbd" for a ceph-csi driver's name (upstream's or Rook's), else None."""
    for name, kind in CEPH_CSI_DRIVERS.items():
        if provisioner is not None and (provisioner == name or provisioner.endswith("." + name)):
            return kind
    return None


def csi_secret_refs(parameters: dict[str, str]) -> dict[str, tuple[str, str]]:
    """The Secrets a class names, by step: ``{"node-stage": (namespace, name)}``."""
    refs = {}
    for step in CSI_SECRET_STEPS:
        name = parameters.get(f"csi.storage.k8s.io/{step}-secret-name")
        if name:
            refs[step] = (parameters.get(f"csi.storage.k8s.io/{step}-secret-namespace", "default"), name)
    return refs


@dataclass(frozen=True)
class CephCsiFacts:
    """What the doctor reads for ceph-csi classes beyond the classes: the Secrets they name, by (namespace, name),
    with their keys (never their values; None: this user may not read it; absent from ``secrets``: not found), and
    the cluster maps in the ConfigMaps of those Secrets' namespaces (where ceph-csi's deployments keep them:
    upstream's ``ceph-csi-config``, Rook's ``rook-ceph-csi-config``): clusterID -> the ConfigMap, or None where
    ConfigMaps could not be listed."""

    secrets: dict[tuple[str, str], tuple[str, ...] | None]
    cluster_ids: dict[str, str] | None
    searched: tuple[str, ...]  # the namespaces whose ConfigMaps were read


@dataclass(frozen=True)
class KubeInventory:
    """What the cluster holds right now, plus where the harness would create its claim."""

    namespace: str = "default"
    pvs: tuple[PvInfo, ...] = ()
    pvcs: tuple[PvcInfo, ...] = ()
    storage_classes: tuple[StorageClassInfo, ...] = ()
    nodes: tuple[NodeInfo, ...] = ()
    # The CustomResourceDefinitions' names, or None where they were not read (no cluster, or no right to list them).
    crds: tuple[str, ...] | None = None
    # The CSIDriver objects' names, or None where they were not read.
    csi_drivers: tuple[str, ...] | None = None
    # The Secrets and cluster maps of the cluster's ceph-csi classes, or None where it has none (or they were not read).
    ceph_csi: CephCsiFacts | None = None
    source: str = "hand-written inventory"  # e.g. "kubeconfig /root/.kube/config, context kind"

    def storage_class(self, name: str) -> StorageClassInfo | None:
        return next((sc for sc in self.storage_classes if sc.name == name), None)

    def default_class(self) -> StorageClassInfo | None:
        defaults = [sc for sc in self.storage_classes if sc.is_default]
        # With several defaults the admission plugin picks the newest; we cannot see creation order, say the first.
        return defaults[0] if defaults else None

    def pvc(self, namespace: str, name: str) -> PvcInfo | None:
        return next((c for c in self.pvcs if (c.namespace, c.name) == (namespace, name)), None)

    def pv(self, name: str) -> PvInfo | None:
        return next((pv for pv in self.pvs if pv.name == name), None)
