"""Network storage the local runtime reaches through a mount that already exists on this host (nfs, iscsi).

Not a backend of its own: the ``nfs`` and ``iscsi`` backends share it. The harness does not mount network storage
itself here (that needs root, kernel clients and credentials it should not own); it checks that the given path
really is such a mount and writes under a directory of its own there, so nothing outside it is ever touched.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from harness.errors import StorageUnavailable
from harness.mounts import filesystem_of, is_mount_point
from harness.storage.base import ProvisionedStorage


@dataclass
class MountedVolume(ProvisionedStorage):
    def data_dir_for(self, generation: int) -> Path:
        return self._make_dir(self.root / "prometheus-db")


def provision_mounted(
    backend: str,
    *,
    env: str,
    configured: str | None,
    fstype_ok: Callable[[str], str | None],
    how_to_mount: str,
    run_id: str,
) -> MountedVolume:
    """The directory ``harness-<run_id>`` on the mount named by ``$env`` or ``storage.mount_path``.

    ``fstype_ok`` returns why the mount's filesystem type is wrong (None when it is right).
    """
    mount_path = os.environ.get(env) or configured
    if not mount_path:
        raise StorageUnavailable(how_to_mount)
    path = Path(mount_path)
    if not path.is_dir():
        raise StorageUnavailable(f"{backend} mount path {mount_path!r} does not exist. " + how_to_mount)
    fs = filesystem_of(path)
    if not is_mount_point(path):
        raise StorageUnavailable(
            f"{mount_path!r} is not a mount point, so writes would land on {fs.fstype} ({fs.mount_point}), not on "
            f"the {backend} storage. " + how_to_mount
        )
    wrong = fstype_ok(fs.fstype)
    if wrong is not None:
        raise StorageUnavailable(f"{mount_path!r} is mounted as {fs.fstype}, {wrong}")
    volume = MountedVolume(backend=backend, root=path, persistent=True)
    volume.root = volume._make_dir(path / f"harness-{run_id}")
    return volume
