"""The ``iscsi`` backend: a LUN with a whole-disk filesystem, as an in-tree ``iscsi`` PersistentVolume on Kubernetes.

Local runtime: the LUN's filesystem already mounted on this host (``storage.mount_path`` or
``$HARNESS_ISCSI_MOUNT``), checked to be of the scenario's ``fs_type``. Kubernetes: a PV with an ``iscsi`` source;
the kubelet formats nothing that has a partition table, which is the field notes' ``Can't find ext4 filesystem``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from harness.kube import Manifest
from harness.scenario.model import IscsiStorage
from harness.storage.base import StaticPvBackend
from harness.storage.mounted import MountedVolume, provision_mounted

if TYPE_CHECKING:
    from harness.results.model import DoctorFinding
    from harness.scenario.model import SecurityContext

MOUNT_ENV = "HARNESS_ISCSI_MOUNT"


class IscsiBackend(StaticPvBackend[IscsiStorage]):
    name = "iscsi"

    def provision(self, spec: IscsiStorage, workdir: Path, run_id: str) -> MountedVolume:
        return provision_mounted(
            self.name,
            env=MOUNT_ENV,
            configured=spec.mount_path,
            fstype_ok=lambda fstype: (
                None if fstype == spec.fs_type else f"but the scenario says fs_type {spec.fs_type}"
            ),
            how_to_mount=_how_to_mount(spec),
            run_id=run_id,
        )

    def doctor_findings(
        self, spec: IscsiStorage, security_context: SecurityContext, runtime: str
    ) -> list[DoctorFinding]:
        from harness.doctor.iscsi import check_iscsi

        return check_iscsi(spec)

    def source_text(self, spec: IscsiStorage) -> str:
        return f"iscsi {spec.target_portal} {spec.iqn} lun {spec.lun}"

    def volume_source(self, spec: IscsiStorage) -> Manifest:
        return {"iscsi": {"targetPortal": spec.target_portal, "iqn": spec.iqn, "lun": spec.lun, "fsType": spec.fs_type}}


def _how_to_mount(spec: IscsiStorage) -> str:
    return (
        f"The local runtime writes to the iSCSI LUN through a filesystem mounted on this host. Log in and mount it "
        f"first (iscsiadm -m node -T {spec.iqn} -p {spec.target_portal} --login; mount the whole-disk "
        f"{spec.fs_type} device at /mnt/prom-iscsi) and set storage.mount_path or {MOUNT_ENV}=/mnt/prom-iscsi. Hosts "
        "without an iSCSI initiator (no iscsi_tcp module) cannot do this: use the kubernetes runtime there "
        "(`harness doctor` still inspects the LUN from user space)."
    )


BACKEND = IscsiBackend()
