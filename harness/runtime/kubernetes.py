"""The kubernetes runtime: Prometheus deployed in a cluster the way kube-prometheus-stack's operator deploys it, and
the fault vocabulary played on the real objects.

A run gets a namespace of its own (``harness-<run_id>``) holding a ConfigMap with the generated config and a
one-replica StatefulSet ``prometheus-<scenario>`` whose volumeClaimTemplate ``prometheus-<scenario>-db`` makes the
operator's claim name; static backends (local, nfs, iscsi) get the PersistentVolume (and, for a local PV, the
no-provisioner StorageClass) the doctor simulated. Everything carries the managed-by and run-id labels, and ``stop``
deletes exactly what ``start`` created: a PV or StorageClass that existed before is never touched. The manifests are
built by pure functions (tested without a cluster); ``harness.kube`` makes the calls.

Two settings come from the environment because they describe the harness host and cluster, not the scenario:
``HARNESS_K8S_REACH`` (``auto``: the pod IP when this host routes to it, else the API server's pod proxy;
``pod-ip``; ``api-proxy``) and ``HARNESS_K8S_TOOLS_IMAGE`` (an image with ``/bin/busybox``, for signal faults;
default the local cluster's ``localhost/harness/tools:latest``, e.g. ``busybox:1.36`` elsewhere).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

from harness.doctor.binding import NO_PROVISIONER, operator_claim_name, planned_claim, planned_volume
from harness.errors import InfraError, UsageError
from harness.kube import KubeApi, Manifest, PodInfo, PodProxy, PvInfo
from harness.prom import PromClient
from harness.promlog import storage_errors, wal_replay_durations_s
from harness.runtime.base import Injection, Recovery, Runtime
from harness.scenario.model import (
    EphemeralStorage,
    FaultAction,
    IscsiStorage,
    LocalStorage,
    NfsStorage,
    Scenario,
)
from harness.wait import wait_for

log = logging.getLogger(__name__)

MANAGED_BY = ("app.kubernetes.io/managed-by", "prom-storage-harness")
RUN_ID_LABEL = "harness/run-id"
CONTAINER = "prometheus"
TOOLS_CONTAINER = "harness-tools"
DEFAULT_TOOLS_IMAGE = "localhost/harness/tools:latest"
PORT = 9090
CONFIG_DIR = "/etc/prometheus/config"
HTTP_TIMEOUT_S = 2.0
CONNECT_TIMEOUT_S = 1.0
NAMESPACE_READY_S = 60.0  # the namespace's default ServiceAccount appears within a second or two
DELETE_TIMEOUT_S = 120.0  # a pod's grace period (30 s) plus volume teardown, with room
TERMINATION_GRACE_S = 30  # the operator uses 600; a fault run should not wait that long for a SIGTERM'd pod
SIGNAL_FAULTS = ("sigkill", "sigterm")
Reach = Literal["auto", "pod-ip", "api-proxy"]


# --- manifests (pure) ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Names:
    """Every name the runtime uses, derived from the scenario and the run id."""

    scenario: str
    run_id: str

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

    def labels(self) -> dict[str, str]:
        return {MANAGED_BY[0]: MANAGED_BY[1], RUN_ID_LABEL: self.run_id}

    def selector(self) -> dict[str, str]:
        return {"app.kubernetes.io/name": "prometheus", "app.kubernetes.io/instance": self.scenario}


def _meta(name: str, names: Names, namespace: str | None = None, extra: dict[str, str] | None = None) -> Manifest:
    meta: Manifest = {"name": name, "labels": {**(extra or {}), **names.labels()}}
    if namespace is not None:
        meta["namespace"] = namespace
    return meta


def namespace_manifest(names: Names) -> Manifest:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": _meta(names.namespace, names)}


def config_manifest(scenario: Scenario, names: Names, extra_scrape_configs: list[dict[str, Any]]) -> Manifest:
    interval = f"{scenario.prometheus.scrape_interval_s:g}s"
    config = {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "scrape_configs": [
            {"job_name": "prometheus", "static_configs": [{"targets": [f"localhost:{PORT}"]}]},
            *extra_scrape_configs,
        ],
    }
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _meta(names.config_map, names, names.namespace),
        # JSON is valid YAML, and needs no quoting rules.
        "data": {"prometheus.yml": json.dumps(config, indent=2)},
    }


def storage_class_manifest(name: str, names: Names) -> Manifest:
    """The field notes' local-PV class: no provisioner, binding delayed until the pod is scheduled."""
    return {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": _meta(name, names),
        "provisioner": NO_PROVISIONER,
        "volumeBindingMode": "WaitForFirstConsumer",
        "reclaimPolicy": "Retain",
    }


def volume_manifest(scenario: Scenario, names: Names) -> Manifest | None:
    """The PV for a static backend, from the doctor's ``planned_volume`` (same name, class, labels, affinity)."""
    storage = scenario.storage
    pv = planned_volume(scenario)
    if pv is None or isinstance(storage, EphemeralStorage):
        return None
    spec: Manifest = {
        "capacity": {"storage": str(pv.capacity_bytes)},
        "accessModes": list(pv.access_modes),
        "volumeMode": pv.volume_mode,
        "persistentVolumeReclaimPolicy": pv.reclaim_policy,
        "storageClassName": pv.storage_class,
    }
    if isinstance(storage, LocalStorage):
        if storage.path is None or storage.node is None:
            raise UsageError(
                "a local PV on the kubernetes runtime needs storage.path (a directory on the node) and storage.node "
                f"(its kubernetes.io/hostname); the scenario has path {storage.path!r}, node {storage.node!r}"
            )
        spec["local"] = {"path": storage.path}
    elif isinstance(storage, NfsStorage):
        spec["nfs"] = {"server": storage.server, "path": storage.export}
        spec["mountOptions"] = [f"nfsvers={storage.version}", f"port={storage.port}"]
    elif isinstance(storage, IscsiStorage):
        spec["iscsi"] = {
            "targetPortal": storage.target_portal,
            "iqn": storage.iqn,
            "lun": storage.lun,
            "fsType": storage.fs_type,
        }
    if pv.node_affinity:
        spec["nodeAffinity"] = {"required": {"nodeSelectorTerms": [_term(t) for t in _affinity(pv)]}}
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": _meta(pv.name, names, extra=dict(pv.labels)),
        "spec": spec,
    }


def _affinity(pv: PvInfo) -> list[list[tuple[str, str, list[str]]]]:
    return [[(r.key, r.operator, list(r.values)) for r in term.requirements] for term in pv.node_affinity]


def _term(requirements: list[tuple[str, str, list[str]]]) -> Manifest:
    return {"matchExpressions": [{"key": k, "operator": op, "values": v} for k, op, v in requirements]}


def claim_template(scenario: Scenario, names: Names) -> Manifest | None:
    """The volumeClaimTemplate, from the doctor's ``planned_claim`` (class, size, access modes, selector)."""
    claim = planned_claim(scenario, names.namespace)
    if claim is None:
        return None
    spec: Manifest = {
        "accessModes": list(claim.access_modes),
        "volumeMode": claim.volume_mode,
        "resources": {"requests": {"storage": str(claim.request_bytes)}},
    }
    if claim.storage_class is not None:
        spec["storageClassName"] = claim.storage_class
    if claim.selector is not None:
        spec["selector"] = {"matchLabels": dict(claim.selector)}
    return {"metadata": {"name": names.claim_template, "labels": names.labels()}, "spec": spec}


def _probe(path: str, period_s: float, failure_threshold: int) -> Manifest:
    return {
        "httpGet": {"path": path, "port": "web"},
        "periodSeconds": max(1, round(period_s)),
        "failureThreshold": failure_threshold,
        "timeoutSeconds": 3,
    }


def statefulset_manifest(scenario: Scenario, names: Names, *, tools_image: str | None) -> Manifest:
    """The operator's StatefulSet, reduced to what storage behaviour depends on.

    With ``tools_image`` the pod shares one process namespace and carries a busybox sidecar, so the runtime can
    SIGKILL Prometheus inside the pod: in its own PID namespace Prometheus is PID 1, and the kernel drops SIGKILL
    sent to a namespace's init from inside that namespace (an ``exec kill -9 1``, or an ephemeral debug container
    targeting the container, does nothing). With a shared namespace the pause process is PID 1, Prometheus is an
    ordinary process, and the kubelet restarts the killed container in the same pod, as the fault vocabulary says.
    """
    prom = scenario.prometheus
    sc = prom.security_context
    args = [
        f"--config.file={CONFIG_DIR}/prometheus.yml",
        "--storage.tsdb.path=/prometheus",
        f"--storage.tsdb.retention.time={int(prom.retention_s)}s",
        f"--web.listen-address=:{PORT}",
        "--web.enable-remote-write-receiver",
        *prom.extra_args,
    ]
    container: Manifest = {
        "name": CONTAINER,
        "image": prom.image,
        "imagePullPolicy": "IfNotPresent",
        "args": args,
        "ports": [{"name": "web", "containerPort": PORT}],
        "readinessProbe": _probe("/-/ready", 5, 3),
        "livenessProbe": _probe("/-/healthy", prom.probes.liveness.period_s, prom.probes.liveness.failure_threshold),
        "volumeMounts": [
            {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
            {"name": names.claim_template, "mountPath": "/prometheus"},
        ],
    }
    if prom.probes.startup is not None:
        container["startupProbe"] = _probe(
            "/-/ready", prom.probes.startup.period_s, prom.probes.startup.failure_threshold
        )
    resources: dict[str, str] = {}
    if prom.resources.memory_bytes is not None:
        resources["memory"] = str(prom.resources.memory_bytes)
    if prom.resources.cpu_millis is not None:
        resources["cpu"] = f"{prom.resources.cpu_millis}m"
    if resources:
        container["resources"] = {"requests": resources, "limits": resources}
    security: Manifest = {
        "runAsUser": sc.run_as_user,
        "runAsGroup": sc.run_as_group,
        "runAsNonRoot": sc.run_as_non_root,
    }
    if sc.fs_group is not None:
        security["fsGroup"] = sc.fs_group
    volumes: list[Manifest] = [{"name": "config", "configMap": {"name": names.config_map}}]
    storage = scenario.storage
    if isinstance(storage, EphemeralStorage):
        empty_dir: Manifest = {}
        if storage.size_limit_bytes is not None:
            empty_dir["sizeLimit"] = str(storage.size_limit_bytes)
        volumes.append({"name": names.claim_template, "emptyDir": empty_dir})
    pod_spec: Manifest = {
        "containers": [container],
        "securityContext": security,
        "volumes": volumes,
        "automountServiceAccountToken": False,
        "terminationGracePeriodSeconds": TERMINATION_GRACE_S,
    }
    if tools_image is not None:
        pod_spec["shareProcessNamespace"] = True
        pod_spec["containers"].append(
            {
                "name": TOOLS_CONTAINER,
                "image": tools_image,
                "imagePullPolicy": "IfNotPresent",
                "command": ["/bin/busybox", "sleep", "2147483647"],
                "resources": {"requests": {"cpu": "1m", "memory": "4Mi"}},
            }
        )
    pod_labels = {**names.selector(), **names.labels()}
    spec: Manifest = {
        "replicas": 1,
        "serviceName": "prometheus-operated",
        "podManagementPolicy": "Parallel",
        "selector": {"matchLabels": names.selector()},
        "template": {"metadata": {"labels": pod_labels}, "spec": pod_spec},
    }
    template = claim_template(scenario, names)
    if template is not None:
        spec["volumeClaimTemplates"] = [template]
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": _meta(names.statefulset, names, names.namespace, names.selector()),
        "spec": spec,
    }


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
    cordoned: list[str] = field(default_factory=list)  # nodes this run cordoned and has not uncordoned yet


class KubernetesRuntime(Runtime):
    name = "kubernetes"

    def __init__(
        self,
        scenario: Scenario,
        run_id: str,
        *,
        logs_dir: Path,
        kubeconfig: str | None = None,
        extra_scrape_configs: list[dict[str, Any]] | None = None,
        tools_image: str | None = None,
        reach: Reach | None = None,
        api: KubeApi | None = None,
    ) -> None:
        self.scenario = scenario
        self.names = Names(scenario.name, run_id)
        self.logs_dir = logs_dir
        self.extra_scrape_configs = extra_scrape_configs or []
        # The sidecar only where a signal fault needs it: other runs get the operator's pod unchanged.
        needs_tools = any(f.action in SIGNAL_FAULTS for f in scenario.faults)
        tools_image = tools_image or os.environ.get("HARNESS_K8S_TOOLS_IMAGE") or DEFAULT_TOOLS_IMAGE
        self.tools_image = tools_image if needs_tools else None
        self.reach: Reach = reach or _reach_from_env()
        self._proxy: PodProxy | None = None
        self.api = api if api is not None else KubeApi(kubeconfig)
        self.created = Created()
        self.pod: PodInfo | None = None
        self._url: str | None = None
        self._version: str | None = None
        self._expect_restarts = 0  # a signal fault: the container's restartCount to reach

    # --- lifecycle ---------------------------------------------------------------------------------------------

    def start(self) -> None:
        names, api = self.names, self.api
        pv = volume_manifest(self.scenario, names)
        if pv is not None and api.exists("PersistentVolume", pv["metadata"]["name"]):
            raise InfraError(
                f"PersistentVolume {pv['metadata']['name']} already exists and was not created by this run; the "
                "harness never reuses or deletes a PV it did not create: delete it (if it is a leftover of an earlier "
                "run) or set storage.volume.name to another name, or storage.volume.create: false to use it"
            )
        api.create(namespace_manifest(names))
        self.created.namespace = names.namespace
        api.wait_service_account(names.namespace, timeout_s=NAMESPACE_READY_S)
        storage = self.scenario.storage
        # Registered before the create call, so an interrupt in between still cleans up; stop() deletes only
        # objects that carry this run's id, so a create that failed leaves nothing of anyone else's at risk.
        if isinstance(storage, LocalStorage) and storage.claim.storage_class:
            sc_name = storage.claim.storage_class
            if not api.exists("StorageClass", sc_name):
                self.created.storage_classes.append(sc_name)
                api.create(storage_class_manifest(sc_name, names))
        if pv is not None:
            self.created.volumes.append(pv["metadata"]["name"])
            api.create(pv)
        api.create(config_manifest(self.scenario, names, self.extra_scrape_configs))
        api.create(statefulset_manifest(self.scenario, names, tools_image=self.tools_image))
        log.info("created StatefulSet %s/%s", names.namespace, names.statefulset)
        self.wait_recovered(self.scenario.prometheus.ready_timeout_s)

    def stop(self) -> None:
        """Uncordon what we cordoned, then delete the namespace, our PVs and StorageClasses, each step on its own."""
        errors: list[str] = []
        for node in list(self.created.cordoned):
            try:
                self.api.set_unschedulable(node, False)
                self.created.cordoned.remove(node)
            except InfraError as e:
                errors.append(str(e))
        self._save_log()
        if self.created.namespace is not None:
            try:
                self.api.delete("Namespace", self.created.namespace, wait_s=DELETE_TIMEOUT_S)
                self.created.namespace = None
            except InfraError as e:
                errors.append(str(e))
        for name in list(self.created.volumes):
            errors += self._delete_owned("PersistentVolume", name, self.created.volumes)
        for name in list(self.created.storage_classes):
            errors += self._delete_owned("StorageClass", name, self.created.storage_classes)
        if self._proxy is not None:
            self._proxy.close()
            self._proxy = None
        self.pod, self._url = None, None
        if errors:
            raise InfraError("could not remove everything this run created in the cluster:\n" + "\n".join(errors))

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

    def log_excerpt(self) -> str:
        return "\n".join(self._current_log().splitlines()[-20:])

    # --- faults ------------------------------------------------------------------------------------------------

    def inject(self, action: FaultAction) -> Injection:
        pod = self._require_pod()
        before = self.instance()
        self._save_log()
        self._url = None
        if action in SIGNAL_FAULTS:
            injected, detail = self._signal(pod, action)
        elif action == "restart":
            injected = time.time()
            self.api.delete("Pod", pod.name, pod.namespace)
            detail = f"pod {pod.name} deleted on {pod.node}; the StatefulSet recreates it"
        elif action == "reschedule":
            if any(n.name == pod.node and "cordoned" in n.why_unschedulable for n in self.api.nodes()):
                detail = f"node {pod.node} was cordoned already (left so)"
            else:
                # Recorded first: the uncordon is this fault's undo and must run even if we are interrupted here.
                self.created.cordoned.append(pod.node)
                self.api.set_unschedulable(pod.node, True)
                detail = f"node {pod.node} cordoned"
            injected = time.time()
            self.api.delete("Pod", pod.name, pod.namespace)
            detail += f" and pod {pod.name} deleted: the new pod must go to another node"
        elif action == "redeploy":
            injected = time.time()
            self._redeploy()
            detail = "StatefulSet and claim deleted and created again (helm uninstall + install)"
        else:  # pragma: no cover - the scenario model only allows the actions above
            raise AssertionError(action)
        if action not in SIGNAL_FAULTS:
            self.pod = self.api.wait_pod(
                pod.namespace,
                pod.name,
                # Until the scheduler has decided (a node, or why not), so the record names where the pod went.
                lambda p: p.uid != pod.uid and not p.deleting and bool(p.node or p.unschedulable),
                what=f"the StatefulSet to create a new pod {pod.name} and the scheduler to place it",
                timeout_s=DELETE_TIMEOUT_S,
            )
            self._expect_restarts = 0
        kept = "a new, empty emptyDir" if isinstance(self.scenario.storage, EphemeralStorage) else "the same claim"
        if action in ("restart", "reschedule"):
            detail += f"; the new pod gets {kept}"
        return Injection(action, injected, before, self.instance(), detail)

    def _signal(self, pod: PodInfo, action: FaultAction) -> tuple[float, str]:
        if self.tools_image is None:  # pragma: no cover - the constructor adds the sidecar for signal faults
            raise InfraError("a signal fault needs the tools sidecar, which this pod does not have")
        container = pod.container(CONTAINER)
        self._expect_restarts = (container.restart_count if container is not None else 0) + 1
        sig = "KILL" if action == "sigkill" else "TERM"
        # pidof and kill run in the sidecar, which sees Prometheus through the pod's shared process namespace.
        script = f"pid=$(/bin/busybox pidof prometheus) && /bin/busybox kill -{sig} $pid && echo $pid"
        injected = time.time()
        out = self.api.exec(pod.namespace, pod.name, TOOLS_CONTAINER, ["/bin/busybox", "sh", "-c", script]).strip()
        if not out.isdigit():
            raise InfraError(
                f"could not send SIG{sig} to Prometheus in {pod.namespace}/{pod.name}: {out or '(no output)'}"
            )
        return (
            injected,
            f"SIG{sig} to Prometheus (pid {out} in the pod); the kubelet restarts the container in the same pod",
        )

    def _redeploy(self) -> None:
        names, api = self.names, self.api
        api.delete("StatefulSet", names.statefulset, names.namespace, wait_s=DELETE_TIMEOUT_S)
        api.wait_gone("Pod", names.pod, names.namespace, timeout_s=DELETE_TIMEOUT_S)
        if planned_claim(self.scenario, names.namespace) is not None:
            api.delete("PersistentVolumeClaim", names.claim, names.namespace, wait_s=DELETE_TIMEOUT_S)
        api.create(statefulset_manifest(self.scenario, names, tools_image=self.tools_image))

    # --- recovery ----------------------------------------------------------------------------------------------

    def wait_recovered(self, timeout_s: float) -> Recovery:
        deadline = time.monotonic() + timeout_s

        def remaining() -> float:
            return max(0.1, deadline - time.monotonic())

        names = self.names
        try:
            pod = self.api.wait_pod(
                names.namespace,
                names.pod,
                self._running,
                what=f"Prometheus in pod {names.namespace}/{names.pod} to run"
                + (f" (container restart {self._expect_restarts})" if self._expect_restarts else ""),
                timeout_s=remaining(),
                describe=self._describe,
            )
        finally:
            self._uncordon()
        self.pod = pod
        self._url = self._reach(pod)
        with PromClient(self._url, timeout_s=HTTP_TIMEOUT_S) as client:
            wait_for(
                client.healthy,
                what=f"Prometheus ({self.instance()}) to answer /-/healthy at {self._url}",
                timeout_s=remaining(),
                interval_s=0.05,
                describe=lambda: self._describe(self.api.read_pod(names.namespace, names.pod)),
            )
            up_at = time.time()
            wait_for(
                client.ready,
                what=f"Prometheus ({self.instance()}) to answer /-/ready at {self._url} (WAL replay)",
                timeout_s=remaining(),
                interval_s=0.05,
                describe=lambda: self._describe(self.api.read_pod(names.namespace, names.pod)),
            )
            ready_at = time.time()
        self.pod = self.api.read_pod(names.namespace, names.pod) or pod
        replays = wal_replay_durations_s(self._current_log())
        return Recovery(up_at, ready_at, replays[-1] if replays else None)

    def _running(self, pod: PodInfo) -> bool:
        """The Prometheus container runs (after the expected restart); raises on outcomes that will not change."""
        if pod.deleting:
            return False
        c = pod.container(CONTAINER)
        if c is not None and c.running and pod.ip and c.restart_count >= self._expect_restarts:
            return True
        if "volume node affinity conflict" in pod.unschedulable and self.created.cordoned:
            raise InfraError(
                f"the pod cannot move: {pod.unschedulable}. Its PersistentVolume is pinned to the cordoned node "
                f"{', '.join(self.created.cordoned)} by nodeAffinity (a local PV): a reschedule of Prometheus on a "
                "local PV means no Prometheus until that node is back"
            )
        claim_problem = self._stale_claim(pod)
        if claim_problem:
            raise InfraError(claim_problem)
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

    def _uncordon(self) -> None:
        for node in list(self.created.cordoned):
            self.api.set_unschedulable(node, False)
            self.created.cordoned.remove(node)

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
