"""The interface every runtime offers the pipeline: start Prometheus, inject a fault, wait for recovery, stop.

Fault vocabulary, in Kubernetes terms (the local runtime imitates them):
- ``sigkill`` / ``sigterm``: the container dies and the kubelet restarts it in the same pod: volumes, even an
  emptyDir, stay.
- ``restart``: the pod is deleted and recreated on the same node: an emptyDir is new and empty.
- ``reschedule``: the pod is recreated on another node (a local PV pins it back to its own node).
- ``redeploy``: the release is uninstalled and installed again (new pod; on Kubernetes, a new claim too).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

from harness.scenario.model import FaultAction


@dataclass(frozen=True)
class Injection:
    """What a runtime did for one fault; times are Unix seconds."""

    action: FaultAction
    injected_at_unix_s: float
    instance_before: str
    instance_after: str
    detail: str


@dataclass(frozen=True)
class Recovery:
    process_up_at_unix_s: float | None  # the new process answers /-/healthy
    ready_at_unix_s: float | None  # /-/ready answers 200: the WAL replay is over
    wal_replay_s: float | None


class Runtime(ABC):
    name: str

    @abstractmethod
    def start(self) -> None:
        """Start the first Prometheus instance and wait until it is ready."""

    @abstractmethod
    def base_url(self) -> str | None:
        """Where the current instance's HTTP API answers (None while there is none)."""

    @abstractmethod
    def instance(self) -> str:
        """A human-readable name of the current instance (pod, node, container restart)."""

    @abstractmethod
    def inject(self, action: FaultAction) -> Injection:
        """Inject a fault; returns once the replacement instance has been started (not necessarily ready)."""

    @abstractmethod
    def wait_recovered(self, timeout_s: float) -> Recovery:
        """Wait until the current instance is ready again; bounded by ``timeout_s``."""

    @abstractmethod
    def version(self) -> str:
        """The Prometheus version that runs."""

    @abstractmethod
    def stop(self) -> None:
        """Stop everything this runtime started. Idempotent; safe after Ctrl-C."""

    def log_excerpt(self) -> str:
        return ""
