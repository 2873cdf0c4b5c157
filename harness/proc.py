"""The only place that starts subprocesses and daemons.

Binaries are resolved with ``shutil.which`` and a missing one names the Debian package that ships it. Every command
is logged with its exact argv and runs under a timeout; every daemon is started with ``Popen`` (never through a shell,
so the PID we hold is the daemon's own) and stopped by that PID. Inside ``labelled_children(run_id)`` every child
carries ``HARNESS_RUN_ID`` in its environment, so ``harness cleanup`` can find any that outlived a killed run.
"""

from __future__ import annotations

import ctypes
import logging
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from harness.errors import CommandFailed, MissingBinary, WaitTimeout
from harness.ownership import RUN_ID_ENV

log = logging.getLogger(__name__)

# Which Debian/Ubuntu package provides each program the harness may call.
PACKAGES: dict[str, str] = {
    "prometheus": "prometheus",
    "fio": "fio",
    "mkfs.ext4": "e2fsprogs",
    "mkfs.xfs": "xfsprogs",
    "mount": "mount",
    "umount": "mount",
    "losetup": "mount",
    "findmnt": "util-linux",
    "truncate": "coreutils",
    "ganesha.nfsd": "nfs-ganesha nfs-ganesha-vfs",
    "nfs-ls": "libnfs-utils",
    "rpcbind": "rpcbind",
    "fusermount3": "fuse3",
    "mount.nfs": "nfs-common",
    "iscsiadm": "open-iscsi",
    "modprobe": "kmod",
    "tgtd": "tgt",
    "tgtadm": "tgt",
    "iscsi-ls": "libiscsi-bin",
    "etcd": "etcd-server",
    "containerd": "containerd",
    "runc": "runc",
    "ctr": "containerd",
    "sgdisk": "gdisk",
    "blkid": "util-linux",
    "qemu-storage-daemon": "qemu-system-common qemu-block-extra",
    "ceph": "ceph-common",
    "rbd": "ceph-common",
    "ceph-authtool": "ceph-common",
    "monmaptool": "ceph-base",
    "ceph-mon": "ceph-mon",
    "ceph-mgr": "ceph-mgr",
    "ceph-osd": "ceph-osd",
    "ceph-mds": "ceph-mds",
    "ceph-fuse": "ceph-fuse",
}


# What every child gets in its environment on top of ours while a run is under way (``labelled_children``).
_CHILD_ENV: dict[str, str] = {}


@contextmanager
def labelled_children(run_id: str) -> Iterator[None]:
    """Children started inside carry ``HARNESS_RUN_ID=run_id``. Not ``os.environ``: a test running several runs
    in one process would hand an old run's id to later children, and a cleanup of that run would kill them."""
    previous = dict(_CHILD_ENV)
    _CHILD_ENV[RUN_ID_ENV] = run_id
    try:
        yield
    finally:
        _CHILD_ENV.clear()
        _CHILD_ENV.update(previous)


def _child_env(env: Mapping[str, str] | None, *, of_the_run: bool = True) -> dict[str, str] | None:
    """The child's environment. Not ``of_the_run``: a daemon meant to outlive its starter (a test cluster's kubelet,
    restarted by a run's node_loss fault) carries no run id, not even one inherited, or cleaning up after that run
    would kill it."""
    if not of_the_run:
        return {**{k: v for k, v in os.environ.items() if k != RUN_ID_ENV}, **(env or {})}
    if env is None and not _CHILD_ENV:
        return None  # inherit ours as it is
    return {**os.environ, **_CHILD_ENV, **(env or {})}


def which(binary: str) -> str:
    """Absolute path of ``binary`` (a name on PATH or a path); MissingBinary names the package otherwise."""
    if os.sep in binary:
        if os.access(binary, os.X_OK):
            return binary
        raise MissingBinary(binary, PACKAGES.get(Path(binary).name, Path(binary).name))
    found = shutil.which(binary)
    if found is None:
        raise MissingBinary(binary, PACKAGES.get(binary, binary))
    return found


@dataclass(frozen=True)
class Completed:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    duration_s: float


def run(
    argv: Sequence[str],
    *,
    timeout_s: float,
    check: bool = True,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    input_text: str | None = None,
) -> Completed:
    """Run a command to completion under a timeout, capturing its output."""
    resolved = [which(argv[0]), *argv[1:]]
    log.debug("run: %s", shlex.join(resolved))
    started = time.monotonic()
    # Not subprocess.run: after a timeout it kills the command and then waits for it without a limit, which never
    # ends for a process in uninterruptible sleep (an umount of a hung NFS mount).
    popen = subprocess.Popen(
        resolved,
        stdin=subprocess.PIPE if input_text is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_child_env(env),
        cwd=cwd,
    )
    try:
        stdout, stderr = popen.communicate(input_text, timeout=timeout_s)
    except subprocess.TimeoutExpired as e:
        popen.kill()
        try:
            popen.communicate(timeout=KILL_WAIT_S)
        except subprocess.TimeoutExpired:
            raise CommandFailed(
                f"{shlex.join(resolved)} did not finish within {timeout_s:g} s and was still there "
                f"{KILL_WAIT_S:g} s after SIGKILL (pid {popen.pid}, {_state(popen.pid)}); left behind"
            ) from e
        raise CommandFailed(f"{shlex.join(resolved)} did not finish within {timeout_s:g} s") from e
    done = Completed(tuple(resolved), popen.returncode, stdout, stderr, time.monotonic() - started)
    if check and popen.returncode != 0:
        raise CommandFailed(f"{shlex.join(resolved)} failed", popen.returncode, _tail(stderr or stdout))
    return done


# How long a killed command may take to go: longer means uninterruptible sleep (state D), which no signal ends.
KILL_WAIT_S = 5.0


def _state(pid: int) -> str:
    """The process state from /proc (``D`` is uninterruptible sleep), for the message."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return "state unknown"
    return f"state {stat.rsplit(')', 1)[-1].split()[0]}"


def _tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


@dataclass
class Daemon:
    """A long-running process we started, with its output going to a log file."""

    name: str
    argv: tuple[str, ...]
    log_path: Path
    popen: subprocess.Popen[bytes]
    started_monotonic: float = field(default_factory=time.monotonic)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def signal(self, sig: signal.Signals) -> None:
        if self.alive():
            log.debug("%s: sending %s to pid %d", self.name, sig.name, self.pid)
            self.popen.send_signal(sig)

    def wait(self, timeout_s: float) -> int:
        try:
            return self.popen.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired as e:
            raise WaitTimeout(f"{self.name} (pid {self.pid}) to exit", timeout_s) from e

    def stop(self, timeout_s: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL if it has not exited within ``timeout_s``. Idempotent."""
        if not self.alive():
            return self.popen.returncode
        self.signal(signal.SIGTERM)
        try:
            return self.popen.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            log.warning("%s (pid %d) ignored SIGTERM for %g s; killing it", self.name, self.pid, timeout_s)
            self.signal(signal.SIGKILL)
            return self.popen.wait(timeout=timeout_s)

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""


def start_daemon(
    name: str,
    argv: Sequence[str],
    *,
    log_path: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    user: int | None = None,
    group: int | None = None,
    extra_groups: Sequence[int] | None = None,
    die_with_parent: bool = True,
    of_the_run: bool | None = None,
    pipes: bool = False,
) -> Daemon:
    """Start a daemon in its own process group with stdout+stderr appended to ``log_path``.

    ``pipes``: its stdin and stdout are pipes to this process instead (``popen.stdin``/``popen.stdout``, bytes), for
    a child that talks with the harness; stderr still goes to ``log_path``.

    ``die_with_parent``: the kernel SIGKILLs it when this process dies, even by SIGKILL (Linux PR_SET_PDEATHSIG),
    so a killed run leaves no Prometheus, fio or server running; only what must outlive us says no: the test bed's
    daemons, and a run's embedded server that serves a cluster's nodes (``harness.datapath.kept_server``).

    ``of_the_run`` (default: ``die_with_parent``): it carries the run's ``HARNESS_RUN_ID``, so it is the run's for
    ``harness cleanup``; a daemon that outlives us but is still the run's (that embedded server) says yes.
    """
    resolved = (which(argv[0]), *argv[1:])
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log.debug("start %s: %s (log %s)", name, shlex.join(resolved), log_path)
    logf: IO[bytes] = log_path.open("ab")
    try:
        popen = subprocess.Popen(
            resolved,
            stdout=subprocess.PIPE if pipes else logf,
            stderr=logf if pipes else subprocess.STDOUT,
            stdin=subprocess.PIPE if pipes else subprocess.DEVNULL,
            env=_child_env(env, of_the_run=die_with_parent if of_the_run is None else of_the_run),
            cwd=cwd,
            # A new session keeps Ctrl-C in the terminal from reaching the daemon directly: the harness decides
            # when and how each daemon stops, so it can record the fault timeline and keep partial results.
            start_new_session=True,
            user=user,
            group=group,
            extra_groups=extra_groups,
            # Runs in the child after its uid/gid change (which would clear the setting) and before exec; it only
            # calls prctl, resolved before the fork, so no lock another thread held can stop it.
            preexec_fn=_die_with(os.getpid()) if die_with_parent and sys.platform == "linux" else None,  # noqa: PLW1509
        )
    finally:
        logf.close()
    return Daemon(name=name, argv=resolved, log_path=log_path, popen=popen)


_PR_SET_PDEATHSIG = 1


def _die_with(parent_pid: int) -> Callable[[], None]:
    """What the child runs before exec: SIGKILL me when the thread that started me dies (the main thread, here:
    daemons are started by the pipeline's steps, never by a worker thread that would end before them)."""
    prctl = ctypes.CDLL(None, use_errno=True).prctl

    def set_parent_death_signal() -> None:
        if prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
        if os.getppid() != parent_pid:  # the parent died between fork and prctl: nobody would ever signal us
            os._exit(1)

    return set_parent_death_signal


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port
