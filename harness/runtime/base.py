"""The interface every runtime offers the pipeline: storage, Prometheus' lifecycle, the primitive operations that
fault modules (``harness.faults``) compose, and the capabilities it hands out (``harness.capabilities``).

A runtime knows no fault by name. It offers primitives every runtime has, in Kubernetes terms (the local runtime
imitates them):
- ``delete_pod``: the pod is deleted and recreated where the scheduler may put it (a cordoned node is avoided): an
  emptyDir is new and empty;
- ``cordon`` / ``uncordon`` / ``node_cordoned`` / ``pod_node``: node scheduling;
- ``reinstall``: the release is uninstalled and installed again (new pod; on Kubernetes, a new claim too).
Every primitive returns when it acted (Unix seconds) and a sentence saying what it did. What only some runtimes
can do (signal Prometheus in its container, lose a node, cut the power under it, fill its volume, ...) is a
capability object, handed out by type (``capability``) to the faults that need it.

``wait_recovered`` raises ``NotRecovered`` when Prometheus does not come back (not ready in time, exited, its pod
cannot be placed because of its storage): a finding, exit 1. ``InfraError`` stays for the harness or the
environment breaking (API unreachable, a program missing).
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar

from harness.capabilities import Capability, CapabilityT
from harness.errors import InfraError, NotRecovered, WaitTimeout
from harness.prom import PromClient
from harness.promlog import replay_progress
from harness.stages import StageId
from harness.wait import wait_for

if TYPE_CHECKING:
    from harness.kube import KubeInventory
    from harness.loads.shards import ShardLauncher
    from harness.loads.tsdb_scrape import ScrapeExporter
    from harness.results.model import ClusterFacts, FioJobResult
    from harness.scenario.model import FioJob, TsdbLoad


@dataclass(frozen=True)
class Injection:
    """What a fault did; times are Unix seconds."""

    action: str
    injected_at_unix_s: float
    instance_before: str
    instance_after: str
    detail: str
    stages: tuple[StageMark, ...] = ()  # what the fault itself saw happen (the node marked NotReady, ...)
    # power_loss: the last fsync under the WAL directory before the cut (None: none since the layer was mounted).
    last_wal_fsync_unix_s: float | None = None
    # A fault that lasts (``WindowInjector``): when its condition was lifted; recovery is timed from then.
    lifted_at_unix_s: float | None = None


@dataclass(frozen=True)
class StageMark:
    """When Prometheus reached a stage of its recovery (``harness.stages``), and where that time comes from."""

    stage: StageId
    at_unix_s: float
    source: str
    # The stage was reached in [at_unix_s, at_unix_s + resolution_s]: 1.0 for the API's whole-second timestamps
    # (truncated); for a kubelet metric polled, from the reading before the one that saw it to that one.
    resolution_s: float = 0.0


@dataclass(frozen=True)
class Recovery:
    process_up_at_unix_s: float | None  # the new process answers /-/healthy
    ready_at_unix_s: float | None  # /-/ready answers 200: the WAL replay is over
    wal_replay_s: float | None
    # The stages before /-/healthy the runtime could see (a new pod scheduled, its volumes mounted, ...).
    stages: tuple[StageMark, ...] = ()
    # Why stages the runtime looks for are not among them (no CSI volume, a kubelet that serves no metrics); "" none.
    stages_note: str = ""


@dataclass(frozen=True)
class StorageDescription:
    """Where the data of the run lives, for the result's environment."""

    path: str
    filesystem: str | None = None
    device: str | None = None
    access: str | None = None  # the data path: kernel mount, user-space client over FUSE, ...


class Runtime(ABC):
    name: str
    logs_dir: Path  # the run's logs (its directory's logs/): Prometheus', and those of a fault's helper processes
    # The capabilities this runtime can hand out (``harness.capabilities``); a run makes those its faults need.
    offers: ClassVar[frozenset[type[Capability]]] = frozenset()
    # The ones made for this run, by kind (set by the runtime's constructor).
    handed_out: Mapping[type[Capability], Capability] = MappingProxyType({})

    def capability(self, kind: type[CapabilityT]) -> CapabilityT:
        """The ``kind`` of capability made for this run; InfraError when it was not (the pipeline checks a fault's
        needs before the run, so this is a harness bug)."""
        made = self.handed_out.get(kind)
        if not isinstance(made, kind):
            raise InfraError(f"the {self.name} runtime was not prepared to {kind.does} for this run")
        return made

    # --- storage and measurements ------------------------------------------------------------------------------

    def cluster_facts(self) -> ClusterFacts | None:
        """What the result should record of the cluster (versions, nodes, the volume); None: no cluster."""
        return None

    def doctor_inventory(self) -> KubeInventory | None:
        """What the doctor's binding simulation should look at (the live cluster); None: no cluster."""
        return None

    @abstractmethod
    def provision_storage(self) -> StorageDescription:
        """Make the scenario's storage usable (locally: provision it; in a cluster: it comes with the pod)."""

    def teardown_storage(self) -> None:  # noqa: B027 - runtimes whose storage goes with the deployment do nothing
        """Remove the storage this run created (not called with --keep-data)."""

    @abstractmethod
    def fio_target(self) -> str:
        """Where fio jobs measure the storage under test, in words (after ``provision_storage``)."""

    @abstractmethod
    def run_fio(self, job: FioJob, out_dir: Path) -> FioJobResult:
        """Run one fio job on the storage Prometheus will use; its outputs go to ``out_dir`` (``fio.JobFiles``)."""

    @abstractmethod
    def fio_version(self) -> str | None:
        """The version of the fio the jobs ran with (None before the first job where fio runs remotely)."""

    # --- Prometheus ----------------------------------------------------------------------------------------------

    def scrape_exporter(self, load: TsdbLoad, run_id: str) -> ScrapeExporter:
        """Scrape mode's synthetic exporter, where this runtime's Prometheus can scrape it: by default a thread of
        the harness on 127.0.0.1, which a Prometheus on this host reaches."""
        from harness.loads.tsdb_scrape import SyntheticExporter

        return SyntheticExporter(load, run_id)

    def writer_shards(self) -> ShardLauncher:
        """Where a sharded write load's writers run: by default processes of this host, which reach a Prometheus on
        this host at ``base_url()``."""
        from harness.loads.shards import ProcessShards

        return ProcessShards(self.logs_dir)

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

    def log_text(self) -> str:
        """Prometheus' log of the current instance, as far as the runtime has it ("" where it has none)."""
        return ""

    def log_excerpt(self) -> str:
        return "\n".join(self.log_text().splitlines()[-20:])

    # --- primitives for faults -----------------------------------------------------------------------------------

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


class NotReady(NotRecovered):
    """Prometheus came up (it answered /-/healthy) but did not answer /-/ready within ``ready_timeout``: typically
    a WAL replay longer than that. Carries how far it got (``recovery``, without a ready time) for the fault's
    record."""

    def __init__(self, message: str, recovery: Recovery) -> None:
        super().__init__(message)
        self.recovery = recovery


def not_ready(
    who: str,
    timeout_s: float,
    *,
    waited_since_unix_s: float,
    recovery: Recovery,
    still_healthy: bool,
    log_text: str,
    more: str = "",
) -> NotReady:
    """The NotReady of a Prometheus that answered /-/healthy (at ``recovery.process_up_at_unix_s``) but not /-/ready
    within the wait of ``timeout_s`` that began at ``waited_since_unix_s``, saying how far its WAL replay got by its
    own log; ``more`` is what the runtime adds (the pod's state and events)."""
    up = waited_since_unix_s if recovery.process_up_at_unix_s is None else recovery.process_up_at_unix_s
    alive = "alive" if still_healthy else "up"
    healthy = f"it answered /-/healthy {max(0.0, up - waited_since_unix_s):.2f} s into the wait" + (
        " and still did when the wait gave up" if still_healthy else " but no longer did when the wait gave up"
    )
    progress = replay_progress(log_text, time.time())
    if not progress:
        lines = [line.strip() for line in log_text.splitlines() if line.strip()]
        progress = f"its log names no WAL replay; its last line: {lines[-1][:240]!r}" if lines else "it logged nothing"
    return NotReady(
        f"Prometheus ({who}) was {alive} but not ready within {timeout_s:g} s (prometheus.ready_timeout): "
        f"{healthy}, and /-/ready never answered 200; by its log {progress}" + (f"; {more}" if more else ""),
        recovery,
    )


def await_healthy_then_ready(
    client: PromClient,
    who: str,
    *,
    remaining: Callable[[], float],
    interval_s: float,
    not_ready_at: Callable[[float], NotReady],
    check: Callable[[], None] = lambda: None,
    describe: Callable[[], str] | None = None,
) -> tuple[float, float]:
    """Wait (bounded by ``remaining()`` each) until Prometheus answers /-/healthy, then /-/ready; when it did each
    (Unix seconds). ``check`` raises where waiting longer is pointless (the process exited); a wait for /-/ready
    that gives up raises ``not_ready_at(healthy_at)`` (how far the WAL replay got). Call it within
    ``not_recovered_on_timeout``: a wait for /-/healthy that gives up is Prometheus not back."""

    def healthy() -> bool:
        check()
        return client.healthy()

    def ready() -> bool:
        check()
        return client.ready()

    healthy_what = f"Prometheus ({who}) to answer /-/healthy"
    wait_for(healthy, what=healthy_what, timeout_s=remaining(), interval_s=interval_s, describe=describe)
    up_at = time.time()
    try:
        ready_what = f"Prometheus ({who}) to answer /-/ready (WAL replay)"
        wait_for(ready, what=ready_what, timeout_s=remaining(), interval_s=interval_s)
    except WaitTimeout as e:
        raise not_ready_at(up_at) from e
    return up_at, time.time()


@contextmanager
def not_recovered_on_timeout() -> Iterator[None]:
    """A bounded wait for Prometheus that gives up means Prometheus did not come back: a finding, not a harness bug."""
    try:
        yield
    except WaitTimeout as e:
        raise NotRecovered(str(e)) from e
