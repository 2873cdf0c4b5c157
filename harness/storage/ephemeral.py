"""The ``ephemeral`` backend: the chart's default emptyDir. Each pod generation starts with an empty directory.

A container restart (SIGKILL, SIGTERM) keeps the pod and so its emptyDir; a new pod (restart, reschedule, redeploy)
gets a fresh one and the old one is deleted with its pod: the history loss the field notes started from.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from harness.scenario.model import EphemeralStorage
from harness.storage.base import ProvisionedStorage


@dataclass
class EmptyDir(ProvisionedStorage):
    def data_dir_for(self, generation: int) -> Path:
        return self._make_dir(self.root / f"pod-{generation}-emptydir")

    def release(self, generation: int) -> None:
        path = self.root / f"pod-{generation}-emptydir"
        if path in self.created:
            shutil.rmtree(path, ignore_errors=True)
            self.created.remove(path)


def provision(spec: EphemeralStorage, workdir: Path, run_id: str) -> EmptyDir:
    volume = EmptyDir(backend="ephemeral", root=workdir, persistent=False)
    volume.root = volume._make_dir(workdir / f"harness-{run_id}-ephemeral")
    return volume
