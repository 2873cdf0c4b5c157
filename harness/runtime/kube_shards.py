"""A sharded write load on the kubernetes runtime: the shards are the pods of one indexed Job (Kubernetes is the
distributed engine: it places, starts and numbers them; ``JOB_COMPLETION_INDEX`` is the shard), in the run's
namespace, writing to Prometheus through a ClusterIP Service.

Why a Service: a shard in a pod cannot be told that Prometheus moved, as a local process is; the Service's address
outlives every restart, reschedule and redeploy, and kube-proxy sends each connection to the current pod. While no
pod is ready the writes fail, and the shard records them failed, as the local writer does.

Why the log: every shard prints its request records on stdout (``harness.loads.shard``); the harness follows each
pod's log through the API server (``kubectl logs -f``), so it works where this host cannot reach pods. Python
writes its own errors on stderr, which the container log mixes in: lines that are not a record are kept as the
shard's diagnostics, never taken for records. The stop is the Job's deletion: each pod gets SIGTERM, finishes its
tick, says ``end`` and exits; its log ends with it.

The request times in the records are the pods' clocks (their nodes'), where the faults' are this host's: on a
cluster whose clocks disagree, "first new sample" after a fault is off by that much (the ledger is not: it keeps
ticks, not times). Measuring the offset, as the scrape exporter does, is left to do.

The image (``HARNESS_K8S_WRITER_IMAGE``) needs ``python3`` on its PATH with this harness installed; on the local
cluster testbed builds one from this checkout. ``backoffLimit: 0`` and ``restartPolicy: Never``: a shard that
breaks is not restarted behind the harness' back (its requests from then on would be unknown); the run is an ERROR.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from harness.errors import InfraError
from harness.fmt import shorten
from harness.kube.api import KubeApi
from harness.kube.inventory import Manifest
from harness.kube.pods import PodInfo
from harness.loads.ledger import SeriesLayout
from harness.loads.shard import ENV, ShardSpec
from harness.runtime.manifests.common import Names, nobody_container_security
from harness.runtime.manifests.prometheus import PORT
from harness.wait import wait_for

log = logging.getLogger(__name__)

JOB = "harness-writer"
SERVICE = "harness-prometheus"
CONTAINER = "writer"
INDEX_LABEL = "batch.kubernetes.io/job-completion-index"
# Scheduling and a local image: seconds; an image pulled from a registry: more. Includes the shard's own wait for the
# Service to answer (SERVICE_READY_S).
START_TIMEOUT_S = 240.0
SERVICE_READY_S = 60.0  # kube-proxy programs a new Service's endpoints within seconds
POD_GONE_S = 60.0  # a pod ends its tick (at most a few request timeouts) once it gets SIGTERM
_CANNOT_START = ("ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull", "CreateContainerError",
                 "RunContainerError", "StartError", "ContainerCannotRun")  # fmt: skip
_DIAGNOSTIC_LINES = 20


def service_manifest(names: Names) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": SERVICE, "namespace": names.namespace, "labels": names.labels()},
        "spec": {"selector": names.selector(), "ports": [{"name": "web", "port": PORT, "targetPort": PORT}]},
    }


def job_manifest(spec: ShardSpec, names: Names, image: str) -> Manifest:
    labels = {"app.kubernetes.io/name": JOB, **names.labels()}
    container: Manifest = {
        "name": CONTAINER,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["python3", "-m", "harness.loads.shard"],
        "env": [{"name": ENV, "value": spec.to_json()}, {"name": "PYTHONUNBUFFERED", "value": "1"}],
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
        "securityContext": nobody_container_security(),
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": JOB, "namespace": names.namespace, "labels": labels},
        "spec": {
            "completionMode": "Indexed",
            "completions": spec.shards,
            "parallelism": spec.shards,
            "backoffLimit": 0,
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [container],
                    "automountServiceAccountToken": False,
                    "terminationGracePeriodSeconds": 30,
                },
            },
        },
    }


class JobShards:
    """The ``ShardLauncher`` of the kubernetes runtime (see the module docstring)."""

    start_timeout_s = START_TIMEOUT_S
    # The shards write to the Service, which follows Prometheus by itself: they write on through a fault, so
    # Prometheus' own count of their requests, read before it, is never final.
    follows_endpoint = False

    def __init__(self, api: KubeApi, names: Names, image: str, namespace: Callable[[], str], logs_dir: Path) -> None:
        """``namespace`` creates the run's namespace if need be and returns its name."""
        self.api = api
        self.names = names
        self.image = image
        self._namespace = namespace
        self.logs_dir = logs_dir
        self._shards = 0
        self._endpoint = ""
        self._pods: dict[int, PodInfo] = {}
        self._diagnostics: dict[int, deque[str]] = {}
        self._lock = threading.Lock()
        self._created = False
        self._closed = False

    @property
    def description(self) -> str:
        nodes = sorted({p.node for p in self._pods.values() if p.node})
        on = f" on {', '.join(nodes)}" if nodes else ""
        return (
            f"{self._shards} pod(s) of the indexed Job {self.names.namespace}/{JOB}{on}, image {self.image}, "
            f"writing to the Service {SERVICE} at {self._endpoint}"
        )

    def start(self, layout: SeriesLayout, shards: int, endpoint: str | None) -> list[Iterable[str]]:
        namespace = self._namespace()
        self._shards = shards
        self._created = True  # from here on close() removes what there is
        self.api.create(service_manifest(self.names))
        self._endpoint = f"http://{self.api.service_ip(namespace, SERVICE)}:{PORT}"
        spec = ShardSpec(
            layout=layout,
            shards=shards,
            shard=None,
            endpoint=self._endpoint,
            control="sigterm",
            wait_ready_s=SERVICE_READY_S,
        )
        self.api.create(job_manifest(spec, self.names, self.image))
        self._diagnostics = {k: deque(maxlen=_DIAGNOSTIC_LINES) for k in range(shards)}
        return [self._lines(k) for k in range(shards)]

    def _pod_of(self, shard: int) -> PodInfo | None:
        selector = f"job-name={JOB},{INDEX_LABEL}={shard}"
        pods = self.api.pods(self.names.namespace, selector)
        return pods[0] if pods else None

    def _started(self, shard: int) -> PodInfo:
        """The shard's pod once its container has started (running or already ended); InfraError if it cannot."""

        def check() -> PodInfo | None:
            pod = self._pod_of(shard)
            if pod is None:
                return None
            c = pod.container(CONTAINER)
            # A command the image does not have ends the container at once: terminated, reason StartError.
            reason, message = (
                (c.waiting_reason, c.waiting_message) if c is not None and c.waiting_reason else
                (c.exit_reason, c.exit_message) if c is not None else ("", "")
            )  # fmt: skip
            if reason in _CANNOT_START:
                raise InfraError(
                    f"writer shard {shard} cannot start: image {self.image}: {reason}: {shorten(message)}. "
                    "It needs an image with python3 and this harness installed: set HARNESS_K8S_WRITER_IMAGE"
                )
            if c is not None and (c.running or c.exit_code is not None):
                return pod
            return None

        def describe() -> str:
            pod = self._pod_of(shard)
            return "no pod yet" if pod is None else pod.brief()

        return wait_for(
            check,
            what=f"the pod of writer shard {shard} (Job {self.names.namespace}/{JOB}, image {self.image}) to start",
            timeout_s=START_TIMEOUT_S,
            interval_s=0.5,
            describe=describe,
        )

    def _lines(self, shard: int) -> Iterator[str]:
        pod = self._started(shard)
        with self._lock:
            self._pods[shard] = pod
        for line in self.api.follow_log(pod.namespace, pod.name, CONTAINER):
            if line.startswith("{"):
                yield line
            elif line.strip():
                self._diagnostics[shard].append(line)
                log.warning("writer shard %d (%s): %s", shard, pod.name, line)

    def set_endpoint(self, endpoint: str | None) -> None:
        """The shards write to the Service, which follows Prometheus by itself."""

    def stop(self) -> None:
        if self._created:
            # Foreground: the garbage collector deletes the pods first, gracefully; each gets SIGTERM, ends its tick,
            # says "end" and exits, and its log stream ends. Deleting pods alone would make the Job replace them.
            self.api.delete("Job", JOB, self.names.namespace)

    def problem(self, shard: int) -> str:
        pod = self._pods.get(shard) or self._pod_of(shard)
        if pod is None:
            return f"no pod for index {shard} of Job {self.names.namespace}/{JOB}"
        said = "\n".join(self._diagnostics.get(shard, ()))
        if not said:
            said = "\n".join(self.api.pod_log(pod.namespace, pod.name, CONTAINER).splitlines()[-10:])
        fresh = self.api.read_pod(pod.namespace, pod.name)
        return f"{(fresh or pod).brief()}" + (f"; its log ends:\n{said}" if said else "")

    def close(self) -> None:
        if not self._created or self._closed:
            return
        self._closed = True
        self.api.delete("Job", JOB, self.names.namespace, wait_s=POD_GONE_S)
        self.api.delete("Service", SERVICE, self.names.namespace)
