"""The only importer of the official ``kubernetes`` client: reads the cluster objects that decide volume binding
(PersistentVolumes, PersistentVolumeClaims, StorageClasses, Nodes) into small typed dataclasses.

Everything else in the harness sees these dataclasses, never the client's models, so the binding simulation runs
without a cluster and is tested with hand-written inventories. API and configuration errors are re-raised as
``InfraError`` naming the kubeconfig and the call, with the payload shortened.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from harness.errors import InfraError

NodeSelectorOperator = Literal["In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"]
API_TIMEOUT_S = 15.0


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


@dataclass(frozen=True)
class StorageClassInfo:
    name: str
    provisioner: str
    volume_binding_mode: str = "Immediate"  # or WaitForFirstConsumer
    is_default: bool = False


@dataclass(frozen=True)
class NodeInfo:
    name: str
    labels: dict[str, str] = field(default_factory=dict)
    schedulable: bool = True
    why_unschedulable: str = ""


@dataclass(frozen=True)
class KubeInventory:
    """What the cluster holds right now, plus where the harness would create its claim."""

    namespace: str = "default"
    pvs: tuple[PvInfo, ...] = ()
    pvcs: tuple[PvcInfo, ...] = ()
    storage_classes: tuple[StorageClassInfo, ...] = ()
    nodes: tuple[NodeInfo, ...] = ()
    source: str = "hand-written inventory"  # e.g. "kubeconfig /root/.kube/config, context kind"

    def storage_class(self, name: str) -> StorageClassInfo | None:
        return next((sc for sc in self.storage_classes if sc.name == name), None)

    def default_class(self) -> StorageClassInfo | None:
        defaults = [sc for sc in self.storage_classes if sc.is_default]
        # With several defaults the admission plugin picks the newest; we cannot see creation order, say the first.
        return defaults[0] if defaults else None

    def pvc(self, namespace: str, name: str) -> PvcInfo | None:
        return next((c for c in self.pvcs if (c.namespace, c.name) == (namespace, name)), None)


# --- reading a real cluster ----------------------------------------------------------------------------------


def load_inventory(
    kubeconfig: str | None, *, namespace: str | None = None, context: str | None = None
) -> KubeInventory:
    """Read PVs, PVCs, StorageClasses and Nodes through ``kubeconfig`` (None: $KUBECONFIG or ~/.kube/config)."""
    import kubernetes
    from kubernetes.client.exceptions import ApiException
    from kubernetes.config.config_exception import ConfigException
    from urllib3.exceptions import HTTPError

    where = f"kubeconfig {kubeconfig or '(default)'}"
    config: Any = kubernetes.config  # the client's functions carry no annotations
    try:
        api_client = config.new_client_from_config(config_file=kubeconfig, context=context)
        _contexts, active = config.list_kube_config_contexts(config_file=kubeconfig)
        ns = namespace or (active or {}).get("context", {}).get("namespace") or "default"
        core = kubernetes.client.CoreV1Api(api_client)
        storage = kubernetes.client.StorageV1Api(api_client)
        kw: dict[str, Any] = {"_request_timeout": API_TIMEOUT_S}
        pvs = tuple(_pv(o) for o in core.list_persistent_volume(**kw).items)
        pvcs = tuple(_pvc(o) for o in core.list_persistent_volume_claim_for_all_namespaces(**kw).items)
        classes = tuple(_storage_class(o) for o in storage.list_storage_class(**kw).items)
        nodes = tuple(_node(o) for o in core.list_node(**kw).items)
    except ConfigException as e:
        raise InfraError(f"cannot use {where}: {e}") from e
    except ApiException as e:
        raise InfraError(f"Kubernetes API error via {where}: {e.status} {e.reason}: {_shorten(str(e.body))}") from e
    except (HTTPError, OSError) as e:
        raise InfraError(f"cannot reach the Kubernetes API via {where}: {_shorten(str(e))}") from e
    context_name = (active or {}).get("name", "?")
    return KubeInventory(
        namespace=ns,
        pvs=pvs,
        pvcs=pvcs,
        storage_classes=classes,
        nodes=nodes,
        source=f"{where}, context {context_name}",
    )


def _quantity_bytes(value: Any) -> int:
    from kubernetes import utils

    parse: Any = utils.parse_quantity  # unannotated in the client
    try:
        return int(parse(value)) if value is not None else 0
    except ValueError:
        return 0


def _terms(node_affinity: Any) -> tuple[NodeSelectorTerm, ...]:
    required = getattr(node_affinity, "required", None) if node_affinity else None
    terms = []
    for term in getattr(required, "node_selector_terms", None) or []:
        reqs = [
            NodeSelectorRequirement(e.key, e.operator, tuple(e.values or ())) for e in (term.match_expressions or [])
        ]
        reqs += [
            NodeSelectorRequirement(e.key, e.operator, tuple(e.values or ()), field=True)
            for e in (term.match_fields or [])
        ]
        terms.append(NodeSelectorTerm(tuple(reqs)))
    return tuple(terms)


def _pv(o: Any) -> PvInfo:
    spec = o.spec
    ref = spec.claim_ref
    source = ""
    if spec.nfs:
        source = f"nfs {spec.nfs.server}:{spec.nfs.path}"
    elif spec.iscsi:
        source = f"iscsi {spec.iscsi.target_portal} {spec.iscsi.iqn} lun {spec.iscsi.lun}"
    elif spec.local:
        source = f"local {spec.local.path}"
    elif spec.host_path:
        source = f"hostPath {spec.host_path.path}"
    elif spec.csi:
        source = f"csi {spec.csi.driver}"
    return PvInfo(
        name=o.metadata.name,
        capacity_bytes=_quantity_bytes((spec.capacity or {}).get("storage")),
        storage_class=spec.storage_class_name or "",
        access_modes=tuple(spec.access_modes or ()),
        volume_mode=spec.volume_mode or "Filesystem",
        labels=dict(o.metadata.labels or {}),
        phase=(o.status.phase if o.status else None) or "Pending",
        claim_ref=ClaimRef(ref.namespace or "", ref.name or "", ref.uid or "") if ref else None,
        node_affinity=_terms(spec.node_affinity),
        reclaim_policy=spec.persistent_volume_reclaim_policy or "Retain",
        source=source,
        deleting=o.metadata.deletion_timestamp is not None,
    )


def _pvc(o: Any) -> PvcInfo:
    spec = o.spec
    selector = None
    if spec.selector is not None:
        selector = dict(spec.selector.match_labels or {})
    requests = (spec.resources.requests if spec.resources else None) or {}
    return PvcInfo(
        namespace=o.metadata.namespace,
        name=o.metadata.name,
        storage_class=spec.storage_class_name,
        request_bytes=_quantity_bytes(requests.get("storage")),
        access_modes=tuple(spec.access_modes or ()),
        volume_mode=spec.volume_mode or "Filesystem",
        selector=selector,
        volume_name=spec.volume_name or "",
        phase=(o.status.phase if o.status else None) or "Pending",
        uid=o.metadata.uid or "",
    )


def _storage_class(o: Any) -> StorageClassInfo:
    annotations = o.metadata.annotations or {}
    default = "true" in (
        annotations.get("storageclass.kubernetes.io/is-default-class"),
        annotations.get("storageclass.beta.kubernetes.io/is-default-class"),
    )
    return StorageClassInfo(
        name=o.metadata.name,
        provisioner=o.provisioner,
        volume_binding_mode=o.volume_binding_mode or "Immediate",
        is_default=default,
    )


def _node(o: Any) -> NodeInfo:
    reasons = []
    if o.spec.unschedulable:
        reasons.append("cordoned (spec.unschedulable)")
    ready = next((c for c in (o.status.conditions or []) if c.type == "Ready"), None)
    if ready is None or ready.status != "True":
        reasons.append("not Ready")
    reasons += [f"taint {t.key}:{t.effect}" for t in (o.spec.taints or []) if t.effect in ("NoSchedule", "NoExecute")]
    return NodeInfo(
        name=o.metadata.name,
        labels=dict(o.metadata.labels or {}),
        schedulable=not reasons,
        why_unschedulable=", ".join(reasons),
    )


def _shorten(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
