"""Who a run belongs to and whether it is still alive: what ``harness cleanup`` needs to remove a killed run's
leftovers, and only those.

Two kinds of marks:

* on this host, ``harness-run.json`` in the run's work directory (``RunMarker``: run id, owner, the harness's pid
  and its start time, scenario, the storage directories outside the work area) and an exclusive ``flock`` on that
  file, held for the run's whole life (``RunLock``). The kernel drops the lock when the process dies, however it
  dies, so "lock free" means "the run is gone" without trusting pids;
* in a cluster, the owner label and annotations on what the run creates (``RunOwner``; the manifests put them on).

The owner is the user config's ``owner`` (``harness.config``), by default ``<user>@<hostname>``.
"""

from __future__ import annotations

import contextlib
import fcntl
import getpass
import json
import os
import re
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError

MARKER_FILE = "harness-run.json"
WORKDIR_PREFIX = "prom-harness-"  # a run's work directory: prom-harness-<run_id>-<random>
RUN_ID_ENV = "HARNESS_RUN_ID"  # set on every process a run starts (harness.proc), so cleanup can find survivors

OWNER_LABEL = "harness/owner"
OWNER_ANNOTATION = "harness/owner"  # the owner as written (the label is sanitised)
HOST_ANNOTATION = "harness/host"
PID_ANNOTATION = "harness/pid"
PID_START_ANNOTATION = "harness/pid-start"

_RUN_ID = re.compile(r"[a-z0-9]([-a-z0-9]{0,38}[a-z0-9])?")


def valid_run_id(run_id: str) -> bool:
    """Run ids end up in label values, namespace names and paths: lower-case letters, digits and dashes."""
    return _RUN_ID.fullmatch(run_id) is not None


def default_owner() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry and no $USER: a uid is still a name
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"


def owner_label(owner: str) -> str:
    """``owner`` as a label value (63 characters of ``[A-Za-z0-9_.-]``, alphanumeric at both ends)."""
    value = re.sub(r"[^A-Za-z0-9_.-]+", "-", owner)[:63].strip("-_.")
    return value or "unknown"


def process_start(pid: int) -> int | None:
    """The start time of ``pid`` (clock ticks since boot, /proc/PID/stat field 22): with the pid, one process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


def process_alive(pid: int, start: int | None) -> bool:
    """The very process (not a later one given the same pid) still runs."""
    return start is not None and process_start(pid) == start


def process_state(pid: int) -> str:
    """The state letter of ``pid`` (/proc/PID/stat field 3: R, S, D, Z...), or "?" when it cannot be read."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except (OSError, IndexError):
        return "?"


@dataclass(frozen=True)
class RunOwner:
    """Who started a run, where, and as which process: labels and annotations on what it creates in a cluster."""

    owner: str
    host: str
    pid: int
    pid_start: int | None

    @classmethod
    def this_process(cls, owner: str) -> RunOwner:
        return cls(owner, socket.gethostname(), os.getpid(), process_start(os.getpid()))

    @property
    def label(self) -> str:
        return owner_label(self.owner)

    def annotations(self) -> dict[str, str]:
        notes = {OWNER_ANNOTATION: self.owner, HOST_ANNOTATION: self.host, PID_ANNOTATION: str(self.pid)}
        if self.pid_start is not None:
            notes[PID_START_ANNOTATION] = str(self.pid_start)
        return notes

    @classmethod
    def from_annotations(cls, annotations: dict[str, str]) -> RunOwner | None:
        try:
            pid = int(annotations[PID_ANNOTATION])
            start = annotations.get(PID_START_ANNOTATION)
            return cls(
                annotations.get(OWNER_ANNOTATION, ""),
                annotations[HOST_ANNOTATION],
                pid,
                int(start) if start is not None else None,
            )
        except (KeyError, ValueError):
            return None

    def alive_here(self) -> bool:
        """Started on this host, and that process still runs."""
        return self.host == socket.gethostname() and process_alive(self.pid, self.pid_start)


class RunMarker(BaseModel):
    """What ``harness-run.json`` says about the run that owns its directory."""

    model_config = ConfigDict(extra="ignore")  # a newer harness may say more

    run_id: str
    owner: str
    host: str
    pid: int
    pid_start: int | None = None
    started_at: str
    scenario_file: str = ""
    scenario_name: str = ""
    runtime: str = "local"
    workdir: str
    reports_dir: str = ""
    kube_context: str | None = None
    kubeconfig: str | None = None
    # Directories outside the work area in which provisioning names what it creates harness-<run_id>* (a local
    # PV's disk, a mount the user made): mounts there are undone, but the data is never removed.
    host_paths: list[str] = []
    state: Literal["running", "kept"] = "running"

    def brief(self) -> str:
        return (
            f"scenario {self.scenario_name or '?'}, {self.runtime} runtime, owner {self.owner}, started "
            f"{self.started_at} by pid {self.pid} on {self.host}"
        )


class RunLock:
    """The run's marker, flock'ed exclusively from creation to ``release``; the kernel releases it if we die."""

    def __init__(self, path: Path, fd: int, marker: RunMarker) -> None:
        self.path = path
        self.fd: int | None = fd
        self.marker = marker

    @classmethod
    def create(cls, workdir: Path, marker: RunMarker) -> RunLock:
        # Written and locked under a temporary name, then renamed (the lock stays with the file): no cleanup can
        # ever see a marker that is not locked yet.
        tmp = workdir / f".{MARKER_FILE}.{os.getpid()}"
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            _write(fd, marker)
            tmp.rename(workdir / MARKER_FILE)
        except BaseException:
            os.close(fd)
            tmp.unlink(missing_ok=True)
            raise
        return cls(workdir / MARKER_FILE, fd, marker)

    def update(self, **changes: object) -> None:
        """Rewrite the marker in place (same file, so the lock holds)."""
        if self.fd is None:
            return
        self.marker = self.marker.model_copy(update=changes)
        _write(self.fd, self.marker)

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def _write(fd: int, marker: RunMarker) -> None:
    data = (marker.model_dump_json(indent=2) + "\n").encode()
    os.lseek(fd, 0, os.SEEK_SET)
    os.truncate(fd, 0)
    os.write(fd, data)
    os.fsync(fd)


def new_marker(
    *,
    run_id: str,
    owner: str,
    workdir: Path,
    scenario_file: str,
    scenario_name: str,
    runtime: str,
    reports_dir: str,
    kube_context: str | None,
    kubeconfig: str | None,
    host_paths: list[str],
) -> RunMarker:
    me = RunOwner.this_process(owner)
    return RunMarker(
        run_id=run_id,
        owner=owner,
        host=me.host,
        pid=me.pid,
        pid_start=me.pid_start,
        started_at=datetime.now(UTC).isoformat(timespec="seconds"),
        scenario_file=scenario_file,
        scenario_name=scenario_name,
        runtime=runtime,
        workdir=str(workdir),
        reports_dir=reports_dir,
        kube_context=kube_context,
        kubeconfig=kubeconfig,
        host_paths=host_paths,
    )


# --- finding runs on this host ----------------------------------------------------------------------------------


@dataclass
class FoundRun:
    """A work directory with a marker. ``claim`` is our lock on it when the run is gone; None while it runs."""

    directory: Path
    marker: RunMarker | None  # None: unreadable (``problem`` says why)
    claim: int | None
    problem: str = ""

    @property
    def alive(self) -> bool:
        return self.claim is None

    def release(self) -> None:
        if self.claim is not None:
            os.close(self.claim)
            self.claim = None


def find_runs(root: Path, *, run_id: str | None = None, owner: str | None = None) -> list[FoundRun]:
    """The work directories under ``root`` that carry a marker (of ``run_id``, of ``owner``, when given), each
    with its lock taken if the run is gone.

    The caller releases each (``FoundRun.release``); holding the lock keeps a second cleanup off the same run.
    """
    found = []
    try:
        candidates = sorted(root.glob(f"{WORKDIR_PREFIX}*/{MARKER_FILE}"))
    except OSError:
        return []
    for path in candidates:
        marker, problem = _read_marker(path)
        if marker is not None and (
            (run_id is not None and marker.run_id != run_id) or (owner is not None and marker.owner != owner)
        ):
            continue  # not asked about: not even its lock is touched
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            continue  # removed meanwhile, or not ours to read
        if not _lock(fd, marker):
            os.close(fd)
            fd = -1
        else:
            marker, problem = _read_marker(path)  # as its run left it, now that nothing can change it
        found.append(FoundRun(path.parent, marker, None if fd < 0 else fd, problem))
    return found


# How long a lock whose run is gone may stay taken: another harness only glances at it (a run's look for leftovers
# takes and drops it at once), while a cleanup at work holds it longer and is then rightly left to finish.
GLANCE_S = 2.0


def _lock(fd: int, marker: RunMarker | None) -> bool:
    deadline = time.monotonic() + GLANCE_S
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            owner_alive = marker is None or process_alive(marker.pid, marker.pid_start)
            if owner_alive or time.monotonic() >= deadline:
                return False
            time.sleep(0.05)


def _read_marker(path: Path) -> tuple[RunMarker | None, str]:
    try:
        return RunMarker.model_validate(json.loads(path.read_text())), ""
    except (OSError, ValueError, ValidationError) as e:
        # A run that is writing its marker right now holds the lock: it is skipped as alive anyway.
        return None, f"unreadable marker {path}: {str(e).splitlines()[0]}"


@contextlib.contextmanager
def released(runs: list[FoundRun]) -> Iterator[None]:
    """Release every claim on leaving, whatever happened."""
    try:
        yield
    finally:
        for run in runs:
            run.release()
