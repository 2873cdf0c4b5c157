"""The fault layer's durability model: what of each file is not durable yet, and so what a power cut takes away.
Pure: it touches no file (the layer, ``harness.datapath.fault_fuse``, does the I/O and tells it what happened; it reads
through a function it is given), so it is tested without FUSE and without root. Standard library only.

Every operation goes through to the directory underneath at once, so a reader, a SIGKILL or a clean unmount see
exactly what a plain filesystem would; what the model adds is a record of what is not durable yet, so that a *power
cut* can take exactly that away. Per file (told apart by inode, so it follows renames and outlives an unlink of an
open file):

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
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

PAGE_BYTES = 4096  # unit in which overwritten durable content is kept, to put back at the cut

Reader = Callable[[int, int], bytes]  # (size, offset) -> the file's bytes there now, as os.pread reads them


@dataclass
class FileState:
    """What of one file is not durable yet."""

    path: str  # its name now, relative to the layer's root (follows renames)
    durable_size: int
    new: bool = False  # created through the layer; its name is not durable yet
    # Original content of the pages below ``durable_size`` overwritten (or cut off) since the last fsync.
    saved: dict[int, bytes] = field(default_factory=dict)
    unsynced_bytes: int = 0  # bytes written or truncated away since the last fsync (for the report)


@dataclass(frozen=True)
class Loss:
    """What a power cut takes from one file: all of it (``removed``: a new file never made durable), or what it got
    since its last fsync (put it back to ``durable_size`` bytes, then write each saved page at its offset)."""

    path: str
    removed: bool
    durable_size: int
    saved: dict[int, bytes]  # page number -> its durable content
    unsynced_bytes: int


def parent(rel: str) -> str:
    """The directory of a path relative to the layer's root ("." for the root itself)."""
    return rel.rpartition("/")[0] or "."


class Durability:
    """The model over one directory tree: per inode, what is not durable yet; per path, its last fsync."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.states: dict[int, FileState] = {}  # by inode
        self.last_fsync: dict[str, float] = {}  # path -> when it (a file or a directory) was last fsynced

    def state(self, ino: int, path: str, size: int) -> FileState:
        """The file's unsynced state; a file first changed now is durable as it is (``size`` bytes) before it."""
        state = self.states.get(ino)
        if state is None:
            state = self.states[ino] = FileState(path, size)
        return state

    def changing(self, ino: int, path: str, size: int, start: int, end: int, *, read: Reader) -> FileState:
        """Before [start, end) of the file (``size`` bytes now) is overwritten or cut off: its state, with the durable
        content of that range kept (the first time only) through ``read``."""
        state = self.state(ino, path, size)
        end = min(end, state.durable_size)
        if start < end:
            for page in range(start // PAGE_BYTES, (end - 1) // PAGE_BYTES + 1):
                if page not in state.saved:
                    offset = page * PAGE_BYTES
                    state.saved[page] = read(min(PAGE_BYTES, state.durable_size - offset), offset)
        return state

    def created(self, ino: int, path: str) -> None:
        """A file created through the layer: empty, its name not durable yet."""
        self.states[ino] = FileState(path, 0, new=True)

    def synced(self, ino: int, path: str) -> None:
        """An fsync of the file (or a write to a file opened O_SYNC/O_DSYNC): all of it is durable, its name too."""
        self.states.pop(ino, None)
        self.last_fsync[path] = self.clock()

    def dir_synced(self, path: str) -> None:
        """An fsync of a directory: the names in it are durable (not the data of their files)."""
        for state in self.states.values():
            if parent(state.path) == path:
                state.new = False
        self.last_fsync[path] = self.clock()

    def unlinked(self, ino: int, nlink: int) -> None:
        """A name of the file is gone (``nlink``: its links before): with its last one, nothing of it is left to lose
        (an open descriptor may still write; it is seen as a file first written then)."""
        if nlink <= 1:
            self.states.pop(ino, None)

    def renamed(self, src: str, dst: str, replaced: int | None) -> None:
        """``src`` is now ``dst`` (a file, or a directory with everything beneath it), durable at once; ``replaced``:
        the inode that was at ``dst``, gone with nothing left to lose."""
        if replaced is not None:
            self.states.pop(replaced, None)
        for state in self.states.values():
            if state.path == src:
                state.path = dst
            elif state.path.startswith(src + "/"):
                state.path = dst + state.path[len(src) :]

    def losses(self, inode_at: Callable[[str], int | None]) -> list[Loss]:
        """What a power cut takes away now, file by file. ``inode_at``: the inode at a path now (None: nothing
        there); a file no longer at its path was unlinked while open, with nothing left to lose."""
        found = []
        for ino, state in self.states.items():
            if inode_at(state.path) != ino:
                continue
            found.append(Loss(state.path, state.new, state.durable_size, state.saved, state.unsynced_bytes))
        return found

    def cut(self) -> None:
        """The cut has taken its losses: nothing is left that is not durable."""
        self.states.clear()
