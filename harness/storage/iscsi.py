"""The ``iscsi`` backend: a LUN with a whole-disk filesystem, as an in-tree ``iscsi`` PersistentVolume on Kubernetes.

Local runtime, in this order:

* ``storage.mount_path`` / ``$HARNESS_ISCSI_MOUNT``: a filesystem of the LUN the user mounted himself;
* otherwise the harness attaches the LUN itself from user space, since the kernel initiator is missing on many hosts
  (and on ours): ``qemu-storage-daemon``'s libiscsi block driver exports the LUN as a file over FUSE, a loop device
  makes it a block device, and it is mounted as the kubelet's ``safe_format_and_mount`` would: a blank LUN is
  formatted with ``fs_type``, a LUN with a partition table or any other content is never formatted, and its mount
  fails with the system's own error (the field notes' ``Can't find ext4 filesystem``).

``target_portal: embedded`` starts tgt on 127.0.0.1 for the run, serving a sparse LUN file in the run's work area
with the layout the scenario asks for (blank, a whole-disk filesystem, or a GPT partition table).

Kubernetes: a PV with an ``iscsi`` source; the kubelet formats nothing that has a partition table.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from harness import proc
from harness.datapath.mounts import kernel_filesystems, probe_content, why_no_kernel_iscsi
from harness.errors import CommandFailed, StorageUnavailable
from harness.kube.inventory import Manifest
from harness.scenario.model import EmbeddedLun, IscsiStorage
from harness.storage.mounted import ServedVolume, provision_or_undo, start_serving
from harness.storage.network import EmbeddedDaemon, NetworkBackend, ServerTerms, check_listen
from harness.wait import wait_for

if TYPE_CHECKING:
    from harness.datapath.servers import IscsiTarget
    from harness.results.model import DoctorFinding
    from harness.scenario.model import SecurityContext

MOUNT_ENV = "HARNESS_ISCSI_MOUNT"
# The kubelet formats a blank disk with these (mount-utils' formatAndMountSensitive: -F and -m0 for ext*).
MKFS = {"ext4": ["mkfs.ext4", "-q", "-F", "-m0"], "xfs": ["mkfs.xfs", "-q", "-f"]}


class IscsiBackend(NetworkBackend[IscsiStorage]):
    name = "iscsi"
    mount_env = MOUNT_ENV
    user_mount_access = "a filesystem of the LUN mounted on this host by the user (storage.mount_path)"
    server_terms = ServerTerms("target_portal", "target", "tgt", "set target_portal to your target's host:port")

    def fstype_refusal(self, spec: IscsiStorage, fstype: str) -> str | None:
        return None if fstype == spec.fs_type else f"but the scenario says fs_type {spec.fs_type}"

    def why_no_kernel_client(self) -> str | None:
        return why_no_kernel_iscsi()

    def mount(self, spec: IscsiStorage, workdir: Path, run_id: str, *, kernel: bool) -> AttachedLun:
        return (attach_kernel if kernel else attach_user_space)(spec, workdir, run_id)

    def embedded_server(self, spec: IscsiStorage, workdir: Path) -> EmbeddedTarget | None:
        lun = spec.embedded_lun
        return None if lun is None else EmbeddedTarget(spec, lun, workdir)

    def runs_embedded(self, spec: IscsiStorage) -> bool:
        return spec.embedded_lun is not None

    def server_named(self, spec: IscsiStorage) -> str:
        return f"the iSCSI target at {spec.target_portal} ({spec.iqn})"

    def doctor_findings(
        self, spec: IscsiStorage, security_context: SecurityContext, runtime: str
    ) -> list[DoctorFinding]:
        from harness.doctor.iscsi import check_iscsi

        return check_iscsi(spec)

    def source_text(self, spec: IscsiStorage) -> str:
        return f"iscsi {spec.target_portal} {spec.iqn} lun {spec.lun}"

    def volume_source(self, spec: IscsiStorage) -> Manifest:
        return {"iscsi": {"targetPortal": spec.target_portal, "iqn": spec.iqn, "lun": spec.lun, "fsType": spec.fs_type}}


# --- the user-space data path ---------------------------------------------------------------------------------


@dataclass
class AttachedLun(ServedVolume):
    """A LUN attached by this run, and its mount: by qemu-storage-daemon (``export_file``, a FUSE file, with a loop
    ``device`` on it) or by the kernel initiator (``session``: the portal and IQN iscsiadm logged in to)."""

    export_file: Path | None = None
    device: str | None = None
    session: tuple[str, str] | None = None

    def detach(self) -> None:
        """The loop device on the FUSE file, or the kernel initiator's session."""
        if self.device is not None and self.export_file is not None:
            proc.run(["losetup", "-d", self.device], timeout_s=30, check=False)
        self.device = None
        if self.session is not None:
            portal, iqn = self.session
            proc.run(["iscsiadm", "-m", "node", "-T", iqn, "-p", portal, "--logout"], timeout_s=60, check=False)
            self.session = None

    def mount_points(self) -> list[Path]:
        return [p for p in (self.export_file, self.mount_point) if p is not None]


def attach_user_space(spec: IscsiStorage, workdir: Path, run_id: str) -> AttachedLun:
    """Log in to the LUN from user space and mount it the kubelet's way; everything is undone if a step fails."""
    if os.geteuid() != 0:
        raise StorageUnavailable(
            "attaching an iSCSI LUN on this host needs root (a loop device and a mount); run as root, or mount the "
            f"LUN yourself and set storage.mount_path or {MOUNT_ENV}"
        )
    if not Path("/dev/fuse").exists():
        raise StorageUnavailable("attaching an iSCSI LUN from user space needs FUSE, and /dev/fuse is missing")
    if spec.fs_type not in kernel_filesystems():
        raise StorageUnavailable(f"this kernel cannot mount {spec.fs_type} (not in /proc/filesystems)")
    qsd = proc.which("qemu-storage-daemon")
    volume = AttachedLun(backend="iscsi", root=workdir, persistent=True)
    return provision_or_undo(volume, lambda v: _attach(v, qsd, spec, workdir, run_id))


def _attach(volume: AttachedLun, qsd: str, spec: IscsiStorage, workdir: Path, run_id: str) -> None:
    where = f"{spec.iqn} lun {spec.lun} at {spec.target_portal}"
    volume.export_file = export = workdir / f"iscsi-lun-{run_id}"
    export.touch()
    blockdev = f"driver=iscsi,node-name=lun,transport=tcp,portal={spec.target_portal},target={spec.iqn},lun={spec.lun}"
    volume.daemon = start_serving(
        "qemu-storage-daemon",
        [qsd, "--blockdev", blockdev, "--export", f"type=fuse,id=export,node-name=lun,mountpoint={export},writable=on"],
        serves=export,
        log_path=workdir / "qemu-storage-daemon.log",
        what=f"qemu-storage-daemon to attach {where}",
        failed=lambda said: (
            f"the user-space iSCSI initiator could not attach {where}: {said}. Check target_portal (host:port "
            "reachable from this host), iqn and lun (`iscsi-ls -s iscsi://PORTAL` lists them)"
        ),
    )
    content = probe_content(export)
    formatted = _format_if_blank(spec, export, content)
    volume.device = proc.run(["losetup", "--find", "--show", str(export)], timeout_s=30).stdout.strip()
    _mount_lun(volume, volume.device, spec, content, run_id)
    volume.access = (
        f"iSCSI via user-space initiator (qemu-storage-daemon, libiscsi) + loop device {volume.device}: "
        f"{where}{formatted}"
    )


def attach_kernel(spec: IscsiStorage, workdir: Path, run_id: str) -> AttachedLun:
    """Log in with this host's kernel initiator (iscsiadm) and mount the LUN's device the kubelet's way."""
    proc.which("iscsiadm")  # chosen only where it is installed; names open-iscsi if it went away since
    volume = AttachedLun(backend="iscsi", root=workdir, persistent=True)

    def attach(v: AttachedLun) -> None:
        where = f"{spec.iqn} lun {spec.lun} at {spec.target_portal}"
        try:
            proc.run(["iscsiadm", "-m", "discovery", "-t", "st", "-p", spec.target_portal], timeout_s=60)
            v.session = (spec.target_portal, spec.iqn)
            proc.run(["iscsiadm", "-m", "node", "-T", spec.iqn, "-p", spec.target_portal, "--login"], timeout_s=60)
        except CommandFailed as e:
            said = " ".join(e.stderr_tail.split()) or str(e)
            raise StorageUnavailable(f"the kernel iSCSI initiator could not log in to {where}: {said}") from e
        device = Path(f"/dev/disk/by-path/ip-{spec.target_portal}-iscsi-{spec.iqn}-lun-{spec.lun}")
        wait_for(lambda: device.exists() or None, what=f"the device of {where} ({device})", timeout_s=30)
        content = probe_content(device)
        formatted = _format_if_blank(spec, device, content)
        _mount_lun(v, str(device.resolve()), spec, content, run_id)
        v.access = f"kernel iSCSI initiator (iscsiadm, iscsi_tcp), device {device.resolve()}: {where}{formatted}"

    return provision_or_undo(volume, attach)


def _format_if_blank(spec: IscsiStorage, disk: Path, content: dict[str, str]) -> str:
    """The kubelet's rule: a blank disk is formatted with fs_type, anything else never. What was done, for the log."""
    if content:
        return ""
    proc.run([*MKFS[spec.fs_type], str(disk)], timeout_s=600)
    return f", formatted {spec.fs_type} by this run (the LUN was blank)"


def _mount_lun(volume: AttachedLun, device: str, spec: IscsiStorage, content: dict[str, str], run_id: str) -> None:
    """Mount the LUN's filesystem in the work area (next to the run's other files) as the kubelet would."""
    volume.mount_point = mount_point = volume.root / f"iscsi-mnt-{run_id}"
    mount_point.mkdir()
    try:
        proc.run(["mount", "-t", spec.fs_type, device, str(mount_point)], timeout_s=60)
    except CommandFailed as e:
        raise StorageUnavailable(_mount_refused(spec, content, e)) from e
    volume.root = volume._make_dir(mount_point / f"harness-{run_id}")


def _mount_refused(spec: IscsiStorage, content: dict[str, str], error: CommandFailed) -> str:
    system = " ".join(error.stderr_tail.split()).rstrip(".") or str(error)
    if "PTTYPE" in content:
        holds = f"a {content['PTTYPE']} partition table"
        fix = (
            f"put the {spec.fs_type} filesystem on the whole disk, not in a partition (the field notes' "
            "`EXT4-fs (sdc): VFS: Can't find ext4 filesystem`), or point the scenario at a blank LUN"
        )
    elif "TYPE" in content:
        holds = f"a {content['TYPE']} filesystem"
        fix = f"set storage.fs_type: {content['TYPE']} or use a LUN with {spec.fs_type} on it"
    else:
        holds = "data that is neither blank nor a filesystem"
        fix = "use a blank LUN (the kubelet formats it) or one with a whole-disk filesystem"
    return (
        f"the LUN {spec.iqn} lun {spec.lun} holds {holds}, so it was not formatted (the kubelet formats only a "
        f"blank disk), and mounting it as {spec.fs_type} failed as in the kubelet: {system}. Fix: {fix}"
    )


# --- the embedded target ---------------------------------------------------------------------------------------


class EmbeddedTarget(EmbeddedDaemon[IscsiStorage, "IscsiTarget"]):
    """tgt on ``storage.embedded.listen`` serving one LUN file in the run's work area, laid out as the scenario says."""

    what = "iSCSI target"

    def __init__(self, spec: IscsiStorage, lun: EmbeddedLun, workdir: Path) -> None:
        super().__init__(
            spec, workdir, f"embedded iSCSI target (tgt on {lun.listen}, {lun.layout} LUN {spec.lun})", lun.listen
        )
        self.lun = lun

    @property
    def lun_file(self) -> Path:
        return self.workdir / "lun.img"

    def start(self) -> IscsiStorage:
        from harness.datapath.servers import start_tgt

        check_listen(self.lun.listen, self.what)
        self.workdir.mkdir(parents=True, exist_ok=True)
        size = self.lun.size_bytes or self.spec.claim.size_bytes
        with self.lun_file.open("wb") as f:
            f.truncate(size)
        layout = self.lun.layout
        if layout in MKFS:
            proc.run([*MKFS[layout], str(self.lun_file)], timeout_s=600)
        elif layout == "partitioned":
            # What the field notes had: a GPT with one Linux partition spanning the disk.
            proc.run(["sgdisk", "-n", "1:0:0", "-t", "1:8300", str(self.lun_file)], timeout_s=60)
        self.server = target = start_tgt(
            self.workdir / "tgt", iqn=self.spec.iqn, listen=self.lun.listen, record=self.record
        )
        target.add_lun(self.spec.lun, self.lun_file)
        return self.spec.model_copy(update={"target_portal": target.portal})

    def halted(self, server: IscsiTarget, pid: int) -> str:
        return f"tgtd (pid {pid}, {server.portal}) stopped: its target deleted with its connections, then tgtd"

    def resumed(self, server: IscsiTarget) -> str:
        luns = ", ".join(f"LUN {n} on {path.name}" for n, path in sorted(server.luns.items()))
        return f"tgtd started again (pid {server.daemon.pid}) on {server.portal}: {server.iqn}, {luns}"


BACKEND = IscsiBackend()
