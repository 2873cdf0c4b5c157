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

    run_as_user: int = Field(default=1000, ge=0)
    run_as_group: int = Field(default=2000, ge=0)
    fs_group: int | None = Field(default=2000, ge=0)
    run_as_non_root: bool = True


class Probe(Strict):
    period_s: Seconds = Field(alias="period")
    failure_threshold: int = Field(ge=1)

    @property
    def budget_s(self) -> float:
        return self.period_s * self.failure_threshold


class Probes(Strict):
    """The operator's defaults: startup 60 x 15 s, liveness 6 x 5 s. Restart loops start when replay outlasts them."""

    startup: Probe | None = Field(
        default_factory=lambda: Probe.model_validate({"period": "15s", "failure_threshold": 60})
    )
    liveness: Probe = Field(default_factory=lambda: Probe.model_validate({"period": "5s", "failure_threshold": 6}))


class Resources(Strict):
    memory_bytes: Bytes | None = Field(default=None, alias="memory")
    cpu_millis: int | None = Field(default=None, alias="cpu_millicores", ge=1)


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
    scrape_interval_s: Seconds = Field(default=5.0, alias="scrape_interval")
    retention_s: Seconds = Field(default=86400.0, alias="retention")
    ready_timeout_s: Seconds = Field(
        default=120.0, alias="ready_timeout", description="how long to wait for /-/ready after each (re)start"
    )
    extra_args: list[str] = Field(default_factory=list)
    security_context: SecurityContext = Field(default_factory=SecurityContext)
    resources: Resources = Field(default_factory=Resources)
    probes: Probes = Field(default_factory=Probes)
    privileged_helper: bool = Field(
        default=False,
        description=(
            "Kubernetes runtime: allow a privileged sidecar in Prometheus' pod, the fault layer (FUSE) that "
            "power_loss, io_errors and io_latency need under the volume; without it those faults are refused there"
        ),
    )
