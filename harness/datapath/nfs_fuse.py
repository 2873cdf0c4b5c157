"""A user-space NFS client mounted over FUSE, for hosts without a kernel NFS client (the only ``mfusepy`` importer).

Run as its own process (``python -m harness.datapath.nfs_fuse SERVER EXPORT MOUNTPOINT``), started and stopped by PID
from
``harness.storage.nfs``. It behaves like the kernel client where this harness depends on it:

* every request goes to the server with the *calling process's* uid and gid as AUTH_SYS credentials (one libnfs
  context per uid/gid pair), and FUSE's ``default_permissions`` is off, so the server alone decides what is allowed,
  exactly as for a pod: the field notes' ``permission denied`` reproduces;
* fsync/fdatasync become NFS COMMIT; failures keep the errno libnfs maps the NFS status to.

Limits, said where they show: supplementary groups are not sent (libnfs has no call for them); Debian 12's libnfs
4.0 cannot encode NFSv4 WRITEs of about 4 KiB, so writes go out in 2 KiB pieces (``harness.datapath.nfs_client``). It
runs
single-threaded: libnfs contexts are not thread-safe, and the loads here are far below what that serves.
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import stat
import sys
from typing import Any

import mfusepy

from harness.datapath.fuse_main import log_to_stderr, serve
from harness.datapath.nfs_client import NfsClient, NfsError, NfsFile, nfs_url

log = logging.getLogger("harness.datapath.nfs_fuse")


class NfsFuse(mfusepy.Operations):  # type: ignore[misc]
    use_ns = True

    def __init__(self, server: str, export: str, *, port: int, version: str, mount_port: int | None) -> None:
        self.server, self.export, self.port, self.version = server, export, port, version
        self.mount_port = mount_port
        self._clients: dict[tuple[int, int], NfsClient] = {}
        self._files: dict[int, NfsFile] = {}
        self._next_fh = 1

    # --- credentials -------------------------------------------------------------------------------------------

    def _client(self) -> NfsClient:
        uid, gid, _pid = mfusepy.fuse_get_context()
        key = (uid, gid)
        client = self._clients.get(key)
        if client is None:
            client = self._clients[key] = _call(lambda: NfsClient(self.url(uid, gid)))
        return client

    def url(self, uid: int, gid: int) -> str:
        """The export as ``uid``/``gid`` see it."""
        return nfs_url(
            self.server, self.export, port=self.port, version=self.version, uid=uid, gid=gid, mount_port=self.mount_port
        )

    def _file(self, fh: int) -> NfsFile:
        try:
            return self._files[fh]
        except KeyError:
            raise mfusepy.FuseOSError(errno.EBADF) from None

    def _keep(self, f: NfsFile) -> int:
        fh, self._next_fh = self._next_fh, self._next_fh + 1
        self._files[fh] = f
        return fh

    # --- metadata ------------------------------------------------------------------------------------------------

    def getattr(self, path: str, fh: int | None = None) -> dict[str, Any]:
        st = _call(lambda: self._file(fh).stat() if fh is not None and fh in self._files else self._client().stat(path))
        return {
            "st_mode": st.mode,
            "st_nlink": st.nlink,
            "st_size": st.size_bytes,
            "st_uid": st.uid,
            "st_gid": st.gid,
            "st_ino": st.ino,
            "st_blocks": st.blocks,
            "st_atime": st.atime_ns,
            "st_mtime": st.mtime_ns,
            "st_ctime": st.ctime_ns,
        }

    def readdir(self, path: str, fh: int) -> list[str]:
        return [".", "..", *(e.name for e in _call(lambda: self._client().listdir(path)))]

    def statfs(self, path: str) -> dict[str, int]:
        v = _call(lambda: self._client().statvfs(path))
        return {
            "f_bsize": v.f_bsize,
            "f_frsize": v.f_frsize,
            "f_blocks": v.f_blocks,
            "f_bfree": v.f_bfree,
            "f_bavail": v.f_bavail,
            "f_files": v.f_files,
            "f_ffree": v.f_ffree,
            "f_favail": v.f_favail,
            "f_namemax": v.f_namemax,
        }

    def chmod(self, path: str, mode: int) -> int:
        _call(lambda: self._client().chmod(path, stat.S_IMODE(mode)))
        return 0

    def chown(self, path: str, uid: int, gid: int) -> int:
        current = _call(lambda: self._client().stat(path))
        # chown(2) passes -1 for "leave as is"; NFS SETATTR wants the value.
        new_uid = current.uid if uid in (-1, 0xFFFFFFFF) else uid
        new_gid = current.gid if gid in (-1, 0xFFFFFFFF) else gid
        _call(lambda: self._client().chown(path, new_uid, new_gid))
        return 0

    def utimens(self, path: str, times: tuple[int, int] | None = None) -> int:
        # libnfs' SWIG binding cannot pass struct timeval; Prometheus never sets times. Say so rather than pretend.
        raise mfusepy.FuseOSError(errno.ENOSYS)

    # --- namespace -----------------------------------------------------------------------------------------------

    def mkdir(self, path: str, mode: int) -> int:
        _call(lambda: self._client().mkdir(path, stat.S_IMODE(mode)))
        return 0

    def rmdir(self, path: str) -> int:
        _call(lambda: self._client().rmdir(path))
        return 0

    def unlink(self, path: str) -> int:
        _call(lambda: self._client().unlink(path))
        return 0

    def rename(self, old: str, new: str) -> int:
        _call(lambda: self._client().rename(old, new))
        return 0

    # --- files ---------------------------------------------------------------------------------------------------

    def create(self, path: str, mode: int, fi: Any = None) -> int:
        # libnfs 4.0 creates NFSv4 files 0600 whatever the mode, and a chmod of a file it holds open breaks its open
        # state (NFS4ERR_BAD_STATEID): the owner alone can use the file, which is what Prometheus needs.
        return self._keep(_call(lambda: self._client().create_file(path, os.O_RDWR, stat.S_IMODE(mode))))

    def open(self, path: str, flags: int) -> int:
        wanted = flags & (os.O_ACCMODE | os.O_APPEND | os.O_TRUNC | os.O_SYNC | os.O_DSYNC)
        return self._keep(_call(lambda: self._client().open(path, wanted)))

    def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
        f = self._file(fh)
        data: bytes = _call(lambda: f.pread(size, offset))
        return data

    def write(self, path: str, data: bytes, offset: int, fh: int) -> int:
        f = self._file(fh)
        written: int = _call(lambda: f.pwrite(data, offset))
        return written

    def truncate(self, path: str, length: int, fh: int | None = None) -> int:
        if fh is not None and fh in self._files:
            f = self._file(fh)
            _call(lambda: f.truncate(length))
        else:
            _call(lambda: self._client().truncate(path, length))
        return 0

    def fsync(self, path: str, datasync: int, fh: int) -> int:
        f = self._file(fh)
        _call(f.fsync)  # NFS COMMIT
        return 0

    def flush(self, path: str, fh: int) -> int:
        return 0  # every write already went to the server (no client-side write cache here)

    def release(self, path: str, fh: int) -> int:
        f = self._files.pop(fh, None)
        if f is not None:
            _call(f.close)
        return 0

    def destroy(self, path: str) -> None:
        for f in self._files.values():
            try:
                f.close()
            except NfsError as e:
                log.warning("closing %s at unmount: %s", f, e)
        for client in self._clients.values():
            client.close()


# Errors that say the server or the connection to it failed, not the request: always logged (a server restart is
# read back from this log), where ENOENT and the like stay debug (every lookup of a missing file makes one).
_TRANSPORT_ERRNOS = frozenset(
    {errno.EINTR, errno.EIO, errno.ETIMEDOUT, errno.ECONNREFUSED, errno.ECONNRESET, errno.EPIPE, errno.ENOTCONN}
)


def _call(op: Any) -> Any:
    """Run one libnfs operation; its errno becomes the FUSE error the caller sees."""
    try:
        return op()
    except NfsError as e:
        log.log(logging.WARNING if e.errno in _TRANSPORT_ERRNOS else logging.DEBUG, "%s", e)
        raise mfusepy.FuseOSError(e.errno) from None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m harness.datapath.nfs_fuse", description=__doc__.split("\n\n")[0])
    p.add_argument("server")
    p.add_argument("export")
    p.add_argument("mountpoint")
    p.add_argument("--port", type=int, default=2049)
    p.add_argument("--version", default="4", choices=["3", "4"])
    p.add_argument("--mount-port", type=int, help="NFSv3: the server's MOUNT port (else asked from its rpcbind)")
    args = p.parse_args(argv)
    # HARNESS_NFS_FUSE_DEBUG=1 logs every failed NFS call with libnfs' own words (in the run's nfs-fuse.log). This
    # program's own switch (a child process the harness starts), not a harness setting: read here, in main() only.
    level = logging.DEBUG if os.environ.get("HARNESS_NFS_FUSE_DEBUG") else logging.INFO
    log_to_stderr(level)
    operations = NfsFuse(args.server, args.export, port=args.port, version=args.version, mount_port=args.mount_port)
    # Fail before mounting when the export is unreachable or wrong: a mount that errors on every call says less.
    try:
        NfsClient(operations.url(os.getuid(), os.getgid())).close()
    except NfsError as e:
        print(f"cannot mount {args.server}:{args.export} (port {args.port}): {e}", file=sys.stderr)
        return 2
    served = f"{args.server}:{args.export} at {args.mountpoint} (NFSv{args.version}, port {args.port})"
    log.info("serving %s", served)
    return serve(operations, args.mountpoint, log, fsname=f"nfs-user:{args.server}:{args.export}", subtype="nfs-user")


if __name__ == "__main__":
    sys.exit(main())
