"""What a run creates in the cluster and deletes again, with its ownership: the run's namespace (``harness-<run_id>``),
the StorageClass and PersistentVolume its storage backend plans, and the claim the StatefulSet will use.

Each object is registered in ``Created`` before its create call, so an interrupt in between still cleans it up;
``RunResources.delete_created`` (the runtime's ``stop``) deletes exactly what is registered, and a PV or class only
when it carries this run's id: one that existed before, or that someone recreated since, is never touched. A PV the
run's claim was bound to but the run did not create (a provisioner made it) is never deleted by the harness, only
waited for when its reclaimPolicy (Delete) has it deleted with the claim.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from harness.errors import InfraError
from harness.kube.api import KubeApi
from harness.kube.inventory import PvInfo
from harness.runtime.deployments import Deployment
from harness.runtime.kube_fill import PodFill
from harness.runtime.manifests.common import RUN_ID_LABEL, Names, namespace_manifest
from harness.runtime.manifests.volumes import claim_manifest, storage_class_manifest, volume_manifest
from harness.scenario.model import Scenario
from harness.storage.base import AnyBackend

log = logging.getLogger(__name__)

NAMESPACE_READY_S = 60.0  # the namespace's default ServiceAccount appears within a second or two
DELETE_TIMEOUT_S = 120.0  # a pod's grace period (30 s) plus volume teardown, with room


@dataclass
class Created:
    """What this run created, in creation order: ``stop`` deletes these and nothing else."""

    namespace: str | None = None
    volumes: list[str] = field(default_factory=list)
    storage_classes: list[str] = field(default_factory=list)
    # PVs bound to this run's claim that the run did not create (a provisioner made them for it, or they existed):
    # never deleted by us, only waited for when their reclaimPolicy (Delete) has them deleted with the claim.
    provisioned: list[str] = field(default_factory=list)


class RunResources:
    """The run's namespace, volume, class and claim: created once (``provision``), deleted by ``delete_created``."""

    def __init__(
        self, api: KubeApi, scenario: Scenario, names: Names, backend: AnyBackend, deployment: Deployment
    ) -> None:
        self.api, self.scenario, self.names, self.backend = api, scenario, names, backend
        self.deployment = deployment
        self.created = Created()
        self.provisioned = False  # provision ran (start runs it unless the pipeline did)

    def ensure_namespace(self) -> str:
        """The run's namespace, created on first use (the scrape exporter needs it before Prometheus starts): the
        first object a run creates, so the deployment's preflight (e.g. the operator's CRD) comes before it."""
        if self.created.namespace is None:
            self.deployment.preflight()
            self.created.namespace = self.names.namespace
            self.api.create(namespace_manifest(self.names))
            self.api.wait_service_account(self.names.namespace, timeout_s=NAMESPACE_READY_S)
        return self.names.namespace

    def provision(self) -> None:
        """The run's namespace, the StorageClass and PV the backend plans, and the claim the StatefulSet will use
        (created ahead of it, so fio measures that very volume first); once."""
        names, api = self.names, self.api
        if self.provisioned:
            return
        pv = volume_manifest(self.scenario, names)
        if pv is not None and api.exists("PersistentVolume", pv["metadata"]["name"]):
            raise InfraError(
                f"PersistentVolume {pv['metadata']['name']} already exists and was not created by this run; the "
                "harness never reuses or deletes a PV it did not create: delete it (if it is a leftover of an earlier "
                "run) or set storage.volume.name to another name, or storage.volume.create: false to use it"
            )
        # Each object is registered before its create call, so an interrupt in between still cleans it up; stop()
        # deletes only objects that carry this run's id, so a create that failed leaves nothing of anyone's at risk.
        self.ensure_namespace()
        wanted = self.backend.class_to_create(self.scenario.storage)
        if wanted is not None and not api.exists("StorageClass", wanted.name):
            self.created.storage_classes.append(wanted.name)
            api.create(storage_class_manifest(wanted, names))
        if pv is not None:
            self.created.volumes.append(pv["metadata"]["name"])
            api.create(pv)
        claim = claim_manifest(self.scenario, names)
        if claim is not None:
            api.create(claim)  # in the run's namespace: deleted with it
        self.provisioned = True

    def delete_created(self, filler: PodFill | None) -> None:
        """``stop``'s deletions, each step on its own: an ``InfraError`` naming every step that failed."""
        errors: list[str] = []
        try:
            if filler is not None:
                filler.free()  # the namespace's deletion would too (the fill pod's trap), but unchecked
        except InfraError as e:
            errors.append(str(e))
        if self.created.namespace is not None:
            try:
                self.claimed_volume()  # before the claim goes with the namespace: a PV made for it is waited for
            except InfraError as e:
                errors.append(f"could not read which PV the run's claim is bound to: {e}")
            try:
                # The owner first, while whoever reconciles it (the operator) still runs; then everything else.
                self.deployment.delete(DELETE_TIMEOUT_S)
            except InfraError as e:
                errors.append(str(e))
            try:
                self.api.delete("Namespace", self.created.namespace, wait_s=DELETE_TIMEOUT_S)
                self.created.namespace = None
            except InfraError as e:
                errors.append(str(e))
        for name in list(self.created.provisioned):
            errors += self._await_reclaimed(name)
        for name in list(self.created.volumes):
            errors += self._delete_owned("PersistentVolume", name, self.created.volumes)
        for name in list(self.created.storage_classes):
            errors += self._delete_owned("StorageClass", name, self.created.storage_classes)
        if errors:
            raise InfraError("could not remove everything this run created in the cluster:\n" + "\n".join(errors))

    def claimed_volume(self) -> PvInfo | None:
        """The PV the run's claim is bound to; one the run did not create is noted as provisioned for it."""
        claim = self.api.read_pvc(self.names.namespace, self.names.claim)
        pv = self.api.read_pv(claim.volume_name) if claim is not None and claim.volume_name else None
        if pv is not None and pv.name not in self.created.volumes and pv.name not in self.created.provisioned:
            self.created.provisioned.append(pv.name)
        return pv

    def volume_fate(self) -> str:
        """What deleting the run's claim does to the volume it is bound to, for the fault's record."""
        pv = self.claimed_volume()
        if pv is None:
            return ""
        if pv.reclaim_policy == "Delete":
            return (
                f"; pv/{pv.name} has reclaimPolicy Delete: deleting the claim deletes it and the TSDB on it, "
                "the new claim gets a new, empty volume and the history is lost"
            )
        return (
            f"; pv/{pv.name} (reclaimPolicy {pv.reclaim_policy}) is Released and still carries claimRef "
            f"{pv.claim_ref} of the deleted claim: no new claim binds it, the history stays there"
        )

    def _await_reclaimed(self, name: str) -> list[str]:
        """A PV the run's claim was bound to, not created by the run: with reclaimPolicy Delete it goes with the
        claim, so wait for its provisioner to delete it (its data too); with Retain it is left as it is, with its
        data, for whoever owns it to decide."""
        pv = self.api.read_pv(name)
        self.created.provisioned.remove(name)
        if pv is None:
            return []
        if pv.reclaim_policy != "Delete":
            log.warning(
                "pv/%s, bound to this run's claim but not created by the run, is left %s (reclaimPolicy %s): its "
                "data stays until someone deletes it",
                name,
                pv.phase,
                pv.reclaim_policy,
            )
            return []
        try:
            self.api.wait_gone("PersistentVolume", name, timeout_s=DELETE_TIMEOUT_S)
        except InfraError as e:
            return [f"the provisioner did not delete pv/{name} after its claim was deleted (reclaimPolicy Delete): {e}"]
        return []

    def _delete_owned(self, kind: str, name: str, registry: list[str]) -> list[str]:
        try:
            labels = self.api.labels_of(kind, name)
            if labels is not None and labels.get(RUN_ID_LABEL) != self.names.run_id:
                # Not ours (our create failed, or someone recreated it since): never touched.
                registry.remove(name)
                log.info("%s %s does not carry %s=%s; left alone", kind, name, RUN_ID_LABEL, self.names.run_id)
                return []
            self.api.delete(kind, name, wait_s=DELETE_TIMEOUT_S)
            registry.remove(name)
        except InfraError as e:
            return [str(e)]
        return []
