"""Mount table lookups, directory access for a uid, and loop-mounted filesystem images (the only code that mounts
anything).

The mount table is read from /proc/self/mountinfo rather than by calling findmnt, so looking up the filesystem of a
path costs no subprocess and works in minimal containers.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from harness import proc
from harness.errors import InfraError, StorageUnavailable


@dataclass(frozen=True)
class MountEntry:
    mount_point: Path
    fstype: str
    source: str
    root: str = "/"  # what of its filesystem is mounted there: "/" for the whole, a path for a bind-mounted directory

    @property
    def own_block_filesystem(self) -> bool:
        """Whether this mount is a whole filesystem on a block device: not a directory of another filesystem bound
        here (an emptyDir or a directory local PV in a container), not tmpfs, NFS, FUSE or an overlay."""
        return self.root == "/" and self.source.startswith("/dev/") and not self.fstype.startswith("fuse")


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as octal.
    return field.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")


def mount_table() -> list[MountEntry]:
    return parse_mountinfo(Path("/proc/self/mountinfo").read_text())


def parse_mountinfo(text: str) -> list[MountEntry]:
    """The entries of a ``/proc/<pid>/mountinfo`` text (this host's, or a container's read through exec)."""
    entries = []
    for line in text.splitlines():
        # Optional fields come before the " - " separator, so the filesystem type and source are counted from it.
        left, _, right = line.partition(" - ")
        parts = left.split()
        rparts = right.split()
        if len(parts) < 5 or len(rparts) < 2:
            continue
        entries.append(MountEntry(Path(_unescape(parts[4])), rparts[0], _unescape(rparts[1]), _unescape(parts[3])))
    return entries


def filesystem_of(path: Path) -> MountEntry:
    """The mount that holds ``path`` (the longest mount point that is a prefix of its real path)."""
    real = Path(os.path.realpath(path))
    best: MountEntry | None = None
    for entry in mount_table():
        if (real == entry.mount_point or entry.mount_point in real.parents) and (
            best is None or len(str(entry.mount_point)) >= len(str(best.mount_point))
        ):
            best = entry
    if best is None:
        return MountEntry(Path("/"), "unknown", "unknown")
    return best


def is_mount_point(path: Path) -> bool:
    real = Path(os.path.realpath(path))
    return any(entry.mount_point == real for entry in mount_table())


def first_untraversable(path: Path, uid: int, gids: set[int]) -> Path | None:
    """The first directory from / down to ``path`` (inclusive) that ``uid`` with ``gids`` may not enter, if any.

    Judged from the mode bits alone, as the kernel does for a non-root caller; root enters everything.
    """
    if uid == 0:
        return None
    real = Path(os.path.realpath(path))
    for directory in [*reversed(real.parents), real]:
        st = directory.stat()
        if st.st_uid == uid:
            bit = 0o100
        elif st.st_gid in gids:
            bit = 0o010
        else:
            bit = 0o001
        if not st.st_mode & bit:
            return directory
    return None


def kernel_filesystems() -> set[str]:
    """Filesystem types this kernel can mount right now (from /proc/filesystems)."""
    return {line.split()[-1] for line in Path("/proc/filesystems").read_text().splitlines() if line.strip()}


def _modprobe(module: str) -> None:
    """Load a kernel module where the host can (root, kmod installed); silence otherwise: the caller re-checks."""
    if os.geteuid() == 0 and shutil.which("modprobe") is not None:
        proc.run(["modprobe", module], timeout_s=60, check=False)


def why_no_kernel_nfs() -> str | None:
    """None when this host can mount NFS with its kernel client, else why not."""
    if not {"nfs", "nfs4"} & kernel_filesystems():
        _modprobe("nfs")
    if not {"nfs", "nfs4"} & kernel_filesystems():
        return "this kernel has no NFS client (nfs/nfs4 not in /proc/filesystems)"
    if shutil.which("mount.nfs") is None:
        return "mount.nfs is missing (Debian package nfs-common)"
    if os.geteuid() != 0:
        return "mounting needs root"
    return None


def why_no_kernel_iscsi() -> str | None:
    """None when this host can log in to an iSCSI target with its kernel initiator, else why not."""
    if shutil.which("iscsiadm") is None:
        return "iscsiadm is missing (Debian package open-iscsi)"
    if not Path("/sys/module/iscsi_tcp").exists():
        _modprobe("iscsi_tcp")
    if not Path("/sys/module/iscsi_tcp").exists():
        return "this kernel has no iSCSI initiator (module iscsi_tcp)"
    if os.geteuid() != 0:
        return "logging in needs root"
    return None


@dataclass
class LoopMount:
    image: Path
    mount_point: Path
    device: str

    def unmount(self) -> None:
        if is_mount_point(self.mount_point):
            proc.run(["umount", str(self.mount_point)], timeout_s=60)
        # mount -o loop would auto-detach; we attach explicitly (for --direct-io), so detach explicitly.
        proc.run(["losetup", "-d", self.device], timeout_s=30, check=False)


def create_loop_mount(
    image: Path, mount_point: Path, *, filesystem: str, size_bytes: int, direct_io: bool
) -> LoopMount:
    """Create an image file, make a filesystem on it, attach it to a loop device and mount it. Root only."""
    if os.geteuid() != 0:
        raise StorageUnavailable(
            "a loop-mounted filesystem image needs root (losetup, mount); run as root or remove 'image:' from "
            "the storage section to use a plain directory"
        )
    if filesystem not in kernel_filesystems():
        raise StorageUnavailable(f"this kernel cannot mount {filesystem} (not in /proc/filesystems)")
    mkfs = {"ext4": ["mkfs.ext4", "-q", "-F"], "xfs": ["mkfs.xfs", "-q", "-f"]}[filesystem]
    with image.open("wb") as f:
        f.truncate(size_bytes)
    proc.run([*mkfs, str(image)], timeout_s=120)
    argv = ["losetup", "--find", "--show"]
    if direct_io:
        argv.append("--direct-io=on")
    device = proc.run([*argv, str(image)], timeout_s=30).stdout.strip()
    if not device.startswith("/dev/"):
        raise InfraError(f"losetup printed {device!r} instead of a loop device for {image}")
    mount_point.mkdir(parents=True, exist_ok=True)
    try:
        proc.run(["mount", "-t", filesystem, device, str(mount_point)], timeout_s=60)
    except InfraError:
        proc.run(["losetup", "-d", device], timeout_s=30, check=False)
        raise
    return LoopMount(image=image, mount_point=mount_point, device=device)


def probe_content(disk: Path) -> dict[str, str]:
    """What ``blkid -p`` finds on a whole disk (the kubelet asks it the same before it formats or mounts one): {} for
    a blank disk, else its tags (TYPE, PTTYPE, ...); a disk it cannot read is an InfraError."""
    done = proc.run(["blkid", "-p", "-o", "export", str(disk)], timeout_s=60, check=False)
    if done.returncode == 2:  # nothing found: blank
        return {}
    if done.returncode != 0:
        raise InfraError(f"blkid -p {disk} failed (exit {done.returncode}): {done.stderr.strip()}")
    found = dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)
    found.pop("DEVNAME", None)
    return found or {"USAGE": "unknown"}
