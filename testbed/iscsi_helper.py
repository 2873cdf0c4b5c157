"""iSCSI volumes for the local cluster's kubelets, on a machine whose kernel has no iSCSI initiator.

The kubelet's in-tree ``iscsi`` plugin logs in with ``iscsiadm``, reads the session from sysfs
(``/sys/class/iscsi_host/hostN/device/sessionS/...``), writes ``/sys/class/scsi_host/hostN/scan`` and waits for
``/dev/disk/by-path/ip-<portal>-iscsi-<iqn>-lun-<n>``; then it formats (``mkfs.<fsType>`` on a blank disk, never on
one with a partition table) and mounts that device with its own code. Here:

- ``iscsiadm`` first on the kubelet's PATH is ``iscsiadm_shim.py``: a login attaches the target's LUNs with
  qemu-storage-daemon (libiscsi, FUSE export) and a loop device and makes the sysfs entries and by-path links a
  kernel initiator and udev would; ``--logout`` undoes it;
- each kubelet runs in a mount namespace of its own (``iscsi_launch.py``) where those sysfs and ``/dev/disk`` paths
  are bound from the node's ``iscsi/`` directory, so the host's ``/sys`` and ``/dev`` stay as they are (sysfs
  takes no new directories anyway);
- the node's directory is a shared mount (bound onto itself), so what the kubelet mounts there from its namespace
  (volumes, the shim's FUSE exports) propagates to the host, where containerd bind-mounts it into containers.

``cleanup`` (the test bed's stop) logs out whatever the kubelet left logged in: loop devices detached,
qemu-storage-daemon processes stopped, FUSE exports unmounted. Test-bed machinery only: a real node has open-iscsi
and the product never installs anything into a cluster's nodes.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from pathlib import Path

from testbed import procs
from testbed.config import Node

# Imported as `_run`: tests/test_external_programs.py reads the program names of such calls.
from testbed.procs import run as _run

HERE = Path(__file__).resolve().parent
LAUNCHER = HERE / "iscsi_launch.py"
SHIM = HERE / "iscsiadm_shim.py"
# Debian's interpreter: the shim and the launcher use only the standard library, and run before (or outside) any
# environment that has the harness installed.
SYSTEM_PYTHON = "/usr/bin/python3"
DEV_DISK = Path("/dev/disk")
# Made by us on a machine without udev (the mark inside says so; the kubelets' namespaces cover it with their own
# directory); removed by the stop when nothing else is in it.
DEV_DISK_MARK = DEV_DISK / ".made-by-prom-harness-testbed"


def iscsi_dir(node: Node) -> Path:
    return node.dir / "iscsi"


def install(helpers: Path) -> None:
    """Put the shim into the kubelets' helper directory (first on their PATH) as ``iscsiadm``."""
    target = helpers / "iscsiadm"
    shutil.copyfile(SHIM, target)
    target.chmod(0o755)


def _is_mount_point(path: Path) -> bool:
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        if line.split()[4].encode().decode("unicode_escape") == str(path):
            return True
    return False


def prepare(node: Node) -> None:
    """The host side, before the kubelet starts: its directory shared, ``/dev/disk`` present as a mount point."""
    iscsi_dir(node).mkdir(parents=True, exist_ok=True)
    node.volumes_dir.mkdir(parents=True, exist_ok=True)
    # The node's local-PV directory too: a filesystem a test (or a user of the test bed) mounts there after the
    # kubelet started must reach the kubelet's namespace, or its local volume binds the bare directory beneath
    # (this host's / is a private mount, so nothing propagates into the kubelet's namespace on its own).
    for shared in (node.dir, node.volumes_dir):
        if not _is_mount_point(shared):
            _run("mount", "--bind", str(shared), str(shared))
        _run("mount", "--make-shared", str(shared))
    if not DEV_DISK.exists():
        DEV_DISK.mkdir()
        DEV_DISK_MARK.touch()


def kubelet_argv(node: Node, kubelet: list[str]) -> list[str]:
    """The kubelet's command line, run in its own mount namespace (see the module docstring)."""
    return ["unshare", "--mount", "--propagation", "unchanged", "--", SYSTEM_PYTHON, str(LAUNCHER),
            str(iscsi_dir(node)), "--", *kubelet]  # fmt: skip


def kubelet_env(node: Node) -> dict[str, str]:
    return {"HARNESS_ISCSI_DIR": str(iscsi_dir(node))}


def sessions(node: Node) -> list[dict[str, object]]:
    return sessions_in(iscsi_dir(node))


def sessions_in(state: Path) -> list[dict[str, object]]:
    """The shim's session records under its state directory (``$HARNESS_ISCSI_DIR``)."""
    found = []
    d = state / "sessions"
    for f in sorted(d.iterdir()) if d.is_dir() else []:
        if f.name.startswith("."):  # a record being written
            continue
        with contextlib.suppress(OSError, ValueError):  # empty: a login claimed the id, its record is not written
            found.append(json.loads(f.read_text()))
    return found


def _mounted_sources() -> set[str]:
    """The devices something is mounted from, as the host sees them (the kubelets' mounts propagate to it)."""
    return {line.split(" - ", 1)[1].split()[1] for line in Path("/proc/self/mountinfo").read_text().splitlines()}


def _logout(node: Node, s: dict[str, object]) -> None:
    """The shim's own logout, run on the host (the links and sysfs entries are files in the node's directory)."""
    procs.log(f"{node.name}: logging out iSCSI session {s.get('sid')} ({s.get('iqn')} at {s.get('portal')})")
    _run(SYSTEM_PYTHON, str(SHIM), "-m", "node", "-p", str(s["portal"]), "-T", str(s["iqn"]), "--logout",
         check=False, env={"HARNESS_ISCSI_DIR": str(iscsi_dir(node))})  # fmt: skip


def cleanup(node: Node) -> None:
    """Undo every login the kubelet did not log out (after the kubelet is gone and the volumes are unmounted)."""
    for s in sessions(node):
        _logout(node, s)


def logout_idle(node: Node, portal: str) -> list[str]:
    """Log out the sessions to ``portal`` none of whose LUNs is mounted; the IQNs logged out.

    The kubelet logs out only after it unmounted a device it had mounted: after a failed mount (a partitioned LUN)
    the session stays logged in, as it does on a real node, until the kubelet mounts that target again. Here a
    session is a qemu-storage-daemon and a loop device, so a test that made the kubelet fail calls this once the
    pod and its PV are gone: never while the kubelet may be between its login and its mount (hence the portal,
    which is that test's own target).
    """
    used = _mounted_sources()
    idle = [
        s
        for s in sessions(node)
        if s.get("portal") == portal and not any(str(lun.get("loop")) in used for lun in _luns(s))
    ]
    for s in idle:
        _logout(node, s)
    return [str(s.get("iqn")) for s in idle]


def _luns(s: dict[str, object]) -> list[dict[str, object]]:
    luns = s.get("luns")
    return [lun for lun in luns if isinstance(lun, dict)] if isinstance(luns, list) else []


def leftovers(node: Node, portal: str) -> list[str]:
    """What logins to ``portal`` (``host:port``) left on the host: sessions, loop devices on the node's exports of
    it, qemu-storage-daemons serving them, FUSE mounts (for tests that must see none after a run; other tests'
    portals are theirs)."""
    return leftovers_in(iscsi_dir(node), portal)


def leftovers_in(state: Path, portal: str) -> list[str]:
    """``leftovers`` of the shim's state directory ``state``."""
    exports = str(state / "luns" / (portal.replace("[", "").replace("]", "").replace(":", "_") + "-"))
    found = [f"session {s.get('sid')} ({s.get('iqn')})" for s in sessions_in(state) if s.get("portal") == portal]
    listed = _run("losetup", "--list", "--noheadings", "--output", "NAME,BACK-FILE", check=False).stdout
    found += [f"loop {line.strip()}" for line in listed.splitlines() if exports in line]
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            with contextlib.suppress(OSError):
                argv = (proc / "cmdline").read_bytes().split(b"\0")
                if argv[0].endswith(b"qemu-storage-daemon") and any(exports.encode() in a for a in argv):
                    found.append(f"qemu-storage-daemon pid {proc.name}")
    mounts = (line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines())
    return found + [f"mount {m}" for m in mounts if m.startswith(exports)]


def release_dev_disk() -> None:
    """Remove ``/dev/disk`` if the test bed made it and it is still empty (every node stopped)."""
    if DEV_DISK_MARK.exists() and [p.name for p in DEV_DISK.iterdir()] == [DEV_DISK_MARK.name]:
        DEV_DISK_MARK.unlink()
        with contextlib.suppress(OSError):
            DEV_DISK.rmdir()
