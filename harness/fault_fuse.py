"""A FUSE layer for the faults below Prometheus: it can lose what was never made durable (``power_loss``, the
LazyFS model) and fail or slow down chosen operations (``io_errors``, ``io_latency``, Chaos Mesh IOChaos' model).

Run as its own process (``python -m harness.fault_fuse DIR --report FILE``), started and stopped by PID from
``harness.runtime.fault_layer``. It is mounted *over* ``DIR`` (it keeps a descriptor of the directory underneath and
works relative to it), so Prometheus' data directory keeps its path. Every operation goes through to ``DIR`` at
once, so a reader, a SIGKILL or a clean unmount see exactly what a plain filesystem would; what the layer adds is
a record of what is not durable yet, so that a *power cut* can take exactly that away. The model, per file (told
apart by inode, so it follows renames and outlives an unlink of an open file):

* **data**: everything written since the file's last ``fsync``/``fdatasync`` is lost: the file goes back to the size
  and content it had at that call (or when the layer first saw it written). A ``truncate`` or ``O_TRUNC`` since then
  is undone the same way. Files opened ``O_SYNC``/``O_DSYNC`` are synced by every write.
* **new files**: a file created through the layer that was never fsynced, and whose directory was not fsynced after
  the creation, disappears. Like ext4 (data=ordered), an fsync of the file also makes its name durable; an fsync of
  its directory makes the name durable but not the data (a never-synced file then comes back empty).
* **everything else is durable at once**: ``mkdir``, ``rmdir``, ``unlink``, ``rename`` (a renamed file keeps its own
  unsynced data and its new-file state under its new name), ``chmod``, ``chown``, ``utimens``. A real filesystem's
  journal may lose these too within its commit interval (5 s on ext4); this layer does not, so the losses it shows
  are a lower bound, all of them data the application never asked to be made durable.

So after a cut, what remains is what the last fsyncs promised. Prometheus' WAL write()s every commit and fsyncs
only when a segment is completed or closed (``tsdb/wlog``): samples it acknowledged since then go.

Faults are asked for through a control file that is not listed anywhere, ``DIR/.harness-control``; only the
layer's own uid may write to it, and every command writes its answer, as JSON, to ``--report`` before the write
returns (the layer serves one request at a time, so no operation of anyone else interleaves with a command):

* ``cut`` drops the unsynced state; the answer says what was dropped and when every path was last fsynced.
* ``cut-kill`` (the kubernetes runtime, where the layer runs in a sidecar of Prometheus' pod and the kubelet, not the
  harness, restarts a killed container) SIGKILLs the one process named ``prometheus`` the layer sees (the pod shares
  one process namespace), then cuts, in the same request: no operation of anyone runs in between. Until that
  process is gone, every operation that would change data or names fails with EIO, so nothing the dying process
  still had queued lands after the cut; the next Prometheus can only start once it is gone.
* ``io-set {JSON}`` sets the I/O fault (replacing any): ``methods`` (names from ``IO_METHODS``; empty: all of
  them), ``percent`` (0-100: the share of matching operations hit, drawn per operation), ``errno`` (a number: they
  fail with it, nothing reaches the directory underneath; null: they do not fail), ``delay_s`` (added before each
  hit operation) and ``path`` (null, or a path relative to ``DIR``: only operations on it or under it match; a
  rename matches by either name). Hit operations are counted by method. The control file and the attributes of
  ``DIR`` itself are never hit: the kernel needs those to reach the control file, so an ``io-clear`` always does.
* ``io-clear`` lifts it; the answer holds the counts (per method: matched, failed, delayed) of the fault it lifted.

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mfusepy

log = logging.getLogger("harness.fault_fuse")

CONTROL_NAME = ".harness-control"
CONTROL_PATH = "/" + CONTROL_NAME
CUT_COMMAND = b"cut"
CUT_KILL_COMMAND = b"cut-kill"
KILLED_NAME = "prometheus"  # the process cut-kill kills (its /proc/<pid>/comm)
IO_SET_COMMAND = b"io-set"
IO_CLEAR_COMMAND = b"io-clear"
# The operations an I/O fault can hit, by the names a scenario uses (Chaos Mesh IOChaos' where they overlap). fsync
# is fsync(2) and fdatasync(2) on a file, fsyncdir on a directory; flush is close(2); setattr is chmod, chown and
# utimens (truncate is its own). release is not among them: the kernel ignores what it returns.
IO_METHODS = frozenset(
    {"open", "create", "read", "write", "truncate", "fsync", "fsyncdir", "flush", "getattr", "setattr", "readdir",
     "mkdir", "rmdir", "unlink", "rename", "statfs"}
)  # fmt: skip
PAGE_BYTES = 4096  # unit in which overwritten durable content is kept, to put back at the cut
_CONTROL_FH = 0  # file handles of real files start at 1


@dataclass
class FileState:
    """What of one file is not durable yet."""

    path: str  # its name now, relative to the layer's root (follows renames)
    durable_size: int
    new: bool = False  # created through the layer; its name is not durable yet
    # Original content of the pages below ``durable_size`` overwritten (or cut off) since the last fsync.
    saved: dict[int, bytes] = field(default_factory=dict)
    unsynced_bytes: int = 0  # bytes written or truncated away since the last fsync (for the report)


@dataclass
class IoCounts:
    matched: int = 0  # operations of a chosen method on a chosen path
    failed: int = 0
    delayed: int = 0


@dataclass
class IoFault:
    """The I/O fault in force (``io-set``), and what it did so far."""

    methods: frozenset[str]  # empty: every method
    percent: float
    errno: int | None
    delay_s: float
    path: str | None  # relative to the root, without a trailing slash
    set_at: float = field(default_factory=time.time)
    counts: dict[str, IoCounts] = field(default_factory=dict)

    def report(self) -> dict[str, Any]:
        return {"set_at_unix_s": self.set_at, "counts": {m: vars(c) for m, c in sorted(self.counts.items())}}


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
        self.io: IoFault | None = None
        self._random = random.Random()  # which operations are hit: a share, not a secret
        self.states: dict[int, FileState] = {}  # by inode
        self.last_fsync: dict[str, float] = {}  # path -> when it (a file or a directory) was last fsynced
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
        if fault is None or (fault.methods and method not in fault.methods):
            return
        if fault.path is not None and not any(_under(self.rel(p), fault.path) for p in paths):
            return
        counts = fault.counts.setdefault(method, IoCounts())
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

    def _state(self, fd: int, path: str) -> FileState:
        """The file's unsynced state; a file first written now is durable as it is before this write."""
        st = os.fstat(fd)
        state = self.states.get(st.st_ino)
        if state is None:
            state = self.states[st.st_ino] = FileState(self.rel(path), st.st_size)
        return state

    def _save(self, state: FileState, fd: int, start: int, end: int) -> None:
        """Keep the durable content of [start, end) before it is overwritten or cut off (first time only)."""
        end = min(end, state.durable_size)
        if start >= end:
            return
        for page in range(start // PAGE_BYTES, (end - 1) // PAGE_BYTES + 1):
            if page not in state.saved:
                offset = page * PAGE_BYTES
                state.saved[page] = os.pread(fd, min(PAGE_BYTES, state.durable_size - offset), offset)

    def _synced(self, ino: int, path: str) -> None:
        self.states.pop(ino, None)
        self.last_fsync[self.rel(path)] = time.time()

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
        self._owned_by_caller(rel, _parent(rel))
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
        if st.st_nlink <= 1:
            self.states.pop(st.st_ino, None)
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
        if replaced is not None:
            self.states.pop(replaced, None)
        for state in self.states.values():
            if state.path == src:
                state.path = dst
            elif state.path.startswith(src + "/"):
                state.path = dst + state.path[len(src) :]
        return 0

    # --- files ---------------------------------------------------------------------------------------------------

    def create(self, path: str, mode: int, flags: int) -> int:
        self._after_the_cut()
        self._io("create", path)
        rel = self.rel(path)
        fd = _call(lambda: os.open(rel, os.O_CREAT | os.O_EXCL | os.O_RDWR, stat.S_IMODE(mode), dir_fd=self.root))
        self._owned_by_caller(rel, _parent(rel))
        self.states[os.fstat(fd).st_ino] = FileState(rel, 0, new=True)
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
        state = self._state(h.fd, path)
        self._save(state, h.fd, offset, offset + len(data))
        written: int = _call(lambda: os.pwrite(h.fd, data, offset))
        state.unsynced_bytes += written
        if h.sync_writes:
            self._synced(os.fstat(h.fd).st_ino, path)
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
        state = self._state(fd, path)
        size = os.fstat(fd).st_size
        self._save(state, fd, length, size)
        _call(lambda: os.ftruncate(fd, length))
        state.unsynced_bytes += abs(size - length)

    def fsync(self, path: str, datasync: int, fh: int) -> int:
        if fh == _CONTROL_FH:
            return 0
        self._after_the_cut()
        self._io("fsync", path)
        h = self._handle(fh)
        _call(lambda: os.fdatasync(h.fd) if datasync else os.fsync(h.fd))
        self._synced(os.fstat(h.fd).st_ino, path)
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
        for state in self.states.values():
            if _parent(state.path) == rel:
                state.new = False
        self.last_fsync[rel] = time.time()
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
        command, _, argument = data.strip().partition(b" ")
        if command == CUT_COMMAND and not argument:
            report = self.cut()
        elif command == CUT_KILL_COMMAND and not argument:
            report = self.cut_kill()
        elif command == IO_SET_COMMAND:
            self.io = _io_fault(argument)
            report = {"set_at_unix_s": self.io.set_at}
            log.info("I/O fault set: %s", argument.decode(errors="replace"))
        elif command == IO_CLEAR_COMMAND and not argument:
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
        """SIGKILL the one ``prometheus`` process in sight, then cut (see the module's docstring)."""
        found = [
            int(d.name)
            for d in Path("/proc").iterdir()
            if d.name.isdigit() and int(d.name) != os.getpid() and _comm(d) == KILLED_NAME
        ]
        if len(found) != 1:
            log.error("cut-kill: %d processes named %s in sight (%s)", len(found), KILLED_NAME, found)
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
        reverted: list[str] = []
        removed: list[str] = []
        dropped_bytes = 0
        for ino, state in self.states.items():
            try:
                st = os.stat(state.path, dir_fd=self.root, follow_symlinks=False)
            except FileNotFoundError:
                continue  # unlinked while open: nothing left to lose
            if st.st_ino != ino:
                continue
            dropped_bytes += state.unsynced_bytes
            if state.new:
                os.unlink(state.path, dir_fd=self.root)
                removed.append(state.path)
                continue
            fd = os.open(state.path, os.O_RDWR, dir_fd=self.root)
            try:
                os.ftruncate(fd, state.durable_size)
                for page, content in state.saved.items():
                    os.pwrite(fd, content, page * PAGE_BYTES)
                os.fsync(fd)
            finally:
                os.close(fd)
            reverted.append(state.path)
        self.states.clear()
        log.info("power cut: %d file(s) reverted, %d new file(s) removed, %d unsynced bytes dropped",
                 len(reverted), len(removed), dropped_bytes)  # fmt: skip
        return {
            "cut_at_unix_s": cut_at,
            "reverted": sorted(reverted),
            "removed": sorted(removed),
            "dropped_bytes": dropped_bytes,
            "last_fsync_unix_s": dict(sorted(self.last_fsync.items())),
        }


def _comm(proc_dir: Path) -> str:
    try:
        return (proc_dir / "comm").read_text().strip()
    except OSError:
        return ""  # gone meanwhile


def _parent(rel: str) -> str:
    return rel.rpartition("/")[0] or "."


def _under(rel: str, top: str) -> bool:
    return rel == top or rel.startswith(top + "/")


def _io_fault(argument: bytes) -> IoFault:
    """An ``io-set`` command's settings; EINVAL (the command's write fails) when they are not what the layer knows."""
    try:
        raw = json.loads(argument)
        methods = frozenset(str(m) for m in raw.get("methods") or [])
        code = raw.get("errno")
        fault = IoFault(
            methods=methods,
            percent=float(raw.get("percent", 100)),
            errno=None if code is None else int(code),
            delay_s=float(raw.get("delay_s", 0)),
            path=str(raw.get("path") or "").strip("/") or None,
        )
    except (ValueError, TypeError, AttributeError) as e:
        log.error("bad io-set command %r: %s", argument, e)
        raise mfusepy.FuseOSError(errno.EINVAL) from None
    if not methods <= IO_METHODS or not 0 <= fault.percent <= 100 or fault.delay_s < 0 or fault.errno == 0:
        log.error("bad io-set command %r: unknown method, or a value out of range", argument)
        raise mfusepy.FuseOSError(errno.EINVAL)
    return fault


def _call(op: Any) -> Any:
    """Run one operation on the directory underneath; its errno becomes the FUSE error the caller sees."""
    try:
        return op()
    except OSError as e:
        raise mfusepy.FuseOSError(e.errno or errno.EIO) from None


def _send(directory: Path, report: Path, command: str) -> int:
    report.unlink(missing_ok=True)
    try:
        fd = os.open(directory / CONTROL_NAME, os.O_WRONLY)
        try:
            os.write(fd, command.encode())
        finally:
            os.close(fd)
    except OSError as e:
        print(f"the fault layer over {directory} refused {command.split(maxsplit=1)[0]!r}: {e}", file=sys.stderr)
        return 1
    print(report.read_text())
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m harness.fault_fuse", description=__doc__.split("\n\n")[0])
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
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        root_fd = os.open(args.directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as e:
        print(f"cannot open {args.directory}: {e.strerror}", file=sys.stderr)
        return 2
    # Modes come from the callers, already masked by their umask.
    os.umask(0)
    log.info("fault layer over %s", args.directory)
    try:
        mfusepy.FUSE(
            FaultFuse(root_fd, args.report),
            args.directory,
            foreground=True,
            nothreads=True,  # one request at a time: a command cannot interleave with a write
            # As root the harness runs Prometheus as the scenario's uid, which must reach the mount too; the kernel
            # checks permissions against the attributes, as the filesystem underneath would.
            allow_other=os.geteuid() == 0,
            default_permissions=True,
            # No cached names or attributes: after a cut the next Prometheus must see what is left.
            attr_timeout=0,
            entry_timeout=0,
            negative_timeout=0,
            fsname=f"harness-faults:{args.directory}",
            subtype="harness-faults",
        )
    except RuntimeError as e:
        # fuse_main's exit status: also non-zero when SIGTERM or an unmount ended the loop, which is how we stop.
        log.info("FUSE loop ended (status %s)", e)
    return 0


if __name__ == "__main__":
    sys.exit(main())
