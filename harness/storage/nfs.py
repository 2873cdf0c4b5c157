"""The ``nfs`` backend: an NFS export, as an in-tree ``nfs`` PersistentVolume on Kubernetes.

Local runtime, in this order:

* ``storage.mount_path`` / ``$HARNESS_NFS_MOUNT``: the export as the user mounted it himself;
* otherwise the harness mounts it itself from user space (many hosts, ours among them, have no kernel NFS client):
  ``harness.datapath.nfs_fuse`` runs as its own process, a FUSE filesystem whose every request reaches the server
  with the
  calling process's uid/gid (AUTH_SYS), so the server judges Prometheus' writes exactly as it would a pod's. It speaks
  NFSv3 on the wire: Debian 12's libnfs 4.0 loses NFSv4 open state between users (NFS4ERR_BAD_STATEID), and v3 has
  none to lose. The run writes in a directory of its own in the export, given the export root's owner and mode, so
  Prometheus meets the export's permissions (the field notes' trap) without touching anything else there.

``server: embedded`` starts NFS-Ganesha on 127.0.0.1 for the run, exporting a directory in the run's work area with
the owner and mode the scenario gives. The kubelet does not apply ``fsGroup`` to in-tree NFS volumes, so ownership is
whatever the export has; the local runtime does not apply it either.

Kubernetes: a PV with an ``nfs`` source and ``nfsvers``/``port`` mount options.
"""

from __future__ import annotations

import os
import stat
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from harness import proc
from harness.datapath.mounts import why_no_kernel_nfs
from harness.errors import CommandFailed, StorageUnavailable
from harness.kube.inventory import Manifest
from harness.scenario.model import EmbeddedExport, NfsStorage
from harness.storage.base import ExportAccess, ExportLocation, ProvisionedStorage
from harness.storage.mounted import ServedVolume, provision_or_undo, start_serving
from harness.storage.network import EmbeddedDaemon, NetworkBackend, ServerTerms, check_listen

if TYPE_CHECKING:
    from harness.datapath.servers import NfsServer
    from harness.kube.inventory import PvInfo
    from harness.results.model import DoctorFinding
    from harness.scenario.model import SecurityContext

MOUNT_ENV = "HARNESS_NFS_MOUNT"


class NfsBackend(NetworkBackend[NfsStorage]):
    name = "nfs"
    kubelet_applies_fs_group = False
    mount_env = MOUNT_ENV
    user_mount_access = "the export as mounted on this host by the user (storage.mount_path)"
    server_terms = ServerTerms("server", "server", "NFS-Ganesha", "set server and export to your NFS server's")

    def fstype_refusal(self, spec: NfsStorage, fstype: str) -> str | None:
        return None if fstype.startswith("nfs") else "not nfs/nfs4"

    def why_no_kernel_client(self) -> str | None:
        return why_no_kernel_nfs()

    def mount(self, spec: NfsStorage, workdir: Path, run_id: str, *, kernel: bool) -> NfsVolume:
        return (mount_kernel if kernel else mount_user_space)(spec, workdir, run_id)

    def embedded_server(self, spec: NfsStorage, workdir: Path) -> EmbeddedNfs | None:
        export = spec.embedded_export
        return None if export is None else EmbeddedNfs(spec, export, workdir)

    def runs_embedded(self, spec: NfsStorage) -> bool:
        return spec.embedded_export is not None

    def server_named(self, spec: NfsStorage) -> str:
        return f"the NFS server {spec.server} (export {spec.export})"

    def doctor_findings(self, spec: NfsStorage, security_context: SecurityContext, runtime: str) -> list[DoctorFinding]:
        from harness.doctor.nfs import check_nfs

        return check_nfs(spec, security_context)

    def source_text(self, spec: NfsStorage) -> str:
        return f"nfs {spec.server}:{spec.export}"

    def export_location(self, spec: NfsStorage) -> ExportLocation | None:
        # An embedded server exports a fresh directory of the run's own: no other volume can name it.
        return None if spec.embedded_export is not None else ExportLocation.of(spec.server, spec.export)

    def pv_export_location(self, pv: PvInfo) -> ExportLocation | None:
        nfs = pv.volume_source.get("nfs")
        return None if not nfs else ExportLocation.of(str(nfs.get("server", "")), str(nfs.get("path", "")))

    def export_refusal(self, spec: NfsStorage) -> str | None:
        if not self.host_paths(spec):
            return None
        return (
            f"the export is a mount made outside the run (storage.mount_path or {MOUNT_ENV}), so the harness does "
            "not know which directory of the export Prometheus' data is in; leave both unset so the run mounts the "
            "export itself"
        )

    def export_access(self, spec: NfsStorage, storage: ProvisionedStorage, data_dir: Path) -> ExportAccess | None:
        if not isinstance(storage, NfsVolume) or storage.mount_point is None:
            return None
        try:
            inside = data_dir.relative_to(storage.mount_point)
        except ValueError:
            return None
        # NFSv3, as the run's own user-space client: Debian 12's libnfs 4.0 loses NFSv4 open state between users.
        data_path = "/" if inside == Path() else f"/{inside.as_posix()}"
        return ExportAccess(spec.server, spec.export, spec.port, spec.mount_port, "3", data_path)

    def volume_export_access(self, spec: NfsStorage, data_subdir: str) -> ExportAccess | None:
        # The PV mounts the export's root into the pod; NFSv3 for the reason export_access gives.
        data_path = f"/{data_subdir}" if data_subdir else "/"
        return ExportAccess(spec.server, spec.export, spec.port, spec.mount_port, "3", data_path)

    def volume_source(self, spec: NfsStorage) -> Manifest:
        return {
            "nfs": {"server": spec.server, "path": spec.export},
            "mountOptions": [
                f"nfsvers={spec.version}",
                f"port={spec.port}",
                *([f"mountport={spec.mount_port}"] if spec.mount_port is not None else []),
            ],
        }


# --- the user-space data path ---------------------------------------------------------------------------------


@dataclass
class NfsVolume(ServedVolume):
    """The export mounted by this run (kernel client, or ``harness.datapath.nfs_fuse`` as ``daemon``); the run's
    directory in
    it is Prometheus' data directory."""

    def data_dir_for(self, generation: int) -> Path:
        # The run's directory stands for the export root (the PV): Prometheus creates everything in it as its uid.
        return self.root

    def fio_dir(self) -> Path:
        return self._make_dir(self.root.parent / f"{self.root.name}-fio")


def mount_user_space(spec: NfsStorage, workdir: Path, run_id: str) -> NfsVolume:
    """Mount the export through the harness's FUSE client; everything is undone if a step fails."""
    if not Path("/dev/fuse").exists():
        raise StorageUnavailable(
            "mounting NFS from user space needs FUSE, and /dev/fuse is missing; mount the export yourself and set "
            f"storage.mount_path or {MOUNT_ENV}"
        )
    volume = NfsVolume(backend="nfs", root=workdir, persistent=True)
    return provision_or_undo(volume, lambda v: _mount(v, spec, workdir, run_id))


def mount_kernel(spec: NfsStorage, workdir: Path, run_id: str) -> NfsVolume:
    """Mount the export with this host's kernel client, as the kubelet's nfs plugin does."""
    volume = NfsVolume(backend="nfs", root=workdir, persistent=True)

    def mount(v: NfsVolume) -> None:
        v.mount_point = mount_point = workdir / f"nfs-mnt-{run_id}"
        mount_point.mkdir()
        options = [f"vers={spec.version}", f"port={spec.port}"]
        options += [f"mountport={spec.mount_port}"] if spec.mount_port is not None else []
        source = f"{spec.server}:{spec.export}"
        try:
            proc.run(["mount", "-t", "nfs", "-o", ",".join(options), source, str(mount_point)], timeout_s=60)
        except CommandFailed as e:
            said = " ".join(e.stderr_tail.split()) or str(e)
            raise StorageUnavailable(f"the kernel NFS client could not mount {source}: {said}") from e
        _own_directory(v, mount_point, spec, run_id, f"kernel NFS client, vers={spec.version} ({','.join(options)})")

    return provision_or_undo(volume, mount)


def _mount(volume: NfsVolume, spec: NfsStorage, workdir: Path, run_id: str) -> None:
    where = f"{spec.server}:{spec.export} (port {spec.port})"
    volume.mount_point = mount_point = workdir / f"nfs-mnt-{run_id}"
    mount_point.mkdir()
    argv = [sys.executable, "-m", "harness.datapath.nfs_fuse", spec.server, spec.export, str(mount_point)]
    argv += ["--port", str(spec.port), "--version", "3"]
    if spec.mount_port is not None:
        argv += ["--mount-port", str(spec.mount_port)]
    volume.daemon = start_serving(
        "nfs-fuse",
        argv,
        serves=mount_point,
        log_path=workdir / "nfs-fuse.log",
        what=f"the user-space NFS client to mount {where}",
        failed=lambda said: (
            f"the user-space NFS client could not mount {where}: {said}. It speaks NFSv3 (libnfs 4.0's NFSv4 "
            "client loses open state between users): check server, export and port, and that the server serves "
            "v3; or mount the export yourself and set storage.mount_path"
        ),
    )
    _own_directory(
        volume,
        mount_point,
        spec,
        run_id,
        "user-space NFS client over FUSE (harness.datapath.nfs_fuse: libnfs, NFSv3, AUTH_SYS as the calling uid/gid)",
    )


def _own_directory(volume: NfsVolume, mount_point: Path, spec: NfsStorage, run_id: str, client: str) -> None:
    """The run's directory in the export mounted at ``mount_point``, with the export root's owner and mode."""
    where = f"{spec.server}:{spec.export} (port {spec.port})"
    top = mount_point.stat()
    run_dir = mount_point / f"harness-{run_id}"
    try:
        volume.root = volume._make_dir(run_dir)
        # The export root's owner and mode, so Prometheus meets the permissions it would meet at the PV's root.
        os.chown(run_dir, top.st_uid, top.st_gid)
        run_dir.chmod(stat.S_IMODE(top.st_mode))
    except PermissionError as e:
        raise StorageUnavailable(
            f"this host (as uid {os.geteuid()}) cannot create its run directory in {where}: {e.strerror}. The "
            "export squashes root or is not writable by it: export it with no_root_squash for the test, or mount "
            "it yourself and set storage.mount_path"
        ) from e
    volume.access = (
        f"{client} mounting {where}; the run's directory {run_dir.name} has the export root's owner "
        f"{top.st_uid}:{top.st_gid} and mode {stat.S_IMODE(top.st_mode):04o}"
    )


# --- the embedded server ---------------------------------------------------------------------------------------


class EmbeddedNfs(EmbeddedDaemon[NfsStorage, "NfsServer"]):
    """NFS-Ganesha on ``storage.embedded.listen`` exporting a directory of the run's work area, owned as the scenario
    says."""

    what = "NFS server"

    def __init__(self, spec: NfsStorage, export: EmbeddedExport, workdir: Path) -> None:
        super().__init__(
            spec,
            workdir,
            f"embedded NFS server (NFS-Ganesha on {export.listen}, export owned {export.owner} mode {export.mode}, "
            f"{export.squash}, " + (f"NFSv4 grace {export.grace_s:g} s)" if export.grace_s > 0 else "graceless)"),
            export.listen,
        )
        self.export = export

    def start(self) -> NfsStorage:
        from harness.datapath.servers import start_ganesha

        check_listen(self.export.listen, self.what)
        directory = self.workdir / "export"
        directory.mkdir(parents=True)
        os.chown(directory, *self.export.uid_gid)
        directory.chmod(self.export.mode_bits)
        squash = "Root_Squash" if self.export.squash == "root_squash" else "No_Root_Squash"
        # The pseudo path is the real one, so NFSv3 (MOUNT) and v4 clients name the export the same way.
        self.server = start_ganesha(
            self.workdir / "ganesha",
            directory,
            pseudo=str(directory),
            squash=squash,
            v3=True,
            grace_s=self.export.grace_s,
            listen=self.export.listen,
            record=self.record,
        )
        return self.spec.model_copy(
            update={
                "server": self.export.listen,
                "export": str(directory),
                "port": self.server.port,
                "mount_port": self.server.mount_port,
            }
        )

    def halted(self, server: NfsServer, pid: int) -> str:
        return f"NFS-Ganesha (pid {pid}, {server.listen}:{server.port}) stopped by SIGTERM"

    def resumed(self, server: NfsServer) -> str:
        grace = self.export.grace_s
        # In grace Ganesha refuses new NFSv4 state (opens, locks) while clients reclaim theirs, and lifts it early
        # once every client it recorded has: the run's client speaks NFSv3 and holds no such state. Its own words say
        # which happened.
        said = "; ".join(f"'{line}'" for line in server.grace_log())
        how = (
            f"NFSv4 grace period {grace:g} s, Ganesha logged: {said or 'nothing about it yet'}"
            if grace > 0
            else "graceless, so it served at once"
        )
        return (
            f"NFS-Ganesha started again (pid {server.daemon.pid}) with the same configuration: "
            f"{server.listen}:{server.port}, MOUNT port {server.mount_port}, export {server.export_dir}; {how}"
        )


BACKEND = NfsBackend()
