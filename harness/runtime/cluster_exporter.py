"""Scrape mode on the kubernetes runtime: the synthetic exporter as a pod in the run's namespace, which Prometheus
scrapes at the pod's IP.

Why a pod of its own and not a sidecar in the Prometheus pod: a scrape target in a real cluster is another pod, and
the faults act on Prometheus only. A sidecar would go down and come back with every pod deletion, reschedule and
redeploy, and the scrape times the recovery timeline needs would go with the deleted pod's log. A separate pod keeps
the load steady across every fault, so what the oracle compares stays what it is on the local runtime: what
Prometheus returned just before the fault (values on the interval grid, a pure function of the series and the tick)
must still be there after it.

Why the pod IP and no Service: there may be no cluster DNS, so a Service would be used by its ClusterIP, one more
object and a kube-proxy hop for nothing; kube-prometheus-stack's ServiceMonitors scrape endpoint (pod) addresses
too. The pod is a bare pod: no fault touches it, and a crashed container is restarted in place (same IP).

Why busybox: nothing can be assumed pullable, and the tools image (``HARNESS_K8S_TOOLS_IMAGE``) is already there for
signal faults. ``httpd`` runs ``harness.loads.busybox_exporter``'s CGI program, mounted from a ConfigMap; it renders
exactly what ``render_exposition`` renders, which ``start`` checks through exec, by hash, before Prometheus starts.

Everything the harness needs back comes through the API server, so it works where this host cannot reach pods
(``HARNESS_K8S_REACH=api-proxy``): the scrape times from the container's log, the self-check through exec. The pod
and its ConfigMap live in the run's namespace and go with it; ``stop`` deletes the pod early, as the local exporter
stops serving when the load stops, after keeping its log.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from pathlib import Path

from harness.errors import InfraError, WaitTimeout
from harness.kube.api import KubeApi
from harness.kube.inventory import Manifest
from harness.kube.pods import PodInfo
from harness.loads.busybox_exporter import BUSYBOX, cgi_script, scrapes
from harness.loads.ledger import SeriesLayout
from harness.loads.tsdb import make_layout
from harness.loads.tsdb_scrape import render_exposition, scrape_config
from harness.runtime.manifests.common import Names, nobody_container_security
from harness.scenario.model import TsdbLoad
from harness.wait import wait_for

log = logging.getLogger(__name__)

EXPORTER = "harness-exporter"  # the pod, its container and its ConfigMap
PORT = 9100
METRICS_PATH = "/cgi-bin/metrics"
START_TIMEOUT_S = 120.0  # image present on the node: a few seconds; pulled from a registry: more
SELF_CHECK_TIMEOUT_S = 20.0  # httpd listens a moment after the container runs
LOG_REFRESH_S = 0.2  # first_scrape_after is polled every 50 ms; the log is read through the API at most this often
CLOCK_WARNING_S = 1.0
# Waiting reasons that will not resolve by waiting: no such image, or an image without /bin/busybox (runc cannot
# exec the command, so the kubelet reports the start error, then backs off).
_CANNOT_START = (
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "ErrImageNeverPull",
    "CreateContainerError",
    "RunContainerError",
    "CrashLoopBackOff",
)


def exporter_manifests(layout: SeriesLayout, names: Names, image: str) -> list[Manifest]:
    """The exporter's ConfigMap (the CGI program) and pod, in creation order."""
    labels = {"app.kubernetes.io/name": EXPORTER, **names.labels()}
    config_map: Manifest = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": EXPORTER, "namespace": names.namespace, "labels": labels},
        "data": {"metrics": cgi_script(layout)},
    }
    container: Manifest = {
        "name": EXPORTER,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        # -f: stay in the foreground, so CGI stderr (the scrape log) is the container's log.
        "command": [BUSYBOX, "httpd", "-f", "-p", str(PORT), "-h", "/www"],
        "ports": [{"name": "metrics", "containerPort": PORT}],
        "volumeMounts": [{"name": "cgi", "mountPath": "/www", "readOnly": True}],
        "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
        "securityContext": nobody_container_security(),
        # No HTTP probe: a probe on the CGI would be logged as a scrape. The self-check in ``start`` is the probe.
    }
    pod: Manifest = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": EXPORTER, "namespace": names.namespace, "labels": labels},
        "spec": {
            "containers": [container],
            "volumes": [
                {
                    "name": "cgi",
                    "configMap": {
                        "name": EXPORTER,
                        "items": [{"key": "metrics", "path": "cgi-bin/metrics", "mode": 0o555}],
                    },
                }
            ],
            "automountServiceAccountToken": False,
            # httpd, PID 1 of its container, has no SIGTERM handler, so the kernel drops SIGTERM: without this every
            # deletion would wait out the default 30 s before the SIGKILL.
            "terminationGracePeriodSeconds": 1,
        },
    }
    return [config_map, pod]


class ClusterExporter:
    """The ``ScrapeExporter`` of the kubernetes runtime (see the module docstring)."""

    def __init__(
        self,
        load: TsdbLoad,
        run_id: str,
        *,
        api: KubeApi,
        names: Names,
        image: str,
        logs_dir: Path,
        namespace: Callable[[], str],
        scraper: Callable[[], tuple[str, float]],
        start_unix_s: float | None = None,
    ) -> None:
        """``namespace`` creates the run's namespace if it does not exist yet and returns its name: the exporter
        starts before Prometheus, which is what creates it otherwise. ``scraper`` says which scrapes come from the
        current Prometheus: its pod's IP, and since when that IP is no other Prometheus's (Unix time)."""
        self.layout = make_layout(load, run_id, time.time() if start_unix_s is None else start_unix_s)
        self.api = api
        self.names = names
        self.image = image
        self.logs_dir = logs_dir
        self._namespace = namespace
        self._scraper = scraper
        self.pod: PodInfo | None = None
        # The pod's clock read during an exec, against this host's clock before and after that exec: equal clocks
        # put the first inside the interval. Scrape times are the pod's, fault times this host's.
        self.clock_offset_s: float | None = None  # how far outside that interval (0: inside)
        self.clock_uncertainty_s: float | None = None  # the exec's duration
        self._scrapes: list[tuple[float, str]] = []
        self._fetched_at = float("-inf")
        self._stopped = False

    @property
    def target(self) -> str:
        pod = self._require_pod()
        host = f"[{pod.ip}]" if ":" in pod.ip else pod.ip
        return f"{host}:{PORT}"

    @property
    def description(self) -> str:
        pod = self._require_pod()
        offset = ""
        if self.clock_offset_s is not None and self.clock_uncertainty_s is not None:
            offset = (
                f"; its clock agrees with this host's within the {self.clock_uncertainty_s:.2f} s an exec took"
                if self.clock_offset_s == 0
                else f"; its clock is at least {self.clock_offset_s:+.2f} s off this host's"
            )
        return (
            f"pod {pod.namespace}/{pod.name} on {pod.node} at {self.target} (busybox httpd + awk CGI, image "
            f"{self.image}{offset})"
        )

    def start(self) -> None:
        namespace = self._namespace()
        for manifest in exporter_manifests(self.layout, self.names, self.image):
            self.api.create(manifest)
        self.pod = self.api.wait_pod(
            namespace,
            EXPORTER,
            self._running,
            what=f"the scrape-mode exporter pod {namespace}/{EXPORTER} (image {self.image}) to run",
            timeout_s=START_TIMEOUT_S,
            describe=self._describe,
        )
        self._self_check()
        log.info("scrape exporter: %s", self.description)

    def _running(self, pod: PodInfo) -> bool:
        c = pod.container(EXPORTER)
        if c is not None and c.waiting_reason in _CANNOT_START:
            said = c.waiting_message or (f"last exit {c.last_exit_code} {c.last_reason}" if c.last_reason else "")
            raise InfraError(
                f"the scrape-mode exporter cannot start: image {self.image}: {c.waiting_reason}: {said}. It needs an "
                "image with a static /bin/busybox (httpd, ts, awk, wget, sha256sum): set HARNESS_K8S_TOOLS_IMAGE, "
                "e.g. busybox:1.36"
            )
        return c is not None and c.running and bool(pod.ip)

    def _describe(self, pod: PodInfo | None) -> str:
        if pod is None:
            return f"no pod {EXPORTER} in {self.names.namespace}"
        events = self.api.events(pod.namespace, "Pod", pod.name)
        return pod.brief() + ("; last events: " + " | ".join(events[-3:]) if events else "")

    def _self_check(self) -> None:
        """Before Prometheus starts: the pod serves, over HTTP, what ``render_exposition`` renders (compared by
        SHA-256 at a tick of the first churn epochs), and its clock is this host's (scrape times are the pod's)."""
        pod = self._require_pod()
        iv, start = self.layout.interval_ms, self.layout.start_ms
        # Mid-interval times, so float rounding at a tick's edge cannot differ between awk and Python.
        ats_ms = [start + iv // 2]
        if self.layout.churn_every_ms is not None:
            ats_ms += [start + k * self.layout.churn_every_ms + iv // 2 for k in (1, 3)]
        ats = [f"{t / 1000:.3f}" for t in ats_ms]
        want = [hashlib.sha256(render_exposition(self.layout, float(at)).encode()).hexdigest() for at in ats]
        url = f"http://127.0.0.1:{PORT}{METRICS_PATH}"
        script = (
            f'echo | {BUSYBOX} ts %.s; for at in "$@"; do {BUSYBOX} wget -q -O - "{url}?at=$at" '
            f"| {BUSYBOX} sha256sum; done"
        )
        argv = [BUSYBOX, "sh", "-c", script, "sh", *ats]
        seen: list[str] = []

        def check() -> list[str] | None:
            before = time.time()
            out = self.api.exec(pod.namespace, pod.name, EXPORTER, argv)
            after = time.time()
            seen[:] = out.strip().splitlines()
            if len(seen) != 1 + len(ats) or "wget:" in out:
                return None  # httpd not listening yet, or the output is not what the script prints
            try:
                pod_now = float(seen[0].split()[0])
            except (IndexError, ValueError):
                return None
            self.clock_offset_s = pod_now - after if pod_now > after else min(0.0, pod_now - before)
            self.clock_uncertainty_s = after - before
            return [line.split()[0] for line in seen[1:]]

        try:
            got = wait_for(
                check,
                what=f"the scrape-mode exporter in {pod.namespace}/{pod.name} to answer {METRICS_PATH}",
                timeout_s=SELF_CHECK_TIMEOUT_S,
                interval_s=0.5,
                describe=lambda: "its output: " + (" | ".join(seen) or "(none)"),
            )
        except WaitTimeout as e:
            raise InfraError(
                f"{e}. It needs an image with a static /bin/busybox that has httpd, ts, awk, wget and sha256sum "
                f"(image {self.image}; HARNESS_K8S_TOOLS_IMAGE sets another)"
            ) from e
        if got != want:
            at = ats[next(i for i, (g, w) in enumerate(zip(got, want, strict=True)) if g != w)]
            body = self.api.exec(
                pod.namespace, pod.name, EXPORTER, [BUSYBOX, "wget", "-q", "-O", "-", f"{url}?at={at}"]
            )
            expected = render_exposition(self.layout, float(at))
            line = next(
                (
                    f"{a!r} where the harness expects {b!r}"
                    for a, b in zip(body.splitlines(), expected.splitlines(), strict=False)
                    if a != b
                ),
                f"{len(body)} bytes where the harness expects {len(expected)}",
            )
            raise InfraError(
                f"the scrape-mode exporter in {pod.namespace}/{pod.name} (image {self.image}) does not render what "
                f"the history check expects at {at}: {line}"
            )
        if self.clock_offset_s is not None and abs(self.clock_offset_s) > CLOCK_WARNING_S:
            log.warning(
                "the clock of node %s is at least %+.1f s off this host's: recovery times in scrape mode mix the two",
                pod.node,
                self.clock_offset_s,
            )

    def scrape_config(self) -> dict[str, object]:
        return scrape_config(self.layout, self.target, METRICS_PATH)

    def first_scrape_after(self, t_unix_s: float) -> float | None:
        """The first scrape by the current Prometheus after ``t_unix_s``, by the pod's clock, from the container's log
        (read through the API).

        Only the current Prometheus counts: a deleted pod's Prometheus goes on scraping until its SIGTERM arrives, a
        second or so after the fault, and would pass for a recovery that has not happened. It is told apart by its
        IP (pods talk without NAT); a restarted container keeps its pod's IP, and the scraper's second value is when
        the old container was gone.
        """
        ip, since = self._scraper()
        after = max(t_unix_s, since)

        def first() -> float | None:
            return next((t for t, client in self._scrapes if t > after and client == ip), None)

        found = first()
        if found is None and time.monotonic() - self._fetched_at >= LOG_REFRESH_S:
            self._scrapes = scrapes(self._log())
            self._fetched_at = time.monotonic()
            found = first()
        return found

    def stop(self) -> None:
        """Stop serving (the load ends), keeping the scrape log with the run's logs. The namespace's deletion
        removes the pod anyway: a failure here is only logged."""
        if self.pod is None or self._stopped:
            return
        self._stopped = True
        try:
            text = self._log()
            if text:
                self.logs_dir.mkdir(parents=True, exist_ok=True)
                (self.logs_dir / "scrape-exporter.log").write_text(text)
            self.api.delete("Pod", EXPORTER, self.pod.namespace)
        except (InfraError, OSError) as e:
            log.warning("could not stop the scrape-mode exporter early (%s); it goes with the run's namespace", e)

    def _log(self) -> str:
        pod = self._require_pod()
        return self.api.pod_log(pod.namespace, pod.name, EXPORTER)

    def _require_pod(self) -> PodInfo:
        if self.pod is None:
            raise InfraError("the scrape-mode exporter was not started")
        return self.pod
