"""One window of the ``second_writer`` fault (no fault of its own): the listing before it, the init chown, the writer
process (``harness.loads.second_writer_child``) and the lift that undoes them, as the harness's own NFS client (root)
sees the export. Its state is the ``Window`` object the fault's injector holds for that one window."""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import stat
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from harness import proc
from harness.datapath import nfs_client
from harness.datapath.mounts import first_untraversable
from harness.datapath.nfs_client import NfsClient, NfsError
from harness.errors import InfraError, WaitTimeout
from harness.faults.second_writer_summary import Outcome, describe
from harness.loads.second_writer_child import WRITE_BYTES, WriterArgs, events
from harness.scenario.model import SecondWriterFault
from harness.storage.base import ExportAccess
from harness.wait import wait_for

START_TIMEOUT_S = 30.0  # connect (the client's own timeout is 10 s) and the first round of creates
STOP_TIMEOUT_S = 15.0
SCAN_MAX_ENTRIES = 5000  # a short run's TSDB has tens of entries; enough for a day's blocks, bounded anyway


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
        self.daemon = _start_writer(self, deadline_unix_s=started + self.spec.for_s + 60.0)
        return started

    def lift(self) -> None:
        _lift(self)

    def summary(self) -> str:
        spec = self.spec
        return describe(
            Outcome(
                uid=spec.uid,
                gid=spec.gid,
                mode=spec.mode,
                chown_data=spec.chown_data,
                where=self.where,
                as_process=self.as_process,
                python=str(Path(sys.executable).resolve()),
                events=tuple(self.report),
                write_bytes=WRITE_BYTES,
                before=len(self.before),
                changed=tuple(self.changed),
                chowned=len(self.chowned),
                chown_refused=self.chown_refused,
                restored=self.restored,
                removed=len(self.removed),
            )
        )


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


def _start_writer(window: Window, *, deadline_unix_s: float) -> proc.Daemon:
    spec, access = window.spec, window.access
    args = WriterArgs(
        server=access.server,
        export=access.export,
        port=access.port,
        mount_port=access.mount_port,
        uid=spec.uid,
        gid=spec.gid,
        interval_s=spec.interval_s,
        until_unix_s=deadline_unix_s,
        mode=spec.mode_bits,
        # A trailing / makes a directory.
        names=tuple(n + "/" if c.endswith("/") else n for n, c in zip(window.names, spec.creates, strict=True)),
    )
    window.as_process = _runs_as(spec.uid, spec.gid)
    as_uid = window.as_process == spec.uid
    # The log is opened here and inherited: the writer needs no access to the directory it is in.
    try:
        daemon = proc.start_daemon(
            "second writer",
            args.argv(sys.executable),
            log_path=window.log_path,
            cwd=Path("/"),
            user=spec.uid if as_uid else None,
            group=spec.gid if as_uid else None,
            extra_groups=[] if as_uid else None,
        )
    except OSError as e:
        raise InfraError(f"could not start the second writer ({sys.executable} as uid {window.as_process}): {e}") from e

    def first_round() -> bool:
        if any(r.get("event") == "round" for r in events(daemon.log_text())):
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


def _lift(window: Window) -> None:
    """Stop the writer, put back the owners the init chown changed, remove what the writer created. Every step runs;
    what could not be undone is raised at the end."""
    spec = window.spec
    if window.daemon is not None:
        window.daemon.signal(signal.SIGTERM)
        with contextlib.suppress(WaitTimeout):
            window.daemon.wait(STOP_TIMEOUT_S)
        window.daemon.stop(STOP_TIMEOUT_S)
        window.report = events(window.daemon.log_text())
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
