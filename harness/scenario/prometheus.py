"""The scenario's ``prometheus``: how it is deployed (binary, image, statefulset or operator), its flags, security
context, resources and probes.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from harness.scenario.strict import Strict
from harness.scenario.units import Bytes, Seconds


class SecurityContext(Strict):
    """Defaults are kube-prometheus-stack's: the uid/gid Prometheus writes its TSDB as."""

    run_as_user: int = Field(
        default=1000, ge=0, description="runAsUser, the uid Prometheus runs as (on the local runtime when run as root)"
    )
    run_as_group: int = Field(default=2000, ge=0, description="runAsGroup, its gid")
    fs_group: int | None = Field(
        default=2000,
        ge=0,
        description="fsGroup: the group the kubelet gives the volume where it can (not in-tree NFS; the local "
        "runtime does the same as root); null: none",
    )
    run_as_non_root: bool = Field(default=True, description="runAsNonRoot (Kubernetes runtime)")


class Probe(Strict):
    period_s: Seconds = Field(alias="period", description="periodSeconds (whole seconds, at least 1)")
    failure_threshold: int = Field(ge=1, description="failureThreshold: failures in a row before the kubelet acts")

    @property
    def budget_s(self) -> float:
        return self.period_s * self.failure_threshold


class Probes(Strict):
    """The operator's defaults: startup 60 x 15 s, liveness 6 x 5 s. Restart loops start when replay outlasts them."""

    startup: Probe | None = Field(
        default_factory=lambda: Probe.model_validate({"period": "15s", "failure_threshold": 60}),
        description="startupProbe on /-/ready (statefulset mode): its budget, period x failure_threshold, must "
        "outlast the WAL replay (the doctor compares it with a previous run's); null: none",
    )
    liveness: Probe = Field(
        default_factory=lambda: Probe.model_validate({"period": "5s", "failure_threshold": 6}),
        description="livenessProbe on /-/healthy (statefulset mode); the budget without a startup probe",
    )


class Resources(Strict):
    memory_bytes: Bytes | None = Field(
        default=None, alias="memory", description="the container's memory request and limit (Kubernetes runtime)"
    )
    cpu_millis: int | None = Field(
        default=None, alias="cpu_millicores", ge=1, description="its CPU request and limit, in millicores"
    )


class PrometheusSpec(Strict):
    binary: str = Field(default="prometheus", description="local runtime: program name on PATH or a path")
    image: str = Field(default="localhost/harness/prometheus:latest", description="Kubernetes runtime image")
    deploy: Literal["statefulset", "operator"] = Field(
        default="statefulset",
        description=(
            "Kubernetes runtime: 'statefulset' deploys the harness' own StatefulSet in the operator's shape; "
            "'operator' creates a monitoring.coreos.com/v1 Prometheus resource for a running prometheus-operator"
        ),
    )
    version: str = Field(
        default="v2.42.0",
        pattern=r"^v?[0-9]+\.[0-9]+\.[0-9]+",
        description=(
            "operator mode: the Prometheus version of `image` (the Prometheus resource's spec.version; the operator "
            "picks its flags by it); the default is the default image's"
        ),
    )
    scrape_interval_s: Seconds = Field(
        default=5.0,
        alias="scrape_interval",
        description="global scrape_interval and evaluation_interval: how often Prometheus scrapes itself (the "
        "scrape-mode load is scraped at loads.tsdb.interval)",
    )
    retention_s: Seconds = Field(
        default=86400.0,
        alias="retention",
        description="--storage.tsdb.retention.time (operator mode: the resource's retention)",
    )
    ready_timeout_s: Seconds = Field(
        default=120.0, alias="ready_timeout", description="how long to wait for /-/ready after each (re)start"
    )
    extra_args: list[str] = Field(
        default_factory=list,
        description="more Prometheus flags, appended as given (operator mode: the resource's additionalArgs)",
    )
    security_context: SecurityContext = Field(default_factory=SecurityContext)
    resources: Resources = Field(
        default_factory=Resources,
        description="the container's resources, requests equal to limits (Kubernetes runtime); default: none",
    )
    probes: Probes = Field(default_factory=Probes)
    privileged_helper: bool = Field(
        default=False,
        description=(
            "Kubernetes runtime: allow a privileged sidecar in Prometheus' pod, the fault layer (FUSE) that "
            "power_loss, io_errors and io_latency need under the volume; without it those faults are refused there"
        ),
    )
