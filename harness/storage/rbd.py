"""The ``rbd`` backend: an RBD image with a whole-disk filesystem, attached on this host from user space (local
runtime).

No krbd, rbd-nbd or ublk is needed (many hosts, ours among them, have none): ``qemu-storage-daemon``'s rbd block
driver (librbd) exports the image as a file over FUSE, a loop device makes it a block device, and it is mounted as
the kubelet would: a blank image is formatted with ``fs_type``, anything else never (exactly the iSCSI backend's
user-space path, with librbd in place of libiscsi).

``cache`` decides what a crash of that daemon or a power loss can take: ``none`` (``cache.direct=on``, with which
QEMU turns librbd's cache off: a flush and an O_DIRECT write reach the OSDs before they return, as with krbd) or
``writeback`` (librbd's write-back cache in the daemon's memory, flushed on fsync). Said in the data access line.
With ``writeback`` that cache is volatile below the filesystem, and a power cut takes it too (``lose_below``): the
daemon is SIGKILLed, the filesystem over the dead disk unmounted, the image attached again by a new daemon and the
filesystem mounted again, replaying its journal on what the OSDs kept.

Without ``image`` the run creates one of ``size`` (thin) named ``harness-<run_id>`` and removes it at the end; an
image the scenario names is never removed. ``monitors: embedded`` starts a single-host cluster with the pool.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

from harness import proc
from harness.datapath.ceph_cli import CephClient, CephError
from harness.datapath.mounts import is_mount_point, kernel_filesystems, probe_content
from harness.errors import CommandFailed, InfraError, NotRecovered, StorageUnavailable
from harness.scenario.model import RbdStorage
from harness.storage.ceph import CephBackend, connect, require
from harness.storage.mounted import ServedVolume, provision_or_undo, start_serving

log = logging.getLogger(__name__)

# The kubelet formats a blank disk with these (mount-utils' formatAndMountSensitive: -F and -m0 for ext*).
MKFS = {"ext4": ["mkfs.ext4", "-q", "-F", "-m0"], "xfs": ["mkfs.xfs", "-q", "-f"]}
CACHE = {
    "none": "librbd cache off (cache.direct=on): a flush reaches the OSDs before it returns",
    "writeback": "librbd write-back cache on ({policy}), in qemu-storage-daemon's memory: what it holds unflushed dies "
    "with it",
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
    image: str = ""  # pool/image
    cache: str = "none"
    cache_policy: str = ""  # with the cache on: librbd's policy for the image, in a phrase
    fs_type: str = "ext4"
    serve_argv: list[str] = field(default_factory=list)  # qemu-storage-daemon's, to attach the image again
    log_path: Path | None = None

    def held_below(self) -> str:
        if self.cache == "none":
            return "librbd's cache is off (cache.direct=on): a write reaches the OSDs before it returns"
        pid = self.daemon.pid if self.daemon is not None else "none"
        return f"librbd's write-back cache ({self.cache_policy}) in qemu-storage-daemon (pid {pid})"

    def volatile_below(self) -> bool:
        return self.cache == "writeback"

    def lose_below(self) -> str:
        """SIGKILL qemu-storage-daemon (librbd's cache and whatever the filesystem had not yet written through it
        die with it), unmount the filesystem over the dead disk, fence the dead client, attach the image with a
        new daemon and mount the filesystem again (journal replay)."""
        daemon, client = self.daemon, self.client
        if daemon is None or not daemon.alive() or client is None:
            raise InfraError(f"the image {self.image} has no running qemu-storage-daemon to kill")
        # Before the kill: the image's one watcher is this daemon's librbd, whose address the fence needs.
        watchers = [w["address"] for w in (client.rbd_json("status", self.image) or {}).get("watchers", [])]
        started = time.monotonic()
        daemon.signal(signal.SIGKILL)
        daemon.wait(15)
        self.unmount_dead()
        down_s = time.monotonic() - started
        # The dead client's watch would hold the image's exclusive lock until the OSD times it out
        # (osd_client_watch_timeout, 30 s): a new client could not write (the journal replay) before. Fencing it,
        # as a cluster fences a dead node's client, ends the watch at once; lifted again once the image is back.
        fenced = watchers[0] if len(watchers) == 1 else None
        unfenced = f"{len(watchers)} watcher(s) on the image, none fenced"
        if fenced is not None:
            try:
                client.ceph("osd", "blocklist", "add", fenced)
            except CephError as e:  # a client without the caps to fence (mon 'profile rbd' has them)
                unfenced, fenced = f"its client {fenced} could not be fenced ({e})", None
        try:
            self._serve_again()
        finally:
            if fenced is not None:
                try:
                    client.ceph("osd", "blocklist", "rm", fenced)
                except CephError as e:  # harmless: the entry names a dead client, and expires in an hour
                    log.warning("could not lift the fence on the dead client %s: %s", fenced, e)
        back_s = time.monotonic() - started - down_s
        fence = (
            f"its client {fenced} fenced (osd blocklist, lifted after) so its watch gave up the image's lock at once"
            if fenced is not None
            else f"{unfenced}: the new client waited for the OSD to time out the old watch"
        )
        return (
            f"SIGKILL to qemu-storage-daemon (pid {daemon.pid}): librbd's write-back cache and every page the "
            f"filesystem had not written through it died with it; {self.fs_type} over the dead disk unmounted "
            f"({down_s:.2f} s); {fence}; the image attached again by qemu-storage-daemon (pid "
            f"{self.daemon.pid if self.daemon is not None else '?'}) on loop device {self.device} and {self.fs_type} "
            f"mounted again, replaying its journal on what the OSDs kept ({back_s:.1f} s)"
        )

    def unmount_dead(self) -> None:
        """Unmount the filesystem whose daemon is dead (its dirty pages fail with EIO: nothing reaches the image),
        detach the loop device and unmount the dead FUSE export, leaving the mount points to attach again on."""
        if self.mount_point is not None and is_mount_point(self.mount_point):
            proc.run(["umount", str(self.mount_point)], timeout_s=60)
        self.detach()
        if self.export_file is not None and is_mount_point(self.export_file):
            proc.run(["umount", "-l", str(self.export_file)], timeout_s=30)
        self.daemon = None

    def _serve_again(self) -> None:
        assert self.export_file is not None and self.mount_point is not None and self.log_path is not None
        self.daemon = start_serving(
            "qemu-storage-daemon",
            self.serve_argv,
            serves=self.export_file,
            log_path=self.log_path,
            what=f"qemu-storage-daemon to attach the image {self.image} again",
            failed=lambda said: f"qemu-storage-daemon could not attach the image {self.image} again: {said}",
        )
        device = proc.run(["losetup", "--find", "--show", str(self.export_file)], timeout_s=30).stdout.strip()
        self.device = device
        try:
            proc.run(["mount", "-t", self.fs_type, device, str(self.mount_point)], timeout_s=120)
        except CommandFailed as e:
            # What the image kept is no filesystem any more: the storage lost what was flushed (or never got the
            # flushes), a finding about it, as a node's failed mount after a power loss would be.
            kernel = proc.run(["dmesg"], timeout_s=10, check=False).stdout.splitlines()
            said = "; ".join([line.strip() for line in kernel if f"{Path(device).name}" in line][-3:])
            raise NotRecovered(
                f"{self.fs_type} on the image {self.image} did not mount after the power cut: "
                f"{' '.join(e.stderr_tail.split())}{f' (kernel: {said})' if said else ''}"
            ) from e

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
    if spec.cache == "writeback":
        volume.cache_policy = cache_policy(client, f"{spec.pool}/{image}")
    direct = "on" if spec.cache == "none" else "off"
    blockdev = f"driver=rbd,node-name=image,pool={spec.pool},image={image},conf={client.conf},user={spec.user}"
    volume.image, volume.cache, volume.fs_type = f"{spec.pool}/{image}", spec.cache, spec.fs_type
    volume.serve_argv = [
        qsd,
        "--blockdev",
        f"{blockdev},cache.direct={direct}",
        "--export",
        f"type=fuse,id=export,node-name=image,mountpoint={export},writable=on",
    ]
    volume.log_path = workdir / "qemu-storage-daemon.log"
    volume.daemon = start_serving(
        "qemu-storage-daemon",
        volume.serve_argv,
        serves=export,
        log_path=volume.log_path,
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
        f"{formatted}; {CACHE[spec.cache].format(policy=volume.cache_policy)}"
    )


def cache_policy(client: CephClient, image: str) -> str:
    """How librbd's cache keeps writes for ``image``, as a client opening it now would (the cluster's config, the
    pool's and the image's overrides), in a phrase: what a power loss below the filesystem can take."""
    try:
        listed = client.rbd_json("config", "image", "list", image) or []
    except (InfraError, ValueError) as e:
        return f"policy unknown: {e}"
    conf = {entry["name"]: entry["value"] for entry in listed}
    policy = conf.get("rbd_cache_policy", "unknown")
    if policy == "writeback":
        dirty = int(conf.get("rbd_cache_max_dirty", 0)) // 1024**2
        age = float(conf.get("rbd_cache_max_dirty_age", 0))
        return f"policy writeback: up to {dirty} MiB unflushed for up to {age:g} s, written out by a flush"
    if policy == "writearound":
        return (
            "policy writearound: a write goes to the OSDs at once and returns before they acknowledge it, a flush "
            "waits for every one in flight"
        )
    return f"policy {policy}"


BACKEND = RbdBackend()
