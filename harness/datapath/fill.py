"""Filling a filesystem to ENOSPC with one file of ours, and freeing it (the ``disk_full`` fault's mechanism).

The fill is one file, allocated with ``fallocate(2)`` (instant, and on ext4/xfs it only marks extents unwritten: a
loop image or a sparse LUN under the filesystem does not grow on the host), or, where the filesystem has no
fallocate (NFSv3, some FUSE filesystems), by writing zeros. It grows until not one more block can be allocated for
the caller: as root, that takes the root reserve too (ext4's reserved blocks, ``tune2fs -m``), so Prometheus finds
no space whether it runs as the security context's uid or as root. What ``statvfs`` still counts free afterwards is
the filesystem's own reserve (ext4's reserved clusters for metadata, xfs's reserve pool), which no write of a
file's data gets, root's neither.

Freeing deletes the file and syncs the filesystem, so the blocks are reusable at once (ext4 reuses freed data blocks
only after the journal commit that freed them).
"""

from __future__ import annotations

import ctypes
import errno
import os
import time
from dataclasses import dataclass
from pathlib import Path

from harness import fmt
from harness.errors import InfraError

ZERO_CHUNK = 1 << 20  # bytes per write() when the filesystem has no fallocate


def fill_name(run_id: str) -> str:
    """The fill file's name, in the volume's root: the run's, so ``harness cleanup`` finds a killed run's fill."""
    return f".harness-fill-{run_id}"


_libc = ctypes.CDLL(None, use_errno=True)
_libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
_libc.fallocate.restype = ctypes.c_int
_libc.syncfs.argtypes = [ctypes.c_int]
_libc.syncfs.restype = ctypes.c_int


@dataclass(frozen=True)
class Space:
    """Free bytes on a filesystem (``statvfs``): for root (``f_bfree``) and for other users (``f_bavail``)."""

    for_root: int
    for_users: int

    @staticmethod
    def of(path: Path) -> Space:
        st = os.statvfs(path)
        return Space(st.f_bfree * st.f_frsize, st.f_bavail * st.f_frsize)


@dataclass(frozen=True)
class Filled:
    path: Path
    allocated_bytes: int  # what the fill file holds on disk (st_blocks)
    method: str  # "fallocate" or "zeros written"
    took_s: float
    before: Space
    after: Space


def fill(path: Path) -> Filled:
    """Create ``path`` (it must not exist) and grow it until its filesystem has no block left for this process.

    The caller records how to delete ``path`` before calling this: a fill that breaks half way leaves a partial
    file, which the same deletion removes.
    """
    started = time.monotonic()
    before = Space.of(path.parent)
    block = os.statvfs(path.parent).f_frsize
    # Root may take the root reserve, anyone else only what is available to users: start from what this process
    # may get, then halve on ENOSPC down to one block (delayed allocations and the filesystem's own reserve make
    # the exact figure unknowable up front).
    want = before.for_root if os.geteuid() == 0 else before.for_users
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except OSError as e:
        raise InfraError(f"cannot create the fill file {path}: {e.strerror}") from e
    method = "fallocate"
    try:
        offset = 0
        chunk = max(block, want - want % block)
        while chunk >= block:
            try:
                if method == "fallocate":
                    _fallocate(fd, offset, chunk)
                else:
                    _write_zeros(fd, offset, chunk)
                offset += chunk
            except OSError as e:
                if e.errno in (errno.EOPNOTSUPP, errno.ENOSYS) and method == "fallocate":
                    method = "zeros written"
                    continue
                if e.errno not in (errno.ENOSPC, errno.EDQUOT):
                    raise InfraError(
                        f"filling {path.parent} failed: {e.strerror} ({method} at offset {offset:,})"
                    ) from e
                # Some filesystems keep what a failed call allocated (ext4 extends the size with it): go on from
                # the end of the file, with half the size.
                offset = max(offset, os.fstat(fd).st_size)
                chunk = max(block, (chunk // 2) - (chunk // 2) % block) if chunk > block else 0
        if method != "fallocate":
            os.fsync(fd)  # written zeros may still be delayed allocations: make them real blocks
        allocated = os.fstat(fd).st_blocks * 512
    finally:
        os.close(fd)
    return Filled(path, allocated, method, time.monotonic() - started, before, Space.of(path.parent))


def describe(
    *, allocated: int, where: str, name: str, took_s: float, method: str, before: Space, after: Space, who: str
) -> str:
    """A fill in one line, the same on every runtime: how much, on what, how, and what ``statvfs`` says after.
    ``where`` says where the file is (e.g. "beside prometheus-db/"), ``who`` as whom not one more block could be
    allocated (e.g. "even as root")."""
    held = (
        f"; {fmt.iec_bytes(after.for_root)} stay free as the filesystem's own reserve, which no file data gets"
        if after.for_root
        else ""
    )
    return (
        f"filled {fmt.iec_bytes(allocated)} ({allocated:,} bytes) on {where} with {name} in {took_s:.2f} s "
        f"({method}): free for root {fmt.iec_bytes(before.for_root)} -> {fmt.iec_bytes(after.for_root)}, for other "
        f"users {fmt.iec_bytes(before.for_users)} -> {fmt.iec_bytes(after.for_users)}; not one more block could be "
        f"allocated, {who}{held}"
    )


def free(path: Path) -> bool:
    """Delete the fill file (if it is there) and sync its filesystem; whether there was one."""
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    except OSError as e:
        raise InfraError(f"cannot delete the fill file {path} (the disk stays full): {e.strerror}") from e
    # The freed blocks count as free at once, but ext4 reuses them only after the journal commit: sync it now.
    try:
        fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as e:
        raise InfraError(f"syncing {path.parent} after deleting {path.name}: {e.strerror}") from e
    try:
        if _libc.syncfs(fd) != 0:
            err = ctypes.get_errno()
            raise InfraError(f"syncfs on {path.parent} after deleting {path.name}: {os.strerror(err)}")
    finally:
        os.close(fd)
    return True


def _fallocate(fd: int, offset: int, length: int) -> None:
    if _libc.fallocate(fd, 0, offset, length) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def _write_zeros(fd: int, offset: int, length: int) -> None:
    zeros = bytes(min(ZERO_CHUNK, length))
    end = offset + length
    while offset < end:
        written = os.pwrite(fd, zeros[: min(len(zeros), end - offset)], offset)
        if written == 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        offset += written
