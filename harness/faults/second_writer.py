"""``second_writer`` (NFS): another application writes into the export that holds Prometheus' data, for a while.

The field notes' Grafana: its PV named the same NFS path as Prometheus', so Grafana (uid 472) wrote ``grafana.db``
and its directories next to Prometheus' blocks (uid 1000), and Grafana's chart chowned the volume to 472 at every
start (its ``init-chown-data`` container, root). The export then held "sometimes writable, sometimes not" files.

The model, and why:

* the writer is a **process of its own, running as ``uid``/``gid``**, with an **NFS client of its own** (libnfs,
  NFSv3, AUTH_SYS ``uid``/``gid``: ``python -m harness.faults.second_writer``), as Grafana's pod on another node has
  its own mount. The server judges its requests as it would Grafana's, and it shares no client cache with
  Prometheus' mount. Writing on the server side (into the exported directory as root) would skip exactly what makes
  the trap: the server's permission checks on uid 472's requests. It mounts nothing, so nothing can stay mounted;
* ``chown_data`` is the init container: the harness itself, as uid 0 through its own NFS client (root, as that
  container runs; with ``root_squash`` the server refuses it, which is said), changes the owner of every entry of
  Prometheus' data directory, recording each entry's owner *before* changing it;
* the undo step is recorded before anything starts: stop the writer, put back the owners recorded (only where they
  are still what the fault set), remove what the writer created. The writer announces each name *before* creating it
  (exclusively: a name that exists is someone else's and is left alone) and the undo removes only those names that
  exist and are owned by the writer's uid, so the harness deletes nothing it did not create.

The detail says what the writer wrote, as which uid, and whether Prometheus' own entries changed owner or mode in
the window (compared with a listing taken before it).
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import os
import signal
import stat
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import FrameType

from harness import nfs_client, proc
from harness.capabilities.export import ExportReach
from harness.errors import InfraError, WaitTimeout
from harness.faults.base import Acted, WindowInjector
from harness.mounts import first_untraversable
from harness.nfs_client import NfsClient, NfsError, NfsFile
from harness.runtime.base import Runtime
from harness.scenario.model import SecondWriterFault
from harness.storage.base import ExportAccess
from harness.undo import UndoLog, UndoStep
from harness.wait import wait_for

MODULE = "harness.faults.second_writer"
TAG = "second-writer: "  # the writer's report lines in its output, JSON after the tag
START_TIMEOUT_S = 30.0  # connect (the client's own timeout is 10 s) and the first round of creates
STOP_TIMEOUT_S = 15.0
SCAN_MAX_ENTRIES = 5000  # a short run's TSDB has tens of entries; enough for a day's blocks, bounded anyway
WRITE_BYTES = 4096  # one sqlite page per write, as Grafana's grafana.db gets


@dataclass
class Window:
    """One window of the fault: ``prepare`` (a listing, nothing changed), record ``lift`` as the undo, ``act``."""

    spec: SecondWriterFault
    access: ExportAccess
    names: list[str]  # absolute in the export: the entries the writer may create
    before: dict[str, tuple[int, int, int]]  # Prometheus' entries at the start: path -> (uid, gid, mode)
    log_path: Path  # the writer's output (its report lines), kept with the run's logs
    chowned: list[tuple[str, int, int]] = field(default_factory=list)  # (path, uid, gid before the init chown)
    chown_refused: str = ""
    daemon: proc.Daemon | None = None
    as_process: int = 0  # the uid the writer process ran as (see _runs_as)
    report: list[dict[str, object]] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)  # Prometheus' entries whose owner or mode changed
    restored: int = 0
    removed: list[str] = field(default_factory=list)

    @classmethod
    def prepare(cls, spec: SecondWriterFault, access: ExportAccess, log_path: Path) -> Window:
        base = access.data_path.rstrip("/")
        with _client(access, 0, 0) as root:
            before = _listing(root, access.data_path)
        return cls(spec, access, [f"{base}/{n.rstrip('/')}" for n in spec.creates], before, log_path)

    @property
    def where(self) -> str:
        return f"{self.access.export.rstrip('/')}{self.access.data_path}"

    def act(self) -> float:
        """The init chown (``chown_data``), then the writer process; when the window opened (Unix seconds)."""
        started = time.time()
        if self.spec.chown_data:
            _init_chown(self)
        self.daemon = _start_writer(self, self.log_path, deadline_unix_s=started + self.spec.for_s + 60.0)
        return started

    def lift(self) -> None:
        _lift(self)

    def summary(self) -> str:
        return _summary(self)


class SecondWriter(WindowInjector[SecondWriterFault]):
    action = "second_writer"
    needs = frozenset({ExportReach})

    def __init__(self) -> None:
        self._window: Window | None = None  # the window in progress (faults run one at a time)

    def act(self, spec: SecondWriterFault, runtime: Runtime, undo: UndoLog) -> Acted:
        """The window as every fault that lasts has it; the detail then says what the window did, known only once
        it was lifted (what the writer wrote, what changed owner)."""
        try:
            acted = super().act(spec, runtime, undo)
        finally:
            window, self._window = self._window, None
        if window is None:
            return acted
        lifted = acted.detail.rsplit("; lifted after ", 1)[-1]
        return replace(acted, detail=f"{window.summary()}; lifted after {lifted}")

    def begin(self, spec: SecondWriterFault, runtime: Runtime, undo: UndoLog) -> tuple[float, str, UndoStep]:
        n = len(list(runtime.logs_dir.glob("second-writer-*.log"))) + 1
        log_path = runtime.logs_dir / f"second-writer-{n}.log"
        window = self._window = Window.prepare(spec, runtime.capability(ExportReach).data_export(), log_path)
        step = undo.record(
            f"stop the second writer (uid {spec.uid}) and remove what it created in {window.where}", window.lift
        )
        started = window.act()
        return started, f"a second writer as uid {spec.uid} gid {spec.gid} writes into {window.where}", step


def _client(access: ExportAccess, uid: int, gid: int) -> contextlib.AbstractContextManager[NfsClient]:
    return nfs_client.connect_to(access, uid=uid, gid=gid)


def _walk(client: NfsClient, top: str) -> Iterator[str]:
    """``top`` and every entry below it, parents before children, bounded."""
    yield top
    frontier, seen = [top], 1
    while frontier and seen < SCAN_MAX_ENTRIES:
        directory = frontier.pop()
        with contextlib.suppress(NfsError):  # unreadable: nothing below it is listed
            for entry in client.listdir(directory):
                seen += 1
                yield entry.path
                if entry.stat.is_dir:
                    frontier.append(entry.path)


def _listing(client: NfsClient, top: str) -> dict[str, tuple[int, int, int]]:
    """Owner and mode of every entry under ``top``, from GETATTR (READDIR's mode is not complete on every server)."""
    found = {}
    for path in _walk(client, top):
        with contextlib.suppress(NfsError):  # gone meanwhile (Prometheus deletes and renames)
            st = client.stat(path)
            found[path] = (st.uid, st.gid, stat.S_IMODE(st.mode))
    return found


def _init_chown(window: Window) -> None:
    """``chown -R uid:gid`` of the data directory as root, as Grafana's init-chown-data container does; each entry's
    owner is recorded before it is changed, so the lift puts back exactly these."""
    spec = window.spec
    with _client(window.access, 0, 0) as root:
        for path in _walk(root, window.access.data_path):
            try:
                st = root.stat(path)
                window.chowned.append((path, st.uid, st.gid))
                root.chown(path, spec.uid, spec.gid)
            except NfsError as e:
                if e.errno == errno.ENOENT:
                    window.chowned.pop()
                    continue
                window.chown_refused = f"{e} (root is squashed?)" if e.permission_denied else str(e)
                return


def _start_writer(window: Window, log_path: Path, *, deadline_unix_s: float) -> proc.Daemon:
    spec, access = window.spec, window.access
    argv = [sys.executable, "-m", MODULE, access.server, access.export, "--port", str(access.port)]
    argv += ["--uid", str(spec.uid), "--gid", str(spec.gid), "--interval", f"{spec.interval_s:g}"]
    argv += ["--until", f"{deadline_unix_s:.3f}"]
    if access.mount_port is not None:
        argv += ["--mount-port", str(access.mount_port)]
    if spec.mode_bits is not None:
        argv += ["--mode", f"{spec.mode_bits:o}"]
    # The names last: a trailing / makes a directory.
    argv += ["--", *(n + "/" if c.endswith("/") else n for n, c in zip(window.names, spec.creates, strict=True))]
    window.as_process = _runs_as(spec.uid, spec.gid)
    as_uid = window.as_process == spec.uid
    # The log is opened here and inherited: the writer needs no access to the directory it is in.
    try:
        daemon = proc.start_daemon(
            "second writer",
            argv,
            log_path=log_path,
            cwd=Path("/"),
            user=spec.uid if as_uid else None,
            group=spec.gid if as_uid else None,
            extra_groups=[] if as_uid else None,
        )
    except OSError as e:
        raise InfraError(f"could not start the second writer ({sys.executable} as uid {window.as_process}): {e}") from e

    def first_round() -> bool:
        report = _report(daemon.log_text())
        if any(r.get("event") == "round" for r in report):
            return True
        if not daemon.alive():
            raise InfraError(f"the second writer exited at once: {daemon.log_text()[-800:]}")
        return False

    try:
        wait_for(first_round, what="the second writer's first round of writes", timeout_s=START_TIMEOUT_S)
    except WaitTimeout as e:
        daemon.stop(STOP_TIMEOUT_S)
        raise InfraError(f"{e}: {daemon.log_text()[-800:]}") from e
    return daemon


def _runs_as(uid: int, gid: int) -> int:
    """The uid the writer process runs as: ``uid`` where this harness (root) can switch to it and that uid can reach
    this Python and its packages; else the harness's own. The server sees ``uid``/``gid`` either way: AUTH_SYS
    carries them in every request, and the server trusts them as it trusts a pod's."""
    if os.geteuid() != 0:
        return os.geteuid()
    needed = [Path(sys.executable).resolve().parent, *(Path(p) for p in sys.path if p and Path(p).is_dir())]
    if any(first_untraversable(p, uid, {gid}) is not None for p in needed):
        return os.geteuid()
    return uid


def _report(text: str) -> list[dict[str, object]]:
    out = []
    for line in text.splitlines():
        if line.startswith(TAG):
            with contextlib.suppress(ValueError):
                out.append(json.loads(line[len(TAG) :]))
    return out


def _lift(window: Window) -> None:
    """Stop the writer, put back the owners the init chown changed, remove what the writer created. Every step runs;
    what could not be undone is raised at the end."""
    spec = window.spec
    if window.daemon is not None:
        window.daemon.signal(signal.SIGTERM)
        with contextlib.suppress(WaitTimeout):
            window.daemon.wait(STOP_TIMEOUT_S)
        window.daemon.stop(STOP_TIMEOUT_S)
        window.report = _report(window.daemon.log_text())
    announced = {str(r["path"]) for r in window.report if r.get("event") == "intent"}
    problems: list[str] = []
    with _client(window.access, 0, 0) as root:
        after = _listing(root, window.access.data_path)
        window.changed = [
            f"{_relative(p, window.access.data_path)} {_owner(b)} -> {_owner(after[p])}"
            for p, b in window.before.items()
            if p in after and after[p] != b and p not in window.names
        ]
        for path, uid, gid in reversed(window.chowned):
            with contextlib.suppress(NfsError):  # gone: Prometheus deleted it (a compacted block, a WAL segment)
                st = root.stat(path)
                if (st.uid, st.gid) == (spec.uid, spec.gid):  # still as the fault left it: put it back
                    root.chown(path, uid, gid)
                    window.restored += 1
        # The names the writer announced (even if it died before saying it made them) that exist and are its own.
        for path in sorted(set(window.names) & announced, reverse=True):
            try:
                st = root.stat(path)
            except NfsError:
                continue
            if st.uid != spec.uid:
                continue
            try:
                _remove(window.access, path, st.is_dir, spec.uid, spec.gid)
            except NfsError as e:
                problems.append(f"{path}: {e}")
                continue
            # Gone as the server sees it, not only as the call said.
            if root.exists(path):
                problems.append(f"{path}: still there after it was removed")
            else:
                window.removed.append(path)
    if problems:
        raise InfraError(f"could not remove what the second writer created: {'; '.join(problems)}")


def _remove(access: ExportAccess, path: str, is_dir: bool, uid: int, gid: int) -> None:
    """As the writer itself (its own files); as root if the writer may no longer (the directory changed)."""
    for who in ((uid, gid), (0, 0)):
        with _client(access, *who) as client:
            try:
                client.rmdir(path) if is_dir else client.unlink(path)
                return
            except NfsError as e:
                if not e.permission_denied or who == (0, 0):
                    raise


def _relative(path: str, top: str) -> str:
    """``path`` as Prometheus names it in its data directory (``top`` itself is ``.``)."""
    return "." if path.rstrip("/") == top.rstrip("/") else path.removeprefix(top.rstrip("/") + "/")


def _owner(entry: tuple[int, int, int]) -> str:
    uid, gid, mode = entry
    return f"{uid}:{gid} {mode:04o}"


def _name(event: dict[str, object]) -> str:
    return str(event["path"]).rsplit("/", 1)[-1]


def _summary(window: Window) -> str:
    spec, events = window.spec, window.report
    made = [
        str(r["path"]).rsplit("/", 1)[-1] + ("/" if r.get("kind") == "dir" else "")
        for r in events
        if r.get("event") == "created"
    ]
    final = next((r for r in reversed(events) if r.get("event") == "summary"), {})
    refused = [
        f"{r['op']} {str(r['path']).rsplit('/', 1)[-1]}: {r['error']}" for r in events if r.get("event") == "refused"
    ]
    foreign = [str(r["path"]).rsplit("/", 1)[-1] for r in events if r.get("event") == "exists"]
    parts = [
        f"a second writer (uid {spec.uid} gid {spec.gid}, its own NFSv3 client"
        + (
            ""
            if window.as_process == spec.uid
            else f"; its process ran as uid {window.as_process}, since uid {spec.uid} cannot reach "
            f"{Path(sys.executable).resolve()}, and sent {spec.uid}:{spec.gid} in every request"
        )
        + f") in Prometheus' data directory {window.where}: "
        + (f"created {', '.join(made)}" if made else "created nothing")
        + (f" (chmod {spec.mode})" if spec.mode is not None and made else "")
        + f", {final.get('writes', 0)} writes of {WRITE_BYTES} bytes to its files"
        + (f", {final.get('failed_writes', 0)} refused" if final.get("failed_writes") else "")
    ]
    if foreign:
        parts.append(f"left alone what already existed: {', '.join(foreign)}")
    if refused:
        parts.append(f"the server refused it: {'; '.join(refused[:3])}")
    if spec.chown_data:
        parts.append(
            f"init chown -R {spec.uid}:{spec.gid} as root: {len(window.chowned)} entries"
            + (f", then refused: {window.chown_refused}" if window.chown_refused else "")
            + f"; {window.restored} put back after the window"
        )
    if window.changed:
        parts.append(
            f"{len(window.changed)} of Prometheus' {len(window.before)} entries changed owner or mode in the window "
            f"({'; '.join(window.changed[:4])}{'; ...' if len(window.changed) > 4 else ''})"
        )
    else:
        parts.append(f"Prometheus' {len(window.before)} entries kept their owners and modes")
    parts.append(f"removed afterwards: {len(window.removed)} entries it created")
    return "; ".join(parts)


FAULT = SecondWriter()


# --- the writer process ------------------------------------------------------------------------------------------


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
    stop: list[int] = []

    def on_term(signum: int, _frame: FrameType | None) -> None:
        stop.append(signum)

    signal.signal(signal.SIGTERM, on_term)
    with nfs_client.connect(
        args.server, args.export, port=args.port, version="3", uid=args.uid, gid=args.gid, mount_port=args.mount_port
    ) as client:
        writer = _Writer(
            client,
            {n.rstrip("/"): n.endswith("/") for n in args.names},
            None if args.mode is None else int(args.mode, 8),
        )
        try:
            # Bounded by --until even if nobody stops it (the harness also kills it when it dies itself).
            while not stop and time.time() < args.until:
                writer.create()
                writer.write()
                _say("round", writes=writer.writes)
                deadline = time.monotonic() + args.interval
                while not stop and time.monotonic() < deadline:
                    time.sleep(0.05)
        finally:
            writer.close()
    _say("summary", writes=writer.writes, failed_writes=writer.failed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
