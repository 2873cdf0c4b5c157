"""Every name a run's Kubernetes objects get, derived from the scenario and the run id, and the marks they all carry:
the managed-by and run-id labels, the owner label and annotations, the cordon annotations on a node; the namespace.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.kube.inventory import Manifest
from harness.ownership import OWNER_LABEL, RunOwner
from harness.storage.base import operator_claim_name

MANAGED_BY = ("app.kubernetes.io/managed-by", "prom-storage-harness")
RUN_ID_LABEL = "harness/run-id"
# On a node a run cordoned (and only while it is cordoned by it): which run, and whose, so cleanup can uncordon it.
CORDONED_BY = "harness/cordoned-by"
CORDONED_OWNER = "harness/cordoned-owner"


@dataclass(frozen=True)
class Names:
    """Every name the runtime uses, derived from the scenario and the run id."""

    scenario: str
    run_id: str
    owner: RunOwner | None = None

    @property
    def namespace(self) -> str:
        return f"harness-{self.run_id}"

    @property
    def statefulset(self) -> str:
        return f"prometheus-{self.scenario}"

    @property
    def pod(self) -> str:
        return f"{self.statefulset}-0"

    @property
    def claim_template(self) -> str:
        return f"prometheus-{self.scenario}-db"

    @property
    def claim(self) -> str:
        return operator_claim_name(self.scenario)

    @property
    def config_map(self) -> str:
        return f"prometheus-{self.scenario}-config"

    @property
    def prometheus(self) -> str:
        """Operator mode: the Prometheus resource, named so the operator's StatefulSet, pod and claim get the
        names above (``prometheus-<name>``, ``prometheus-<name>-0``, ``prometheus-<name>-db-...``)."""
        return self.scenario

    @property
    def scrape_secret(self) -> str:
        """Operator mode: the Secret holding the scrape jobs the operator adds to its generated config."""
        return f"prometheus-{self.scenario}-harness-scrape"

    def labels(self) -> dict[str, str]:
        owner = {OWNER_LABEL: self.owner.label} if self.owner is not None else {}
        return {MANAGED_BY[0]: MANAGED_BY[1], RUN_ID_LABEL: self.run_id, **owner}

    def annotations(self) -> dict[str, str]:
        return self.owner.annotations() if self.owner is not None else {}

    def cordon_annotations(self, cordoned: bool) -> dict[str, str | None]:
        """Set on a node with the run's cordon, removed with its uncordon."""
        if not cordoned:
            return {CORDONED_BY: None, CORDONED_OWNER: None}
        owner = {CORDONED_OWNER: self.owner.label} if self.owner is not None else {}
        return {CORDONED_BY: self.run_id, **owner}

    def selector(self) -> dict[str, str]:
        return {"app.kubernetes.io/name": "prometheus", "app.kubernetes.io/instance": self.scenario}


def nobody_container_security() -> Manifest:
    """A helper container of the harness that needs nothing: uid/gid nobody, read-only root, no privileges."""
    return {
        "runAsUser": 65534,
        "runAsGroup": 65534,
        "runAsNonRoot": True,
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
    }


def object_meta(name: str, names: Names, namespace: str | None = None, extra: dict[str, str] | None = None) -> Manifest:
    """An object's metadata: ``name``, the run's labels over ``extra`` ones, its owner annotations, ``namespace``."""
    meta: Manifest = {"name": name, "labels": {**(extra or {}), **names.labels()}}
    if names.annotations():
        meta["annotations"] = names.annotations()
    if namespace is not None:
        meta["namespace"] = namespace
    return meta


def namespace_manifest(names: Names) -> Manifest:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": object_meta(names.namespace, names)}
