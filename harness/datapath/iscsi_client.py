"""The only user of libiscsi: a user-space iSCSI initiator (ctypes on ``libiscsi.so.7``) that logs in to one LUN,
reads its capacity and raw sectors, and logs out.

No kernel initiator (open-iscsi) is needed, so the doctor can inspect a LUN's layout from any host that reaches the
portal, without attaching a block device. It only ever reads. Every failure is raised as ``IscsiError`` with the
portal, IQN and LUN and libiscsi's own message.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from dataclasses import dataclass
from functools import cache
from types import TracebackType

from harness.errors import MissingBinary, StorageUnavailable

DEFAULT_PORT = 3260
INITIATOR_IQN = "iqn.2026-11.io.prom-storage-harness:doctor"

_SESSION_NORMAL = 2  # enum iscsi_session_type
_HEADER_DIGEST_NONE_CRC32C = 1  # enum iscsi_header_digest: offer none, accept crc32c
_SCSI_STATUS_GOOD = 0


class IscsiError(StorageUnavailable):
    """Login or a SCSI command failed."""

    def __init__(self, what: str, where: str, detail: str) -> None:
        self.what = what
        self.where = where
        self.detail = detail
        super().__init__(f"iSCSI {what} ({where}): {detail}")


@dataclass(frozen=True)
class LunCapacity:
    block_size_bytes: int
    blocks: int

    @property
    def size_bytes(self) -> int:
        return self.block_size_bytes * self.blocks


class _Iovec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


class _ReadCapacity16(ctypes.Structure):
    _fields_ = [("returned_lba", ctypes.c_uint64), ("block_length", ctypes.c_uint32)]


@cache
def _lib() -> ctypes.CDLL:
    name = ctypes.util.find_library("iscsi") or "libiscsi.so.7"
    try:
        lib = ctypes.CDLL(name)
    except OSError as e:
        raise MissingBinary("libiscsi.so.7", "libiscsi7") from e
    vp, ip, cp = ctypes.c_void_p, ctypes.c_int, ctypes.c_char_p
    signatures: dict[str, tuple[list[type], type | None]] = {
        "iscsi_create_context": ([cp], vp),
        "iscsi_destroy_context": ([vp], ip),
        "iscsi_get_error": ([vp], cp),
        "iscsi_set_targetname": ([vp, cp], ip),
        "iscsi_set_session_type": ([vp, ip], ip),
        "iscsi_set_header_digest": ([vp, ip], ip),
        "iscsi_set_timeout": ([vp, ip], ip),
        "iscsi_set_tcp_syncnt": ([vp, ip], ip),
        "iscsi_full_connect_sync": ([vp, cp, ip], ip),
        "iscsi_logout_sync": ([vp], ip),
        "iscsi_readcapacity16_sync": ([vp, ip], vp),
        "iscsi_read16_iov_sync": (
            [vp, ip, ctypes.c_uint64, ctypes.c_uint32, ip, ip, ip, ip, ip, ip, ctypes.POINTER(_Iovec), ip],
            vp,
        ),
        "scsi_datain_unmarshall": ([vp], vp),
        "scsi_free_scsi_task": ([vp], None),
    }
    for fname, (argtypes, restype) in signatures.items():
        fn = getattr(lib, fname)
        fn.argtypes = argtypes
        fn.restype = restype
    return lib


def split_portal(portal: str) -> tuple[str, int]:
    """``host[:port]`` or ``[v6][:port]`` -> (host, port)."""
    if portal.startswith("["):
        host, _, rest = portal[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else DEFAULT_PORT
    host, sep, port = portal.rpartition(":")
    return (host, int(port)) if sep else (portal, DEFAULT_PORT)


class IscsiLun:
    """A logged-in session to one LUN. Use as a context manager; reads only."""

    def __init__(self, portal: str, iqn: str, lun: int, *, timeout_s: float = 10.0) -> None:
        self.where = f"{portal} {iqn} lun {lun}"
        self.lun = lun
        self._lib = _lib()
        host, port = split_portal(portal)
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self._ctx: int | None = self._lib.iscsi_create_context(INITIATOR_IQN.encode())
        if not self._ctx:
            raise IscsiError("login", self.where, "iscsi_create_context failed")
        try:
            self._lib.iscsi_set_targetname(self._ctx, iqn.encode())
            self._lib.iscsi_set_session_type(self._ctx, _SESSION_NORMAL)
            self._lib.iscsi_set_header_digest(self._ctx, _HEADER_DIGEST_NONE_CRC32C)
            self._lib.iscsi_set_timeout(self._ctx, max(1, int(timeout_s)))
            # Bound the TCP connect too (SYN retries): an unreachable portal must fail within seconds, not minutes.
            self._lib.iscsi_set_tcp_syncnt(self._ctx, 2)
            if self._lib.iscsi_full_connect_sync(self._ctx, address.encode(), lun) != 0:
                raise IscsiError("login", self.where, self._error())
        except BaseException:
            self._destroy()
            raise
        self._logged_in = True

    def _error(self) -> str:
        msg = self._lib.iscsi_get_error(self._ctx) if self._ctx else None
        return (msg or b"unknown error").decode(errors="replace").strip()

    def _task_status(self, task: int | None) -> int:
        if not task:
            raise IscsiError("command", self.where, self._error())
        status: int = ctypes.cast(task, ctypes.POINTER(ctypes.c_int))[0]  # scsi_task.status is the first member
        return status

    def read_capacity(self) -> LunCapacity:
        task = self._lib.iscsi_readcapacity16_sync(self._ctx, self.lun)
        try:
            if self._task_status(task) != _SCSI_STATUS_GOOD:
                raise IscsiError("READ CAPACITY(16)", self.where, self._error())
            data = self._lib.scsi_datain_unmarshall(task)
            if not data:
                raise IscsiError("READ CAPACITY(16)", self.where, "could not decode the reply")
            rc16 = ctypes.cast(data, ctypes.POINTER(_ReadCapacity16)).contents
            return LunCapacity(block_size_bytes=int(rc16.block_length), blocks=int(rc16.returned_lba) + 1)
        finally:
            if task:
                self._lib.scsi_free_scsi_task(task)

    def read(self, offset_bytes: int, length_bytes: int, capacity: LunCapacity) -> bytes:
        """Read whole blocks covering [offset, offset+length), clipped to the LUN's end."""
        bs = capacity.block_size_bytes
        first = offset_bytes // bs
        last = min(capacity.blocks, -(-(offset_bytes + length_bytes) // bs))
        if last <= first:
            return b""
        nbytes = (last - first) * bs
        buf = ctypes.create_string_buffer(nbytes)
        iov = _Iovec(ctypes.cast(buf, ctypes.c_void_p), nbytes)
        task = self._lib.iscsi_read16_iov_sync(self._ctx, self.lun, first, nbytes, bs, 0, 0, 0, 0, 0, iov, 1)
        try:
            if self._task_status(task) != _SCSI_STATUS_GOOD:
                raise IscsiError(f"READ(16) of {nbytes} bytes at block {first}", self.where, self._error())
        finally:
            if task:
                self._lib.scsi_free_scsi_task(task)
        skip = offset_bytes - first * bs
        return buf.raw[skip : skip + length_bytes]

    def _destroy(self) -> None:
        if self._ctx:
            self._lib.iscsi_destroy_context(self._ctx)
            self._ctx = None

    def close(self) -> None:
        if self._ctx and getattr(self, "_logged_in", False):
            self._lib.iscsi_logout_sync(self._ctx)
            self._logged_in = False
        self._destroy()

    def __enter__(self) -> IscsiLun:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
