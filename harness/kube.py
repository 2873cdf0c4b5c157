"""The only importer of the official ``kubernetes`` client: reads the cluster objects that decide volume binding
(PersistentVolumes, PersistentVolumeClaims, StorageClasses, Nodes) into small typed dataclasses, and (``KubeApi``)
makes the calls the kubernetes runtime needs: create and delete objects, bounded list+watch waits that name what
they waited for, pod logs, exec, cordon/uncordon.

Everything else in the harness sees these dataclasses, never the client's models, so the binding simulation runs
without a cluster and is tested with hand-written inventories. API and configuration errors are re-raised as
``InfraError`` naming the kubeconfig and the call, with the payload shortened.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

from harness.errors import InfraError, WaitTimeout
from harness.fmt import shorten
from harness.wait import wait_for

NodeSelectorOperator = Literal["In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"]
API_TIMEOUT_S = 15.0
FOLLOW_READ_TIMEOUT_S = 3600.0  # a followed log may be quiet for long (a container between its outputs)
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


# --- reading a real cluster ----------------------------------------------------------------------------------


def kube_contexts(kubeconfig: str | None) -> tuple[list[str], str | None, str]:
    """The context names ``kubeconfig`` holds (None: $KUBECONFIG, which may list several files, or ~/.kube/config),
    its current-context, and how to name the file(s) in a message. No file: no contexts."""
    from kubernetes.config import kube_config
    from kubernetes.config.config_exception import ConfigException

    paths = kubeconfig or os.environ.get("KUBECONFIG") or "~/.kube/config"
    where = f"kubeconfig {paths}"
    merger_class: Any = kube_config.KubeConfigMerger  # the client's own reading and merging, unannotated
    try:
        node = merger_class(paths).config
        doc: dict[str, Any] = {} if node is None else dict(node.value)
    except (ConfigException, OSError, ValueError, TypeError, AttributeError) as e:
        raise InfraError(f"cannot read {where}: {shorten(str(e))}") from e
    names = []
    for entry in doc.get("contexts") or []:
        # Plain dicts, or the client's ConfigNode wrappers once several files were merged: both index by key.
        value = getattr(entry, "value", entry)
        if isinstance(value, dict) and value.get("name"):
            names.append(str(value["name"]))
    current = doc.get("current-context") or None
    return names, (str(current) if current else None), where


def load_inventory(
    kubeconfig: str | None, *, namespace: str | None = None, context: str | None = None
) -> KubeInventory:
    """Read PVs, PVCs, StorageClasses and Nodes through ``kubeconfig`` (None: $KUBECONFIG or ~/.kube/config), in
    ``context`` (None: the kubeconfig's current-context, for callers that checked it may be used)."""
    import kubernetes
    from kubernetes.client.exceptions import ApiException
    from kubernetes.config.config_exception import ConfigException
    from urllib3.exceptions import HTTPError

    where = f"kubeconfig {kubeconfig or '(default)'}"
    config: Any = kubernetes.config  # the client's functions carry no annotations
    try:
        api_client = config.new_client_from_config(config_file=kubeconfig, context=context)
        contexts, active = config.list_kube_config_contexts(config_file=kubeconfig)
        if context is not None:
            active = next((c for c in contexts if c.get("name") == context), active)
        ns = namespace or (active or {}).get("context", {}).get("namespace") or "default"
        core = kubernetes.client.CoreV1Api(api_client)
        storage = kubernetes.client.StorageV1Api(api_client)
        kw: dict[str, Any] = {"_request_timeout": API_TIMEOUT_S}
        pvs = tuple(_pv(o) for o in core.list_persistent_volume(**kw).items)
        pvcs = tuple(_pvc(o) for o in core.list_persistent_volume_claim_for_all_namespaces(**kw).items)
        classes = tuple(_storage_class(o) for o in storage.list_storage_class(**kw).items)
        nodes = tuple(_node(o) for o in core.list_node(**kw).items)
        crds = _crd_names(kubernetes.client.ApiextensionsV1Api(api_client), kw)
    except ConfigException as e:
        raise InfraError(f"cannot use {where}: {e}") from e
    except ApiException as e:
        raise InfraError(f"Kubernetes API error via {where}: {e.status} {e.reason}: {shorten(str(e.body))}") from e
    except (HTTPError, OSError) as e:
        raise InfraError(f"cannot reach the Kubernetes API via {where}: {shorten(str(e))}") from e
    context_name = (active or {}).get("name", "?")
    return KubeInventory(
        namespace=ns,
        pvs=pvs,
        pvcs=pvcs,
        storage_classes=classes,
        nodes=nodes,
        crds=crds,
        source=f"{where}, context {context_name}",
    )


def _crd_names(api: Any, kw: dict[str, Any]) -> tuple[str, ...] | None:
    """The CRDs' names; None where this user may not list them (a namespaced role): the doctor then says it could not
    check, which is not the same as "not installed"."""
    from kubernetes.client.exceptions import ApiException

    try:
        return tuple(o.metadata.name for o in api.list_custom_resource_definition(**kw).items)
    except ApiException as e:
        if e.status in (401, 403):
            return None
        raise


def _quantity_bytes(value: Any) -> int:
    from kubernetes import utils

    parse: Any = utils.parse_quantity  # unannotated in the client
    try:
        return int(parse(value)) if value is not None else 0
    except ValueError:
        return 0


def _terms(node_affinity: Manifest | None) -> tuple[NodeSelectorTerm, ...]:
    required = (node_affinity or {}).get("required") or {}
    terms = []
    for term in required.get("nodeSelectorTerms") or []:
        reqs = [
            NodeSelectorRequirement(e["key"], e["operator"], tuple(e.get("values") or ()))
            for e in term.get("matchExpressions") or []
        ]
        reqs += [
            NodeSelectorRequirement(e["key"], e["operator"], tuple(e.get("values") or ()), field=True)
            for e in term.get("matchFields") or []
        ]
        terms.append(NodeSelectorTerm(tuple(reqs)))
    return tuple(terms)


def _pv(o: Any) -> PvInfo:
    import kubernetes

    # The client's model as the manifest it came from (camelCase keys), so a listed PV and a PV read from a YAML
    # file go through the same reading.
    client: Any = kubernetes.client.ApiClient()  # unannotated in the client
    doc: Manifest = client.sanitize_for_serialization(o)
    return pv_from_manifest(doc, default_phase="Pending")


# The volume sources the evidence names, with how ``kubectl describe pv`` would say them.
_SOURCES: dict[str, Callable[[Manifest], str]] = {
    "nfs": lambda s: f"nfs {s.get('server')}:{s.get('path')}",
    "iscsi": lambda s: f"iscsi {s.get('targetPortal')} {s.get('iqn')} lun {s.get('lun')}",
    "local": lambda s: f"local {s.get('path')}",
    "hostPath": lambda s: f"hostPath {s.get('path')}",
    "csi": lambda s: f"csi {s.get('driver')} volumeHandle {s.get('volumeHandle')}",
}


def pv_from_manifest(doc: Manifest, *, default_phase: str = "Available") -> PvInfo:
    """A PersistentVolume as a manifest (a YAML file, or the API's object serialised); ``default_phase`` for one
    without a status (a file not applied yet becomes Available once it is)."""
    meta, spec = doc.get("metadata") or {}, doc.get("spec") or {}
    ref = spec.get("claimRef")
    sources = {k: dict(spec[k]) for k in _SOURCES if spec.get(k)}
    source = next((_SOURCES[k](v) for k, v in sources.items()), "")
    return PvInfo(
        name=str(meta.get("name") or ""),
        capacity_bytes=_quantity_bytes((spec.get("capacity") or {}).get("storage")),
        storage_class=spec.get("storageClassName") or "",
        access_modes=tuple(spec.get("accessModes") or ()),
        volume_mode=spec.get("volumeMode") or "Filesystem",
        labels={str(k): str(v) for k, v in (meta.get("labels") or {}).items()},
        phase=(doc.get("status") or {}).get("phase") or default_phase,
        claim_ref=ClaimRef(ref.get("namespace") or "", ref.get("name") or "", ref.get("uid") or "") if ref else None,
        node_affinity=_terms(spec.get("nodeAffinity")),
        reclaim_policy=spec.get("persistentVolumeReclaimPolicy") or "Retain",
        source=source,
        deleting=meta.get("deletionTimestamp") is not None,
        volume_source=sources,
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
        parameters={str(k): str(v) for k, v in (o.parameters or {}).items()},
        reclaim_policy=o.reclaim_policy or "Delete",
        allow_volume_expansion=bool(o.allow_volume_expansion),
    )


def _node(o: Any) -> NodeInfo:
    reasons = []
    if o.spec.unschedulable:
        reasons.append("cordoned (spec.unschedulable)")
    ready = next((c for c in (o.status.conditions or []) if c.type == "Ready"), None)
    if ready is None or ready.status != "True":
        reasons.append("not Ready")
    reasons += [f"taint {t.key}:{t.effect}" for t in (o.spec.taints or []) if t.effect in ("NoSchedule", "NoExecute")]
    info = o.status.node_info
    return NodeInfo(
        name=o.metadata.name,
        labels=dict(o.metadata.labels or {}),
        schedulable=not reasons,
        why_unschedulable=", ".join(reasons),
        ready=ready is not None and ready.status == "True",
        ready_changed_unix_s=_unix(ready.last_transition_time) if ready is not None else None,
        kernel=info.kernel_version if info else "",
        kubelet=info.kubelet_version if info else "",
        container_runtime=info.container_runtime_version if info else "",
        os_image=info.os_image if info else "",
    )


# --- managing objects for the kubernetes runtime -------------------------------------------------------------


WATCH_CHUNK_S = 30  # one watch request at most this long; the loop re-lists and re-watches until the deadline


@dataclass(frozen=True)
class ContainerInfo:
    name: str
    restart_count: int
    running: bool
    ready: bool
    started_at: str = ""  # RFC 3339, whole seconds (the kubelet's resolution)
    waiting_reason: str = ""  # e.g. CrashLoopBackOff, CreateContainerConfigError
    waiting_message: str = ""
    last_exit_code: int | None = None
    last_reason: str = ""  # e.g. Error, OOMKilled, Completed
    # Unix seconds from the kubelet's RFC 3339 timestamps, which have whole seconds (truncated).
    started_unix_s: float | None = None  # state.running.startedAt
    last_finished_unix_s: float | None = None  # lastState.terminated.finishedAt: the previous container ended
    container_id: str = ""  # containerd://...: a new one for every start, also after its node came back
    exit_code: int | None = None  # state.terminated: the container ended and is not restarted (a Job's pod)
    exit_reason: str = ""
    exit_message: str = ""


@dataclass(frozen=True)
class ObjectInfo:
    """Any object as ``harness cleanup`` sees it: its name and marks, and the few fields it acts on."""

    kind: str
    name: str
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    unschedulable: bool = False  # a Node
    reclaim_policy: str = ""  # a PersistentVolume
    deleting: bool = False


@dataclass(frozen=True)
class PodInfo:
    namespace: str
    name: str
    uid: str
    node: str  # "" while unscheduled
    phase: str
    ip: str
    ready: bool
    deleting: bool
    containers: tuple[ContainerInfo, ...] = ()
    unschedulable: str = ""  # the scheduler's message while PodScheduled is False
    created_unix_s: float | None = None  # metadata.creationTimestamp (whole seconds)
    # Condition type -> lastTransitionTime (Unix seconds, whole) of the conditions that are True.
    true_since: dict[str, float] = field(default_factory=dict)

    def container(self, name: str) -> ContainerInfo | None:
        return next((c for c in self.containers if c.name == name), None)

    def brief(self) -> str:
        parts = [f"pod {self.namespace}/{self.name} uid {self.uid[:8]} phase {self.phase}"]
        parts.append(f"on {self.node}" if self.node else "not scheduled")
        if self.unschedulable:
            parts.append(f"scheduler: {self.unschedulable}")
        for c in self.containers:
            state = "running" if c.running else f"waiting ({c.waiting_reason or '?'}: {c.waiting_message})"
            last = f", last exit {c.last_exit_code} {c.last_reason}" if c.last_exit_code is not None else ""
            parts.append(f"{c.name}: {state}, restarts {c.restart_count}{last}")
        return "; ".join(parts)


@dataclass(frozen=True)
class ExecResult:
    returncode: int
    stdout: str
    stderr: str


class KubeApi:
    """The calls the kubernetes runtime makes, each wrapped so API and transport errors become ``InfraError``."""

    def __init__(self, kubeconfig: str | None = None, *, context: str | None = None) -> None:
        import kubernetes
        from kubernetes.config.config_exception import ConfigException

        self.where = f"kubeconfig {kubeconfig or '(default: $KUBECONFIG or ~/.kube/config)'}"
        config: Any = kubernetes.config
        try:
            self._client = config.new_client_from_config(config_file=kubeconfig, context=context)
            # `stream` (exec) swaps the request function of the client it is given: it gets a client of its own.
            self._stream_client = config.new_client_from_config(config_file=kubeconfig, context=context)
        except (ConfigException, OSError) as e:
            raise InfraError(f"cannot use {self.where}: {e}") from e
        self.core: Any = kubernetes.client.CoreV1Api(self._client)
        self.apps: Any = kubernetes.client.AppsV1Api(self._client)
        self.storage: Any = kubernetes.client.StorageV1Api(self._client)
        self.custom: Any = kubernetes.client.CustomObjectsApi(self._client)
        self.extensions: Any = kubernetes.client.ApiextensionsV1Api(self._client)
        self.batch: Any = kubernetes.client.BatchV1Api(self._client)

    def close(self) -> None:
        self._client.close()
        self._stream_client.close()

    @contextmanager
    def _call(self, what: str) -> Iterator[None]:
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError
        from websocket import WebSocketException  # exec's transport

        try:
            yield
        except WebSocketException as e:
            raise InfraError(f"could not {what} via {self.where}: {shorten(str(e))}") from e
        except ApiException as e:
            raise InfraError(
                f"Kubernetes API error while trying to {what} via {self.where}: {e.status} {e.reason}: "
                f"{_api_message(e.body)}"
            ) from e
        except (HTTPError, OSError) as e:
            raise InfraError(f"cannot reach the Kubernetes API to {what} via {self.where}: {shorten(str(e))}") from e

    # --- create / read / delete ------------------------------------------------------------------------------

    def create(self, manifest: Manifest, *, dry_run: bool = False) -> None:
        """Create the object; ``dry_run``: only ask the API server (``dryRun=All``: admission and validation run,
        nothing is stored), as ``kubectl create --dry-run=server`` does; its rejection is the same InfraError."""
        kind, meta = manifest["kind"], manifest["metadata"]
        ns = meta.get("namespace", "")
        kw: dict[str, Any] = {"_request_timeout": API_TIMEOUT_S, **({"dry_run": "All"} if dry_run else {})}
        creators: dict[str, Callable[[], Any]] = {
            "Namespace": lambda: self.core.create_namespace(manifest, **kw),
            "PersistentVolume": lambda: self.core.create_persistent_volume(manifest, **kw),
            "StorageClass": lambda: self.storage.create_storage_class(manifest, **kw),
            "ConfigMap": lambda: self.core.create_namespaced_config_map(ns, manifest, **kw),
            "Pod": lambda: self.core.create_namespaced_pod(ns, manifest, **kw),
            "StatefulSet": lambda: self.apps.create_namespaced_stateful_set(ns, manifest, **kw),
            "PersistentVolumeClaim": lambda: self.core.create_namespaced_persistent_volume_claim(ns, manifest, **kw),
            "Secret": lambda: self.core.create_namespaced_secret(ns, manifest, **kw),
            "Service": lambda: self.core.create_namespaced_service(ns, manifest, **kw),
            "Job": lambda: self.batch.create_namespaced_job(ns, manifest, **kw),
            "Prometheus": lambda: self.custom.create_namespaced_custom_object(*_prometheuses(ns), manifest, **kw),
        }
        with self._call(f"{'dry-run ' if dry_run else ''}create {kind} {meta['name']}"):
            creators[kind]()

    def list_objects(self, kind: str, label_selector: str = "") -> list[ObjectInfo]:
        """The cluster-scoped objects of ``kind`` (Namespace, PersistentVolume, StorageClass, Node) matching
        ``label_selector``."""
        listers: dict[str, Callable[..., Any]] = {
            "Namespace": self.core.list_namespace,
            "PersistentVolume": self.core.list_persistent_volume,
            "StorageClass": self.storage.list_storage_class,
            "Node": self.core.list_node,
        }
        with self._call(f"list {kind} objects" + (f" labelled {label_selector}" if label_selector else "")):
            items = listers[kind](label_selector=label_selector, _request_timeout=API_TIMEOUT_S).items
        return [
            ObjectInfo(
                kind=kind,
                name=o.metadata.name,
                labels=dict(o.metadata.labels or {}),
                annotations=dict(o.metadata.annotations or {}),
                unschedulable=bool(kind == "Node" and o.spec.unschedulable),
                reclaim_policy=(o.spec.persistent_volume_reclaim_policy or "") if kind == "PersistentVolume" else "",
                deleting=o.metadata.deletion_timestamp is not None,
            )
            for o in items
        ]

    def set_reclaim_policy(self, pv: str, policy: str) -> None:
        with self._call(f"set the reclaimPolicy of PersistentVolume {pv} to {policy}"):
            self.core.patch_persistent_volume(
                pv, {"spec": {"persistentVolumeReclaimPolicy": policy}}, _request_timeout=API_TIMEOUT_S
            )

    def exists(self, kind: str, name: str, namespace: str = "") -> bool:
        return self._read(kind, name, namespace) is not None

    def labels_of(self, kind: str, name: str, namespace: str = "") -> dict[str, str] | None:
        """The object's labels, or None when it does not exist."""
        obj = self._read(kind, name, namespace)
        return None if obj is None else dict(obj.metadata.labels or {})

    def _read(self, kind: str, name: str, namespace: str) -> Any:
        from kubernetes.client.exceptions import ApiException

        readers: dict[str, Callable[[], Any]] = {
            "Namespace": lambda: self.core.read_namespace(name, _request_timeout=API_TIMEOUT_S),
            "PersistentVolume": lambda: self.core.read_persistent_volume(name, _request_timeout=API_TIMEOUT_S),
            "PersistentVolumeClaim": lambda: self.core.read_namespaced_persistent_volume_claim(
                name, namespace, _request_timeout=API_TIMEOUT_S
            ),
            "StorageClass": lambda: self.storage.read_storage_class(name, _request_timeout=API_TIMEOUT_S),
            "StatefulSet": lambda: self.apps.read_namespaced_stateful_set(
                name, namespace, _request_timeout=API_TIMEOUT_S
            ),
            "Pod": lambda: self.core.read_namespaced_pod(name, namespace, _request_timeout=API_TIMEOUT_S),
            "Service": lambda: self.core.read_namespaced_service(name, namespace, _request_timeout=API_TIMEOUT_S),
            "Job": lambda: self.batch.read_namespaced_job(name, namespace, _request_timeout=API_TIMEOUT_S),
            "CustomResourceDefinition": lambda: self.extensions.read_custom_resource_definition(
                name, _request_timeout=API_TIMEOUT_S
            ),
            "Prometheus": lambda: _Labelled(
                self.custom.get_namespaced_custom_object(
                    *_prometheuses(namespace), name, _request_timeout=API_TIMEOUT_S
                )
            ),
        }
        with self._call(f"read {kind} {name}"):
            try:
                return readers[kind]()
            except ApiException as e:
                if e.status == 404:
                    return None
                raise

    def delete(self, kind: str, name: str, namespace: str = "", *, wait_s: float | None = None) -> None:
        """Delete (foreground: dependents first); absent is fine. With ``wait_s``, wait until it is gone."""
        from kubernetes.client.exceptions import ApiException

        kw: dict[str, Any] = {"_request_timeout": API_TIMEOUT_S, "propagation_policy": "Foreground"}
        deleters: dict[str, Callable[[], Any]] = {
            "Namespace": lambda: self.core.delete_namespace(name, **kw),
            "PersistentVolume": lambda: self.core.delete_persistent_volume(name, **kw),
            "PersistentVolumeClaim": lambda: self.core.delete_namespaced_persistent_volume_claim(name, namespace, **kw),
            "StorageClass": lambda: self.storage.delete_storage_class(name, **kw),
            "StatefulSet": lambda: self.apps.delete_namespaced_stateful_set(name, namespace, **kw),
            "Pod": lambda: self.core.delete_namespaced_pod(name, namespace, **kw),
            "Service": lambda: self.core.delete_namespaced_service(name, namespace, **kw),
            "Job": lambda: self.batch.delete_namespaced_job(name, namespace, **kw),
            "Prometheus": lambda: self.custom.delete_namespaced_custom_object(*_prometheuses(namespace), name, **kw),
        }
        with self._call(f"delete {kind} {name}"):
            try:
                deleters[kind]()
            except ApiException as e:
                if e.status != 404:
                    raise
        if wait_s is not None:
            self.wait_gone(kind, name, namespace, timeout_s=wait_s)

    def wait_gone(self, kind: str, name: str, namespace: str = "", *, timeout_s: float) -> None:
        where = f"{namespace}/" if namespace else ""
        wait_for(
            lambda: not self.exists(kind, name, namespace),
            what=f"{kind} {where}{name} to be deleted",
            timeout_s=timeout_s,
            interval_s=0.5,
        )

    def wait_service_account(self, namespace: str, *, timeout_s: float) -> None:
        """A new namespace gets its ``default`` ServiceAccount a moment later; pods are refused until then."""
        self._watch(
            self.core.list_namespaced_service_account,
            {"namespace": namespace, "field_selector": "metadata.name=default"},
            lambda sa: True,
            what=f"ServiceAccount {namespace}/default",
            timeout_s=timeout_s,
        )

    # --- pods ----------------------------------------------------------------------------------------------

    def read_pod(self, namespace: str, name: str) -> PodInfo | None:
        obj = self._read("Pod", name, namespace)
        return None if obj is None else _pod_info(obj)

    def wait_pod(
        self,
        namespace: str,
        name: str,
        predicate: Callable[[PodInfo], bool],
        *,
        what: str,
        timeout_s: float,
        describe: Callable[[PodInfo | None], str] | None = None,
    ) -> PodInfo:
        """List + watch pod ``name`` until ``predicate`` holds; ``predicate`` may raise to give up early."""
        raw = self._watch(
            self.core.list_namespaced_pod,
            {"namespace": namespace, "field_selector": f"metadata.name={name}"},
            lambda o: predicate(_pod_info(o)),
            what=what,
            timeout_s=timeout_s,
            describe=lambda o: (
                describe(None if o is None else _pod_info(o))
                if describe
                else ("nothing" if o is None else _pod_info(o).brief())
            ),
        )
        return _pod_info(raw)

    def pods(self, namespace: str, label_selector: str) -> list[PodInfo]:
        with self._call(f"list the pods {label_selector} in {namespace}"):
            listed = self.core.list_namespaced_pod(
                namespace, label_selector=label_selector, _request_timeout=API_TIMEOUT_S
            )
        return [_pod_info(o) for o in listed.items]

    def service_ip(self, namespace: str, name: str) -> str:
        obj = self._read("Service", name, namespace)
        if obj is None or not obj.spec.cluster_ip or obj.spec.cluster_ip == "None":
            raise InfraError(f"Service {namespace}/{name} has no cluster IP")
        return str(obj.spec.cluster_ip)

    def follow_log(self, namespace: str, pod: str, container: str) -> Iterator[str]:
        """The container's log line by line as it is written, until the container ends (``kubectl logs -f``).
        The container must have started. The stream lasts as long as the container; a read gives up after
        ``FOLLOW_READ_TIMEOUT_S`` without a byte (the client takes no unbounded read timeout)."""
        from urllib3.exceptions import HTTPError

        with self._call(f"follow the log of {namespace}/{pod} container {container}"):
            response = self.core.read_namespaced_pod_log(
                pod, namespace, container=container, follow=True, _preload_content=False,
                _request_timeout=(API_TIMEOUT_S, FOLLOW_READ_TIMEOUT_S),
            )  # fmt: skip
        try:
            pending = b""
            for chunk in response.stream(64 * 1024, decode_content=True):
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    yield line.decode(errors="replace")
            if pending:
                yield pending.decode(errors="replace")
        except (OSError, ValueError, HTTPError) as e:
            raise InfraError(f"the log of {namespace}/{pod} broke off: {shorten(str(e))}") from e
        finally:
            response.release_conn()

    def pod_log(self, namespace: str, pod: str, container: str, *, previous: bool = False) -> str:
        from kubernetes.client.exceptions import ApiException

        with self._call(f"read the log of {namespace}/{pod} container {container}"):
            try:
                text: str = self.core.read_namespaced_pod_log(
                    pod, namespace, container=container, previous=previous, _request_timeout=API_TIMEOUT_S
                )
            except ApiException as e:
                if e.status in (400, 404):  # no such (previous) container yet
                    return ""
                raise
        return text

    def exec(self, namespace: str, pod: str, container: str, argv: list[str]) -> str:
        """Run ``argv`` in a running container and return its output (stdout and stderr)."""
        done = self.exec_run(namespace, pod, container, argv, timeout_s=API_TIMEOUT_S)
        return done.stdout + done.stderr

    def exec_run(self, namespace: str, pod: str, container: str, argv: list[str], *, timeout_s: float) -> ExecResult:
        """Run ``argv`` in a running container until it exits, at most ``timeout_s`` (WaitTimeout then: the
        command may still run in the container); its exit status, stdout and stderr kept apart."""
        import kubernetes
        from kubernetes import stream as kstream

        api = kubernetes.client.CoreV1Api(self._stream_client)
        stream: Any = kstream.stream
        what = f"exec {shorten(' '.join(argv))} in {namespace}/{pod} container {container}"
        with self._call(what):
            ws: Any = stream(
                api.connect_get_namespaced_pod_exec,
                pod,
                namespace,
                container=container,
                command=argv,
                stderr=True,
                stdin=False,
                stdout=True,
                tty=False,
                _preload_content=False,
                _request_timeout=API_TIMEOUT_S,
            )
            try:
                deadline = time.monotonic() + timeout_s
                out: list[str] = []
                err: list[str] = []
                # Read as it comes: an output of many MB must not pile up in the websocket's buffers.
                while ws.is_open() and time.monotonic() < deadline:
                    ws.update(timeout=min(1.0, max(0.01, deadline - time.monotonic())))
                    out.append(ws.read_stdout(timeout=0) if ws.peek_stdout() else "")
                    err.append(ws.read_stderr(timeout=0) if ws.peek_stderr() else "")
                if ws.is_open():
                    raise WaitTimeout(what, timeout_s, "still running")
                out.append(ws.read_stdout(timeout=0) if ws.peek_stdout() else "")
                err.append(ws.read_stderr(timeout=0) if ws.peek_stderr() else "")
                code = ws.returncode
            finally:
                ws.close()
        return ExecResult(returncode=int(code) if code is not None else -1, stdout="".join(out), stderr="".join(err))

    def _events(self, namespace: str, selector: str, what: str) -> list[Any]:
        """The namespace's events matching the field ``selector`` (involvedObject.* and reason)."""
        with self._call(f"list the events of {what}"):
            items: list[Any] = self.core.list_namespaced_event(
                namespace, field_selector=selector, _request_timeout=API_TIMEOUT_S
            ).items
        return items

    def event_times(self, namespace: str, kind: str, uid: str, reason: str) -> list[float]:
        """When the events with ``reason`` about the object with ``uid`` happened (Unix seconds), oldest first."""
        selector = f"involvedObject.kind={kind},involvedObject.uid={uid},reason={reason}"
        items = self._events(namespace, selector, f"{kind} {namespace}/uid {uid} ({reason})")
        times = [_unix(e.event_time or e.first_timestamp or e.metadata.creation_timestamp) for e in items]
        return sorted(t for t in times if t is not None)

    def events(self, namespace: str, kind: str, name: str) -> list[str]:
        """The object's events, oldest first, as ``Reason: message``."""
        selector = f"involvedObject.kind={kind},involvedObject.name={name}"
        items = self._events(namespace, selector, f"{kind} {namespace}/{name}")
        items.sort(key=lambda e: e.last_timestamp or e.event_time or e.metadata.creation_timestamp)
        return [f"{e.reason}: {e.message}" for e in items]

    # --- volumes and nodes ---------------------------------------------------------------------------------

    def server_version(self) -> str:
        import kubernetes

        with self._call("read the API server's version"):
            info: Any = kubernetes.client.VersionApi(self._client).get_code(_request_timeout=API_TIMEOUT_S)
        return str(info.git_version)

    def read_storage_class(self, name: str) -> StorageClassInfo | None:
        obj = self._read("StorageClass", name, "")
        return None if obj is None else _storage_class(obj)

    def read_pv(self, name: str) -> PvInfo | None:
        obj = self._read("PersistentVolume", name, "")
        return None if obj is None else _pv(obj)

    def read_pvc(self, namespace: str, name: str) -> PvcInfo | None:
        obj = self._read("PersistentVolumeClaim", name, namespace)
        return None if obj is None else _pvc(obj)

    def claims(self, namespace: str) -> list[PvcInfo]:
        """Every PersistentVolumeClaim in ``namespace`` (none when it does not exist)."""
        with self._call(f"list the PersistentVolumeClaims in namespace {namespace}"):
            items = self.core.list_namespaced_persistent_volume_claim(namespace, _request_timeout=API_TIMEOUT_S).items
        return [_pvc(o) for o in items]

    def nodes(self) -> list[NodeInfo]:
        with self._call("list nodes"):
            return [_node(o) for o in self.core.list_node(_request_timeout=API_TIMEOUT_S).items]

    def wait_node(self, name: str, *, ready: bool, timeout_s: float) -> NodeInfo:
        """Until node ``name``'s Ready condition is True (``ready``) or not; the node as it was then."""
        raw = self._watch(
            self.core.list_node,
            {"field_selector": f"metadata.name={name}"},
            lambda o: _node(o).ready == ready,
            what=f"node {name} to be {'Ready' if ready else 'NotReady (the node controller noticing it is gone)'}",
            timeout_s=timeout_s,
            describe=lambda o: "no such node" if o is None else f"Ready={_node(o).ready}",
        )
        return _node(raw)

    def force_delete_pod(self, namespace: str, name: str) -> None:
        """Delete with grace period 0: the API forgets the pod at once, whatever its kubelet (if any) still runs."""
        from kubernetes.client.exceptions import ApiException

        with self._call(f"force-delete pod {namespace}/{name}"):
            try:
                self.core.delete_namespaced_pod(name, namespace, grace_period_seconds=0, _request_timeout=API_TIMEOUT_S)
            except ApiException as e:
                if e.status != 404:
                    raise

    def scale_statefulset(self, namespace: str, name: str, replicas: int) -> None:
        with self._call(f"scale StatefulSet {namespace}/{name} to {replicas}"):
            self.apps.patch_namespaced_stateful_set_scale(
                name, namespace, {"spec": {"replicas": replicas}}, _request_timeout=API_TIMEOUT_S
            )

    def patch_prometheus(self, namespace: str, name: str, spec: Manifest) -> None:
        """Merge ``spec`` into a ``monitoring.coreos.com/v1`` Prometheus resource's spec (e.g. its replicas)."""
        with self._call(f"patch Prometheus {namespace}/{name}"):
            self.custom.patch_namespaced_custom_object(
                *_prometheuses(namespace), name, {"spec": spec}, _request_timeout=API_TIMEOUT_S
            )

    def set_unschedulable(
        self, node: str, unschedulable: bool, annotations: Mapping[str, str | None] | None = None
    ) -> None:
        """Cordon (True) or uncordon (False) a node, as ``kubectl cordon``/``uncordon`` do, setting (or, for None
        values, removing) ``annotations`` in the same patch."""
        verb = "cordon" if unschedulable else "uncordon"
        body: Manifest = {"spec": {"unschedulable": unschedulable}}
        if annotations:
            body["metadata"] = {"annotations": dict(annotations)}
        with self._call(f"{verb} node {node}"):
            self.core.patch_node(node, body, _request_timeout=API_TIMEOUT_S)

    def annotate(self, kind: str, name: str, annotations: Mapping[str, str | None]) -> None:
        """Set (or, for None values, remove) annotations of a cluster-scoped object (a Node)."""
        patchers: dict[str, Callable[..., Any]] = {"Node": self.core.patch_node}
        with self._call(f"annotate {kind} {name}"):
            patchers[kind](name, {"metadata": {"annotations": dict(annotations)}}, _request_timeout=API_TIMEOUT_S)

    # --- watching ------------------------------------------------------------------------------------------

    def _watch(
        self,
        list_fn: Callable[..., Any],
        kwargs: dict[str, Any],
        predicate: Callable[[Any], bool],
        *,
        what: str,
        timeout_s: float,
        describe: Callable[[Any], str] | None = None,
    ) -> Any:
        """List, then watch from that list's resourceVersion, until an object satisfies ``predicate``."""
        from kubernetes import watch

        deadline = time.monotonic() + timeout_s
        last: Any = None
        while time.monotonic() < deadline:
            with self._call(f"watch while waiting for {what}"):
                listing = list_fn(_request_timeout=API_TIMEOUT_S, **kwargs)
                for obj in listing.items:
                    last = obj
                    if predicate(obj):
                        return obj
                w: Any = watch.Watch()  # type: ignore[no-untyped-call]
                remaining = max(1, int(deadline - time.monotonic()))
                try:
                    for event in w.stream(
                        list_fn,
                        resource_version=listing.metadata.resource_version,
                        timeout_seconds=min(remaining, WATCH_CHUNK_S),
                        **kwargs,
                    ):
                        obj = event["object"]
                        if event["type"] in ("ADDED", "MODIFIED"):
                            last = obj
                            if predicate(obj):
                                return obj
                        if time.monotonic() > deadline:
                            break
                finally:
                    w.stop()
        state = describe(last) if describe else ("nothing" if last is None else str(last.metadata.name))
        raise WaitTimeout(what, timeout_s, state)


def _prometheuses(namespace: str) -> tuple[str, str, str, str]:
    """The custom objects API's leading arguments for Prometheus resources: group, version, namespace, plural."""
    group, version, plural = PROMETHEUS_API
    return group, version, namespace, plural


class _Labelled:
    """A custom object (a dict) read like the typed client's objects: ``.metadata.labels``."""

    def __init__(self, obj: Manifest) -> None:
        meta = obj.get("metadata", {})
        self.metadata = _Meta(labels=meta.get("labels"))


@dataclass
class _Meta:
    labels: dict[str, str] | None


def _pod_info(o: Any) -> PodInfo:
    status = o.status
    containers = []
    for c in (status.container_statuses if status else None) or []:
        state, last = c.state, c.last_state
        terminated = last.terminated if last else None
        containers.append(
            ContainerInfo(
                name=c.name,
                restart_count=c.restart_count or 0,
                running=bool(state and state.running),
                ready=bool(c.ready),
                started_at=state.running.started_at.isoformat() if state and state.running else "",
                waiting_reason=(state.waiting.reason or "") if state and state.waiting else "",
                waiting_message=(state.waiting.message or "") if state and state.waiting else "",
                last_exit_code=terminated.exit_code if terminated else None,
                last_reason=(terminated.reason or "") if terminated else "",
                started_unix_s=_unix(state.running.started_at) if state and state.running else None,
                last_finished_unix_s=_unix(terminated.finished_at) if terminated else None,
                container_id=c.container_id or "",
                exit_code=state.terminated.exit_code if state and state.terminated else None,
                exit_reason=(state.terminated.reason or "") if state and state.terminated else "",
                exit_message=(state.terminated.message or "") if state and state.terminated else "",
            )
        )
    conditions = (status.conditions if status else None) or []
    scheduled = next((c for c in conditions if c.type == "PodScheduled"), None)
    unschedulable = ""
    if scheduled is not None and scheduled.status == "False":
        unschedulable = f"{scheduled.reason}: {scheduled.message}"
    return PodInfo(
        namespace=o.metadata.namespace,
        name=o.metadata.name,
        uid=o.metadata.uid or "",
        node=o.spec.node_name or "",
        phase=(status.phase if status else None) or "Pending",
        ip=(status.pod_ip if status else None) or "",
        ready=any(c.type == "Ready" and c.status == "True" for c in conditions),
        deleting=o.metadata.deletion_timestamp is not None,
        containers=tuple(containers),
        unschedulable=unschedulable,
        created_unix_s=_unix(o.metadata.creation_timestamp),
        true_since={
            c.type: t for c in conditions if c.status == "True" and (t := _unix(c.last_transition_time)) is not None
        },
    )


def _unix(timestamp: Any) -> float | None:
    """A timestamp the client parsed into a datetime, as Unix seconds."""
    return None if timestamp is None else float(timestamp.timestamp())


def _api_message(body: Any) -> str:
    """The Status message of an API error body (JSON), else the body shortened."""
    try:
        message = json.loads(body).get("message")
    except (TypeError, ValueError, AttributeError):
        message = None
    return shorten(str(message if message else body))


class PodProxy:
    """A plain-HTTP endpoint on 127.0.0.1 that forwards to a pod's port through the API server's pod proxy.

    For hosts that cannot route to the pod network: Prometheus clients (queries, remote write) then talk to
    ``url`` without knowing about the API server's TLS and credentials, which this forwarder adds.
    """

    FORWARDED_HEADERS = (
        "Content-Type",
        "Content-Encoding",
        "X-Prometheus-Remote-Write-Version",
        "Accept",
        "User-Agent",
    )

    def __init__(self, api: KubeApi, namespace: str, pod: str, port: int) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        client: Any = api._client
        target = f"{client.configuration.host}/api/v1/namespaces/{namespace}/pods/{pod}:{port}/proxy"
        pool: Any = client.rest_client.pool_manager
        auth = client.configuration.api_key.get("authorization") or client.configuration.api_key.get("BearerToken")
        forwarded = self.FORWARDED_HEADERS

        class Handler(BaseHTTPRequestHandler):
            def _forward(self) -> None:
                headers = {k: v for k in forwarded if (v := self.headers.get(k)) is not None}
                if auth:
                    headers["Authorization"] = auth
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                try:
                    resp = pool.request(
                        self.command,
                        target + self.path,
                        body=body,
                        headers=headers,
                        timeout=API_TIMEOUT_S,
                        retries=False,
                        preload_content=True,
                    )
                except (OSError, HTTPError) as e:
                    self.send_error(502, f"API server pod proxy: {shorten(str(e), 100)}")
                    return
                self.send_response(resp.status)
                for key in ("Content-Type", "Content-Encoding"):
                    if key in resp.headers:
                        self.send_header(key, resp.headers[key])
                self.send_header("Content-Length", str(len(resp.data)))
                self.end_headers()
                self.wfile.write(resp.data)

            # http.server dispatches to do_<METHOD>.
            do_GET = _forward
            do_POST = _forward

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: every forwarded request would otherwise go to stderr."""

        from urllib3.exceptions import HTTPError

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="pod-proxy", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
