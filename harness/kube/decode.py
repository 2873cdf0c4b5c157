"""The client's objects (and PersistentVolume manifests) read into the inventory's dataclasses: PVs, claims,
StorageClasses, Nodes, and the client's timestamps as Unix seconds. Everything else in the harness sees these
dataclasses, never the client's models. The ``kubernetes`` client is imported inside the functions that need it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from harness.kube.inventory import (
    ClaimRef,
    Manifest,
    NodeInfo,
    NodeSelectorRequirement,
    NodeSelectorTerm,
    PvcInfo,
    PvInfo,
    StorageClassInfo,
)


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


def decode_pv(o: Any) -> PvInfo:
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


def decode_pvc(o: Any) -> PvcInfo:
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


def decode_storage_class(o: Any) -> StorageClassInfo:
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


def decode_node(o: Any) -> NodeInfo:
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
        ready_changed_unix_s=unix(ready.last_transition_time) if ready is not None else None,
        kernel=info.kernel_version if info else "",
        kubelet=info.kubelet_version if info else "",
        container_runtime=info.container_runtime_version if info else "",
        os_image=info.os_image if info else "",
    )


def unix(timestamp: Any) -> float | None:
    """A timestamp the client parsed into a datetime, as Unix seconds."""
    return None if timestamp is None else float(timestamp.timestamp())
