"""``KubernetesRuntime``: the ``Runtime`` interface (``harness.runtime.base``) on a cluster, a thin front composing
the run's objects (``resources``), the pod tracker (``pods``) and the way to Prometheus' port (``reach``), with
the deployment (``harness.runtime.deployments``), the fio, fill and shard pods and the capabilities it hands out
(``harness.runtime.kube_capabilities``); and ``refuse_unsupported``, what it refuses before anything is created.

The settings of the harness host and cluster (how to reach the pod, the images) come as a ``Settings``
(``harness.settings``), read from the environment by the CLI.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.capabilities import Capability
from harness.capabilities.ceph import CephClientControl
from harness.capabilities.export import ExportReach
from harness.capabilities.fault_layer import FaultLayerControl
from harness.capabilities.kubelet import KubeletControl
from harness.capabilities.nodes import NodeLifecycle
from harness.capabilities.signals import SignalControl
from harness.capabilities.storage_server import ServerControl
from harness.capabilities.volatile_below import VolatileBelow
from harness.capabilities.volume_fill import VolumeFiller
from harness.errors import UsageError
from harness.kube.api import KubeApi
from harness.kube.contexts import load_inventory
from harness.kube.inventory import KubeInventory
from harness.kube.pods import PodInfo
from harness.ownership import RunOwner
from harness.prom import PromClient
from harness.results.model import ClusterFacts, FioJobResult, NodeFacts, VolumeFacts
from harness.runtime.base import Recovery, Runtime, StorageDescription
from harness.runtime.deployments import deployment_for
from harness.runtime.kube_capabilities import (
    KubeCephClient,
    KubeExport,
    KubeFaultLayer,
    KubeKubelet,
    KubeNodes,
    KubeServerControl,
    KubeSignals,
    KubeVolatileBelow,
    KubeVolumeFill,
)
from harness.runtime.kube_fill import PodFill
from harness.runtime.kube_fio import PodFio
from harness.runtime.kubernetes.embedded import check_nodes_reach
from harness.runtime.kubernetes.pods import HTTP_TIMEOUT_S, PodTracker
from harness.runtime.kubernetes.reach import PodReach
from harness.runtime.kubernetes.resources import DELETE_TIMEOUT_S, RunResources
from harness.runtime.manifests.common import Names
from harness.scenario.model import FioJob, Scenario, TsdbLoad
from harness.settings import Settings
from harness.storage import backend_for
from harness.storage.base import EmbeddedServer
from harness.storage.network import EmbeddedDaemon, NetworkBackend

if TYPE_CHECKING:
    from harness.loads.shards import ShardLauncher
    from harness.loads.tsdb_scrape import ScrapeExporter


class KubernetesRuntime(Runtime):
    name = "kubernetes"
    offers = frozenset(
        {
            SignalControl,
            NodeLifecycle,
            KubeletControl,
            VolumeFiller,
            ExportReach,
            FaultLayerControl,
            VolatileBelow,
            ServerControl,
            CephClientControl,
        }
    )

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
        settings: Settings = Settings(),
        api: KubeApi | None = None,
        storage_server: EmbeddedServer[Any] | None = None,
    ) -> None:
        refuse_unsupported(scenario)
        self.settings = settings  # the harness host's and cluster's (images, reach), as the CLI read them
        self.scenario = scenario
        self.backend = backend_for(scenario.storage)
        fills = VolumeFiller in needs
        layer_image = self._layer_image(scenario, settings) if FaultLayerControl in needs else None
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
        tools_image = settings.k8s_tools_image
        self.tools_image = tools_image if SignalControl in needs else None
        self.exporter_image = tools_image  # scrape mode's exporter runs on the same busybox
        self.api = api if api is not None else KubeApi(kubeconfig, context=context)
        if isinstance(self.backend, NetworkBackend):
            if self.backend.runs_embedded(scenario.storage):  # still `embedded`: the pipeline started nothing
                raise UsageError(self.backend.cluster_refusal(scenario.storage) or "no embedded server was started")
            if storage_server is not None:
                # The run's own server, on an address of this host (the storage now names it): every node's kubelet
                # must reach it, checked before anything is created in the cluster.
                listen = storage_server.listen if isinstance(storage_server, EmbeddedDaemon) else "127.0.0.1"
                source = self.backend.source_text(scenario.storage)
                check_nodes_reach(self.api, storage_server.description, source, listen)
        self.reach = PodReach(self.api, settings.k8s_reach)
        self.deployment = deployment_for(
            self.api,
            scenario,
            self.names,
            self.tools_image,
            layer_image,
            operator_wait_s=settings.k8s_operator_wait_s,
        )
        self.resources = RunResources(self.api, scenario, self.names, self.backend, self.deployment)
        self.tracker = PodTracker(self.api, self.names, logs_dir, self.resources.created, self.reach.url)
        self._layered = layer_image is not None
        self._version: str | None = None
        self.fio = PodFio(self.api, scenario, self.names, fio_image=settings.k8s_fio_image, tools_image=tools_image)
        self.filler = PodFill(self.api, scenario, self.names, tools_image=tools_image) if fills else None
        made: dict[type[Capability], Capability | None] = {
            SignalControl: KubeSignals(self) if self.tools_image is not None else None,
            FaultLayerControl: KubeFaultLayer(self) if layer_image is not None else None,
            VolatileBelow: KubeVolatileBelow() if VolatileBelow in needs else None,
            NodeLifecycle: KubeNodes(self) if NodeLifecycle in needs else None,
            KubeletControl: KubeKubelet(self) if KubeletControl in needs else None,
            VolumeFiller: KubeVolumeFill(self, self.filler) if self.filler is not None else None,
            ExportReach: KubeExport(self) if ExportReach in needs else None,
            CephClientControl: KubeCephClient(self) if CephClientControl in needs else None,
            ServerControl: (
                KubeServerControl(self, storage_server)
                if ServerControl in needs and storage_server is not None
                else None
            ),
        }
        self.handed_out = {kind: c for kind, c in made.items() if c is not None}

    @property
    def pod(self) -> PodInfo | None:
        """The pod Prometheus runs in, as the tracker last saw it (None before start, after stop, at 0 replicas)."""
        return self.tracker.pod

    @property
    def cordoned(self) -> list[str]:
        """Nodes cordoned through this runtime and not uncordoned yet."""
        return self.tracker.cordoned

    @property
    def lost_nodes(self) -> list[str]:
        """Nodes stopped through this runtime and not started again yet."""
        return self.tracker.lost_nodes

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
            for name in self.tracker.nodes_seen
            if (node := by_name.get(name)) is not None
        ]
        volume = None
        claim = api.read_pvc(names.namespace, names.claim) if self.resources.created.namespace else None
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
        self.resources.provision()
        layer = (
            "Prometheus' data directory under the fault layer (harness.datapath.fault_fuse, FUSE, in a privileged "
            "sidecar of "
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
        """The run's namespace, created on first use (``resources.RunResources.ensure_namespace``)."""
        return self.resources.ensure_namespace()

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

        return JobShards(self.api, self.names, self.settings.k8s_writer_image, self.ensure_namespace, self.logs_dir)

    def _scraper(self) -> tuple[str, float]:
        """Scrape mode: the current Prometheus pod's IP, and since when only the current container scrapes from it
        (a new pod has a new IP; a signalled container stops scraping once the signal is delivered)."""
        pod = self.tracker.pod
        return (pod.ip if pod is not None else "", self.tracker.signalled_at)

    def stop(self) -> None:
        """Delete the namespace (with it the claim: a PV a provisioner made for it with reclaimPolicy Delete is waited
        for, never deleted by us), our PVs and StorageClasses, each step on its own; then close the pod proxy and the
        API client, also when a step failed (its error still propagates)."""
        try:
            self.tracker.save_log()
            self.resources.delete_created(self.filler)
        finally:
            # A failed stop is the run's last word on the cluster: nothing retries through this runtime, so its
            # proxy's listening socket and the API client's connection pools would otherwise stay open until exit.
            try:
                self.reach.close()
            finally:
                self.tracker.forget()
                self.api.close()

    def base_url(self) -> str | None:
        return self.tracker.url

    def instance(self) -> str:
        return self.tracker.instance()

    def version(self) -> str:
        if self._version is None:
            url = self.tracker.require_url()
            with PromClient(url, timeout_s=HTTP_TIMEOUT_S * 5) as client:
                self._version = client.build_version()
        return self._version

    def log_text(self) -> str:
        return self.tracker.current_log()

    def wait_recovered(self, timeout_s: float) -> Recovery:
        return self.tracker.wait_recovered(timeout_s)

    # --- primitives for faults -----------------------------------------------------------------------------------

    def delete_pod(self) -> tuple[float, str]:
        pod = self.tracker.pod_going()
        injected = time.time()
        self.api.delete("Pod", pod.name, pod.namespace)
        self.tracker.await_new_pod(pod)
        kept = self.kept_volume()
        return injected, f"pod {pod.name} deleted on {pod.node}; the StatefulSet recreated it; the new pod gets {kept}"

    def reinstall(self) -> tuple[float, str]:
        pod = self.tracker.pod_going()
        names, api = self.names, self.api
        injected = time.time()
        self.deployment.delete(DELETE_TIMEOUT_S)
        api.wait_gone("Pod", names.pod, names.namespace, timeout_s=DELETE_TIMEOUT_S)
        claim = self.backend.planned_claim(self.scenario.storage, self.scenario.name, names.namespace)
        fate = ""
        if claim is not None:
            fate = self.resources.volume_fate()
            api.delete("PersistentVolumeClaim", names.claim, names.namespace, wait_s=DELETE_TIMEOUT_S)
        self.deployment.recreate()
        self.tracker.await_new_pod(pod)
        return (
            injected,
            f"{self.deployment.owner} and claim deleted and created again (helm uninstall + install)" + fate,
        )

    def scale(self, replicas: int) -> tuple[float, str]:
        api, tracker = self.api, self.tracker
        injected = time.time()
        if replicas == 0:
            if tracker.scaled_down_from is not None:
                return injected, "already scaled to 0"
            pod = tracker.pod_going()
            self.deployment.scale(0)
            api.wait_gone("Pod", pod.name, pod.namespace, timeout_s=DELETE_TIMEOUT_S)
            tracker.scaled_down(pod)
            return injected, f"{self.deployment.owner} scaled to 0: pod {pod.name} on {pod.node} stopped and deleted"
        old = tracker.scaled_down_from
        if old is None:
            return injected, "already at 1 replica"
        self.deployment.scale(1)
        tracker.await_new_pod(old)
        kept = self.kept_volume()
        return (
            injected,
            f"{self.deployment.owner} scaled back to 1: the new pod runs on {self.pod_node()} and gets {kept}",
        )

    @staticmethod
    def _layer_image(scenario: Scenario, settings: Settings) -> str:
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
        return settings.k8s_writer_image

    def pod_node(self) -> str:
        return self.tracker.require_pod().node

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

    def kept_volume(self) -> str:
        """What a new pod gets of the old one's data, in words."""
        return "the same claim" if self.backend.survives_new_pod else "a new, empty emptyDir"


def refuse_unsupported(scenario: Scenario) -> None:
    """What this runtime cannot do yet, refused before anything is created."""
    tsdb = scenario.loads.tsdb
    if tsdb is not None and tsdb.latency_s is not None:
        raise UsageError(
            "loads.tsdb.latency: only on the local runtime (the hop runs on this host; the writer pods send to "
            "Prometheus' Service directly, through whatever the cluster's network adds)"
        )
    backend = backend_for(scenario.storage)
    # An embedded server is started by the run; whether the nodes reach it is checked once it runs (__init__).
    embedded = isinstance(backend, NetworkBackend) and backend.runs_embedded(scenario.storage)
    refusal = None if embedded else backend.cluster_refusal(scenario.storage)
    if refusal is not None:
        raise UsageError(refusal)
