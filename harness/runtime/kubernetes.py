"""The kubernetes runtime: Prometheus deployed in a cluster the way kube-prometheus-stack's operator deploys it, and
the runtime's primitives (delete the pod, cordon, scale, reinstall) played on the real objects.

A run gets a namespace of its own (``harness-<run_id>``) holding a ConfigMap with the generated config and a
one-replica StatefulSet ``prometheus-<scenario>`` whose volumeClaimTemplate ``prometheus-<scenario>-db`` makes the
operator's claim name; the storage backend plans the PersistentVolume (and any StorageClass it needs) the doctor
simulated. Everything carries the managed-by and run-id labels, and ``stop`` deletes exactly what ``start``
created, each registered before its create call: a PV or StorageClass that existed before is never touched. The
manifests are built by ``harness.runtime.manifests``; ``harness.kube`` makes the calls. With ``prometheus.deploy:
operator`` a Prometheus resource takes the place of the ConfigMap and StatefulSet, and a running prometheus-operator
makes a StatefulSet of the same name (``harness.runtime.deployments``): everything else acts on its pod unchanged.

The capabilities it hands out to faults (signal, nodes, the kubelet, the fault layer, the volume fill, the export)
are in ``harness.runtime.kube_capabilities``; the pod gets a sidecar only for those a run's faults need.

Settings that describe the harness host and cluster, not the scenario, come from the environment:
``HARNESS_K8S_REACH`` (``auto``: the pod IP when this host routes to it, else the API server's pod proxy;
``pod-ip``; ``api-proxy``), ``HARNESS_K8S_TOOLS_IMAGE`` (an image with a static ``/bin/busybox``, for signal
faults, fio pods, disk_full's fill pod and scrape mode's exporter pod; default the local cluster's
``localhost/harness/tools:latest``, e.g. ``busybox:1.36`` elsewhere), ``HARNESS_K8S_FIO_IMAGE`` (any image with
``fio`` on its PATH; default ``localhost/harness/fio:latest``) and ``HARNESS_K8S_WRITER_IMAGE`` (a sharded write
load's writer pods and the fault layer's sidecar: an image with ``python3`` and this harness installed, and libfuse3
for the layer; default ``localhost/harness/writer:latest``); in operator mode ``HARNESS_K8S_OPERATOR_WAIT`` (seconds
the operator gets to make the StatefulSet of the run's Prometheus resource; default 60).
"""

from __future__ import annotations

import logging
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

from harness.capabilities import Capability
from harness.capabilities.export import ExportReach
from harness.capabilities.fault_layer import FaultLayerControl
from harness.capabilities.kubelet import KubeletControl
from harness.capabilities.nodes import NodeLifecycle
from harness.capabilities.signals import SignalControl
from harness.capabilities.volume_fill import VolumeFiller
from harness.errors import InfraError, NotRecovered, UsageError, WaitTimeout
from harness.kube.api import KubeApi
from harness.kube.contexts import load_inventory
from harness.kube.inventory import KubeInventory, PvInfo
from harness.kube.pods import PodInfo
from harness.kube.proxy import PodProxy
from harness.ownership import RunOwner
from harness.prom import PromClient
from harness.promlog import storage_errors, wal_replay_durations_s
from harness.results.model import ClusterFacts, FioJobResult, NodeFacts, VolumeFacts
from harness.runtime.base import (
    NotReady,
    Recovery,
    Runtime,
    StageMark,
    StorageDescription,
    not_ready,
    not_recovered_on_timeout,
)
from harness.runtime.deployments import deployment_for
from harness.runtime.kube_capabilities import (
    KubeExport,
    KubeFaultLayer,
    KubeKubelet,
    KubeNodes,
    KubeSignals,
    KubeVolumeFill,
)
from harness.runtime.kube_fill import PodFill
from harness.runtime.kube_fio import PodFio
from harness.runtime.manifests.common import RUN_ID_LABEL, Names, namespace_manifest
from harness.runtime.manifests.prometheus import (
    CONTAINER,
    PORT,
)
from harness.runtime.manifests.volumes import claim_manifest, storage_class_manifest, volume_manifest
from harness.scenario.model import FioJob, Scenario, TsdbLoad
from harness.stages import StageId
from harness.storage import backend_for
from harness.wait import wait_for

if TYPE_CHECKING:
    from harness.loads.shards import ShardLauncher
    from harness.loads.tsdb_scrape import ScrapeExporter

log = logging.getLogger(__name__)

DEFAULT_TOOLS_IMAGE = "localhost/harness/tools:latest"
DEFAULT_WRITER_IMAGE = "localhost/harness/writer:latest"
DEFAULT_FIO_IMAGE = "localhost/harness/fio:latest"
HTTP_TIMEOUT_S = 2.0
CONNECT_TIMEOUT_S = 1.0
NAMESPACE_READY_S = 60.0  # the namespace's default ServiceAccount appears within a second or two
LAYER_COMMAND_TIMEOUT_S = 60.0  # python's start in the sidecar, then a command the layer answers at once
DELETE_TIMEOUT_S = 120.0  # a pod's grace period (30 s) plus volume teardown, with room
Reach = Literal["auto", "pod-ip", "api-proxy"]


def _reach_from_env() -> Reach:
    value = os.environ.get("HARNESS_K8S_REACH", "auto")
    for option in get_args(Reach):
        if value == option:
            return option  # type: ignore[no-any-return]  # one of Reach's own values
    raise UsageError(f"HARNESS_K8S_REACH={value!r}: use auto, pod-ip or api-proxy")


# --- the runtime ---------------------------------------------------------------------------------------------


@dataclass
class Created:
    """What this run created, in creation order: ``stop`` deletes these and nothing else."""

    namespace: str | None = None
    volumes: list[str] = field(default_factory=list)
    storage_classes: list[str] = field(default_factory=list)
    # PVs bound to this run's claim that the run did not create (a provisioner made them for it, or they existed):
    # never deleted by us, only waited for when their reclaimPolicy (Delete) has them deleted with the claim.
    provisioned: list[str] = field(default_factory=list)


class KubernetesRuntime(Runtime):
    name = "kubernetes"
    offers = frozenset({SignalControl, NodeLifecycle, KubeletControl, VolumeFiller, ExportReach, FaultLayerControl})

    def __init__(
        self,
        scenario: Scenario,
        run_id: str,
        *,
        logs_dir: Path,
        kubeconfig: str | None = None,
        context: str | None = None,
        owner: RunOwner | None = None,
        needs: frozenset[type[Capability]] = frozenset(),
        tools_image: str | None = None,
        reach: Reach | None = None,
        api: KubeApi | None = None,
    ) -> None:
        refuse_unsupported(scenario)
        self.scenario = scenario
        self.backend = backend_for(scenario.storage)
        fills = VolumeFiller in needs
        layer_image = self._layer_image(scenario) if FaultLayerControl in needs else None
        if fills and self.backend.pod_volume(scenario.storage) is not None:
            raise UsageError(
                "disk_full fills the filesystem under Prometheus' data directory, and the harness fills only a "
                f"filesystem of the volume's own: {scenario.storage.backend} storage is an emptyDir, a directory "
                "of the node's own filesystem that no other pod can mount; use a PersistentVolume (e.g. backend: "
                "local on a disk or loop device of its own)"
            )
        self.names = Names(scenario.name, run_id, owner)
        self.logs_dir = logs_dir
        self.kubeconfig = kubeconfig
        self.context = context  # None: the kubeconfig's current-context (the pipeline always names one)
        # The sidecar only where a fault needs to signal Prometheus: other runs get the operator's pod unchanged.
        tools_image = tools_image or os.environ.get("HARNESS_K8S_TOOLS_IMAGE") or DEFAULT_TOOLS_IMAGE
        self.tools_image = tools_image if SignalControl in needs else None
        self.exporter_image = tools_image  # scrape mode's exporter runs on the same busybox
        self.reach: Reach = reach or _reach_from_env()
        self._proxy: PodProxy | None = None
        self.api = api if api is not None else KubeApi(kubeconfig, context=context)
        self.created = Created()
        self.deployment = deployment_for(self.api, scenario, self.names, self.tools_image, layer_image)
        self._layered = layer_image is not None
        self.fio = PodFio(
            self.api,
            scenario,
            self.names,
            fio_image=os.environ.get("HARNESS_K8S_FIO_IMAGE") or DEFAULT_FIO_IMAGE,
            tools_image=tools_image,
        )
        self.filler = PodFill(self.api, scenario, self.names, tools_image=tools_image) if fills else None
        made: dict[type[Capability], Capability | None] = {
            SignalControl: KubeSignals(self) if self.tools_image is not None else None,
            FaultLayerControl: KubeFaultLayer(self) if layer_image is not None else None,
            NodeLifecycle: KubeNodes(self) if NodeLifecycle in needs else None,
            KubeletControl: KubeKubelet(self) if KubeletControl in needs else None,
            VolumeFiller: KubeVolumeFill(self, self.filler) if self.filler is not None else None,
            ExportReach: KubeExport(self) if ExportReach in needs else None,
        }
        self.handed_out = {kind: c for kind, c in made.items() if c is not None}
        self.cordoned: list[str] = []  # nodes cordoned through this runtime and not uncordoned yet
        self.pod: PodInfo | None = None
        self._scaled_down_from: PodInfo | None = None  # the pod a scale to 0 removed, until scaled back
        self._url: str | None = None
        self._version: str | None = None
        self._expect_restarts = 0  # a signal fault: the container's restartCount to reach
        self._ready_uid: str | None = None  # the pod that was last ready: tells a new pod from a restarted container
        self._nodes_seen: list[str] = []  # the nodes Prometheus was ready on, in order
        self.lost_nodes: list[str] = []  # nodes stopped through this runtime and not started again yet
        self._provisioned = False  # provision_storage ran (start runs it unless the pipeline did)
        self._stale_container = ""  # the container that died with its node: not Prometheus back, whatever the API says
        self._signalled_at = 0.0  # when the last signal fault's exec returned: the signalled process scrapes no more

    # --- storage -----------------------------------------------------------------------------------------------

    def cluster_facts(self) -> ClusterFacts | None:
        """The server's version, the nodes Prometheus ran on (kernel, kubelet, container runtime), and the volume
        its claim is bound to with its class: what a comparison of runs on different clusters must know."""
        api, names = self.api, self.names
        by_name = {n.name: n for n in api.nodes()}
        nodes = [
            NodeFacts(
                name=name,
                kernel=node.kernel,
                kubelet=node.kubelet,
                container_runtime=node.container_runtime,
                os_image=node.os_image,
            )
            for name in self._nodes_seen
            if (node := by_name.get(name)) is not None
        ]
        volume = None
        claim = api.read_pvc(names.namespace, names.claim) if self.created.namespace else None
        if claim is not None:
            pv = api.read_pv(claim.volume_name) if claim.volume_name else None
            class_name = claim.storage_class or (pv.storage_class if pv else "")
            sc = api.read_storage_class(class_name) if class_name else None
            volume = VolumeFacts(
                claim=f"{claim.namespace}/{claim.name}",
                pv=pv.name if pv else None,
                source=(pv.source or None) if pv else None,
                capacity_bytes=pv.capacity_bytes if pv else None,
                reclaim_policy=pv.reclaim_policy if pv else None,
                storage_class=class_name or None,
                provisioner=sc.provisioner if sc else None,
                class_parameters=dict(sc.parameters) if sc else {},
                volume_binding_mode=sc.volume_binding_mode if sc else None,
            )
        return ClusterFacts(server_version=api.server_version(), nodes=nodes, volume=volume)

    def doctor_inventory(self) -> KubeInventory | None:
        """The live cluster, as `harness doctor --kubeconfig` reads it, seen from the run's own namespace."""
        return load_inventory(self.kubeconfig, namespace=self.names.namespace, context=self.context)

    def provision_storage(self) -> StorageDescription:
        """The run's namespace, the StorageClass and PV the backend plans, and the claim the StatefulSet will use
        (created ahead of it, so fio measures that very volume first)."""
        names, api = self.names, self.api
        if self._provisioned:
            return self._described()
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
        self._provisioned = True
        return self._described()

    def _described(self) -> StorageDescription:
        layer = (
            "Prometheus' data directory under the fault layer (harness.fault_fuse, FUSE, in a privileged sidecar of "
            "its pod); fio not"
            if self._layered
            else None
        )
        return StorageDescription(self.backend.cluster_description(self.scenario.storage), access=layer)

    # --- fio ---------------------------------------------------------------------------------------------------

    def fio_target(self) -> str:
        return f"{self.fio.volume()}, in pods"

    def run_fio(self, job: FioJob, out_dir: Path) -> FioJobResult:
        return self.fio.run(job, out_dir)

    def fio_version(self) -> str | None:
        return self.fio.version()

    # --- lifecycle ---------------------------------------------------------------------------------------------

    def start(self, extra_scrape_configs: list[dict[str, Any]]) -> None:
        self.provision_storage()
        self.deployment.create(extra_scrape_configs)
        self.wait_recovered(self.scenario.prometheus.ready_timeout_s)

    def ensure_namespace(self) -> str:
        """The run's namespace, created on first use (the scrape exporter needs it before Prometheus starts): the
        first object a run creates, so the deployment's preflight (e.g. the operator's CRD) comes before it."""
        if self.created.namespace is None:
            self.deployment.preflight()
            self.created.namespace = self.names.namespace
            self.api.create(namespace_manifest(self.names))
            self.api.wait_service_account(self.names.namespace, timeout_s=NAMESPACE_READY_S)
        return self.names.namespace

    def scrape_exporter(self, load: TsdbLoad, run_id: str) -> ScrapeExporter:
        """Scrape mode: the exporter as a pod of the run's namespace, as pods here may not reach this host."""
        from harness.runtime.cluster_exporter import ClusterExporter

        return ClusterExporter(
            load,
            run_id,
            api=self.api,
            names=self.names,
            image=self.exporter_image,
            logs_dir=self.logs_dir,
            namespace=self.ensure_namespace,
            scraper=self._scraper,
        )

    def writer_shards(self) -> ShardLauncher:
        """A sharded write load: the pods of an indexed Job in the run's namespace (``harness.runtime.kube_shards``)."""
        from harness.runtime.kube_shards import JobShards

        image = os.environ.get("HARNESS_K8S_WRITER_IMAGE") or DEFAULT_WRITER_IMAGE
        return JobShards(self.api, self.names, image, self.ensure_namespace, self.logs_dir)

    def _scraper(self) -> tuple[str, float]:
        """Scrape mode: the current Prometheus pod's IP, and since when only the current container scrapes from it
        (a new pod has a new IP; a signalled container stops scraping once the signal is delivered)."""
        return (self.pod.ip if self.pod is not None else "", self._signalled_at)

    def stop(self) -> None:
        """Delete the namespace (with it the claim: a PV a provisioner made for it with reclaimPolicy Delete is waited
        for, never deleted by us), our PVs and StorageClasses, each step on its own; then close the pod proxy and the
        API client, also when a step failed (its error still propagates)."""
        try:
            self._delete_created()
        finally:
            # A failed stop is the run's last word on the cluster: nothing retries through this runtime, so its
            # proxy's listening socket and the API client's connection pools would otherwise stay open until exit.
            try:
                if self._proxy is not None:
                    self._proxy.close()
                    self._proxy = None
            finally:
                self.pod, self._url = None, None
                self.api.close()

    def _delete_created(self) -> None:
        """``stop``'s deletions, each step on its own: an ``InfraError`` naming every step that failed."""
        errors: list[str] = []
        self._save_log()
        try:
            if self.filler is not None:
                self.filler.free()  # the namespace's deletion would too (the fill pod's trap), but unchecked
        except InfraError as e:
            errors.append(str(e))
        if self.created.namespace is not None:
            try:
                self._claimed_volume()  # before the claim goes with the namespace: a PV made for it is waited for
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

    def _claimed_volume(self) -> PvInfo | None:
        """The PV the run's claim is bound to; one the run did not create is noted as provisioned for it."""
        claim = self.api.read_pvc(self.names.namespace, self.names.claim)
        pv = self.api.read_pv(claim.volume_name) if claim is not None and claim.volume_name else None
        if pv is not None and pv.name not in self.created.volumes and pv.name not in self.created.provisioned:
            self.created.provisioned.append(pv.name)
        return pv

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

    def _volume_fate(self) -> str:
        """What deleting the run's claim does to the volume it is bound to, for the fault's record."""
        pv = self._claimed_volume()
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

    def base_url(self) -> str | None:
        return self._url

    def instance(self) -> str:
        pod = self.pod
        if pod is None:
            return "(none)"
        c = pod.container(CONTAINER)
        restarts = max(c.restart_count if c is not None else 0, self._expect_restarts)
        return f"pod {pod.name} (uid {pod.uid[:8]}) on {pod.node or '(unscheduled)'}, container restart {restarts}"

    def version(self) -> str:
        if self._version is None:
            url = self._require_url()
            with PromClient(url, timeout_s=HTTP_TIMEOUT_S * 5) as client:
                self._version = client.build_version()
        return self._version

    def log_text(self) -> str:
        return self._current_log()

    # --- primitives for faults -----------------------------------------------------------------------------------

    def delete_pod(self) -> tuple[float, str]:
        pod = self.pod_going()
        injected = time.time()
        self.api.delete("Pod", pod.name, pod.namespace)
        self._await_new_pod(pod)
        kept = "the same claim" if self.backend.survives_new_pod else "a new, empty emptyDir"
        return injected, f"pod {pod.name} deleted on {pod.node}; the StatefulSet recreated it; the new pod gets {kept}"

    def reinstall(self) -> tuple[float, str]:
        pod = self.pod_going()
        names, api = self.names, self.api
        injected = time.time()
        self.deployment.delete(DELETE_TIMEOUT_S)
        api.wait_gone("Pod", names.pod, names.namespace, timeout_s=DELETE_TIMEOUT_S)
        claim = self.backend.planned_claim(self.scenario.storage, self.scenario.name, names.namespace)
        fate = ""
        if claim is not None:
            fate = self._volume_fate()
            api.delete("PersistentVolumeClaim", names.claim, names.namespace, wait_s=DELETE_TIMEOUT_S)
        self.deployment.recreate()
        self._await_new_pod(pod)
        return (
            injected,
            f"{self.deployment.owner} and claim deleted and created again (helm uninstall + install)" + fate,
        )

    def scale(self, replicas: int) -> tuple[float, str]:
        api = self.api
        injected = time.time()
        if replicas == 0:
            if self._scaled_down_from is not None:
                return injected, "already scaled to 0"
            pod = self.pod_going()
            self.deployment.scale(0)
            api.wait_gone("Pod", pod.name, pod.namespace, timeout_s=DELETE_TIMEOUT_S)
            self._scaled_down_from, self.pod = pod, None
            return injected, f"{self.deployment.owner} scaled to 0: pod {pod.name} on {pod.node} stopped and deleted"
        old = self._scaled_down_from
        if old is None:
            return injected, "already at 1 replica"
        self.deployment.scale(1)
        self._await_new_pod(old)
        self._scaled_down_from = None
        kept = "the same claim" if self.backend.survives_new_pod else "a new, empty emptyDir"
        return (
            injected,
            f"{self.deployment.owner} scaled back to 1: the new pod runs on {self.pod_node()} and gets {kept}",
        )

    @staticmethod
    def _layer_image(scenario: Scenario) -> str:
        """The fault layer's image for power_loss, io_errors, io_latency; UsageError where the scenario does not
        allow it."""
        if not scenario.prometheus.privileged_helper:
            raise UsageError(
                "power_loss, io_errors and io_latency on the kubernetes runtime put the fault layer (FUSE) under "
                "Prometheus' volume from a privileged sidecar in its pod; the scenario does not allow one: set "
                "prometheus.privileged_helper: true (the cluster must admit privileged pods), or use --runtime local"
            )
        if scenario.prometheus.deploy != "statefulset":
            raise UsageError(
                "power_loss, io_errors and io_latency on the kubernetes runtime need prometheus.deploy: statefulset "
                "(the fault layer's sidecar and the mount propagation to Prometheus' container are not passed "
                "through the operator)"
            )
        return os.environ.get("HARNESS_K8S_WRITER_IMAGE") or DEFAULT_WRITER_IMAGE

    def pod_node(self) -> str:
        return self._require_pod().node

    def node_cordoned(self, node: str) -> bool:
        return any(n.name == node and "cordoned" in n.why_unschedulable for n in self.api.nodes())

    def cordon(self, node: str) -> None:
        self.cordoned.append(node)
        # Marked with the run in the same patch: a killed run's cordon is one `harness cleanup` may undo.
        self.api.set_unschedulable(node, True, self.names.cordon_annotations(cordoned=True))

    def uncordon(self, node: str) -> None:
        self.api.set_unschedulable(node, False, self.names.cordon_annotations(cordoned=False))
        if node in self.cordoned:
            self.cordoned.remove(node)

    # --- what a capability did to the pod (harness.runtime.kube_capabilities) -----------------------------------

    def current_pod(self) -> PodInfo:
        """The pod Prometheus runs in; InfraError when there is none (the runtime was not started)."""
        return self._require_pod()

    def pod_going(self) -> PodInfo:
        """The current pod is about to be deleted: its log is kept (the pod takes it along) and its URL forgotten."""
        pod = self._require_pod()
        self._save_log()
        self._url = None
        return pod

    def container_going(self) -> PodInfo:
        """Prometheus' container is about to be killed in its pod: its log is kept, and the recovery wait expects the
        kubelet to restart it (the next restartCount)."""
        pod = self.pod_going()
        container = pod.container(CONTAINER)
        self._expect_restarts = (container.restart_count if container is not None else 0) + 1
        return pod

    def container_gone(self) -> None:
        """The signal (or cut) was delivered: from now the signalled process scrapes no more."""
        self._signalled_at = time.time()

    def node_going(self, node: str) -> None:
        """``node`` is about to be lost: a lost node's kubelet serves no logs, and the API goes on showing the dead
        container as running until the node is back, so only another container (a new ID) is Prometheus back."""
        pod = self.pod
        if pod is not None and pod.node == node:
            self._save_log()
            c = pod.container(CONTAINER)
            self._stale_container = c.container_id if c is not None else ""
            self._url = None
        self.lost_nodes.append(node)

    def node_back(self, node: str) -> None:
        if node in self.lost_nodes:
            self.lost_nodes.remove(node)

    def await_new_pod(self, old: PodInfo) -> PodInfo:
        """Wait until the StatefulSet has replaced ``old`` and the scheduler has decided (a node, or why not)."""
        self._await_new_pod(old)
        return self._require_pod()

    def _await_new_pod(self, old: PodInfo) -> None:
        self.pod = self.api.wait_pod(
            old.namespace,
            old.name,
            # Until the scheduler has decided (a node, or why not), so the record names where the pod went.
            lambda p: p.uid != old.uid and not p.deleting and bool(p.node or p.unschedulable),
            what=f"the StatefulSet to create a new pod {old.name} and the scheduler to place it",
            timeout_s=DELETE_TIMEOUT_S,
        )
        self._expect_restarts = 0

    # --- recovery ----------------------------------------------------------------------------------------------

    def wait_recovered(self, timeout_s: float) -> Recovery:
        deadline = time.monotonic() + timeout_s
        waited_since = time.time()

        def remaining() -> float:
            return max(0.1, deadline - time.monotonic())

        names = self.names
        with not_recovered_on_timeout():
            pod = self.api.wait_pod(
                names.namespace,
                names.pod,
                self._running,
                what=f"Prometheus in pod {names.namespace}/{names.pod} to run"
                + (f" (container restart {self._expect_restarts})" if self._expect_restarts else ""),
                timeout_s=remaining(),
                describe=self._describe,
            )
        self.pod = pod
        self._url = self._reach(pod)
        with PromClient(self._url, timeout_s=HTTP_TIMEOUT_S) as client, not_recovered_on_timeout():
            wait_for(
                client.healthy,
                what=f"Prometheus ({self.instance()}) to answer /-/healthy at {self._url}",
                timeout_s=remaining(),
                interval_s=0.05,
                describe=lambda: self._describe(self.api.read_pod(names.namespace, names.pod)),
            )
            up_at = time.time()
            try:
                wait_for(
                    client.ready,
                    what=f"Prometheus ({self.instance()}) to answer /-/ready at {self._url} (WAL replay)",
                    timeout_s=remaining(),
                    interval_s=0.05,
                )
            except WaitTimeout as e:
                raise self._not_ready(client, timeout_s, waited_since, up_at) from e
            ready_at = time.time()
        self.pod = self.api.read_pod(names.namespace, names.pod) or pod
        if self.pod.node and self.pod.node not in self._nodes_seen:
            self._nodes_seen.append(self.pod.node)
        stages = self._stages(self.pod, self._ready_uid)
        self._ready_uid = self.pod.uid
        replays = wal_replay_durations_s(self._current_log())
        return Recovery(up_at, ready_at, replays[-1] if replays else None, stages=stages)

    def _not_ready(self, client: PromClient, timeout_s: float, waited_since: float, up_at: float) -> NotReady:
        """Prometheus answered /-/healthy but not /-/ready in time: whether it still runs (the same container, still
        healthy), how far its replay got by its log, and the pod's state and events (a startup probe failing)."""
        names, was = self.names, self.pod
        pod = self.api.read_pod(names.namespace, names.pod)
        before = was.container(CONTAINER) if was is not None else None
        now = pod.container(CONTAINER) if pod is not None else None
        same = (
            pod is not None
            and was is not None
            and pod.uid == was.uid
            and now is not None
            and now.running
            and before is not None
            and now.restart_count == before.restart_count
        )
        stages = self._stages(pod, self._ready_uid) if pod is not None else ()
        return not_ready(
            self.instance(),
            timeout_s,
            waited_since_unix_s=waited_since,
            recovery=Recovery(up_at, None, None, stages=stages),
            still_healthy=same and client.healthy(),
            log_text=self._current_log(),
            more=f"the pod: {self._describe(pod)}",
        )

    def _stages(self, pod: PodInfo, previous_uid: str | None) -> tuple[StageMark, ...]:
        """The stages the API recorded on the way back, from its objects' own timestamps (whole seconds): for a
        new pod its creation, scheduling, volume attach and mount; for a container restarted in its pod the end of
        the old container; for both, the start of the new one."""
        marks: list[StageMark] = []

        def mark(stage: StageId, at: float | None, source: str) -> None:
            if at is not None:
                marks.append(StageMark(stage, at, f"API: {source}", resolution_s=1.0))

        c = pod.container(CONTAINER)
        if pod.uid == previous_uid:
            mark("container_ended", c.last_finished_unix_s if c else None, "lastState.terminated.finishedAt")
        else:
            mark("pod_created", pod.created_unix_s, "metadata.creationTimestamp of the new pod")
            mark("scheduled", pod.true_since.get("PodScheduled"), "condition PodScheduled")
            attached = self.api.event_times(pod.namespace, "Pod", pod.uid, "SuccessfulAttachVolume")
            mark("volume_attached", attached[-1] if attached else None, "event SuccessfulAttachVolume")
            mark(
                "volumes_mounted",
                pod.true_since.get("PodReadyToStartContainers"),
                "condition PodReadyToStartContainers",
            )
        mark("container_started", c.started_unix_s if c else None, "state.running.startedAt")
        return tuple(marks)

    def _running(self, pod: PodInfo) -> bool:
        """The Prometheus container runs (after the expected restart); raises on outcomes that will not change."""
        if pod.deleting:
            return False
        c = pod.container(CONTAINER)
        running = c is not None and c.running and bool(pod.ip) and c.restart_count >= self._expect_restarts
        if c is not None and running and (not self._stale_container or c.container_id != self._stale_container):
            self._stale_container = ""
            return True
        unavailable = [*self.cordoned, *self.lost_nodes]
        if "volume node affinity conflict" in pod.unschedulable and unavailable:
            raise NotRecovered(
                f"the pod cannot move: {pod.unschedulable}. Its PersistentVolume is pinned by nodeAffinity (a local "
                f"PV) to {', '.join(unavailable)} (cordoned or lost): Prometheus on a local PV cannot run anywhere "
                "else, so there is no Prometheus until that node is back"
            )
        claim_problem = self._stale_claim(pod)
        if claim_problem:
            raise NotRecovered(claim_problem)
        return False

    def _stale_claim(self, pod: PodInfo) -> str:
        """The field notes' redeploy trap: our PV is Released with the old claim's claimRef, the new claim Pending."""
        if pod.node or not self.created.volumes:
            return ""
        pv = self.api.read_pv(self.created.volumes[0])
        claim = self.api.read_pvc(self.names.namespace, self.names.claim)
        if pv is None or claim is None or claim.phase != "Pending" or pv.phase != "Released" or pv.claim_ref is None:
            return ""
        if pv.claim_ref.uid and pv.claim_ref.uid == claim.uid:
            return ""
        events = self.api.events(self.names.namespace, "PersistentVolumeClaim", claim.name)
        said = f" The claim's events: {events[-1]}." if events else ""
        return (
            f"claim {claim.namespace}/{claim.name} stays Pending: pv/{pv.name} is Released and still carries "
            f"claimRef {pv.claim_ref} from the deleted claim (reclaimPolicy {pv.reclaim_policy}); a Released PV is "
            f"not available to a new claim until its spec.claimRef is cleared or the PV is recreated.{said} "
            f"Scheduler: {pod.unschedulable or '(no message)'}"
        )

    def _describe(self, pod: PodInfo | None) -> str:
        if pod is None:
            return f"no pod {self.names.pod} in {self.names.namespace}"
        text = pod.brief()
        events = self.api.events(pod.namespace, "Pod", pod.name)
        if events:
            text += "; last events: " + " | ".join(events[-3:])
        errors = storage_errors(self._current_log())
        if errors:
            line, meaning = errors[0]
            text += f"; Prometheus: {meaning} ({line})"
        return text

    def _reach(self, pod: PodInfo) -> str:
        """The pod IP when this host can route to it (a refused connection counts: the host answered), else a
        local forwarder through the API server's pod proxy (the pod's name is stable, so it survives restarts)."""
        if self.reach != "api-proxy":
            try:
                with socket.create_connection((pod.ip, PORT), timeout=CONNECT_TIMEOUT_S):
                    pass
                return f"http://{pod.ip}:{PORT}"
            except ConnectionRefusedError:
                return f"http://{pod.ip}:{PORT}"
            except OSError as e:
                if self.reach == "pod-ip":
                    raise InfraError(
                        f"this host cannot reach pod {pod.namespace}/{pod.name} at {pod.ip}:{PORT} ({e}) and "
                        "HARNESS_K8S_REACH=pod-ip; unset it to go through the API server's pod proxy"
                    ) from e
                log.info("pod IP %s not reachable from here (%s): using the API server's pod proxy", pod.ip, e)
        if self._proxy is None:
            self._proxy = PodProxy(self.api, pod.namespace, pod.name, PORT)
        return self._proxy.url

    # --- logs ----------------------------------------------------------------------------------------------

    def _current_log(self) -> str:
        if self.created.namespace is None:
            return ""
        try:
            text = self.api.pod_log(self.names.namespace, self.names.pod, CONTAINER)
            # A container waiting to restart (CrashLoopBackOff) has no log of its own: its last run says why.
            return text or self.api.pod_log(self.names.namespace, self.names.pod, CONTAINER, previous=True)
        except InfraError:
            return ""

    def _save_log(self) -> None:
        """Keep the log of the container about to go (a deleted pod takes its logs with it)."""
        pod = self.pod
        if pod is None:
            return
        text = self._current_log()
        if not text:
            return
        c = pod.container(CONTAINER)
        restarts = c.restart_count if c is not None else 0
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        (self.logs_dir / f"prometheus-{pod.uid[:8]}-restart{restarts}.log").write_text(text)

    def _require_pod(self) -> PodInfo:
        if self.pod is None:
            raise InfraError("Prometheus is not running (the kubernetes runtime was not started)")
        return self.pod

    def _require_url(self) -> str:
        if self._url is None:
            raise InfraError("Prometheus is not reachable yet (no ready pod)")
        return self._url


def refuse_unsupported(scenario: Scenario) -> None:
    """What this runtime cannot do yet, refused before anything is created."""
    tsdb = scenario.loads.tsdb
    if tsdb is not None and tsdb.latency_s is not None:
        raise UsageError(
            "loads.tsdb.latency: only on the local runtime (the hop runs on this host; the writer pods send to "
            "Prometheus' Service directly, through whatever the cluster's network adds)"
        )
    refusal = backend_for(scenario.storage).cluster_refusal(scenario.storage)
    if refusal is not None:
        raise UsageError(refusal)
