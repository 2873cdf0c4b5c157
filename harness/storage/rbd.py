"""The ``rbd`` backend: an RBD image with a whole-disk filesystem, attached on this host from user space (local
runtime).

No krbd, rbd-nbd or ublk is needed (many hosts, ours among them, have none): ``qemu-storage-daemon``'s rbd block
driver (librbd) exports the image as a file over FUSE, a loop device makes it a block device, and it is mounted as
the kubelet would: a blank image is formatted with ``fs_type``, anything else never (exactly the iSCSI backend's
user-space path, with librbd in place of libiscsi).

``cache`` decides what a crash of that daemon or a power loss can take: ``none`` (``cache.direct=on``, with which
QEMU turns librbd's cache off: a flush and an O_DIRECT write reach the OSDs before they return, as with krbd) or
``writeback`` (librbd's write-back cache in the daemon's memory, flushed on fsync). Said in the data access line.

Without ``image`` the run creates one of ``size`` (thin) named ``harness-<run_id>`` and removes it at the end; an
image the scenario names is never removed. ``monitors: embedded`` starts a single-host cluster with the pool.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from harness import proc
from harness.datapath.ceph_cli import CephClient
from harness.datapath.mounts import is_mount_point, kernel_filesystems, probe_content
from harness.errors import CommandFailed, StorageUnavailable
from harness.scenario.model import RbdStorage
from harness.storage.ceph import CephBackend, connect, require
from harness.storage.mounted import ServedVolume, provision_or_undo, start_serving

log = logging.getLogger(__name__)

# The kubelet formats a blank disk with these (mount-utils' formatAndMountSensitive: -F and -m0 for ext*).
MKFS = {"ext4": ["mkfs.ext4", "-q", "-F", "-m0"], "xfs": ["mkfs.xfs", "-q", "-f"]}
CACHE = {
    "none": "librbd cache off (cache.direct=on): a flush reaches the OSDs before it returns",
    "writeback": "librbd write-back cache on, in qemu-storage-daemon's memory: what it holds unflushed dies with it",
}


class RbdBackend(CephBackend[RbdStorage]):
    name = "rbd"

    def provision(self, spec: RbdStorage, workdir: Path, run_id: str) -> RbdVolume:
        if os.geteuid() != 0:
            raise StorageUnavailable("attaching an RBD image on this host needs root (a loop device and a mount)")
        if not Path("/dev/fuse").exists():
            raise StorageUnavailable("attaching an RBD image from user space needs FUSE, and /dev/fuse is missing")
        if spec.fs_type not in kernel_filesystems():
            raise StorageUnavailable(f"this kernel cannot mount {spec.fs_type} (not in /proc/filesystems)")
        qsd = proc.which("qemu-storage-daemon")
        client = connect(spec, workdir)
        pools = client.ceph("osd", "pool", "ls").split()
        require(spec.pool in pools, f"the pool {spec.pool!r}", client, spec, f"it has {', '.join(pools) or 'none'}")
        volume = RbdVolume(backend=self.name, root=workdir, persistent=True, client=client, pool=spec.pool)
        return provision_or_undo(volume, lambda v: _attach(v, qsd, spec, workdir, run_id))


@dataclass
class RbdVolume(ServedVolume):
    """An image attached by this run through qemu-storage-daemon (``daemon``), its FUSE ``export_file``, the loop
    ``device`` on it and the mount; ``created_image``: the image the run made, removed after the rest."""

    client: CephClient | None = None
    pool: str = ""
    export_file: Path | None = None
    device: str | None = None
    created_image: str | None = None

    def detach(self) -> None:
        if self.device is not None:
            proc.run(["losetup", "-d", self.device], timeout_s=30, check=False)
            self.device = None

    def mount_points(self) -> list[Path]:
        return [p for p in (self.export_file, self.mount_point) if p is not None]

    def teardown(self) -> None:
        daemon, export = self.daemon, self.export_file
        if daemon is not None and not daemon.alive() and export is not None and is_mount_point(export):
            # A dead qemu-storage-daemon (a crash, ceph_client_crash): its FUSE file answers nothing but ENOTCONN,
            # which would stop the teardown at its first look; detached lazily, the loop device and the filesystem
            # on it are then undone as usual (their unwritten pages are lost: they never reached the image).
            log.warning(
                "qemu-storage-daemon (pid %d) exited with code %s, its FUSE export %s is dead: unmounted lazily",
                daemon.pid,
                daemon.popen.returncode,
                export,
            )
            proc.run(["umount", "-l", str(export)], timeout_s=30, check=False)
        try:
            super().teardown()
        finally:
            if self.created_image is not None and self.client is not None:
                # Only once qemu-storage-daemon is gone: an image with a watcher (an open client) is not removed.
                self.client.rbd("rm", "--no-progress", f"{self.pool}/{self.created_image}", timeout_s=120)
                self.created_image = None


def _attach(volume: RbdVolume, qsd: str, spec: RbdStorage, workdir: Path, run_id: str) -> None:
    client = volume.client
    assert client is not None
    image = spec.image
    if image is None:
        image = f"harness-{run_id}"
        client.rbd("create", f"{spec.pool}/{image}", "--size", f"{max(1, spec.size_bytes // 1024**2)}M")
        volume.created_image = image
    else:
        images = client.rbd("ls", spec.pool).split()
        require(image in images, f"the image {spec.pool}/{image}", client, spec, f"the pool has {len(images)} image(s)")
    where = f"the image {spec.pool}/{image} on {spec.monitors} as client.{spec.user}"
    volume.export_file = export = workdir / f"rbd-image-{run_id}"
    export.touch()
    direct = "on" if spec.cache == "none" else "off"
    blockdev = f"driver=rbd,node-name=image,pool={spec.pool},image={image},conf={client.conf},user={spec.user}"
    volume.daemon = start_serving(
        "qemu-storage-daemon",
        [
            qsd,
            "--blockdev",
            f"{blockdev},cache.direct={direct}",
            "--export",
            f"type=fuse,id=export,node-name=image,mountpoint={export},writable=on",
        ],
        serves=export,
        log_path=workdir / "qemu-storage-daemon.log",
        what=f"qemu-storage-daemon to attach {where}",
        failed=lambda said: f"qemu-storage-daemon (librbd) could not open {where}: {said}. Check user, key and image",
    )
    content = probe_content(export)
    formatted = ""
    if not content:
        proc.run([*MKFS[spec.fs_type], str(export)], timeout_s=600)
        formatted = f", formatted {spec.fs_type} by this run (the image was blank)"
    volume.device = proc.run(["losetup", "--find", "--show", str(export)], timeout_s=30).stdout.strip()
    volume.mount_point = mount_point = workdir / f"rbd-mnt-{run_id}"
    mount_point.mkdir()
    try:
        proc.run(["mount", "-t", spec.fs_type, volume.device, str(mount_point)], timeout_s=60)
    except CommandFailed as e:
        found = content.get("TYPE") or content.get("PTTYPE", "unknown content")
        raise StorageUnavailable(
            f"{where} holds {found}, so it was not formatted (the kubelet formats only a blank disk), and mounting "
            f"it as {spec.fs_type} failed: {' '.join(e.stderr_tail.split())}. Use a blank image or set fs_type"
        ) from e
    volume.root = volume._make_dir(mount_point / f"harness-{run_id}")
    volume.access = (
        f"RBD via user-space librbd (qemu-storage-daemon, FUSE export) + loop device {volume.device}: {where}"
        f"{formatted}; {CACHE[spec.cache]}"
    )


BACKEND = RbdBackend()
