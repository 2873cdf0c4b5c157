"""The only importer of PyPI ``libnfs``: a typed, user-space NFS client that acts as any uid/gid (AUTH_SYS).

It needs no kernel NFS client and no root, which is what lets the doctor try the export exactly as the Prometheus
container would write to it. libnfs reports failures as negative errno return codes (and its high-level wrapper
ignores several of them), so this module calls the low-level SWIG functions and raises ``NfsError`` with the errno,
the operation and the path. Known limit of Debian 12's libnfs 4.0 over NFSv4: a single write of about 4 KiB or more
fails to encode (``ZDR error: Failed to encode COMPOUND4args``), so ``NfsFile.write`` splits writes into small chunks.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import functools
import itertools
import os
import stat
import warnings
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol
from urllib.parse import quote, urlencode

from harness.errors import MissingBinary, StorageUnavailable

# libnfs 4.0 over NFSv4 cannot encode a WRITE of about 4 KiB; stay well below it.
_WRITE_CHUNK_BYTES = 2048


class NfsError(StorageUnavailable):
    """An NFS operation failed; ``errno`` is the POSIX errno libnfs mapped the NFS status to."""

    def __init__(self, op: str, path: str, err: int, detail: str) -> None:
        self.op = op
        self.path = path
        self.errno = err
        self.detail = detail
        name = errno.errorcode.get(err, str(err))
        super().__init__(f"NFS {op} {path}: {os.strerror(err)} ({name}){': ' + detail if detail else ''}")

    @property
    def permission_denied(self) -> bool:
        return self.errno in (errno.EACCES, errno.EPERM)


@dataclass(frozen=True)
class NfsStat:
    uid: int
    gid: int
    mode: int  # st_mode: type and permission bits
    size_bytes: int
    nlink: int = 1
    ino: int = 0
    blocks: int = 0  # 512-byte units, as st_blocks
    atime_ns: int = 0
    mtime_ns: int = 0
    ctime_ns: int = 0

    @staticmethod
    def of(st: Any) -> NfsStat:
        """From libnfs' ``nfs_stat_64``."""
        return NfsStat(
            uid=st.nfs_uid,
            gid=st.nfs_gid,
            mode=st.nfs_mode,
            size_bytes=st.nfs_size,
            nlink=st.nfs_nlink,
            ino=st.nfs_ino,
            blocks=st.nfs_blocks,
            atime_ns=st.nfs_atime * 10**9 + st.nfs_atime_nsec,
            mtime_ns=st.nfs_mtime * 10**9 + st.nfs_mtime_nsec,
            ctime_ns=st.nfs_ctime * 10**9 + st.nfs_ctime_nsec,
        )

    @property
    def is_dir(self) -> bool:
        return stat.S_ISDIR(self.mode)

    @property
    def permissions(self) -> str:
        """e.g. ``drwxr-xr-x 0755``."""
        return f"{stat.filemode(self.mode)} {stat.S_IMODE(self.mode):04o}"


@dataclass(frozen=True)
class NfsEntry:
    name: str
    path: str
    stat: NfsStat


def _libnfs() -> Any:
    try:
        # The SWIG-generated module imports the deprecated ``imp`` module; that is libnfs's to fix, not a bug here.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            import libnfs.libnfs as swig
    except ImportError as e:
        raise MissingBinary("libnfs (Python binding)", "libnfs-dev, then: pip install libnfs") from e
    return swig


def nfs_url(
    server: str, export: str, *, port: int, version: str, uid: int, gid: int, mount_port: int | None = None
) -> str:
    """The libnfs URL for ``export`` on ``server``, authenticating as ``uid``/``gid``.

    NFSv3 asks the server's rpcbind for the MOUNT and NFS ports unless both are given (then it needs no rpcbind).
    """
    host = f"[{server}]" if ":" in server and not server.startswith("[") else server
    params: dict[str, str] = {"version": "3" if version == "3" else "4", "uid": str(uid), "gid": str(gid)}
    if port != 2049 or mount_port is not None:
        params["nfsport"] = str(port)
    if mount_port is not None:
        params["mountport"] = str(mount_port)
    path = "/" + export.strip("/")
    return f"nfs://{host}{quote(path)}?{urlencode(params)}"


class NfsFile:
    """An open file on the export; close it (or use it as a context manager)."""

    def __init__(self, client: NfsClient, path: str, handle: Any) -> None:
        self._client = client
        self._path = path
        self._handle = handle
        self._closed = False

    def pwrite(self, data: bytes, offset: int) -> int:
        """Write all of ``data`` at ``offset``."""
        lib, ctx = self._client.lib, self._client.ctx
        self._write_chunks(
            data, lambda start, chunk: lib.nfs_pwrite(ctx, self._handle, offset + start, len(chunk), chunk)
        )
        return len(data)

    def write(self, data: bytes) -> None:
        """Write all of ``data`` at the file's position."""
        lib, ctx = self._client.lib, self._client.ctx
        self._write_chunks(data, lambda _start, chunk: lib.nfs_write(ctx, self._handle, len(chunk), chunk))

    def _write_chunks(self, data: bytes, write: Callable[[int, bytearray], int]) -> None:
        """In pieces small enough for libnfs 4.0's NFSv4 WRITE; ``write(start, chunk)`` returns libnfs' result."""
        for start in range(0, len(data), _WRITE_CHUNK_BYTES):
            chunk = bytearray(data[start : start + _WRITE_CHUNK_BYTES])
            rc = write(start, chunk)
            if rc < 0:
                raise self._write_error(rc)
            if rc != len(chunk):
                raise NfsError("write", self._path, errno.EIO, f"short write: {rc} of {len(chunk)} bytes")

    def _write_error(self, rc: int) -> NfsError:
        """libnfs 4.0 loses the server's status of a refused WRITE and says EFAULT ("Bad address"); the server's
        ACCESS answer says whether this uid may write the file at all, which is the NFS3ERR_ACCES a kernel client
        would have turned into EACCES (a file chowned to another uid under an open file, the field notes' trap)."""
        if -rc == errno.EFAULT:
            denied = self._client.lib.nfs_access(self._client.ctx, self._path, os.W_OK)
            if denied < 0:
                return self._client.error("write", self._path, denied)
        return self._client.error("write", self._path, rc)

    def pread(self, size: int, offset: int) -> bytes:
        buf = bytearray(size)
        rc = self._client.lib.nfs_pread(self._client.ctx, self._handle, offset, size, buf)
        if rc < 0:
            raise self._client.error("read", self._path, rc)
        return bytes(buf[:rc])

    def truncate(self, length: int) -> None:
        rc = self._client.lib.nfs_ftruncate(self._client.ctx, self._handle, length)
        if rc < 0:
            raise self._client.error("truncate", self._path, rc)

    def stat(self) -> NfsStat:
        st = self._client.lib.nfs_stat_64()
        rc = self._client.lib.nfs_fstat64(self._client.ctx, self._handle, st)
        if rc < 0:
            raise self._client.error("fstat", self._path, rc)
        return NfsStat.of(st)

    def fsync(self) -> None:
        rc = self._client.lib.nfs_fsync(self._client.ctx, self._handle)
        if rc < 0:
            raise self._client.error("fsync", self._path, rc)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            rc = self._client.lib.nfs_close(self._client.ctx, self._handle)
            if rc < 0:
                raise self._client.error("close", self._path, rc)

    def __enter__(self) -> NfsFile:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


class NfsClient:
    """A mounted (in user space) NFS export. Paths are absolute within the export: ``/``, ``/prometheus-db``."""

    def __init__(self, url: str, *, timeout_s: float = 10.0) -> None:
        self.lib = _libnfs()
        self.url = url
        self.ctx = self.lib.nfs_init_context()
        if self.ctx is None:
            raise NfsError("init", url, errno.ENOMEM, "nfs_init_context failed")
        self._url_obj: Any = None
        try:
            _set_timeout(self.ctx, timeout_s)
            # NFSv4 knows a client by its name: libnfs gives every context of a process the same one, so a second
            # context (another uid) would take over the first one's client ID and the server would expire its state
            # (NFS4ERR_EXPIRED on the next OPEN). One name per context, as separate kernel clients would have.
            _set_client_name(self.ctx, f"prom-harness-{os.getpid()}-{next(_CONTEXT_IDS)}")
            # Bound the TCP connect (SYN retries) too: an unreachable server must fail within seconds.
            self.lib.nfs_set_tcp_syncnt(self.ctx, 2)
            self._url_obj = self.lib.nfs_parse_url_dir(self.ctx, url)
            if self._url_obj is None:
                raise NfsError("parse URL", url, errno.EINVAL, str(self.lib.nfs_get_error(self.ctx) or ""))
            rc = self.lib.nfs_mount(self.ctx, self._url_obj.server, self._url_obj.path)
            if rc < 0:
                raise self.error("mount", f"{self._url_obj.server}:{self._url_obj.path}", rc)
        except BaseException:
            self.close()
            raise

    def error(self, op: str, path: str, rc: int) -> NfsError:
        return NfsError(op, path, -rc, str(self.lib.nfs_get_error(self.ctx) or ""))

    def stat(self, path: str) -> NfsStat:
        st = self.lib.nfs_stat_64()
        rc = self.lib.nfs_stat64(self.ctx, path, st)
        if rc < 0:
            raise self.error("stat", path, rc)
        return NfsStat.of(st)

    def exists(self, path: str) -> bool:
        try:
            self.stat(path)
        except NfsError as e:
            if e.errno == errno.ENOENT:
                return False
            raise
        return True

    def listdir(self, path: str) -> list[NfsEntry]:
        """Entries of a directory (without ``.`` and ``..``), with owner and mode from READDIR."""
        handle = self.lib.new_NFSDirHandle()
        rc = self.lib.nfs_opendir(self.ctx, path, handle)
        if rc < 0:
            raise self.error("opendir", path, rc)
        dirh = self.lib.NFSDirHandle_value(handle)
        entries: list[NfsEntry] = []
        try:
            while (de := self.lib.nfs_readdir(self.ctx, dirh)) is not None:
                if de.name in (".", ".."):
                    continue
                # READDIR's mode carries permission bits only on some servers; the type comes from de.type.
                mode = stat.S_IMODE(de.mode) | (stat.S_IFDIR if de.type == 2 else stat.S_IFREG)
                child = path.rstrip("/") + "/" + de.name
                entries.append(NfsEntry(de.name, child, NfsStat(de.uid, de.gid, mode, de.size)))
        finally:
            self.lib.nfs_closedir(self.ctx, dirh)
        return entries

    def create(self, path: str, mode: int = 0o644, *, exclusive: bool = True) -> NfsFile:
        handle = self.lib.new_NFSFileHandle()
        flags = os.O_WRONLY | os.O_CREAT | (os.O_EXCL if exclusive else os.O_TRUNC)
        rc = self.lib.nfs_create(self.ctx, path, flags, mode, handle)
        if rc < 0:
            raise self.error("create", path, rc)
        return NfsFile(self, path, self.lib.NFSFileHandle_value(handle))

    def open(self, path: str, flags: int) -> NfsFile:
        """Open an existing file with open(2) ``flags`` (O_RDONLY, O_RDWR, O_APPEND, O_TRUNC, ...)."""
        handle = self.lib.new_NFSFileHandle()
        rc = self.lib.nfs_open(self.ctx, path, flags, handle)
        if rc < 0:
            raise self.error("open", path, rc)
        return NfsFile(self, path, self.lib.NFSFileHandle_value(handle))

    def create_file(self, path: str, flags: int, mode: int) -> NfsFile:
        """open(2) with O_CREAT: ``flags`` as the caller gave them (O_EXCL, O_TRUNC, the access mode)."""
        handle = self.lib.new_NFSFileHandle()
        rc = self.lib.nfs_create(self.ctx, path, flags | os.O_CREAT, mode, handle)
        if rc < 0:
            raise self.error("create", path, rc)
        return NfsFile(self, path, self.lib.NFSFileHandle_value(handle))

    def truncate(self, path: str, length: int) -> None:
        rc = self.lib.nfs_truncate(self.ctx, path, length)
        if rc < 0:
            raise self.error("truncate", path, rc)

    def chmod(self, path: str, mode: int) -> None:
        rc = self.lib.nfs_chmod(self.ctx, path, mode)
        if rc < 0:
            raise self.error("chmod", path, rc)

    def chown(self, path: str, uid: int, gid: int) -> None:
        rc = self.lib.nfs_chown(self.ctx, path, uid, gid)
        if rc < 0:
            raise self.error("chown", path, rc)

    def statvfs(self, path: str) -> os.statvfs_result:
        """Sizes and free space of the export; nfs_statvfs is not in the SWIG binding, so through ctypes."""
        out = _StatVfs()
        rc = _cdll().nfs_statvfs(ctypes.c_void_p(int(self.ctx)), path.encode(), ctypes.byref(out))
        if rc < 0:
            raise self.error("statvfs", path, rc)
        return os.statvfs_result(
            (
                out.f_bsize,
                out.f_frsize,
                out.f_blocks,
                out.f_bfree,
                out.f_bavail,
                out.f_files,
                out.f_ffree,
                out.f_favail,
                out.f_flag,
                out.f_namemax,
            )
        )

    def mkdir(self, path: str, mode: int | None = None) -> None:
        """mkdir; with ``mode`` the directory is created with it (nfs_mkdir2, through ctypes: not in the binding).

        A later chmod cannot do it: libnfs 4.0's NFSv4 chmod of a directory fails with NFS4ERR_ISDIR.
        """
        if mode is not None:
            rc = _cdll().nfs_mkdir2(ctypes.c_void_p(int(self.ctx)), path.encode(), mode)
            if rc < 0:
                raise self.error("mkdir", path, rc)
            return
        rc = self.lib.nfs_mkdir(self.ctx, path)
        if rc < 0:
            raise self.error("mkdir", path, rc)

    def rmdir(self, path: str) -> None:
        rc = self.lib.nfs_rmdir(self.ctx, path)
        if rc < 0:
            raise self.error("rmdir", path, rc)

    def rename(self, src: str, dst: str) -> None:
        rc = self.lib.nfs_rename(self.ctx, src, dst)
        if rc < 0:
            raise self.error("rename", f"{src} -> {dst}", rc)

    def unlink(self, path: str) -> None:
        rc = self.lib.nfs_unlink(self.ctx, path)
        if rc < 0:
            raise self.error("unlink", path, rc)

    def close(self) -> None:
        if self.ctx is None:
            return
        if self._url_obj is not None:
            self.lib.nfs_destroy_url(self._url_obj)
            self._url_obj = None
        self.lib.nfs_destroy_context(self.ctx)
        self.ctx = None

    def __enter__(self) -> NfsClient:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


@contextmanager
def connect(
    server: str,
    export: str,
    *,
    port: int,
    version: str,
    uid: int,
    gid: int,
    timeout_s: float = 10.0,
    mount_port: int | None = None,
) -> Iterator[NfsClient]:
    """Mount ``server:export`` in user space as ``uid``/``gid``; unmounted when the block ends."""
    url = nfs_url(server, export, port=port, version=version, uid=uid, gid=gid, mount_port=mount_port)
    client = NfsClient(url, timeout_s=timeout_s)
    try:
        yield client
    finally:
        client.close()


class Export(Protocol):
    """What names an export and how to reach it (``NfsStorage``; ``ExportAccess``, a run's export for a second
    client)."""

    @property
    def server(self) -> str: ...
    @property
    def export(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def version(self) -> str: ...
    @property
    def mount_port(self) -> int | None: ...


def connect_to(where: Export, *, uid: int, gid: int, timeout_s: float = 10.0) -> AbstractContextManager[NfsClient]:
    """``connect`` to the export ``where`` names, as ``uid``/``gid`` (AUTH_SYS)."""
    return connect(
        where.server,
        where.export,
        port=where.port,
        version=where.version,
        uid=uid,
        gid=gid,
        timeout_s=timeout_s,
        mount_port=where.mount_port,
    )


class _StatVfs(ctypes.Structure):
    """glibc's ``struct statvfs`` on 64-bit Linux."""

    _fields_ = [
        ("f_bsize", ctypes.c_ulong),
        ("f_frsize", ctypes.c_ulong),
        ("f_blocks", ctypes.c_ulong),
        ("f_bfree", ctypes.c_ulong),
        ("f_bavail", ctypes.c_ulong),
        ("f_files", ctypes.c_ulong),
        ("f_ffree", ctypes.c_ulong),
        ("f_favail", ctypes.c_ulong),
        ("f_fsid", ctypes.c_ulong),
        ("f_flag", ctypes.c_ulong),
        ("f_namemax", ctypes.c_ulong),
        ("__f_spare", ctypes.c_int * 6),
    ]


@functools.cache
def _cdll() -> Any:
    """The libnfs shared library itself, for the few calls the SWIG binding lacks (loaded and typed once: the FUSE
    client calls statvfs for every statfs)."""
    cdll = ctypes.CDLL(ctypes.util.find_library("nfs") or "libnfs.so.13")
    for name, argtypes, restype in (
        ("nfs_statvfs", [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p], ctypes.c_int),
        ("nfs_mkdir2", [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int], ctypes.c_int),
        ("nfs4_set_client_name", [ctypes.c_void_p, ctypes.c_char_p], None),
        ("nfs_set_timeout", [ctypes.c_void_p, ctypes.c_int], None),
    ):
        function = getattr(cdll, name, None)
        if function is not None:  # an older libnfs may lack one; only the call that needs it fails then
            function.argtypes, function.restype = argtypes, restype
    return cdll


_CONTEXT_IDS = itertools.count(1)


def _set_client_name(ctx: Any, name: str) -> None:
    try:
        cdll = _cdll()
    except OSError:
        return
    cdll.nfs4_set_client_name(ctypes.c_void_p(int(ctx)), name.encode())


def _set_timeout(ctx: Any, timeout_s: float) -> None:
    """nfs_set_timeout is not in the SWIG binding; call it through ctypes on the same shared library."""
    try:
        cdll = _cdll()
    except OSError:
        return  # the binding still works, only without a per-call timeout
    cdll.nfs_set_timeout(ctypes.c_void_p(int(ctx)), int(timeout_s * 1000))
