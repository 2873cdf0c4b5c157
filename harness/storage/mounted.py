"""The ``nfs`` and ``iscsi`` backends on the local runtime: a mount the user already has on this host.

The harness does not mount network storage itself (that needs root, kernel clients and credentials it should not
own); it checks that the given path really is such a mount and writes under a directory of its own there. Where the
kernel has no client at all (no nfs in /proc/filesystems), it says so rather than pretending.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from harness.errors import StorageUnavailable
from harness.mounts import filesystem_of, is_mount_point, kernel_filesystems
from harness.scenario.model import IscsiStorage, NfsStorage
from harness.storage.base import ProvisionedStorage

MOUNT_ENV = {"nfs": "HARNESS_NFS_MOUNT", "iscsi": "HARNESS_ISCSI_MOUNT"}


@dataclass
class MountedVolume(ProvisionedStorage):
    def data_dir_for(self, generation: int) -> Path:
        return self._make_dir(self.root / "prometheus-db")


def provision(spec: NfsStorage | IscsiStorage, workdir: Path, run_id: str) -> MountedVolume:
    backend = spec.backend
    env = MOUNT_ENV[backend]
    mount_path = os.environ.get(env) or spec.mount_path
    if not mount_path:
        raise StorageUnavailable(_how_to_mount(spec, env))
    path = Path(mount_path)
    if not path.is_dir():
        raise StorageUnavailable(f"{backend} mount path {mount_path!r} does not exist. " + _how_to_mount(spec, env))
    if not is_mount_point(path):
        raise StorageUnavailable(
            f"{mount_path!r} is not a mount point, so writes would land on {filesystem_of(path).fstype} "
            f"({filesystem_of(path).mount_point}), not on the {backend} storage. " + _how_to_mount(spec, env)
        )
    fstype = filesystem_of(path).fstype
    if backend == "nfs" and not fstype.startswith("nfs"):
        raise StorageUnavailable(f"{mount_path!r} is mounted as {fstype}, not nfs/nfs4")
    if isinstance(spec, IscsiStorage) and fstype != spec.fs_type:
        raise StorageUnavailable(f"{mount_path!r} is mounted as {fstype}, but the scenario says fs_type {spec.fs_type}")
    volume = MountedVolume(backend=backend, root=path, persistent=True)
    volume.root = volume._make_dir(path / f"harness-{run_id}")
    return volume


def _how_to_mount(spec: NfsStorage | IscsiStorage, env: str) -> str:
    if isinstance(spec, NfsStorage):
        how = (
            f"Mount the export first (e.g. mount -t nfs4 -o port={spec.port} {spec.server}:{spec.export} "
            f"/mnt/prom-nfs) and set storage.mount_path or {env}=/mnt/prom-nfs."
        )
        if not {"nfs", "nfs4"} & kernel_filesystems():
            how += (
                " This host's kernel has no NFS client (nfs/nfs4 are not in /proc/filesystems), so the local runtime "
                "cannot test NFS here: use a host with an NFS client, or the kubernetes runtime "
                "(`harness doctor` still checks the export from user space)."
            )
        return f"The local runtime writes to NFS through a kernel mount it does not create. {how}"
    return (
        f"The local runtime writes to the iSCSI LUN through a filesystem mounted on this host. Log in and mount it "
        f"first (iscsiadm -m node -T {spec.iqn} -p {spec.target_portal} --login; mount the whole-disk "
        f"{spec.fs_type} device at /mnt/prom-iscsi) and set storage.mount_path or {env}=/mnt/prom-iscsi. Hosts "
        "without an iSCSI initiator (no iscsi_tcp module) cannot do this: use the kubernetes runtime there "
        "(`harness doctor` still inspects the LUN from user space)."
    )
