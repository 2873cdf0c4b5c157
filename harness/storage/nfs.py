"""The ``nfs`` backend: an NFS export, as an in-tree ``nfs`` PersistentVolume on Kubernetes.

Local runtime: a kernel mount of the export that already exists on this host (``storage.mount_path`` or
``$HARNESS_NFS_MOUNT``). Kubernetes: a PV with an ``nfs`` source and ``nfsvers``/``port`` mount options. The kubelet
does not apply ``fsGroup`` to in-tree NFS volumes, so ownership is whatever the export has: that is the field notes'
permission trap, which the local runtime reproduces by not applying it either.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from harness.kube import Manifest
from harness.mounts import kernel_filesystems
from harness.scenario.model import NfsStorage
from harness.storage.base import StaticPvBackend
from harness.storage.mounted import MountedVolume, provision_mounted

if TYPE_CHECKING:
    from harness.results.model import DoctorFinding
    from harness.scenario.model import SecurityContext

MOUNT_ENV = "HARNESS_NFS_MOUNT"


class NfsBackend(StaticPvBackend[NfsStorage]):
    name = "nfs"
    kubelet_applies_fs_group = False

    def provision(self, spec: NfsStorage, workdir: Path, run_id: str) -> MountedVolume:
        return provision_mounted(
            self.name,
            env=MOUNT_ENV,
            configured=spec.mount_path,
            fstype_ok=lambda fstype: None if fstype.startswith("nfs") else "not nfs/nfs4",
            how_to_mount=_how_to_mount(spec),
            run_id=run_id,
        )

    def doctor_findings(self, spec: NfsStorage, security_context: SecurityContext, runtime: str) -> list[DoctorFinding]:
        from harness.doctor.nfs import check_nfs

        return check_nfs(spec, security_context)

    def source_text(self, spec: NfsStorage) -> str:
        return f"nfs {spec.server}:{spec.export}"

    def volume_source(self, spec: NfsStorage) -> Manifest:
        return {
            "nfs": {"server": spec.server, "path": spec.export},
            "mountOptions": [f"nfsvers={spec.version}", f"port={spec.port}"],
        }


def _how_to_mount(spec: NfsStorage) -> str:
    how = (
        f"Mount the export first (e.g. mount -t nfs4 -o port={spec.port} {spec.server}:{spec.export} "
        f"/mnt/prom-nfs) and set storage.mount_path or {MOUNT_ENV}=/mnt/prom-nfs."
    )
    if not {"nfs", "nfs4"} & kernel_filesystems():
        how += (
            " This host's kernel has no NFS client (nfs/nfs4 are not in /proc/filesystems), so the local runtime "
            "cannot test NFS here: use a host with an NFS client, or the kubernetes runtime "
            "(`harness doctor` still checks the export from user space)."
        )
    return f"The local runtime writes to NFS through a kernel mount it does not create. {how}"


BACKEND = NfsBackend()
