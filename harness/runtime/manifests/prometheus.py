"""Prometheus' own objects: the generated config, the StatefulSet in the prometheus-operator's shape (with the
busybox sidecar signal faults exec into and the fault layer's sidecar), and, in operator mode, the
``monitoring.coreos.com/v1`` Prometheus resource and the Secret with the harness' scrape jobs.
"""

from __future__ import annotations

import json
from typing import Any

from harness.fmt import exact_quantity
from harness.kube.inventory import PROMETHEUS_API, Manifest
from harness.runtime.manifests.common import RUN_ID_LABEL, Names, object_meta
from harness.runtime.manifests.volumes import claim_template
from harness.scenario.model import Scenario
from harness.scenario.prometheus import PrometheusSpec, SecurityContext
from harness.storage import backend_for

CONTAINER = "prometheus"
TOOLS_CONTAINER = "harness-tools"
PORT = 9090
CONFIG_DIR = "/etc/prometheus/config"
TERMINATION_GRACE_S = 30  # the operator uses 600; a fault run should not wait that long for a SIGTERM'd pod


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
        "metadata": object_meta(names.config_map, names, names.namespace),
        # JSON is valid YAML, and needs no quoting rules.
        "data": {"prometheus.yml": json.dumps(config, indent=2)},
    }


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
    """The fault layer (``harness.datapath.fault_fuse``) as a native sidecar (an init container that keeps running, so
    Prometheus starts only once its startup probe saw the FUSE mount): privileged, it mounts the layer over the volume
    at the path Prometheus uses, and the mount reaches Prometheus' container by mount propagation (Bidirectional
    here, HostToContainer there). Its SIGTERM (after Prometheus stopped, sidecars go last) unmounts it."""
    return {
        "name": LAYER_CONTAINER,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "restartPolicy": "Always",
        "command": ["python3", "-m", "harness.datapath.fault_fuse", DATA_DIR, "--report", LAYER_REPORT],
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
        "metadata": object_meta(names.statefulset, names, names.namespace, names.selector()),
        "spec": spec,
    }


SCRAPE_CONFIGS_FILE = "scrape-configs.yaml"


def scrape_secret_manifest(names: Names, extra_scrape_configs: list[dict[str, Any]]) -> Manifest:
    """Operator mode: the harness' scrape jobs (Prometheus itself, scrape mode's exporter), which the operator
    appends to the config it generates (``additionalScrapeConfigs``), as kube-prometheus-stack users add theirs."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": object_meta(names.scrape_secret, names, names.namespace),
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
        "metadata": object_meta(names.prometheus, names, names.namespace),
        "spec": spec,
    }
