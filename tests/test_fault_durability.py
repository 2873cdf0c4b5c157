"""The fault layer's durability model (``harness.datapath.fault_durability``) on its own: no FUSE, no root, no file.
A small
in-memory disk stands in for the directory underneath and drives the model the way ``harness.datapath.fault_fuse`` does
(tell it before a change, apply the change, apply a cut's losses), so each test says what survives a power cut.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import count

from harness.datapath.fault_durability import PAGE_BYTES, Durability, Loss, Reader, parent


@dataclass
class Disk:
    """Files by path (inode, content) with the model watching, as the layer keeps it."""

    now: list[float] = field(default_factory=lambda: [1000.0])
    files: dict[str, tuple[int, bytearray]] = field(default_factory=dict)
    inodes: count[int] = field(default_factory=lambda: count(1))
    model: Durability = field(init=False)

    def __post_init__(self) -> None:
        self.model = Durability(clock=lambda: self.now[0])

    def existing(self, path: str, content: bytes) -> None:
        """A file that was there before the layer (durable as it is)."""
        self.files[path] = (next(self.inodes), bytearray(content))

    def create(self, path: str) -> None:
        ino = next(self.inodes)
        self.files[path] = (ino, bytearray())
        self.model.created(ino, path)

    def new(self, path: str, data: bytes) -> None:
        """A file created and written (not synced)."""
        self.create(path)
        self.write(path, 0, data)

    def write(self, path: str, offset: int, data: bytes, *, sync: bool = False) -> None:
        ino, content = self.files[path]
        state = self.model.changing(ino, path, len(content), offset, offset + len(data), read=self._reader(content))
        content[len(content) : offset] = bytes(max(0, offset - len(content)))
        content[offset : offset + len(data)] = data
        state.unsynced_bytes += len(data)
        if sync:  # opened O_SYNC/O_DSYNC
            self.model.synced(ino, path)

    def truncate(self, path: str, length: int) -> None:
        ino, content = self.files[path]
        size = len(content)
        state = self.model.changing(ino, path, size, length, size, read=self._reader(content))
        _resize(content, length)
        state.unsynced_bytes += abs(size - length)

    def fsync(self, path: str) -> None:
        self.model.synced(self.files[path][0], path)

    def fsyncdir(self, path: str) -> None:
        self.model.dir_synced(path)

    def rename(self, src: str, dst: str) -> None:
        """A file, or a directory with everything beneath it."""
        replaced = self.files[dst][0] if dst in self.files else None
        for path in [p for p in self.files if p == src or p.startswith(src + "/")]:
            self.files[dst + path[len(src) :]] = self.files.pop(path)
        self.model.renamed(src, dst, replaced)

    def unlink(self, path: str) -> tuple[int, bytearray]:
        ino, content = self.files.pop(path)
        self.model.unlinked(ino, 1)
        return ino, content

    def cut(self) -> list[Loss]:
        """The power cut, as the layer applies it."""
        losses = self.model.losses(lambda p: self.files[p][0] if p in self.files else None)
        for loss in losses:
            if loss.removed:
                del self.files[loss.path]
                continue
            content = self.files[loss.path][1]
            _resize(content, loss.durable_size)
            for page, saved in loss.saved.items():
                content[page * PAGE_BYTES : page * PAGE_BYTES + len(saved)] = saved
        self.model.cut()
        return losses

    def content(self, path: str) -> bytes:
        return bytes(self.files[path][1])

    @staticmethod
    def _reader(content: bytearray) -> Reader:
        return lambda size, offset: bytes(content[offset : offset + size])


def _nothing_lost(disk: Disk, path: str, content: bytes) -> None:
    """A cut now takes nothing: ``path`` keeps ``content``."""
    assert disk.cut() == []
    assert disk.content(path) == content


def _resize(content: bytearray, length: int) -> None:
    del content[length:]
    content.extend(bytes(length - len(content)))


def test_a_cut_drops_what_was_written_since_the_last_fsync() -> None:
    disk = Disk()
    disk.new("wal/00000001", b"synced;")
    disk.fsync("wal/00000001")
    disk.write("wal/00000001", 7, b"acknowledged but never synced")
    assert disk.content("wal/00000001") == b"synced;acknowledged but never synced"  # everything goes through at once

    losses = disk.cut()

    assert disk.content("wal/00000001") == b"synced;"
    assert [(x.path, x.removed, x.unsynced_bytes) for x in losses] == [("wal/00000001", False, 29)]
    assert disk.cut() == []  # nothing left to lose


def test_overwritten_and_truncated_durable_content_comes_back() -> None:
    original = bytes(range(256)) * (3 * PAGE_BYTES // 256) + b"tail"  # three pages and a bit
    disk = Disk()
    disk.existing("index", original)
    disk.write("index", PAGE_BYTES + 10, b"X" * 20)  # inside the second page
    disk.write("index", PAGE_BYTES + 12, b"Y")  # the same page again: its durable content is kept once
    disk.truncate("index", 100)  # cuts off most of the first page and all the rest
    disk.write("index", 100, b"new tail")
    assert disk.content("index") == original[:100] + b"new tail"

    disk.cut()

    assert disk.content("index") == original


def test_a_truncate_to_nothing_then_a_rewrite_is_undone() -> None:
    disk = Disk()
    disk.existing("meta.json", b'{"version": 1}')
    disk.truncate("meta.json", 0)  # O_TRUNC
    disk.write("meta.json", 0, b'{"version": 2, "longer": true}')
    disk.cut()
    assert disk.content("meta.json") == b'{"version": 1}'


def test_what_an_fsync_made_durable_stays_and_is_recorded_with_its_time() -> None:
    disk = Disk()
    disk.existing("chunks/000001", b"old")
    disk.write("chunks/000001", 3, b"+more")
    disk.now[0] = 1234.5
    disk.fsync("chunks/000001")
    _nothing_lost(disk, "chunks/000001", b"old+more")
    assert disk.model.last_fsync == {"chunks/000001": 1234.5}


def test_every_write_of_a_synchronous_file_is_durable() -> None:
    disk = Disk()
    disk.create("lock")
    disk.write("lock", 0, b"pid 42", sync=True)
    _nothing_lost(disk, "lock", b"pid 42")


def test_a_new_file_never_synced_is_gone_and_its_directory_fsync_keeps_only_its_name() -> None:
    disk = Disk()
    disk.new("wal/00000002", b"lost")
    disk.new("wal/00000003", b"data not synced")
    disk.fsyncdir("wal")  # both names durable now, their data not
    disk.new("wal/00000004", b"gone")  # created after the directory's fsync
    disk.create("other/file")
    disk.fsyncdir("other-dir")  # another directory's fsync does nothing for it

    losses = disk.cut()

    assert sorted(disk.files) == ["wal/00000002", "wal/00000003"]
    assert disk.content("wal/00000002") == disk.content("wal/00000003") == b""
    assert [x.path for x in losses if x.removed] == ["wal/00000004", "other/file"]
    assert sum(x.unsynced_bytes for x in losses) == len(b"lost" + b"data not synced" + b"gone")


def test_a_file_fsync_makes_its_name_durable_too() -> None:
    disk = Disk()
    disk.new("a", b"kept")
    disk.fsync("a")
    disk.new("b", b"lost")
    assert [(x.path, x.removed) for x in disk.cut()] == [("b", True)]
    assert disk.files.keys() == {"a"}
    assert disk.content("a") == b"kept"


def test_a_renamed_file_keeps_its_unsynced_state_under_its_new_name() -> None:
    disk = Disk()
    disk.new("wal/checkpoint.tmp/00000001", b"never synced")
    disk.existing("head", b"durable")
    disk.write("head", 7, b" + not")
    disk.rename("wal/checkpoint.tmp", "wal/checkpoint.000001")  # a directory: everything beneath follows
    disk.rename("head", "head.old")

    assert [(x.path, x.removed) for x in disk.cut()] == [("wal/checkpoint.000001/00000001", True), ("head.old", False)]
    assert disk.content("head.old") == b"durable"


def test_a_file_renamed_over_takes_the_replaced_file_s_losses_with_it() -> None:
    disk = Disk()
    disk.existing("target", b"old")
    disk.write("target", 0, b"unsynced change of a file about to be replaced")
    disk.new("target.tmp", b"new")
    disk.fsync("target.tmp")
    disk.rename("target.tmp", "target")  # the usual atomic replace
    _nothing_lost(disk, "target", b"new")


def test_an_unlinked_file_has_nothing_left_to_lose() -> None:
    disk = Disk()
    disk.new("tmp", b"scratch")
    disk.unlink("tmp")
    disk.existing("tmp", b"another file by the same name")  # a different inode: not the one the model knew
    _nothing_lost(disk, "tmp", b"another file by the same name")


def test_losses_skip_a_file_whose_path_now_holds_another_inode() -> None:
    model = Durability(clock=lambda: 0.0)
    model.created(7, "x")
    model.state(8, "y", 10).unsynced_bytes = 3
    assert model.losses({"x": 99, "y": 8}.get) == [Loss("y", False, 10, {}, 3)]


def test_a_file_s_state_is_made_once_durable_as_it_was() -> None:
    model = Durability()
    first = model.state(5, "f", 100)
    assert model.state(5, "f", 300) is first  # grown since: still durable at its size when first seen
    assert first.durable_size == 100


def test_parent() -> None:
    assert parent("wal/00000001") == "wal"
    assert parent("a/b/c") == "a/b"
    assert parent("top") == "."
