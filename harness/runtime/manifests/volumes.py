"""The storage objects of a run, from what the storage backend plans (the doctor's binding simulation sees the same
ones): the PersistentVolume with the backend's source, the claim (the StatefulSet's volumeClaimTemplate, and the
claim created ahead of it under the pod's claim name) and a StorageClass the backend needs and the cluster lacks.
"""

from __future__ import annotations

from harness.fmt import exact_quantity
from harness.kube.inventory import Manifest, PvInfo
from harness.runtime.manifests.common import Names, object_meta
from harness.scenario.model import Scenario
from harness.storage import backend_for
from harness.storage.base import ClassToCreate


def storage_class_manifest(wanted: ClassToCreate, names: Names) -> Manifest:
    """A StorageClass a backend needs and the cluster lacks (a local PV's no-provisioner class)."""
    return {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": object_meta(wanted.name, names),
        "provisioner": wanted.provisioner,
        "volumeBindingMode": wanted.volume_binding_mode,
        "reclaimPolicy": wanted.reclaim_policy,
    }


def volume_manifest(scenario: Scenario, names: Names) -> Manifest | None:
    """The PV the backend plans (the doctor's binding simulation sees the same one), with the backend's source."""
    backend = backend_for(scenario.storage)
    pv = backend.planned_volume(scenario.storage, scenario.name)
    if pv is None:
        return None
    spec: Manifest = {
        "capacity": {"storage": exact_quantity(pv.capacity_bytes)},
        "accessModes": list(pv.access_modes),
        "volumeMode": pv.volume_mode,
        "persistentVolumeReclaimPolicy": pv.reclaim_policy,
        "storageClassName": pv.storage_class,
        **backend.volume_source(scenario.storage),
    }
    if pv.node_affinity:
        spec["nodeAffinity"] = {"required": {"nodeSelectorTerms": [_term(t) for t in _affinity(pv)]}}
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": object_meta(pv.name, names, extra=dict(pv.labels)),
        "spec": spec,
    }


def _affinity(pv: PvInfo) -> list[list[tuple[str, str, list[str]]]]:
    return [[(r.key, r.operator, list(r.values)) for r in term.requirements] for term in pv.node_affinity]


def _term(requirements: list[tuple[str, str, list[str]]]) -> Manifest:
    return {"matchExpressions": [{"key": k, "operator": op, "values": v} for k, op, v in requirements]}


def claim_template(scenario: Scenario, names: Names) -> Manifest | None:
    """The volumeClaimTemplate, from the backend's planned claim (class, size, access modes, selector)."""
    claim = backend_for(scenario.storage).planned_claim(scenario.storage, scenario.name, names.namespace)
    if claim is None:
        return None
    spec: Manifest = {
        "accessModes": list(claim.access_modes),
        "volumeMode": claim.volume_mode,
        "resources": {"requests": {"storage": exact_quantity(claim.request_bytes)}},
    }
    if claim.storage_class is not None:
        spec["storageClassName"] = claim.storage_class
    if claim.selector is not None:
        spec["selector"] = {"matchLabels": dict(claim.selector)}
    return {"metadata": {"name": names.claim_template, "labels": names.labels()}, "spec": spec}


def claim_manifest(scenario: Scenario, names: Names) -> Manifest | None:
    """The StatefulSet's claim, created ahead of it under the name its volumeClaimTemplate gives the pod's claim
    (the controller then uses it as is): fio measures exactly the volume Prometheus will get."""
    template = claim_template(scenario, names)
    if template is None:
        return None
    labels = {**template["metadata"]["labels"], **names.selector()}
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": object_meta(names.claim, names, names.namespace, labels),
        "spec": template["spec"],
    }
