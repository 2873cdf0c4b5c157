"""What every storage backend hands the runtime: a TSDB directory per pod, a fio directory, a description, teardown.

A "pod generation" counts Prometheus pods: a container restart (SIGKILL, SIGTERM) keeps the pod and its volumes, a
pod restart, reschedule or redeploy makes a new generation. Persistent backends give every generation the same
directory; the ephemeral backend (emptyDir) gives each a fresh one, which is exactly how history gets lost.
"""

from __future__ import annotations

import shutil
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path

from harness.mounts import filesystem_of


@dataclass
class ProvisionedStorage(ABC):
    backend: str
    root: Path  # everything this run writes on the storage lives under here
    persistent: bool
    created: list[Path] = field(default_factory=list)  # what teardown may remove: only what we made

    @abstractmethod
    def data_dir_for(self, generation: int) -> Path:
        """The TSDB directory the pod of this generation mounts (created if needed)."""

    def release(self, generation: int) -> None:  # noqa: B027 - persistent backends keep the data on purpose
        """The pod of this generation is gone; ephemeral storage throws its volume away."""

    def fio_dir(self) -> Path:
        path = self.root / "fio"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def describe(self) -> dict[str, str]:
        fs = filesystem_of(self.root)
        return {"backend": self.backend, "path": str(self.root), "filesystem": fs.fstype, "device": fs.source}

    def free_bytes(self) -> int:
        return shutil.disk_usage(self.root).free

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
