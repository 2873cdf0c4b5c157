"""The ``second_writer`` fault's writer, as its own process: ``python -m harness.loads.second_writer_child``.

The other application of the field notes (Grafana, uid 472) writing into the NFS export that holds Prometheus' data:
a process with an NFS client of its own (libnfs, NFSv3, AUTH_SYS ``--uid``/``--gid``), so the server judges its
requests as it would that application's and it shares no client cache with Prometheus' mount. It mounts nothing.
It creates its names once (exclusively: a name that exists is someone else's and is left alone), then writes a page
to each of its files every ``--interval``, until SIGTERM or ``--until``. The fault (``harness.faults.second_writer``)
starts it, on either runtime a process on the harness host, and reads its report lines from its output.

The channel: one line per event on standard output, ``TAG`` then JSON: ``intent`` (a name, *before* creating it:
the harness's undo removes only names announced), ``created`` (with ``kind``), ``exists``, ``refused`` (``op``,
``error``; once each), ``round`` (``writes``) and last ``summary`` (``writes``, ``failed_writes``). ``WriterArgs``
is its command line, built by the harness and read here; ``events`` reads the lines back.

It imports no fault, no runtime and no scenario model: nothing but the NFS client.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from types import FrameType

from harness.datapath import nfs_client
from harness.datapath.nfs_client import NfsClient, NfsError, NfsFile

MODULE = "harness.loads.second_writer_child"
TAG = "second-writer: "  # the writer's report lines in its output, JSON after the tag
WRITE_BYTES = 4096  # one sqlite page per write, as Grafana's grafana.db gets


@dataclass(frozen=True)
class WriterArgs:
    """The writer's command line: where it writes, as whom, what, and until when."""

    server: str
    export: str
    port: int
    mount_port: int | None
    uid: int
    gid: int
    interval_s: float
    until_unix_s: float  # it stops by itself then, if not told before
    mode: int | None  # chmod what it creates
    names: tuple[str, ...]  # absolute in the export; a trailing / makes a directory

    def argv(self, python: str) -> list[str]:
        argv = [python, "-m", MODULE, self.server, self.export, "--port", str(self.port)]
        argv += ["--uid", str(self.uid), "--gid", str(self.gid), "--interval", f"{self.interval_s:g}"]
        argv += ["--until", f"{self.until_unix_s:.3f}"]
        if self.mount_port is not None:
            argv += ["--mount-port", str(self.mount_port)]
        if self.mode is not None:
            argv += ["--mode", f"{self.mode:o}"]
        return [*argv, "--", *self.names]  # the names last

    @classmethod
    def parse(cls, argv: list[str] | None = None) -> WriterArgs:
        parser = argparse.ArgumentParser(prog=f"python -m {MODULE}", description="write into an NFS export as a uid")
        parser.add_argument("server")
        parser.add_argument("export")
        parser.add_argument("names", nargs="+", help="absolute paths in the export; a trailing / makes a directory")
        parser.add_argument("--port", type=int, default=2049)
        parser.add_argument("--mount-port", type=int, default=None)
        parser.add_argument("--uid", type=int, required=True)
        parser.add_argument("--gid", type=int, required=True)
        parser.add_argument("--interval", type=float, default=1.0)
        parser.add_argument("--until", type=float, required=True, help="Unix time to stop at, if not told before")
        parser.add_argument("--mode", default=None, help="chmod what it creates (octal)")
        args = parser.parse_args(argv)
        mode = None if args.mode is None else int(args.mode, 8)
        return cls(
            server=args.server,
            export=args.export,
            port=args.port,
            mount_port=args.mount_port,
            uid=args.uid,
            gid=args.gid,
            interval_s=args.interval,
            until_unix_s=args.until,
            mode=mode,
            names=tuple(args.names),
        )


def events(text: str) -> list[dict[str, object]]:
    """The writer's report lines in its output (``text``), in order; anything else is not the writer's."""
    out = []
    for line in text.splitlines():
        if line.startswith(TAG):
            with contextlib.suppress(ValueError):
                out.append(json.loads(line[len(TAG) :]))
    return out


def _say(event: str, **fields: object) -> None:
    print(TAG + json.dumps({"event": event, **fields}), flush=True)


@dataclass
class _Writer:
    """The other application: creates its names once, then writes a page to each of its files every round."""

    client: NfsClient
    names: dict[str, bool]  # path -> is a directory
    mode: int | None
    files: dict[str, tuple[NfsFile, int]] = field(default_factory=dict)  # open files it created, and their size
    done: set[str] = field(default_factory=set)  # created, or found existing (someone else's: left alone)
    said: set[str] = field(default_factory=set)  # refusals reported once each
    writes: int = 0
    failed: int = 0

    def refused(self, op: str, path: str, e: NfsError) -> None:
        if f"{op} {path} {e}" not in self.said:
            self.said.add(f"{op} {path} {e}")
            _say("refused", op=op, path=path, error=str(e))

    def create(self) -> None:
        for path, is_dir in self.names.items():
            if path in self.done:
                continue
            _say("intent", path=path)  # before creating: the harness's undo removes only what was announced
            try:
                if is_dir:
                    self.client.mkdir(path, 0o755 if self.mode is None else self.mode)
                else:
                    self.files[path] = (self.client.create(path, 0o644 if self.mode is None else self.mode), 0)
                    if self.mode is not None:  # exactly this mode, whatever the server did with the create's
                        self.client.chmod(path, self.mode)
                self.done.add(path)
                _say("created", path=path, kind="dir" if is_dir else "file")
            except NfsError as e:
                if e.errno == errno.EEXIST:
                    self.done.add(path)
                    _say("exists", path=path)
                else:
                    self.refused("mkdir" if is_dir else "create", path, e)

    def write(self) -> None:
        for path, (f, size) in list(self.files.items()):
            try:
                f.pwrite(os.urandom(WRITE_BYTES), size)
                f.fsync()
                self.files[path] = (f, size + WRITE_BYTES)
                self.writes += 1
            except NfsError as e:
                self.failed += 1
                self.refused("write", path, e)

    def close(self) -> None:
        for f, _size in self.files.values():
            with contextlib.suppress(NfsError):
                f.close()


def main(argv: list[str] | None = None) -> int:
    args = WriterArgs.parse(argv)
    stop: list[int] = []

    def on_term(signum: int, _frame: FrameType | None) -> None:
        stop.append(signum)

    signal.signal(signal.SIGTERM, on_term)
    with nfs_client.connect(
        args.server, args.export, port=args.port, version="3", uid=args.uid, gid=args.gid, mount_port=args.mount_port
    ) as client:
        writer = _Writer(client, {n.rstrip("/"): n.endswith("/") for n in args.names}, args.mode)
        try:
            # Bounded by --until even if nobody stops it (the harness also kills it when it dies itself).
            while not stop and time.time() < args.until_unix_s:
                writer.create()
                writer.write()
                _say("round", writes=writer.writes)
                deadline = time.monotonic() + args.interval_s
                while not stop and time.monotonic() < deadline:
                    time.sleep(0.05)
        finally:
            writer.close()
    _say("summary", writes=writer.writes, failed_writes=writer.failed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
