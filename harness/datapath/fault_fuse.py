"""The fault layer's FUSE filesystem, run as its own process: it serves the operations below Prometheus, keeps
the durability model informed (``harness.datapath.fault_durability``: what a power cut, ``power_loss``, takes away, the
LazyFS model), fails or slows down chosen operations (``io_errors``, ``io_latency``, Chaos Mesh IOChaos' model) and
answers the control protocol (``harness.datapath.fault_protocol``).

Run as its own process (``python -m harness.datapath.fault_fuse DIR --report FILE``), started and stopped by PID from
``harness.runtime.fault_layer``; ``--send COMMAND`` instead sends one command to the layer mounted over ``DIR`` (how
the kubernetes runtime commands the layer in its sidecar). It is mounted *over* ``DIR`` (it keeps a descriptor of
the directory underneath and works relative to it), so Prometheus' data directory keeps its path. Every operation
goes through to ``DIR`` at once, so a reader, a SIGKILL or a clean unmount see exactly what a plain filesystem would.

The layer serves one request at a time, so a delayed operation holds up every operation behind it, like a disk
with a queue depth of one: a delay on writes is a delay on reads issued meanwhile too.

The kernel caches no attribute or name (timeouts 0) and drops a file's cached pages when it is opened again, so a
process started after the cut sees what the disk would. Reads that the kernel serves from its page cache never
reach the layer, so a fault on ``read`` hits only those that do.
Not modelled: hard links and symlinks (refused), ``sync(2)``/``syncfs`` (FUSE does not forward them), mmap writes
beyond what the kernel writes back through the layer.
"""

from __future__ import annotations

import argparse
import errno
import json
import logging
import os
import random
import signal
import stat
import sys
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import mfusepy

from harness.datapath import fault_protocol as protocol
from harness.datapath.fault_durability import PAGE_BYTES, Durability, FileState, parent
from harness.datapath.fuse_main import log_to_stderr, serve

log = logging.getLogger("harness.datapath.fault_fuse")

CONTROL_PATH = "/" + protocol.CONTROL_NAME
_CONTROL_FH = 0  # file handles of real files start at 1


@dataclass
class Handle:
    fd: int
    path: str
    sync_writes: bool


class FaultFuse(mfusepy.Operations):  # type: ignore[misc]
    use_ns = True

    def __init__(self, root_fd: int, report: Path) -> None:
        self.root = root_fd
        self.report = report
        self.io: protocol.LayerIoFault | None = None
        self._random = random.Random()  # which operations are hit: a share, not a secret
        self.durability = Durability()
        self.handles: dict[int, Handle] = {}
        self._next_fh = 1
        self.killed: int | None = None  # cut-kill's process, until it is gone

    def _after_the_cut(self) -> None:
        """EIO for an operation that would change data or names while the process cut-kill killed still exists."""
        if self.killed is None:
            return
        if Path(f"/proc/{self.killed}").exists():
            raise mfusepy.FuseOSError(errno.EIO)
        log.info("the killed process %d is gone: writes go through again", self.killed)
        self.killed = None

    # --- helpers -------------------------------------------------------------------------------------------------

    @staticmethod
    def rel(path: str) -> str:
        return path.lstrip("/") or "."

    def _io(self, method: str, *paths: str) -> None:
        """The I/O fault, if one is set and hits this operation: wait its delay, then fail with its errno."""
        fault = self.io
        if fault is None or not fault.matches(method, (self.rel(p) for p in paths)):
            return
        counts = fault.counts.setdefault(method, protocol.IoCounts())
        counts.matched += 1
        if self._random.random() * 100 >= fault.percent:
            return
        if fault.delay_s > 0:
            counts.delayed += 1
            time.sleep(fault.delay_s)
        if fault.errno is not None:
            counts.failed += 1
            raise mfusepy.FuseOSError(fault.errno)

    def _handle(self, fh: int) -> Handle:
        try:
            return self.handles[fh]
        except KeyError:
            raise mfusepy.FuseOSError(errno.EBADF) from None

    def _keep(self, fd: int, path: str, flags: int) -> int:
        fh, self._next_fh = self._next_fh, self._next_fh + 1
        self.handles[fh] = Handle(fd, path, bool(flags & (os.O_SYNC | os.O_DSYNC)))
        return fh

    def _changing(self, fd: int, path: str, start: int, end: int | None = None) -> tuple[FileState, int]:
        """Before [start, end) of the open file is overwritten or cut off (``end`` None: up to its size): its state in
        the durability model, which keeps the durable content of that range, and its size now."""
        st = os.fstat(fd)
        stop = st.st_size if end is None else end
        state = self.durability.changing(st.st_ino, self.rel(path), st.st_size, start, stop, read=partial(os.pread, fd))
        return state, st.st_size

    def _synced(self, fd: int, path: str) -> None:
        self.durability.synced(os.fstat(fd).st_ino, self.rel(path))

    def _owned_by_caller(self, rel: str, parent: str) -> None:
        """Created as the caller (the layer runs as root): its uid, and its gid unless the directory is setgid (then
        the filesystem already gave it the directory's group, as it would have for the caller)."""
        uid, gid, _pid = mfusepy.fuse_get_context()
        if uid == os.getuid() and gid == os.getgid():
            return
        setgid = os.stat(parent, dir_fd=self.root).st_mode & stat.S_ISGID
        os.chown(rel, uid, -1 if setgid else gid, dir_fd=self.root, follow_symlinks=False)

    # --- metadata ------------------------------------------------------------------------------------------------

    def getattr(self, path: str, fh: int | None = None) -> dict[str, Any]:
        if path == CONTROL_PATH:
            now = time.time_ns()
            uid, gid = os.getuid(), os.getgid()
            return {"st_mode": stat.S_IFREG | 0o200, "st_nlink": 1, "st_size": 0, "st_uid": uid, "st_gid": gid,
                    "st_atime": now, "st_mtime": now, "st_ctime": now}  # fmt: skip
        if path != "/":
            # Not the root's: the kernel asks for it on the way to the control file, which must stay reachable.
            self._io("getattr", path)
        st = _call(lambda: os.stat(self.rel(path), dir_fd=self.root, follow_symlinks=False))
        return {
            key: getattr(st, key)
            for key in ("st_mode", "st_nlink", "st_size", "st_uid", "st_gid", "st_blocks", "st_ino")
        } | {"st_atime": st.st_atime_ns, "st_mtime": st.st_mtime_ns, "st_ctime": st.st_ctime_ns}

    def readdir(self, path: str, fh: int) -> list[str]:
        self._io("readdir", path)
        fd = _call(lambda: os.open(self.rel(path), os.O_RDONLY | os.O_DIRECTORY, dir_fd=self.root))
        try:
            return [".", "..", *os.listdir(fd)]  # noqa: PTH208 - a descriptor under the mount: no path reaches it
        finally:
            os.close(fd)

    def statfs(self, path: str) -> dict[str, int]:
        self._io("statfs", path)
        v = os.fstatvfs(self.root)
        return {k: getattr(v, k) for k in ("f_bsize", "f_frsize", "f_blocks", "f_bfree", "f_bavail", "f_files",
                                            "f_ffree", "f_favail", "f_namemax")}  # fmt: skip

    def chmod(self, path: str, mode: int) -> int:
        self._after_the_cut()
        self._io("setattr", path)
        _call(lambda: os.chmod(self.rel(path), stat.S_IMODE(mode), dir_fd=self.root, follow_symlinks=False))
        return 0

    def chown(self, path: str, uid: int, gid: int) -> int:
        self._after_the_cut()
        self._io("setattr", path)
        _call(lambda: os.chown(self.rel(path), uid, gid, dir_fd=self.root, follow_symlinks=False))
        return 0

    def utimens(self, path: str, times: tuple[int, int] | None = None) -> int:
        self._after_the_cut()
        self._io("setattr", path)
        rel = self.rel(path)
        if times is None:
            _call(lambda: os.utime(rel, dir_fd=self.root, follow_symlinks=False))
        else:
            _call(lambda: os.utime(rel, ns=times, dir_fd=self.root, follow_symlinks=False))
        return 0

    def readlink(self, path: str) -> str:
        raise mfusepy.FuseOSError(errno.EINVAL)  # no symlinks are ever made through the layer

    def symlink(self, target: str, source: str) -> int:
        raise mfusepy.FuseOSError(errno.EPERM)  # not modelled (see the module's docstring)

    def link(self, target: str, source: str) -> int:
        raise mfusepy.FuseOSError(errno.EPERM)  # not modelled: a file's state is kept under one name

    # --- namespace (durable at once) -----------------------------------------------------------------------------

    def mkdir(self, path: str, mode: int) -> int:
        self._after_the_cut()
        self._io("mkdir", path)
        rel = self.rel(path)
        _call(lambda: os.mkdir(rel, stat.S_IMODE(mode), dir_fd=self.root))
        self._owned_by_caller(rel, parent(rel))
        return 0

    def rmdir(self, path: str) -> int:
        self._after_the_cut()
        self._io("rmdir", path)
        _call(lambda: os.rmdir(self.rel(path), dir_fd=self.root))
        return 0

    def unlink(self, path: str) -> int:
        self._after_the_cut()
        self._io("unlink", path)
        rel = self.rel(path)
        st = _call(lambda: os.stat(rel, dir_fd=self.root, follow_symlinks=False))
        _call(lambda: os.unlink(rel, dir_fd=self.root))
        self.durability.unlinked(st.st_ino, st.st_nlink)
        return 0

    def rename(self, old: str, new: str) -> int:
        self._after_the_cut()
        self._io("rename", old, new)
        src, dst = self.rel(old), self.rel(new)
        try:
            replaced: int | None = os.stat(dst, dir_fd=self.root, follow_symlinks=False).st_ino
        except FileNotFoundError:
            replaced = None
        _call(lambda: os.rename(src, dst, src_dir_fd=self.root, dst_dir_fd=self.root))
        self.durability.renamed(src, dst, replaced)
        return 0

    # --- files ---------------------------------------------------------------------------------------------------

    def create(self, path: str, mode: int, flags: int) -> int:
        self._after_the_cut()
        self._io("create", path)
        rel = self.rel(path)
        fd = _call(lambda: os.open(rel, os.O_CREAT | os.O_EXCL | os.O_RDWR, stat.S_IMODE(mode), dir_fd=self.root))
        self._owned_by_caller(rel, parent(rel))
        self.durability.created(os.fstat(fd).st_ino, rel)
        return self._keep(fd, path, flags)

    def open(self, path: str, flags: int) -> int:
        if path == CONTROL_PATH:
            uid, _gid, _pid = mfusepy.fuse_get_context()
            if uid != os.getuid():
                raise mfusepy.FuseOSError(errno.EACCES)
            return _CONTROL_FH
        self._io("open", path)
        # Our own descriptor reads too (to keep overwritten content) and never appends: the kernel gives every write
        # its offset. O_TRUNC goes through truncate, which keeps what it cuts off.
        access = os.O_RDONLY if flags & os.O_ACCMODE == os.O_RDONLY else os.O_RDWR
        fd = _call(lambda: os.open(self.rel(path), access, dir_fd=self.root))
        if flags & os.O_TRUNC and access == os.O_RDWR:
            try:
                self._after_the_cut()
            except mfusepy.FuseOSError:
                os.close(fd)
                raise
            self._truncate_fd(fd, path, 0)
        return self._keep(fd, path, flags)

    def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
        if fh == _CONTROL_FH:
            return b""
        self._io("read", path)
        data: bytes = _call(lambda: os.pread(self._handle(fh).fd, size, offset))
        return data

    def write(self, path: str, data: bytes, offset: int, fh: int) -> int:
        if fh == _CONTROL_FH:
            return self._control(data)
        self._after_the_cut()
        self._io("write", path)
        h = self._handle(fh)
        state, _size = self._changing(h.fd, path, offset, offset + len(data))
        written: int = _call(lambda: os.pwrite(h.fd, data, offset))
        state.unsynced_bytes += written
        if h.sync_writes:
            self._synced(h.fd, path)
        return written

    def truncate(self, path: str, length: int, fh: int | None = None) -> int:
        if path == CONTROL_PATH:
            return 0
        self._after_the_cut()
        self._io("truncate", path)
        fd = _call(lambda: os.open(self.rel(path), os.O_RDWR, dir_fd=self.root))
        try:
            self._truncate_fd(fd, path, length)
        finally:
            os.close(fd)
        return 0

    def _truncate_fd(self, fd: int, path: str, length: int) -> None:
        state, size = self._changing(fd, path, length)
        _call(lambda: os.ftruncate(fd, length))
        state.unsynced_bytes += abs(size - length)

    def fsync(self, path: str, datasync: int, fh: int) -> int:
        if fh == _CONTROL_FH:
            return 0
        self._after_the_cut()
        self._io("fsync", path)
        h = self._handle(fh)
        _call(lambda: os.fdatasync(h.fd) if datasync else os.fsync(h.fd))
        self._synced(h.fd, path)
        return 0

    def fsyncdir(self, path: str, datasync: int, fh: int) -> int:
        self._after_the_cut()
        self._io("fsyncdir", path)
        rel = self.rel(path)
        fd = _call(lambda: os.open(rel, os.O_RDONLY | os.O_DIRECTORY, dir_fd=self.root))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        self.durability.dir_synced(rel)
        return 0

    def flush(self, path: str, fh: int) -> int:
        if fh != _CONTROL_FH:
            self._io("flush", path)
        return 0  # close(2) promises nothing about durability

    def release(self, path: str, fh: int) -> int:
        h = self.handles.pop(fh, None)
        if h is not None:
            os.close(h.fd)
        return 0

    def destroy(self, path: str) -> None:
        for h in self.handles.values():
            os.close(h.fd)
        self.handles.clear()

    # --- the power cut -------------------------------------------------------------------------------------------

    def _control(self, data: bytes) -> int:
        command, argument = protocol.split_command(data)
        if command == protocol.CUT.encode() and not argument:
            report = self.cut()
        elif command == protocol.CUT_KILL.encode() and not argument:
            report = self.cut_kill()
        elif command == protocol.IO_SET.encode():
            try:
                self.io = protocol.parse_io_set(argument)
            except ValueError as e:
                log.error("bad io-set command %r: %s", argument, e)
                raise mfusepy.FuseOSError(errno.EINVAL) from None
            report = {"set_at_unix_s": self.io.set_at}
            log.info("I/O fault set: %s", argument.decode(errors="replace"))
        elif command == protocol.IO_CLEAR.encode() and not argument:
            report = {"cleared_at_unix_s": time.time(), **(self.io.report() if self.io is not None else {"counts": {}})}
            self.io = None
            log.info("I/O fault cleared: %s", report["counts"])
        else:
            raise mfusepy.FuseOSError(errno.EINVAL)
        tmp = self.report.with_name(self.report.name + ".tmp")
        tmp.write_text(json.dumps(report, indent=2))
        tmp.replace(self.report)
        return len(data)

    def cut_kill(self) -> dict[str, Any]:
        """SIGKILL the one ``prometheus`` process in sight, then cut (``harness.datapath.fault_protocol``)."""
        found = [
            int(d.name)
            for d in Path("/proc").iterdir()
            if d.name.isdigit() and int(d.name) != os.getpid() and _comm(d) == protocol.KILLED_NAME
        ]
        if len(found) != 1:
            log.error("cut-kill: %d processes named %s in sight (%s)", len(found), protocol.KILLED_NAME, found)
            raise mfusepy.FuseOSError(errno.ESRCH)
        try:
            os.kill(found[0], signal.SIGKILL)
        except ProcessLookupError:
            raise mfusepy.FuseOSError(errno.ESRCH) from None
        self.killed = found[0]
        return {**self.cut(), "killed_pid": found[0]}

    def cut(self) -> dict[str, Any]:
        """Take away everything not durable; what was taken, and the last fsync of every path, for the report."""
        cut_at = time.time()
        losses = self.durability.losses(self._inode_at)
        for loss in losses:
            if loss.removed:
                os.unlink(loss.path, dir_fd=self.root)
                continue
            fd = os.open(loss.path, os.O_RDWR, dir_fd=self.root)
            try:
                os.ftruncate(fd, loss.durable_size)
                for page, content in loss.saved.items():
                    os.pwrite(fd, content, page * PAGE_BYTES)
                os.fsync(fd)
            finally:
                os.close(fd)
        self.durability.cut()
        cut = protocol.CutReport(
            cut_at_unix_s=cut_at,
            reverted=[loss.path for loss in losses if not loss.removed],
            removed=[loss.path for loss in losses if loss.removed],
            dropped_bytes=sum(loss.unsynced_bytes for loss in losses),
            last_fsync_unix_s=self.durability.last_fsync,
        )
        log.info("power cut: %d file(s) reverted, %d new file(s) removed, %d unsynced bytes dropped",
                 len(cut.reverted), len(cut.removed), cut.dropped_bytes)  # fmt: skip
        return cut.answer()

    def _inode_at(self, rel: str) -> int | None:
        try:
            return os.stat(rel, dir_fd=self.root, follow_symlinks=False).st_ino
        except FileNotFoundError:
            return None


def _comm(proc_dir: Path) -> str:
    try:
        return (proc_dir / "comm").read_text().strip()
    except OSError:
        return ""  # gone meanwhile


def _call(op: Any) -> Any:
    """Run one operation on the directory underneath; its errno becomes the FUSE error the caller sees."""
    try:
        return op()
    except OSError as e:
        raise mfusepy.FuseOSError(e.errno or errno.EIO) from None


def _send(directory: Path, report: Path, command: str) -> int:
    report.unlink(missing_ok=True)
    try:
        protocol.send(directory, command.encode())
    except OSError as e:
        print(f"the fault layer over {directory} refused {command.split(maxsplit=1)[0]!r}: {e}", file=sys.stderr)
        return 1
    print(report.read_text())
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m harness.datapath.fault_fuse", description=__doc__.split("\n\n")[0])
    p.add_argument("directory", help="mounted over: the layer works on what is underneath")
    p.add_argument("--report", required=True, type=Path, help="where a command writes its answer (JSON)")
    p.add_argument(
        "--send",
        metavar="COMMAND",
        help="send COMMAND to the layer mounted over DIRECTORY and print its answer, instead of mounting (how the "
        "kubernetes runtime commands the layer in its sidecar, by exec)",
    )
    args = p.parse_args(argv)
    if args.send is not None:
        return _send(Path(args.directory), args.report, args.send)
    log_to_stderr()
    try:
        root_fd = os.open(args.directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as e:
        print(f"cannot open {args.directory}: {e.strerror}", file=sys.stderr)
        return 2
    # Modes come from the callers, already masked by their umask.
    os.umask(0)
    log.info("fault layer over %s", args.directory)
    # One request at a time (nothreads): a command cannot interleave with a write.
    return serve(
        FaultFuse(root_fd, args.report),
        args.directory,
        log,
        # The kernel checks permissions against the attributes, as the filesystem underneath would.
        default_permissions=True,
        # No cached names or attributes: after a cut the next Prometheus must see what is left.
        attr_timeout=0,
        entry_timeout=0,
        negative_timeout=0,
        fsname=f"harness-faults:{args.directory}",
        subtype="harness-faults",
    )


if __name__ == "__main__":
    sys.exit(main())
