"""Network storage on this host, for the local runtime: what the ``nfs`` and ``iscsi`` backends share.

Not a backend of its own. Either a mount the user made (``storage.mount_path``): checked to really be such a mount,
and written under a directory of our own there, so nothing outside it is ever touched. Or a mount a user-space daemon
of this run serves (``ServedVolume``: nfs' FUSE client, iscsi's initiator), started with a bounded wait for its mount
and torn down, daemon included, whatever step failed (``provision_or_undo``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from harness import proc
from harness.datapath.mounts import filesystem_of, is_mount_point
from harness.errors import InfraError, StorageUnavailable
from harness.storage.base import ProvisionedStorage
from harness.wait import wait_for


@dataclass
class MountedVolume(ProvisionedStorage):
    def data_dir_for(self, generation: int) -> Path:
        return self._make_dir(self.root / "prometheus-db")


def provision_mounted(
    backend: str,
    *,
    env: str,
    configured: str | None,
    fstype_ok: Callable[[str], str | None],
    run_id: str,
    access: str,
) -> MountedVolume | None:
    """The directory ``harness-<run_id>`` on the mount ``storage.mount_path`` names (the scenario's, else ``$env``'s,
    filled in as the scenario was loaded: ``harness.scenario.host_defaults``); None when it names none (the backend
    then mounts the storage itself). ``env`` only names the variable in messages.

    ``fstype_ok`` returns why the mount's filesystem type is wrong (None when it is right).
    """
    mount_path = configured
    if not mount_path:
        return None
    how_to_mount = f"Fix it, or leave storage.mount_path and {env} unset to let the harness mount the storage itself."
    path = Path(mount_path)
    if not path.is_dir():
        raise StorageUnavailable(f"{backend} mount path {mount_path!r} does not exist. " + how_to_mount)
    fs = filesystem_of(path)
    if not is_mount_point(path):
        raise StorageUnavailable(
            f"{mount_path!r} is not a mount point, so writes would land on {fs.fstype} ({fs.mount_point}), not on "
            f"the {backend} storage. " + how_to_mount
        )
    wrong = fstype_ok(fs.fstype)
    if wrong is not None:
        raise StorageUnavailable(f"{mount_path!r} is mounted as {fs.fstype}, {wrong}")
    volume = MountedVolume(backend=backend, root=path, persistent=True, access=access)
    volume.root = volume._make_dir(path / f"harness-{run_id}")
    return volume


def user_mount_path(configured: str | None) -> list[Path]:
    """The mount the user named (``storage.mount_path``, or the ``HARNESS_*_MOUNT`` that filled it), where
    ``provision_mounted`` writes."""
    return [Path(configured)] if configured else []


# --- mounts that a user-space daemon of ours serves (nfs' FUSE client, iscsi's initiator) ------------------------


@dataclass
class ServedVolume(MountedVolume):
    """Storage reached through a daemon this run started (a FUSE filesystem); ``mount_point`` is where it is used."""

    daemon: proc.Daemon | None = None
    mount_point: Path | None = None

    def client_log(self) -> str:
        return "" if self.daemon is None else self.daemon.log_text()

    def teardown(self) -> None:
        """Remove the run's files (through the mount), unmount, detach, stop the daemon, remove the mount points:
        every step runs even when an earlier one fails; the first problem is raised at the end."""
        super().teardown()
        problems = []
        if self.mount_point is not None and is_mount_point(self.mount_point):
            try:
                proc.run(["umount", str(self.mount_point)], timeout_s=60)
            except InfraError as e:
                problems.append(str(e))
        self.detach()
        if self.daemon is not None:
            self.daemon.stop(timeout_s=15)
            self.daemon = None
        for path in self.mount_points():
            if path.exists() and not is_mount_point(path):
                path.rmdir() if path.is_dir() else path.unlink()
        if problems:
            raise InfraError("; ".join(problems))

    def detach(self) -> None:
        """What sits between the unmounted filesystem and the daemon (a loop device, a kernel session)."""

    def mount_points(self) -> list[Path]:
        """What this run made to mount on, removed once nothing is mounted there."""
        return [self.mount_point] if self.mount_point is not None else []


def start_serving(
    name: str, argv: list[str], *, serves: Path, log_path: Path, what: str, failed: Callable[[str], str]
) -> proc.Daemon:
    """Start the daemon that mounts ``serves`` and wait (bounded) until it does.

    If the daemon exits first, StorageUnavailable with ``failed(its last log line)``; if the mount never comes, one
    that asks whether the server is reachable. The caller tears down what it started (see ``provision_or_undo``).
    """
    daemon = proc.start_daemon(name, argv, log_path=log_path)

    def mounted() -> bool | None:
        if not daemon.alive():
            raise StorageUnavailable(failed(last_line(daemon.log_text())))
        return is_mount_point(serves) or None

    try:
        wait_for(mounted, what=what, timeout_s=SERVE_TIMEOUT_S)
    except BaseException as e:
        # Not yet the caller's to tear down (Ctrl-C included): stop it here.
        daemon.stop(timeout_s=15)
        if isinstance(e, InfraError) and not isinstance(e, StorageUnavailable):
            said = last_line(daemon.log_text())
            raise StorageUnavailable(f"{e}: is the server reachable from this host? ({said})") from e
        raise
    return daemon


# How long a user-space client may take to mount: a wrong export, IQN or LUN or a refused connection fails at once,
# an unreachable host after the client's own timeout (~10 s), which must not hold a run for minutes.
SERVE_TIMEOUT_S = 30.0

VolumeT = TypeVar("VolumeT", bound=ProvisionedStorage)


def provision_or_undo(volume: VolumeT, steps: Callable[[VolumeT], None]) -> VolumeT:
    """Run ``steps`` filling ``volume``; if any fails (Ctrl-C too), tear down what they did and re-raise."""
    try:
        steps(volume)
    except BaseException:
        with contextlib.suppress(InfraError):  # the first error is the one that says what to fix
            volume.teardown()
        raise
    return volume


def last_line(log_text: str) -> str:
    lines = [line.strip() for line in log_text.splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


def use_kernel_client(client: str, why_no_kernel: Callable[[], str | None]) -> bool:
    """``storage.client``: True for the kernel client (``auto`` where the host has one), False for the user-space
    one; StorageUnavailable, saying why, when ``kernel`` is asked for and the host has none."""
    if client == "user-space":
        return False
    why_not = why_no_kernel()
    if why_not is not None and client == "kernel":
        raise StorageUnavailable(f"storage.client is kernel, but {why_not}")
    return why_not is None
