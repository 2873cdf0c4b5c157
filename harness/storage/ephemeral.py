"""The ``ephemeral`` backend: the chart's default emptyDir. Each pod generation starts with an empty directory.

A container restart (SIGKILL, SIGTERM) keeps the pod and so its emptyDir; a new pod (restart, reschedule, redeploy)
gets a fresh one and the old one is deleted with its pod: the history loss the field notes started from. On
Kubernetes the pod mounts an ``emptyDir`` instead of a claim, so there is no PV or claim to plan.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from harness.fmt import exact_quantity
from harness.kube.inventory import Manifest
from harness.scenario.model import EphemeralStorage
from harness.storage.base import Backend, ProvisionedStorage

if TYPE_CHECKING:
    from harness.results.model import DoctorFinding
    from harness.scenario.model import SecurityContext


@dataclass
class EmptyDir(ProvisionedStorage):
    def data_dir_for(self, generation: int) -> Path:
        return self._make_dir(self.root / f"pod-{generation}-emptydir")

    def release(self, generation: int) -> None:
        path = self.root / f"pod-{generation}-emptydir"
        if path in self.created:
            shutil.rmtree(path, ignore_errors=True)
            self.created.remove(path)


class EphemeralBackend(Backend[EphemeralStorage]):
    name = "ephemeral"
    survives_new_pod = False

    def provision(self, spec: EphemeralStorage, workdir: Path, run_id: str) -> EmptyDir:
        volume = EmptyDir(backend=self.name, root=workdir, persistent=False)
        volume.root = volume._make_dir(workdir / f"harness-{run_id}-ephemeral")
        return volume

    def doctor_findings(
        self, spec: EphemeralStorage, security_context: SecurityContext, runtime: str
    ) -> list[DoctorFinding]:
        from harness.doctor.local import check_ephemeral

        return check_ephemeral(spec)

    def pod_volume(self, spec: EphemeralStorage) -> Manifest | None:
        empty_dir: Manifest = {}
        if spec.size_limit_bytes is not None:
            empty_dir["sizeLimit"] = exact_quantity(spec.size_limit_bytes)
        return {"emptyDir": empty_dir}

    def cluster_description(self, spec: EphemeralStorage) -> str:
        return "emptyDir of the Prometheus pod (the node's ephemeral storage)"


BACKEND = EphemeralBackend()
