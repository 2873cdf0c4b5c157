"""The ``local`` backend: a host directory (a local PV), optionally on a loop-mounted ext4/xfs image we create.

Local runtime: every generation of the Prometheus pod gets the same TSDB directory, as a local PV pinned by node
affinity would. Kubernetes: a PV with a ``local`` source and ``nodeAffinity`` to ``storage.node``, and the field
notes' no-provisioner, WaitForFirstConsumer StorageClass when the cluster has no class of the claim's name.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from harness.datapath.mounts import LoopMount, create_loop_mount
from harness.errors import StorageUnavailable, UsageError
from harness.kube.inventory import Manifest, NodeSelectorTerm
from harness.scenario.model import LocalStorage
from harness.storage.base import NO_PROVISIONER, ClassToCreate, ProvisionedStorage, StaticPvBackend, hostname_affinity

if TYPE_CHECKING:
    from harness.binding import BindingOutcome
    from harness.kube.inventory import KubeInventory
    from harness.results.model import DoctorFinding
    from harness.scenario.model import SecurityContext


@dataclass
class LocalVolume(ProvisionedStorage):
    loop: LoopMount | None = None

    def data_dir_for(self, generation: int) -> Path:
        return self._make_dir(self.root / "prometheus-db")

    def teardown(self) -> None:
        super().teardown()
        if self.loop is not None:
            self.loop.unmount()
            self.loop.mount_point.rmdir()
            self.loop.image.unlink(missing_ok=True)
            self.loop = None


class LocalBackend(StaticPvBackend[LocalStorage]):
    name = "local"

    def provision(self, spec: LocalStorage, workdir: Path, run_id: str) -> LocalVolume:
        base = workdir
        if spec.path is not None:
            base = Path(spec.path)
            if not base.is_dir():
                raise StorageUnavailable(
                    f"storage.path {spec.path!r} does not exist or is not a directory; create it (for a local PV: "
                    "mount the disk there) or leave 'path' out to use a directory in the run's work area"
                )
        volume = LocalVolume(backend=self.name, root=base, persistent=True)
        if spec.image is not None:
            mount_point = base / f"harness-{run_id}-mnt"
            image = base / f"harness-{run_id}.img"
            volume.loop = create_loop_mount(
                image,
                mount_point,
                filesystem=spec.image.filesystem,
                size_bytes=spec.image.size_bytes,
                direct_io=spec.image.direct_io,
            )
            volume.root = mount_point
        else:
            volume.root = volume._make_dir(base / f"harness-{run_id}")
        return volume

    def host_paths(self, spec: LocalStorage) -> list[Path]:
        return [Path(spec.path)] if spec.path is not None else []

    def doctor_findings(
        self, spec: LocalStorage, security_context: SecurityContext, runtime: str
    ) -> list[DoctorFinding]:
        from harness.doctor.local import check_local

        return check_local(spec, security_context, runtime=runtime)

    def binding_findings(
        self, spec: LocalStorage, outcome: BindingOutcome, inventory: KubeInventory
    ) -> list[DoctorFinding]:
        from harness.doctor.local import local_class_findings

        return local_class_findings(outcome, inventory)

    def source_text(self, spec: LocalStorage) -> str:
        return f"local {spec.path or '(run directory)'}"

    def node_affinity(self, spec: LocalStorage) -> tuple[NodeSelectorTerm, ...]:
        return hostname_affinity(spec.node) if spec.node is not None else ()

    def pinned_node(self, spec: LocalStorage) -> str | None:
        return spec.node

    def check_cluster_spec(self, spec: LocalStorage) -> None:
        if spec.volume.create and (spec.path is None or spec.node is None):
            raise UsageError(
                "a local PV on the kubernetes runtime needs storage.path (a directory on the node) and storage.node "
                f"(its kubernetes.io/hostname); the scenario has path {spec.path!r}, node {spec.node!r}"
            )

    def volume_source(self, spec: LocalStorage) -> Manifest:
        self.check_cluster_spec(spec)
        return {"local": {"path": spec.path}}

    def class_to_create(self, spec: LocalStorage) -> ClassToCreate | None:
        """The field notes' local-PV class: no provisioner, binding delayed until the pod is scheduled."""
        if not spec.claim.storage_class:
            return None
        return ClassToCreate(spec.claim.storage_class, NO_PROVISIONER, "WaitForFirstConsumer", "Retain")


BACKEND = LocalBackend()
