"""What a storage backend is: one object per ``storage.backend`` that owns everything about that kind of storage.

A ``Backend`` answers every question the pipeline, the runtimes and the doctor have about its storage, so none of
them tests a type or compares a backend name:

* local runtime: ``provision`` makes a ``ProvisionedStorage`` that hands each Prometheus "pod" its TSDB directory
  and removes only what it created; ``kubelet_applies_fs_group`` says whether the kubelet would group-own the volume;
* Kubernetes: the claim and PersistentVolume the scenario implies (``planned_claim``, ``planned_volume``, shared by
  the doctor's binding simulation and the runtime's manifests, so both see the same objects), the PV's volume source,
  the pod volume that replaces a claim (emptyDir), and a StorageClass to create when it is missing;
* the doctor: ``doctor_findings`` (each backend points at its check family in ``harness.doctor``);
* ``survives_new_pod``: whether a new pod (restart, reschedule, redeploy) finds the old pod's data.

A "pod generation" counts Prometheus pods: a container restart (SIGKILL, SIGTERM) keeps the pod and its volumes, a
pod restart, reschedule or redeploy makes a new generation. Persistent backends give every generation the same
directory; the ephemeral backend (emptyDir) gives each a fresh one, which is exactly how history gets lost.
"""

from __future__ import annotations

import posixpath
import shutil
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Protocol, TypeVar

from harness.datapath.mounts import filesystem_of
from harness.errors import InfraError
from harness.kube.inventory import Manifest, NodeSelectorRequirement, NodeSelectorTerm, PvcInfo, PvInfo
from harness.scenario.model import PersistentVolume, VolumeClaim

if TYPE_CHECKING:
    from harness.binding import BindingOutcome
    from harness.kube.inventory import KubeInventory
    from harness.results.model import DoctorFinding
    from harness.scenario.model import SecurityContext

# The provisioner name of a StorageClass whose PVs an administrator creates by hand (the field notes' local PVs).
NO_PROVISIONER = "kubernetes.io/no-provisioner"


def operator_claim_name(scenario_name: str) -> str:
    """The prometheus-operator names the claim of a StatefulSet's volumeClaimTemplate like this."""
    return f"prometheus-{scenario_name}-db-prometheus-{scenario_name}-0"


@dataclass
class ProvisionedStorage(ABC):
    """Storage provisioned for one run on the local runtime."""

    backend: str
    root: Path  # everything this run writes on the storage lives under here
    persistent: bool
    created: list[Path] = field(default_factory=list)  # what teardown may remove: only what we made
    access: str | None = None  # how this host reaches the storage (kernel mount, user-space client, ...)

    @abstractmethod
    def data_dir_for(self, generation: int) -> Path:
        """The TSDB directory the pod of this generation mounts (created if needed)."""

    def release(self, generation: int) -> None:  # noqa: B027 - persistent backends keep the data on purpose
        """The pod of this generation is gone; ephemeral storage throws its volume away."""

    def fio_dir(self) -> Path:
        path = self.root / "fio"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def client_log(self) -> str:
        """What the client this run reaches the storage through has logged so far ("" where it keeps no log of
        ours, e.g. a kernel client or a local disk): read around a server restart to say what the client did."""
        return ""

    def held_below(self) -> str:
        """What this storage holds volatile below its filesystem, in a phrase, for a power cut to say
        (``harness.capabilities.volatile_below``)."""
        return "no write-back cache in a process of the run's holds data there"

    def volatile_below(self) -> bool:
        """Whether a process of the run's holds written data below the filesystem that a flush has not reached
        the storage with yet (a client's write-back cache), which ``lose_below`` takes."""
        return False

    def lose_below(self) -> str:
        """The power fails below the filesystem: kill what ``volatile_below`` says holds data, and bring the
        filesystem back on what the storage kept; what was done, in a sentence."""
        raise InfraError(f"the {self.backend} volume holds nothing volatile below its filesystem to lose")

    def describe(self) -> dict[str, str]:
        fs = filesystem_of(self.root)
        described = {"backend": self.backend, "path": str(self.root), "filesystem": fs.fstype, "device": fs.source}
        return described | ({"access": self.access} if self.access else {})

    def teardown(self) -> None:
        """Remove what this run created, newest first; never anything else."""
        for path in reversed(self.created):
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        self.created.clear()

    def _make_dir(self, path: Path) -> Path:
        if not path.exists():
            path.mkdir(parents=True)
            self.created.append(path)
        return path


@dataclass(frozen=True)
class ExportLocation:
    """A directory on a file server that several volumes can name (an NFS ``server:path``), normalised so that
    ``/export/x``, ``/export/x/`` and ``/export//x`` are one place. Server names are compared as written (lower
    case, no trailing dot): the doctor resolves no names, so an address and a host name of one server differ."""

    server: str
    path: str

    @classmethod
    def of(cls, server: str, path: str) -> ExportLocation:
        clean = posixpath.normpath("/" + path.strip()) if path.strip() else "/"
        # normpath keeps a leading "//" (POSIX allows it a meaning); an export path has none.
        return cls(server.strip().lower().rstrip("."), "/" + clean.lstrip("/"))

    def relation(self, other: ExportLocation) -> str | None:
        """How ``other`` lies relative to this one: "same", "inside" (other is in this one), "contains" (this one is
        in other), or None (different servers, or neither path is in the other)."""
        if self.server != other.server:
            return None
        if self.path == other.path:
            return "same"
        if other.path.startswith(self.path.rstrip("/") + "/"):
            return "inside"
        if self.path.startswith(other.path.rstrip("/") + "/"):
            return "contains"
        return None

    def __str__(self) -> str:
        return f"{self.server}:{self.path}"


@dataclass(frozen=True)
class ExportAccess:
    """How another NFS client reaches the export that holds a run's data: the server as the run mounted it, and the
    data directory's path inside the export (``/`` is the export root)."""

    server: str
    export: str
    port: int
    mount_port: int | None
    version: str
    data_path: str


@dataclass(frozen=True)
class ClassToCreate:
    """A StorageClass the Kubernetes runtime creates for the run when the cluster has none of that name."""

    name: str
    provisioner: str
    volume_binding_mode: str
    reclaim_policy: str


SpecT = TypeVar("SpecT")


class EmbeddedServer(ABC, Generic[SpecT]):
    """A storage server the run starts on 127.0.0.1 for itself: the pipeline records ``stop`` before ``start``."""

    description: str

    @abstractmethod
    def start(self) -> SpecT:
        """Start it; the scenario's storage spec pointing at it (what the doctor and the runtime then use)."""

    @abstractmethod
    def stop(self) -> None:
        """Stop what ``start`` started, also after a start that failed half way; idempotent."""

    def keep_past_run(self, record: Path) -> bool:
        """Have ``start`` start a server that does not die with the harness (it serves a cluster's nodes, which a
        SIGKILLed run must not leave with a dead server) and keeps its record at ``record`` for ``harness cleanup``;
        False: this server cannot (it dies with the run, as every server does on the local runtime)."""
        return False

    def halt(self) -> str:
        """Stop the server process only (``server_restart``), keeping what ``resume`` needs to bring the very same
        server back: ports, export or LUNs, their files. Returns what was stopped, in words."""
        raise InfraError(f"the {self.description} cannot be stopped and started again")

    def resume(self) -> str:
        """Start the server ``halt`` stopped, as it was; returns once it serves again, saying what came back."""
        raise InfraError(f"the {self.description} cannot be stopped and started again")


class Backend(ABC, Generic[SpecT]):
    """Everything about one kind of storage; registered in ``harness.storage`` by ``name``."""

    name: ClassVar[str]
    #: A new pod (restart, reschedule, redeploy) sees the data the old pod wrote.
    survives_new_pod: ClassVar[bool] = True
    #: The kubelet group-owns the volume for the pod's fsGroup (it does not for in-tree NFS volumes).
    kubelet_applies_fs_group: ClassVar[bool] = True

    # --- local runtime ----------------------------------------------------------------------------------------

    @abstractmethod
    def provision(self, spec: SpecT, workdir: Path, run_id: str) -> ProvisionedStorage:
        """Make the storage usable on this host for one run; raises StorageUnavailable saying what to set up."""

    def host_paths(self, spec: SpecT) -> list[Path]:
        """Directories outside the run's work area in which ``provision`` creates ``harness-<run_id>*`` entries (a
        local PV's disk, a mount the user made): recorded in the run's marker, so ``harness cleanup`` can undo a
        killed run's mounts there. It never removes data from them."""
        return []

    # --- the doctor -------------------------------------------------------------------------------------------

    @abstractmethod
    def doctor_findings(self, spec: SpecT, security_context: SecurityContext, runtime: str) -> list[DoctorFinding]:
        """This backend's own traps (the binding simulation and probe checks are common to all backends)."""

    def binding_findings(self, spec: SpecT, outcome: BindingOutcome, inventory: KubeInventory) -> list[DoctorFinding]:
        """Findings that need the simulated binding and the live inventory (e.g. the local-PV class recipe)."""
        return []

    def export_location(self, spec: SpecT) -> ExportLocation | None:
        """The server directory this storage names, which other volumes may name too; None: none (a local disk)."""
        return None

    def pv_export_location(self, pv: PvInfo) -> ExportLocation | None:
        """The same for a PersistentVolume of this backend's kind (from its ``volume_source``); None: not one."""
        return None

    # --- a second client on the same storage (the second_writer fault) --------------------------------------

    def export_refusal(self, spec: SpecT) -> str | None:
        """Why another client cannot reach this storage's data over the network beside the run's own mount (the
        ``export_access`` of a provisioned volume); None: it can."""
        return f"storage.backend {self.name} is no network export another client can mount"

    def export_access(self, spec: SpecT, storage: ProvisionedStorage, data_dir: Path) -> ExportAccess | None:
        """How another client reaches ``data_dir`` (a directory of ``storage``) through the export; None: it cannot."""
        return None

    def volume_export_access(self, spec: SpecT, data_subdir: str) -> ExportAccess | None:
        """How another client reaches the data of the PV the run creates (``data_subdir`` of its root, "" for the
        root) through the export the PV names; None: the PV is no network export."""
        return None

    # --- Kubernetes -------------------------------------------------------------------------------------------

    def planned_claim(self, spec: SpecT, scenario_name: str, namespace: str) -> PvcInfo | None:
        """The claim Prometheus' StatefulSet will make, or None when the pod uses no claim."""
        return None

    def planned_volume_name(self, spec: SpecT, scenario_name: str) -> str | None:
        return None

    def planned_volume(self, spec: SpecT, scenario_name: str) -> PvInfo | None:
        """The PV the run creates (as the PV controller will see it), or None when it creates none."""
        return None

    def volume_source(self, spec: SpecT) -> Manifest:
        """The PV spec fields that say where the data lives (``nfs``, ``iscsi``, ``local``, mount options)."""
        raise NotImplementedError(f"the {self.name} backend creates no PersistentVolume")

    def pod_volume(self, spec: SpecT) -> Manifest | None:
        """A pod volume that replaces the claim (the emptyDir baseline); None: the pod mounts the claim."""
        return None

    def class_to_create(self, spec: SpecT) -> ClassToCreate | None:
        return None

    def pinned_node(self, spec: SpecT) -> str | None:
        """The one node a pod using this storage may run on (a local PV's nodeAffinity); None: any node."""
        return None

    def check_cluster_spec(self, spec: SpecT) -> None:
        """Raise UsageError when the scenario lacks what a cluster needs (e.g. a local PV's node)."""

    def cluster_refusal(self, spec: SpecT) -> str | None:
        """Why this storage cannot be used in a cluster at all (an embedded server on this host), or None."""
        return None

    def local_refusal(self, spec: SpecT) -> str | None:
        """Why this storage cannot be used on the local runtime at all (a class only a cluster provisions), or None."""
        return None

    # --- embedded servers -------------------------------------------------------------------------------------

    def embedded_server(self, spec: SpecT, workdir: Path) -> EmbeddedServer[SpecT] | None:
        """The server this run starts itself when the scenario asks for one (``embedded``), else None."""
        return None

    def server_refusal(self, spec: SpecT) -> str | None:
        """Why no fault may stop this storage's server; None where the run starts that server itself (the harness
        never stops a server it did not start)."""
        return f"{self.name} storage has no server this run starts"

    def cluster_description(self, spec: SpecT) -> str:
        return f"{self.name} volume in the cluster"


class StaticPvSpec(Protocol):
    """What the models of static-PV backends share: the claim Prometheus makes and the PV the run creates."""

    @property
    def claim(self) -> VolumeClaim: ...

    @property
    def volume(self) -> PersistentVolume: ...


StaticSpecT = TypeVar("StaticSpecT", bound=StaticPvSpec)


class StaticPvBackend(Backend[StaticSpecT]):
    """A backend whose data lives on a PersistentVolume the run creates by hand (local, nfs, iscsi)."""

    @abstractmethod
    def source_text(self, spec: StaticSpecT) -> str:
        """How ``kubectl describe pv`` would name the source, e.g. ``nfs 10.0.0.1:/export``."""

    def node_affinity(self, spec: StaticSpecT) -> tuple[NodeSelectorTerm, ...]:
        return ()

    def planned_claim(self, spec: StaticSpecT, scenario_name: str, namespace: str) -> PvcInfo | None:
        claim = spec.claim
        return PvcInfo(
            namespace=namespace,
            name=operator_claim_name(scenario_name),
            storage_class=claim.storage_class,
            request_bytes=claim.size_bytes,
            access_modes=tuple(claim.access_modes),
            volume_mode=claim.volume_mode,
            selector=dict(claim.selector) if claim.selector is not None else None,
        )

    def planned_volume_name(self, spec: StaticSpecT, scenario_name: str) -> str | None:
        return spec.volume.name or f"harness-{scenario_name}"

    def planned_volume(self, spec: StaticSpecT, scenario_name: str) -> PvInfo | None:
        """Its class is the claim's class when that is set, else none (``""``): static PVs carry no class by default."""
        claim, volume = spec.claim, spec.volume
        if not volume.create:
            return None
        return PvInfo(
            name=volume.name or f"harness-{scenario_name}",
            capacity_bytes=volume.capacity_bytes or claim.size_bytes,
            storage_class=claim.storage_class or "",
            access_modes=tuple(claim.access_modes),
            volume_mode=claim.volume_mode,
            labels=dict(volume.labels),
            phase="Available",
            node_affinity=self.node_affinity(spec),
            reclaim_policy=volume.reclaim_policy,
            source=self.source_text(spec),
        )


def hostname_affinity(node: str) -> tuple[NodeSelectorTerm, ...]:
    """A PV pinned to one node, as a local PV must be."""
    return (NodeSelectorTerm((NodeSelectorRequirement("kubernetes.io/hostname", "In", (node,)),)),)


AnyBackend = Backend[Any]
