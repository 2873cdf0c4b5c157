"""How the kubernetes runtime puts Prometheus in the cluster (``prometheus.deploy``): its own StatefulSet in the
prometheus-operator's shape, or a ``monitoring.coreos.com/v1`` Prometheus resource that a running operator turns
into that StatefulSet. Either way the pod, its container and its claim have the same names, so the runtime's faults,
waits and checks act on the pod whoever owns it; only creating, deleting and scaling the owner differ. How long the
operator gets to make the StatefulSet is the runtime's to say (``Settings.k8s_operator_wait_s``).
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from harness.errors import InfraError, WaitTimeout
from harness.kube.api import KubeApi
from harness.kube.inventory import PROMETHEUS_CRD
from harness.runtime.manifests.common import Names
from harness.runtime.manifests.prometheus import (
    config_manifest,
    prometheus_resource,
    scrape_secret_manifest,
    statefulset_manifest,
)
from harness.scenario.model import Scenario
from harness.settings import DEFAULT_OPERATOR_WAIT_S
from harness.wait import wait_for

log = logging.getLogger(__name__)


class Deployment(Protocol):
    """The object that owns the Prometheus pod, and what the runtime does to it."""

    owner: str  # how the record names it, e.g. "StatefulSet" or "Prometheus resource"
    data_subdir: str  # where in the volume Prometheus' data directory is ("" for the volume's root)

    def preflight(self) -> None:
        """Refuse (``InfraError``) before anything is created when the cluster cannot take this deployment."""

    def create(self, extra_scrape_configs: list[dict[str, Any]]) -> None:
        """Everything the pod needs (config) and its owner, once the run's namespace and claim exist."""

    def delete(self, wait_s: float) -> None:
        """Delete the owner (its StatefulSet and pod go with it), waiting until it is gone."""

    def recreate(self) -> None:
        """Create the owner again after ``delete`` (the config created with it stays)."""

    def scale(self, replicas: int) -> None:
        """Set the StatefulSet's replicas through whoever owns it."""


class StatefulSetDeployment:
    """The harness' own ConfigMap and StatefulSet (with the fault layer's sidecar given ``layer_image``)."""

    owner = "StatefulSet"
    data_subdir = ""  # --storage.tsdb.path is the mount point

    def __init__(
        self, api: KubeApi, scenario: Scenario, names: Names, tools_image: str | None, layer_image: str | None = None
    ) -> None:
        self.api, self.scenario, self.names, self.tools_image = api, scenario, names, tools_image
        self.layer_image = layer_image

    def preflight(self) -> None:
        pass

    def create(self, extra_scrape_configs: list[dict[str, Any]]) -> None:
        self.api.create(config_manifest(self.scenario, self.names, extra_scrape_configs))
        self.recreate()

    def delete(self, wait_s: float) -> None:
        self.api.delete("StatefulSet", self.names.statefulset, self.names.namespace, wait_s=wait_s)

    def recreate(self) -> None:
        self.api.create(
            statefulset_manifest(self.scenario, self.names, tools_image=self.tools_image, layer_image=self.layer_image)
        )
        log.info("created StatefulSet %s/%s", self.names.namespace, self.names.statefulset)

    def scale(self, replicas: int) -> None:
        self.api.scale_statefulset(self.names.namespace, self.names.statefulset, replicas)


class OperatorDeployment:
    """A Prometheus resource (and the Secret with the harness' scrape jobs) for a running prometheus-operator,
    which makes the StatefulSet ``prometheus-<name>`` and its config; the resource's spec is the statefulset mode's
    pod, as ``harness.runtime.manifests.prometheus.prometheus_resource`` writes it."""

    owner = "Prometheus resource"
    data_subdir = "prometheus-db"  # the operator mounts the claim's subPath prometheus-db

    def __init__(
        self, api: KubeApi, scenario: Scenario, names: Names, tools_image: str | None, reconcile_timeout_s: float
    ) -> None:
        self.api, self.scenario, self.names, self.tools_image = api, scenario, names, tools_image
        self.reconcile_timeout_s = reconcile_timeout_s  # seconds the operator gets to make the StatefulSet

    def preflight(self) -> None:
        if not self.api.exists("CustomResourceDefinition", PROMETHEUS_CRD):
            raise InfraError(
                f"prometheus.deploy: operator, but the Prometheus CRD is not installed ({PROMETHEUS_CRD} not found "
                f"via {self.api.where}): install the prometheus-operator (its CRDs and a running operator) or use "
                "prometheus.deploy: statefulset"
            )

    def create(self, extra_scrape_configs: list[dict[str, Any]]) -> None:
        self.api.create(scrape_secret_manifest(self.names, extra_scrape_configs))
        self.recreate()

    def delete(self, wait_s: float) -> None:
        names = self.names
        # Foreground: the API server removes the operator's StatefulSet (owned by the resource) before the resource.
        self.api.delete("Prometheus", names.prometheus, names.namespace, wait_s=wait_s)
        self.api.wait_gone("StatefulSet", names.statefulset, names.namespace, timeout_s=wait_s)

    def recreate(self) -> None:
        names = self.names
        self.api.create(prometheus_resource(self.scenario, names, tools_image=self.tools_image, scrape_secret=True))
        log.info("created Prometheus %s/%s", names.namespace, names.prometheus)
        try:
            wait_for(
                lambda: self.api.exists("StatefulSet", names.statefulset, names.namespace),
                what=f"the prometheus-operator to create StatefulSet {names.namespace}/{names.statefulset}",
                timeout_s=self.reconcile_timeout_s,
                interval_s=0.5,
            )
        except WaitTimeout as e:
            raise InfraError(
                f"no operator reconciled the Prometheus resource {names.namespace}/{names.prometheus} within "
                f"{self.reconcile_timeout_s:g} s (no StatefulSet {names.statefulset}): is a prometheus-operator "
                f"running and watching namespace {names.namespace}? ({e})"
            ) from e

    def scale(self, replicas: int) -> None:
        # The operator owns the StatefulSet and puts its replicas back: the resource's spec is what to change.
        self.api.patch_prometheus(self.names.namespace, self.names.prometheus, {"replicas": replicas})


def deployment_for(
    api: KubeApi,
    scenario: Scenario,
    names: Names,
    tools_image: str | None,
    layer_image: str | None = None,
    *,
    operator_wait_s: float = DEFAULT_OPERATOR_WAIT_S,
) -> Deployment:
    """The deployment ``prometheus.deploy`` names; in operator mode the operator gets ``operator_wait_s`` to make
    the StatefulSet of the run's Prometheus resource."""
    if layer_image is not None:
        # Refused earlier for operator mode (KubernetesRuntime): only the harness' own StatefulSet carries the layer.
        return StatefulSetDeployment(api, scenario, names, tools_image, layer_image)
    if scenario.prometheus.deploy == "operator":
        return OperatorDeployment(api, scenario, names, tools_image, operator_wait_s)
    return StatefulSetDeployment(api, scenario, names, tools_image)
