"""What a killed run left on this host, found from its work directory's marker, and how to remove exactly that.

A run's daemons die with it (PR_SET_PDEATHSIG, ``harness.proc``), but its work directory stays, and with it the
mounts it made there (a dead FUSE NFS client's mount, the iSCSI user-space path's loop-backed mount, a loop-mounted
image), the loop devices on files there, and any process that did outlive it. Belonging to the run means:

* a mount point or a loop device's backing file inside its work directory, or, in a directory the marker lists as
  the storage's (``host_paths``: a local PV's disk, a mount the user made), named ``harness-<run_id>…`` by it;
* a process with ``HARNESS_RUN_ID=<run_id>`` in its environment, its working directory in the work directory, or
  an argument naming a path in it; never this process or one of its ancestors.

Removed in that order: the run's embedded server when it outlived the run on purpose (it served a cluster's PV:
``harness.datapath.kept_server``), only once the run's cluster objects are gone and its clients disconnected;
processes (SIGTERM, then SIGKILL, each wait bounded), mounts (deepest first; lazily when busy), loop devices, then
the work directory, only once nothing is mounted in it and the server is stopped. In ``host_paths`` only the
mounts go (and the empty directories they were mounted on), and a ``disk_full`` fill file the run left in its
volume there (``.harness-fill-<run_id>``, no data, and the disk stays full while it is there): data there is never
removed, only listed.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from harness import proc
from harness.cleanup import Leftover, RunLeftovers
from harness.datapath import kept_server
from harness.datapath.fill import fill_name, free
from harness.datapath.mounts import MountEntry, is_mount_point, mount_table
from harness.errors import InfraError, WaitTimeout
from harness.ownership import RUN_ID_ENV, FoundRun, RunMarker, process_alive, process_start, process_state
from harness.wait import terminate

TERM_WAIT_S = 5.0  # a process that ignores SIGTERM this long gets SIGKILL
KILL_WAIT_S = 5.0  # longer after SIGKILL: uncatchable sleep (state D), which no signal ends
UMOUNT_TIMEOUT_S = 30.0
# How long the nodes' clients of a kept server get, once the run's cluster objects are gone, to let go of it: the
# kubelet unmounts and logs out within seconds of the pod's deletion.
CLIENTS_TIMEOUT_S = 120.0

# What still holds a kept server's volume in the cluster, in words ("" when nothing does); None: the cluster was not
# looked at.
ClusterRemains = Callable[[], str] | None


def run_leftovers(run: FoundRun, cluster_remains: ClusterRemains = None) -> RunLeftovers:
    """What ``run`` (a marker whose lock we hold, or a live run's) left, in removal order. ``cluster_remains``: what
    of the run is still in the cluster, asked before its kept server is stopped (None: the cluster was not looked
    at, and such a server stays)."""
    marker = run.marker
    if marker is None:
        return RunLeftovers("?", f"in {run.directory}", refused=run.problem or "no readable marker")
    found = RunLeftovers(marker.run_id, "on this host", about=marker.brief())
    if run.alive:
        found.refused = (
            f"it is running: its lock on {run.directory / 'harness-run.json'} is held (harness pid {marker.pid} "
            f"on {marker.host}, or another cleanup at work)"
        )
        return found
    if marker.state == "kept":
        found.refused = f"it finished with --keep-data: {run.directory} is kept on purpose (remove it yourself)"
        return found
    workdir = run.directory
    try:
        server = kept_server.read(kept_server.record_path(workdir))
    except InfraError as e:  # its server may run: it stays, and so does the directory it would serve from
        server = None
        found.items.append(Leftover("the run's embedded server", None, str(e)))
    if server is not None:
        found.items.append(_server_item(server, marker, cluster_remains))
    found.items += [
        _process_item(p)
        for p in processes(marker.run_id, workdir)
        if server is None or p.pid != server.pid or p.start != server.start
    ]
    mounts = _mounts(marker, workdir)
    found.items += [_mount_item(m, inside=_under(m.mount_point, workdir)) for m in mounts]
    found.items += [_loop_item(device, backing) for device, backing in loop_devices(marker, workdir)]
    found.items.append(Leftover(f"work directory {workdir}", lambda: _remove_workdir(workdir)))
    mount_points = {m.mount_point for m in mounts}
    for root in marker.host_paths:
        for path in _named_for_run(Path(root), marker.run_id):
            if path not in mount_points:
                found.items += _fill_items(path, marker.run_id)
                found.items.append(
                    Leftover(str(path), None, "storage data outside the work area: cleanup never removes data")
                )
    return found


def still_held(marker: RunMarker, workdir: Path) -> list[str]:
    """What of the run is still mounted or attached (mounts, loop devices): while anything is, its work directory
    and marker must stay, or ``harness cleanup`` could no longer find it (a run's own removal uses this)."""
    held = [f"mount {m.mount_point} ({m.fstype} from {m.source})" for m in _mounts(marker, workdir)]
    held += [f"loop device {device} (on {backing})" for device, backing in loop_devices(marker, workdir)]
    server = _serving(workdir)
    if server is not None:
        held.append(f"its embedded server {server}, still running")
    return held


def _serving(workdir: Path) -> str | None:
    """The run's kept server, in words, if it still runs (one whose record cannot be read may: it counts)."""
    try:
        record = kept_server.read(kept_server.record_path(workdir))
    except InfraError:
        return f"named in {kept_server.record_path(workdir)} (unreadable)"
    return record.describe() if record is not None and record.alive() else None


# --- the run's embedded server, kept past the run for a cluster's nodes --------------------------------------------


def _server_item(server: kept_server.ServerRecord, marker: RunMarker, remains: ClusterRemains) -> Leftover:
    what = f"the run's embedded server {server.describe()}"
    if not server.alive():
        return Leftover(what, lambda: kept_server.stop(server))
    if remains is None:
        context = marker.kube_context or "?"
        return Leftover(
            what,
            None,
            f"it serves the run's PV to the nodes of kube context {context}, which was not looked at: pass --context "
            f"{context}, so the run's objects go first and the nodes unmount, then the server",
        )

    def remove() -> str:
        left = remains()
        if left:
            raise InfraError(
                f"kept running: the run's {left} still in the cluster, and a node may have its volume mounted from it"
            )
        connected = kept_server.clients(server)
        waited = 0.0
        if connected:
            print(
                f"  waiting up to {CLIENTS_TIMEOUT_S:g} s for the nodes to unmount and log out of {server.describe()}"
                f" (connected: {', '.join(connected)})",
                file=sys.stderr,
                flush=True,
            )
            try:
                waited = kept_server.await_no_clients(server, CLIENTS_TIMEOUT_S)
            except WaitTimeout as e:
                raise InfraError(
                    f"kept running: {e}; a node still uses its volume. `harness cleanup --run {marker.run_id}` again "
                    "stops it once the node has let go"
                ) from e
        left = (
            f"the nodes' {len(connected)} connection(s) to it closed {waited:.1f} s after they were gone"
            if connected
            else "no node was connected to it any more"
        )
        return f"after the run's cluster objects; {left}; {kept_server.stop(server)}"

    return Leftover(what, remove)


def _fill_items(volume_root: Path, run_id: str) -> list[Leftover]:
    """A disk_full fill the run did not live to delete: no data, and the disk stays full until it goes."""
    path = volume_root / fill_name(run_id)
    try:
        size = path.stat().st_blocks * 512
    except OSError:
        return []

    def remove() -> str:
        return "" if free(path) else "was gone already"

    return [Leftover(f"disk_full fill file {path} ({size:,} bytes: the disk is full until it goes)", remove)]


# --- processes -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Process:
    pid: int
    start: int | None
    command: str
    why: str


def processes(run_id: str, workdir: Path) -> list[Process]:
    """Processes that belong to the run, by its id in their environment, their cwd or their arguments."""
    protected = _self_and_ancestors()
    marker_env = f"{RUN_ID_ENV}={run_id}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in protected or entry.name == "1":
            continue
        pid = int(entry.name)
        why = _belongs(entry, marker_env, workdir)
        if why is None:
            continue
        start = process_start(pid)
        if start is None or process_state(pid) == "Z":  # gone meanwhile, or dead and waiting for its parent
            continue
        found.append(Process(pid, start, _command(entry), why))
    return found


def _belongs(entry: Path, marker_env: bytes, workdir: Path) -> str | None:
    try:
        if marker_env in (entry / "environ").read_bytes().split(b"\0"):
            return marker_env.decode()
    except OSError:  # another user's process, or gone
        pass
    try:
        if _under((entry / "cwd").readlink(), workdir):
            return "its working directory is in the work directory"
    except OSError:
        pass
    try:
        args = (entry / "cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    prefix = str(workdir)
    for arg in (a.decode(errors="replace") for a in args):
        at = arg.find(prefix)
        if at >= 0 and arg[at + len(prefix) : at + len(prefix) + 1] in ("", "/"):
            return "an argument names the work directory"
    return None


def _self_and_ancestors() -> set[int]:
    pids, pid = set(), os.getpid()
    while pid > 1 and pid not in pids:
        pids.add(pid)
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[1])
        except (OSError, ValueError, IndexError):
            break
    return pids


def _command(entry: Path) -> str:
    try:
        args = [a.decode(errors="replace") for a in (entry / "cmdline").read_bytes().split(b"\0") if a]
    except OSError:
        return "?"
    text = " ".join(args)
    return text if len(text) <= 100 else text[:97] + "..."


def _process_item(p: Process) -> Leftover:
    return Leftover(f"process {p.pid} ({p.command}; {p.why})", lambda: _terminate(p))


def _terminate(p: Process) -> str:
    def gone() -> bool:
        return not process_alive(p.pid, p.start) or process_state(p.pid) == "Z"

    how = terminate(p.pid, gone, f"process {p.pid}", term_wait_s=TERM_WAIT_S, kill_wait_s=KILL_WAIT_S)
    return "had exited" if how == "exited" else how


# --- mounts and loop devices -----------------------------------------------------------------------------------


def _mounts(marker: RunMarker, workdir: Path) -> list[MountEntry]:
    seen: dict[Path, MountEntry] = {}
    for entry in mount_table():
        if _belongs_by_path(entry.mount_point, marker, workdir):
            seen.setdefault(entry.mount_point, entry)
    # Deepest first: a mount inside another is undone before the one holding it.
    return sorted(seen.values(), key=lambda e: len(e.mount_point.parts), reverse=True)


def _mount_item(entry: MountEntry, *, inside: bool) -> Leftover:
    what = f"mount {entry.mount_point} ({entry.fstype} from {entry.source})"

    def remove() -> str:
        how = _unmount(entry)
        # A mount point outside the work area was made by the run for this mount: empty now, it goes too.
        if not inside and entry.mount_point.is_dir() and not is_mount_point(entry.mount_point):
            try:
                entry.mount_point.rmdir()
            except OSError as e:
                how += f"; its empty directory stays: {e.strerror}"
        return how

    return Leftover(what, remove)


def _unmount(entry: MountEntry) -> str:
    """umount; if that fails (busy, a dead FUSE server), a lazy umount, which detaches it at once."""
    mp = str(entry.mount_point)
    if not is_mount_point(entry.mount_point):
        return "was unmounted already"
    fuse_as_user = entry.fstype.startswith("fuse") and os.geteuid() != 0
    plain = ["fusermount3", "-u", mp] if fuse_as_user else ["umount", mp]
    lazy = ["fusermount3", "-u", "-z", mp] if fuse_as_user else ["umount", "-l", mp]
    first = proc.run(plain, timeout_s=UMOUNT_TIMEOUT_S, check=False)
    if first.returncode == 0:
        return ""
    said = " ".join((first.stderr or first.stdout).split()) or f"exit {first.returncode}"
    second = proc.run(lazy, timeout_s=UMOUNT_TIMEOUT_S, check=False)
    if second.returncode != 0:
        again = " ".join((second.stderr or second.stdout).split()) or f"exit {second.returncode}"
        raise InfraError(f"{' '.join(plain)}: {said}; {' '.join(lazy)}: {again}")
    return f"lazily: {said}"


def loop_devices(marker: RunMarker, workdir: Path) -> list[tuple[str, Path]]:
    """Loop devices whose backing file belongs to the run (from /sys/block/loopN/loop/backing_file)."""
    found = []
    for dev in sorted(Path("/sys/block").glob("loop*")):
        try:
            backing = (dev / "loop" / "backing_file").read_text().strip()
        except OSError:  # not attached
            continue
        path = Path(backing.removesuffix(" (deleted)"))
        if _belongs_by_path(path, marker, workdir):
            found.append((f"/dev/{dev.name}", path))
    return found


def _loop_item(device: str, backing: Path) -> Leftover:
    def detach() -> str:
        proc.run(["losetup", "-d", device], timeout_s=30)
        return ""

    return Leftover(f"loop device {device} (on {backing})", detach)


# --- the work directory ------------------------------------------------------------------------------------------


def _remove_workdir(workdir: Path) -> str:
    if not workdir.exists():
        return "was gone already"
    # The kept server serves its export or LUN from here.
    server = _serving(workdir)
    if server is not None:
        raise InfraError(f"not removed: the run's embedded server {server} still serves from it")
    # Never remove through a mount: whatever is still mounted in there (an NFS export!) is someone's data.
    still = [str(e.mount_point) for e in mount_table() if _under(e.mount_point, workdir)]
    if still:
        raise InfraError(f"not removed: still mounted in it: {', '.join(still)}")
    problems: list[str] = []

    def note(path: str, error: BaseException) -> None:
        problems.append(f"{path}: {error}")

    if sys.version_info >= (3, 12):
        shutil.rmtree(workdir, onexc=lambda _f, path, exc: note(path, exc))
    else:
        shutil.rmtree(workdir, onerror=lambda _f, path, info: note(path, info[1]))
    if problems:
        raise InfraError(f"{len(problems)} entr(y/ies) could not be removed, e.g. {problems[0]}")
    return ""


# --- belonging by path -------------------------------------------------------------------------------------------


def _under(path: Path, directory: Path) -> bool:
    return path == directory or directory in path.parents


def _belongs_by_path(path: Path, marker: RunMarker, workdir: Path) -> bool:
    if _under(path, workdir):
        return True
    for root in marker.host_paths:
        named = _first_component(path, Path(root))
        if named is not None and _named_for(named, marker.run_id):
            return True
    return False


def _first_component(path: Path, root: Path) -> str | None:
    try:
        return path.relative_to(root).parts[0]
    except (ValueError, IndexError):
        return None


def _named_for(name: str, run_id: str) -> bool:
    """``harness-<run_id>``, ``harness-<run_id>-mnt``, ``harness-<run_id>.img``: not ``harness-<run_id>x``."""
    stem = f"harness-{run_id}"
    return name == stem or name.startswith((f"{stem}-", f"{stem}."))


def _named_for_run(root: Path, run_id: str) -> list[Path]:
    try:
        return sorted(p for p in root.iterdir() if _named_for(p.name, run_id))
    except OSError:
        return []
