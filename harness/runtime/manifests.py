"""The Kubernetes objects of a run, built by pure functions (tested without a cluster): the namespace, the
generated config, the StatefulSet in the prometheus-operator's shape, and the PersistentVolume / StorageClass the
storage backend plans. Everything carries the managed-by and run-id labels, so cleanup deletes only what a run made,
and, when the run knows its owner, the owner label and the annotations that say which process on which host made it
(``harness cleanup --all-mine`` selects by the label and leaves a run alone while that process lives).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from harness.fmt import exact_quantity
from harness.kube.inventory import PROMETHEUS_API, Manifest, PvInfo
from harness.ownership import OWNER_LABEL, RunOwner
from harness.scenario.model import PrometheusSpec, Scenario, SecurityContext
from harness.storage import backend_for
from harness.storage.base import ClassToCreate, operator_claim_name

MANAGED_BY = ("app.kubernetes.io/managed-by", "prom-storage-harness")
RUN_ID_LABEL = "harness/run-id"
# On a node a run cordoned (and only while it is cordoned by it): which run, and whose, so cleanup can uncordon it.
CORDONED_BY = "harness/cordoned-by"
CORDONED_OWNER = "harness/cordoned-owner"
CONTAINER = "prometheus"
TOOLS_CONTAINER = "harness-tools"
PORT = 9090
CONFIG_DIR = "/etc/prometheus/config"
TERMINATION_GRACE_S = 30  # the operator uses 600; a fault run should not wait that long for a SIGTERM'd pod


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


def _meta(name: str, names: Names, namespace: str | None = None, extra: dict[str, str] | None = None) -> Manifest:
    meta: Manifest = {"name": name, "labels": {**(extra or {}), **names.labels()}}
    if names.annotations():
        meta["annotations"] = names.annotations()
    if namespace is not None:
        meta["namespace"] = namespace
    return meta


def namespace_manifest(names: Names) -> Manifest:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": _meta(names.namespace, names)}


def _scrape_configs(extra_scrape_configs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {"job_name": "prometheus", "static_configs": [{"targets": [f"localhost:{PORT}"]}]},
        *extra_scrape_configs,
    ]


def _interval(scenario: Scenario) -> str:
    return f"{scenario.prometheus.scrape_interval_s:g}s"


def config_manifest(scenario: Scenario, names: Names, extra_scrape_configs: list[dict[str, Any]]) -> Manifest:
    interval = _interval(scenario)
    config = {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "scrape_configs": _scrape_configs(extra_scrape_configs),
    }
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _meta(names.config_map, names, names.namespace),
        # JSON is valid YAML, and needs no quoting rules.
        "data": {"prometheus.yml": json.dumps(config, indent=2)},
    }


def storage_class_manifest(wanted: ClassToCreate, names: Names) -> Manifest:
    """A StorageClass a backend needs and the cluster lacks (a local PV's no-provisioner class)."""
    return {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": _meta(wanted.name, names),
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
        "metadata": _meta(pv.name, names, extra=dict(pv.labels)),
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


def _probe(path: str, period_s: float, failure_threshold: int) -> Manifest:
    return {
        "httpGet": {"path": path, "port": "web"},
        "periodSeconds": max(1, round(period_s)),
        "failureThreshold": failure_threshold,
        "timeoutSeconds": 3,
    }


def container_resources(prom: PrometheusSpec) -> Manifest | None:
    """Prometheus' container resources, requests equal to limits (None: the scenario sets none)."""
    resources: dict[str, str] = {}
    if prom.resources.memory_bytes is not None:
        resources["memory"] = exact_quantity(prom.resources.memory_bytes)
    if prom.resources.cpu_millis is not None:
        resources["cpu"] = f"{prom.resources.cpu_millis}m"
    return {"requests": resources, "limits": dict(resources)} if resources else None


def pod_security_context(sc: SecurityContext) -> Manifest:
    """The pod's securityContext: the uid/gid Prometheus writes its TSDB as, and the group the kubelet gives the
    volume (fsGroup)."""
    security: Manifest = {
        "runAsUser": sc.run_as_user,
        "runAsGroup": sc.run_as_group,
        "runAsNonRoot": sc.run_as_non_root,
    }
    if sc.fs_group is not None:
        security["fsGroup"] = sc.fs_group
    return security


LAYER_CONTAINER = "fault-layer"
LAYER_REPORT = "/tmp/fault-layer.json"  # noqa: S108 - the layer's answers, in its own container's filesystem
DATA_DIR = "/prometheus"  # Prometheus' data directory, the volume's mount point in its container
_LAYER_UP = (
    "import sys; sys.exit(0 if any(l.split()[4] == sys.argv[1] and ' - fuse.harness-faults ' in l "
    "for l in open('/proc/self/mountinfo')) else 1)"
)


def fault_layer_sidecar(volume: str, image: str) -> Manifest:
    """The fault layer (``harness.fault_fuse``) as a native sidecar (an init container that keeps running, so
    Prometheus starts only once its startup probe saw the FUSE mount): privileged, it mounts the layer over the volume
    at the path Prometheus uses, and the mount reaches Prometheus' container by mount propagation (Bidirectional
    here, HostToContainer there). Its SIGTERM (after Prometheus stopped, sidecars go last) unmounts it."""
    return {
        "name": LAYER_CONTAINER,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "restartPolicy": "Always",
        "command": ["python3", "-m", "harness.fault_fuse", DATA_DIR, "--report", LAYER_REPORT],
        "securityContext": {"privileged": True, "runAsUser": 0, "runAsGroup": 0, "runAsNonRoot": False},
        "startupProbe": {
            "exec": {"command": ["python3", "-c", _LAYER_UP, DATA_DIR]},
            "periodSeconds": 1,
            "failureThreshold": 120,
        },
        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}},
        "volumeMounts": [{"name": volume, "mountPath": DATA_DIR, "mountPropagation": "Bidirectional"}],
    }


def statefulset_manifest(
    scenario: Scenario, names: Names, *, tools_image: str | None, layer_image: str | None = None
) -> Manifest:
    """The operator's StatefulSet, reduced to what storage behaviour depends on.

    With ``tools_image`` the pod shares one process namespace and carries a busybox sidecar, so the runtime can
    SIGKILL Prometheus inside the pod: in its own PID namespace Prometheus is PID 1, and the kernel drops SIGKILL
    sent to a namespace's init from inside that namespace (an ``exec kill -9 1``, or an ephemeral debug container
    targeting the container, does nothing). With a shared namespace the pause process is PID 1, Prometheus is an
    ordinary process, and the kubelet restarts the killed container in the same pod, as the fault vocabulary says.

    With ``layer_image`` the pod carries the fault layer's sidecar (``fault_layer_sidecar``) under Prometheus' data.
    """
    prom = scenario.prometheus
    args = [
        f"--config.file={CONFIG_DIR}/prometheus.yml",
        f"--storage.tsdb.path={DATA_DIR}",
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
            {
                "name": names.claim_template,
                "mountPath": DATA_DIR,
                **({"mountPropagation": "HostToContainer"} if layer_image is not None else {}),
            },
        ],
    }
    if prom.probes.startup is not None:
        container["startupProbe"] = _probe(
            "/-/ready", prom.probes.startup.period_s, prom.probes.startup.failure_threshold
        )
    resources = container_resources(prom)
    if resources is not None:
        container["resources"] = resources
    security = pod_security_context(prom.security_context)
    volumes: list[Manifest] = [{"name": "config", "configMap": {"name": names.config_map}}]
    pod_volume = backend_for(scenario.storage).pod_volume(scenario.storage)
    if pod_volume is not None:
        volumes.append({"name": names.claim_template, **pod_volume})
    pod_spec: Manifest = {
        "containers": [container],
        "securityContext": security,
        "volumes": volumes,
        "automountServiceAccountToken": False,
        "terminationGracePeriodSeconds": TERMINATION_GRACE_S,
    }
    if layer_image is not None:
        pod_spec["initContainers"] = [fault_layer_sidecar(names.claim_template, layer_image)]
        pod_spec["shareProcessNamespace"] = True  # the layer's cut-kill (power_loss) kills Prometheus itself
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


SCRAPE_CONFIGS_FILE = "scrape-configs.yaml"


def scrape_secret_manifest(names: Names, extra_scrape_configs: list[dict[str, Any]]) -> Manifest:
    """Operator mode: the harness' scrape jobs (Prometheus itself, scrape mode's exporter), which the operator
    appends to the config it generates (``additionalScrapeConfigs``), as kube-prometheus-stack users add theirs."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _meta(names.scrape_secret, names, names.namespace),
        # JSON is valid YAML, and needs no quoting rules.
        "stringData": {SCRAPE_CONFIGS_FILE: json.dumps(_scrape_configs(extra_scrape_configs), indent=2)},
    }


def _additional_args(extra_args: list[str]) -> list[Manifest]:
    """``--name=value`` / ``--name`` command-line flags as the operator's ``additionalArgs`` entries."""
    out: list[Manifest] = []
    for arg in extra_args:
        name, sep, value = arg.lstrip("-").partition("=")
        out.append({"name": name, "value": value} if sep else {"name": name})
    return out


def prometheus_resource(scenario: Scenario, names: Names, *, tools_image: str | None, scrape_secret: bool) -> Manifest:
    """The ``monitoring.coreos.com/v1`` Prometheus resource a kube-prometheus-stack user would write for this
    scenario: the same claim template (class, size, access modes, selector) or emptyDir, security context,
    retention and resources as the harness' own StatefulSet, the local image with its version (the operator picks
    flags by ``spec.version``), the remote-write receiver the TSDB load writes to, and (``scrape_secret``) the
    harness' scrape jobs from ``scrape_secret_manifest``.

    With ``tools_image`` the pod gets the busybox sidecar signal faults exec into: ``reloadStrategy:
    ProcessSignal`` is the operator's one way to share the pod's process namespace (see ``statefulset_manifest``
    for why signals need it; the config reloader then sends SIGHUP instead of calling /-/reload), and a container
    of a new name in ``spec.containers`` is appended to the operator's.
    """
    prom = scenario.prometheus
    spec: Manifest = {
        "image": prom.image,
        "version": prom.version if prom.version.startswith("v") else f"v{prom.version}",
        # The local images exist only on the nodes: a pull (the default for :latest) would fail.
        "imagePullPolicy": "IfNotPresent",
        "replicas": 1,
        "retention": f"{int(prom.retention_s)}s",
        "scrapeInterval": _interval(scenario),
        "evaluationInterval": _interval(scenario),
        "enableRemoteWriteReceiver": True,
        # With every resource selector nil the operator leaves the config to the user ("unmanaged", deprecated) and
        # ignores additionalScrapeConfigs: one selector that matches nothing of anyone's makes it generate one.
        "serviceMonitorSelector": {"matchLabels": {RUN_ID_LABEL: names.run_id}},
        "securityContext": pod_security_context(prom.security_context),
        "podMetadata": {
            "labels": names.labels(),
            **({"annotations": names.annotations()} if names.annotations() else {}),
        },
        "automountServiceAccountToken": False,
        "terminationGracePeriodSeconds": TERMINATION_GRACE_S,
    }
    if prom.extra_args:
        spec["additionalArgs"] = _additional_args(prom.extra_args)
    resources = container_resources(prom)
    if resources is not None:
        spec["resources"] = resources
    template = claim_template(scenario, names)
    pod_volume = backend_for(scenario.storage).pod_volume(scenario.storage)
    if template is not None:
        spec["storage"] = {"volumeClaimTemplate": template}
    elif pod_volume is not None and "emptyDir" in pod_volume:
        spec["storage"] = {"emptyDir": pod_volume["emptyDir"]}
    if scrape_secret:
        spec["additionalScrapeConfigs"] = {"name": names.scrape_secret, "key": SCRAPE_CONFIGS_FILE}
    if tools_image is not None:
        spec["reloadStrategy"] = "ProcessSignal"
        spec["containers"] = [
            {
                "name": TOOLS_CONTAINER,
                "image": tools_image,
                "imagePullPolicy": "IfNotPresent",
                "command": ["/bin/busybox", "sleep", "2147483647"],
                "resources": {"requests": {"cpu": "1m", "memory": "4Mi"}},
            }
        ]
    group, version, _ = PROMETHEUS_API
    return {
        "apiVersion": f"{group}/{version}",
        "kind": "Prometheus",
        "metadata": _meta(names.prometheus, names, names.namespace),
        "spec": spec,
    }


FIO_CONTAINER = "fio"
FIO_DATA_DIR = "/data"  # the storage under test
FIO_OUT_DIR = "/out"  # fio's JSON and logs, copied out afterwards
FIO_BIN_DIR = "/h"  # a static busybox copied from the tools image: the fio image needs no shell of its own


def fio_pod_manifest(
    scenario: Scenario, names: Names, *, pod: str, fio_image: str, tools_image: str, lifetime_s: int
) -> Manifest:
    """A pod that holds the storage Prometheus will use (the run's claim, or the same emptyDir) while the runtime
    runs fio jobs in it by exec. It runs as Prometheus' user and group, like kubestr's pod but under the
    "restricted" pod security profile wherever the scenario's user allows it (no privilege escalation, no
    capabilities, the runtime's default seccomp profile). ``activeDeadlineSeconds`` ends it even if the harness
    dies before deleting it."""
    backend = backend_for(scenario.storage)
    pod_volume = backend.pod_volume(scenario.storage)
    data = pod_volume if pod_volume is not None else {"persistentVolumeClaim": {"claimName": names.claim}}
    security = {
        **pod_security_context(scenario.prometheus.security_context),
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    restricted: Manifest = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": _meta(pod, names, names.namespace, {"app.kubernetes.io/name": "harness-fio"}),
        "spec": {
            "restartPolicy": "Never",
            "activeDeadlineSeconds": lifetime_s,
            "terminationGracePeriodSeconds": 5,
            "automountServiceAccountToken": False,
            "securityContext": security,
            "initContainers": [
                {
                    "name": "busybox",
                    "image": tools_image,
                    "imagePullPolicy": "IfNotPresent",
                    "command": ["/bin/busybox", "cp", "/bin/busybox", f"{FIO_BIN_DIR}/busybox"],
                    "securityContext": restricted,
                    "volumeMounts": [{"name": "bin", "mountPath": FIO_BIN_DIR}],
                }
            ],
            "containers": [
                {
                    "name": FIO_CONTAINER,
                    "image": fio_image,
                    "imagePullPolicy": "IfNotPresent",
                    "command": [f"{FIO_BIN_DIR}/busybox", "sleep", str(lifetime_s)],
                    "env": [{"name": "PATH", "value": "/usr/local/bin:/usr/bin:/bin"}],
                    "securityContext": restricted,
                    "volumeMounts": [
                        {"name": "data", "mountPath": FIO_DATA_DIR},
                        {"name": "out", "mountPath": FIO_OUT_DIR},
                        {"name": "bin", "mountPath": FIO_BIN_DIR, "readOnly": True},
                    ],
                }
            ],
            "volumes": [
                {"name": "data", **data},
                {"name": "out", "emptyDir": {}},
                {"name": "bin", "emptyDir": {}},
            ],
        },
    }


FILL_CONTAINER = "fill"
FILL_VOLUME_DIR = "/volume"  # Prometheus' volume, whole: the fill file goes in its root


def fill_pod_manifest(
    scenario: Scenario, names: Names, *, pod: str, node: str, tools_image: str, fill_file: str, lifetime_s: int
) -> Manifest:
    """A pod on Prometheus' node that mounts Prometheus' claim (a second pod of the same node may, whatever the
    access mode but ReadWriteOncePod), for ``disk_full``: the runtime fills the volume by exec in it, as root, so
    the root reserve goes too, with only ``DAC_OVERRIDE`` (to create the file whoever owns the volume's root).

    Its own command deletes ``fill_file`` on SIGTERM, so the space comes back however the pod ends: deleted by the
    runtime, by the namespace's deletion (``harness cleanup`` after a killed run) or by ``activeDeadlineSeconds``."""
    busybox = "/bin/busybox"
    hold = f'trap "{busybox} rm -f {fill_file}; {busybox} sync; exit 0" TERM; {busybox} sleep {lifetime_s} & wait'
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": _meta(pod, names, names.namespace, {"app.kubernetes.io/name": "harness-fill"}),
        "spec": {
            "nodeName": node,
            "restartPolicy": "Never",
            "activeDeadlineSeconds": lifetime_s,
            "terminationGracePeriodSeconds": 30,
            "automountServiceAccountToken": False,
            "securityContext": {"runAsUser": 0, "runAsGroup": 0, "runAsNonRoot": False},
            "containers": [
                {
                    "name": FILL_CONTAINER,
                    "image": tools_image,
                    "imagePullPolicy": "IfNotPresent",
                    "command": [busybox, "sh", "-c", hold],
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "capabilities": {"drop": ["ALL"], "add": ["DAC_OVERRIDE"]},
                    },
                    "resources": {"requests": {"cpu": "1m", "memory": "4Mi"}},
                    "volumeMounts": [{"name": "data", "mountPath": FILL_VOLUME_DIR}],
                }
            ],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": names.claim}}],
        },
    }


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
        "metadata": _meta(names.claim, names, names.namespace, labels),
        "spec": template["spec"],
    }
