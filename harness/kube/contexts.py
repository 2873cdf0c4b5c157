"""Kubeconfig contexts and loading the client's configuration: the contexts a kubeconfig holds, a client for one
of them, and ``load_inventory``, the binding inventory read through it. Configuration and API errors are re-raised
as ``InfraError`` naming the kubeconfig, with the payload shortened.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from typing import Any

from harness.errors import InfraError
from harness.fmt import shorten
from harness.kube.decode import decode_node, decode_pv, decode_pvc, decode_storage_class
from harness.kube.inventory import CephCsiFacts, KubeInventory, StorageClassInfo, ceph_csi_kind, csi_secret_refs

API_TIMEOUT_S = 15.0


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


def new_client(kubeconfig: str | None, context: str | None) -> Any:
    """A client for ``context`` (None: the current-context) of ``kubeconfig`` (None: $KUBECONFIG or
    ~/.kube/config). The client's ConfigException (and OSError) reach the caller, which names the kubeconfig."""
    from kubernetes import config

    load: Any = config.new_client_from_config  # the client's functions carry no annotations
    return load(config_file=kubeconfig, context=context)


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
        api_client = new_client(kubeconfig, context)
        contexts, active = config.list_kube_config_contexts(config_file=kubeconfig)
        if context is not None:
            active = next((c for c in contexts if c.get("name") == context), active)
        ns = namespace or (active or {}).get("context", {}).get("namespace") or "default"
        core = kubernetes.client.CoreV1Api(api_client)
        storage = kubernetes.client.StorageV1Api(api_client)
        kw: dict[str, Any] = {"_request_timeout": API_TIMEOUT_S}
        pvs = tuple(decode_pv(o) for o in core.list_persistent_volume(**kw).items)
        pvcs = tuple(decode_pvc(o) for o in core.list_persistent_volume_claim_for_all_namespaces(**kw).items)
        classes = tuple(decode_storage_class(o) for o in storage.list_storage_class(**kw).items)
        nodes = tuple(decode_node(o) for o in core.list_node(**kw).items)
        crds = _crd_names(kubernetes.client.ApiextensionsV1Api(api_client), kw)
        csi_drivers, registered = _csi(storage, kw)
        ceph_csi = _ceph_csi(core, classes, kw)
        if registered is not None:
            nodes = tuple(replace(n, csi_drivers=registered.get(n.name, ())) for n in nodes)
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
        csi_drivers=csi_drivers,
        ceph_csi=ceph_csi,
        source=f"{where}, context {context_name}",
    )


def _ceph_csi(core: Any, classes: tuple[StorageClassInfo, ...], kw: dict[str, Any]) -> CephCsiFacts | None:
    """For the ceph-csi classes (None when there is none): the keys of the Secrets they name and the cluster maps in
    the ConfigMaps of those Secrets' namespaces. A Secret or ConfigMap list this user may not read is unknown, not
    missing."""
    from kubernetes.client.exceptions import ApiException

    ceph_classes = [sc for sc in classes if ceph_csi_kind(sc.provisioner)]
    if not ceph_classes:
        return None
    refs = {ref for sc in ceph_classes for ref in csi_secret_refs(sc.parameters).values()}
    secrets: dict[tuple[str, str], tuple[str, ...] | None] = {}
    for namespace, name in sorted(refs):
        try:
            secret = core.read_namespaced_secret(name, namespace, **kw)
            secrets[(namespace, name)] = tuple(sorted((secret.data or {}).keys()))  # the keys only
        except ApiException as e:
            if e.status == 403:
                secrets[(namespace, name)] = None
            elif e.status != 404:
                raise
    found: dict[str, str] = {}
    readable = True
    namespaces = tuple(sorted({namespace for namespace, _ in refs}))
    for namespace in namespaces:
        try:
            config_maps = core.list_namespaced_config_map(namespace, **kw).items
        except ApiException as e:
            if e.status not in (403, 404):
                raise
            readable = False
            break
        for cm in config_maps:
            for value in (cm.data or {}).values():
                for cluster_id in _cluster_ids(value):
                    found.setdefault(cluster_id, f"configmap {namespace}/{cm.metadata.name}")
    return CephCsiFacts(secrets=secrets, cluster_ids=found if readable else None, searched=namespaces)


def _cluster_ids(value: str) -> list[str]:
    """The clusterIDs of a ceph-csi cluster map (a JSON list of {"clusterID": ..., "monitors": [...]}), else []."""
    if "clusterID" not in value:
        return []
    try:
        entries = json.loads(value)
    except ValueError:
        return []
    if not isinstance(entries, list):
        return []
    return [str(e["clusterID"]) for e in entries if isinstance(e, dict) and e.get("clusterID")]


def _csi(api: Any, kw: dict[str, Any]) -> tuple[tuple[str, ...] | None, dict[str, tuple[str, ...]] | None]:
    """The CSIDriver objects' names, and per node the drivers its kubelet registered (CSINode ``spec.drivers``);
    None for what this user may not list: the doctor then does not check registration."""
    from kubernetes.client.exceptions import ApiException

    try:
        drivers = tuple(o.metadata.name for o in api.list_csi_driver(**kw).items)
        # Read as JSON: the client's model refuses a CSINode whose kubelet registered no driver yet ("drivers": null,
        # as the API server sends it), failing the whole list.
        nodes = json.loads(api.list_csi_node(_preload_content=False, **kw).data).get("items") or []
        registered = {
            o["metadata"]["name"]: tuple(d["name"] for d in ((o.get("spec") or {}).get("drivers") or [])) for o in nodes
        }
    except ApiException as e:
        if e.status in (401, 403):
            return None, None
        raise
    return drivers, registered


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
