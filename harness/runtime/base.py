"""The interface every runtime offers the pipeline: storage, Prometheus' lifecycle, and the primitive operations
that fault modules (``harness.faults``) compose.

A runtime knows no fault by name. It offers primitives, in Kubernetes terms (the local runtime imitates them):
- ``signal_prometheus``: the container gets a signal and the kubelet restarts it in the same pod: volumes, even an
  emptyDir, stay;
- ``delete_pod``: the pod is deleted and recreated where the scheduler may put it (a cordoned node is avoided): an
  emptyDir is new and empty;
- ``cordon`` / ``uncordon`` / ``node_cordoned`` / ``pod_node``: node scheduling;
- ``reinstall``: the release is uninstalled and installed again (new pod; on Kubernetes, a new claim too).
Every primitive returns when it acted (Unix seconds) and a sentence saying what it did.

``wait_recovered`` raises ``NotRecovered`` when Prometheus does not come back (not ready in time, exited, its pod
cannot be placed because of its storage): a finding, exit 1. ``InfraError`` stays for the harness or the
environment breaking (API unreachable, a program missing).
"""

from __future__ import annotations

import signal
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.errors import NotRecovered, WaitTimeout

if TYPE_CHECKING:
    from harness.kube import KubeInventory
    from harness.loads.tsdb import ScrapeExporter
    from harness.scenario.model import TsdbLoad


@dataclass(frozen=True)
class Injection:
    """What a fault did; times are Unix seconds."""

    action: str
    injected_at_unix_s: float
    instance_before: str
    instance_after: str
    detail: str


@dataclass(frozen=True)
class Recovery:
    process_up_at_unix_s: float | None  # the new process answers /-/healthy
    ready_at_unix_s: float | None  # /-/ready answers 200: the WAL replay is over
    wal_replay_s: float | None


@dataclass(frozen=True)
class StorageDescription:
    """Where the data of the run lives, for the result's environment."""

    path: str
    filesystem: str | None = None
    device: str | None = None
    access: str | None = None  # the data path: kernel mount, user-space client over FUSE, ...


class Runtime(ABC):
    name: str

    # --- storage and measurements ------------------------------------------------------------------------------

    def doctor_inventory(self) -> KubeInventory | None:
        """What the doctor's binding simulation should look at (the live cluster); None: no cluster."""
        return None

    @abstractmethod
    def provision_storage(self) -> StorageDescription:
        """Make the scenario's storage usable (locally: provision it; in a cluster: it comes with the pod)."""

    def teardown_storage(self) -> None:  # noqa: B027 - runtimes whose storage goes with the deployment do nothing
        """Remove the storage this run created (not called with --keep-data)."""

    def fio_directory(self) -> Path | None:
        """Where fio jobs measure the storage under test; None: not available on this runtime yet."""
        return None

    # --- Prometheus ----------------------------------------------------------------------------------------------

    def scrape_exporter(self, load: TsdbLoad, run_id: str) -> ScrapeExporter:
        """Scrape mode's synthetic exporter, where this runtime's Prometheus can scrape it: by default a thread of
        the harness on 127.0.0.1, which a Prometheus on this host reaches."""
        from harness.loads.tsdb import SyntheticExporter

        return SyntheticExporter(load, run_id)

    @abstractmethod
    def start(self, extra_scrape_configs: list[dict[str, Any]]) -> None:
        """Start the first Prometheus instance and wait until it is ready."""

    @abstractmethod
    def base_url(self) -> str | None:
        """Where the current instance's HTTP API answers (None while there is none)."""

    @abstractmethod
    def instance(self) -> str:
        """A human-readable name of the current instance (pod, node, container restart)."""

    @abstractmethod
    def wait_recovered(self, timeout_s: float) -> Recovery:
        """Wait until the current instance is ready again; bounded by ``timeout_s``; NotRecovered if it is not."""

    @abstractmethod
    def version(self) -> str:
        """The Prometheus version that runs."""

    @abstractmethod
    def stop(self) -> None:
        """Stop everything this runtime started and delete what it created. Idempotent; safe after Ctrl-C."""

    def log_excerpt(self) -> str:
        return ""

    # --- primitives for faults -----------------------------------------------------------------------------------

    @abstractmethod
    def signal_prometheus(self, sig: signal.Signals) -> tuple[float, str]:
        """Send ``sig`` to Prometheus; the container restarts in the same pod."""

    @abstractmethod
    def delete_pod(self) -> tuple[float, str]:
        """Delete the pod; returns once its replacement has been placed (or the scheduler said why not)."""

    @abstractmethod
    def pod_node(self) -> str:
        """The node the current pod runs on."""

    @abstractmethod
    def node_cordoned(self, node: str) -> bool: ...

    @abstractmethod
    def cordon(self, node: str) -> None: ...

    @abstractmethod
    def uncordon(self, node: str) -> None: ...

    @abstractmethod
    def scale(self, replicas: int) -> tuple[float, str]:
        """Scale Prometheus to 0 or 1 replicas; 0 returns once the pod is gone, 1 once the new one is placed (or
        the scheduler said why not). Scaling to what already runs does nothing (it is an undo, too)."""

    @abstractmethod
    def reinstall(self) -> tuple[float, str]:
        """Uninstall the release and install it again (helm uninstall + install)."""


@contextmanager
def not_recovered_on_timeout() -> Iterator[None]:
    """A bounded wait for Prometheus that gives up means Prometheus did not come back: a finding, not a harness bug."""
    try:
        yield
    except WaitTimeout as e:
        raise NotRecovered(str(e)) from e
