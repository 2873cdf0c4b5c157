"""The ``local`` backend: a host directory (a local PV), optionally on a loop-mounted ext4/xfs image we create.

Every generation of the Prometheus pod gets the same TSDB directory, as a local PV pinned by node affinity would.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harness.errors import StorageUnavailable
from harness.mounts import LoopMount, create_loop_mount
from harness.scenario.model import LocalStorage
from harness.storage.base import ProvisionedStorage


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


def provision(spec: LocalStorage, workdir: Path, run_id: str) -> LocalVolume:
    base = workdir
    if spec.path is not None:
        base = Path(spec.path)
        if not base.is_dir():
            raise StorageUnavailable(
                f"storage.path {spec.path!r} does not exist or is not a directory; create it (for a local PV: "
                "mount the disk there) or leave 'path' out to use a directory in the run's work area"
            )
    volume = LocalVolume(backend="local", root=base, persistent=True)
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
