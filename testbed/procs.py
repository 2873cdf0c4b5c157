"""Processes of the local cluster: commands run to completion under a timeout, daemons started in their own session
with a pid file and a log, daemons stopped by PID with a bounded SIGTERM -> SIGKILL sequence, and the bounded wait used
while they come up. Commands and daemons go through harness.proc (it resolves the binary, logs the exact argv and
applies the timeout); this module adds the cluster's state layout (pids/, logs/ under config.STATE_ROOT) and reports
every failure as a ClusterError that names the command, the daemon or the pid.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from harness import proc
from harness.errors import HarnessError
from testbed import config

# The commands run here (ip, iptables, umount, ctr, openssl) take well under a second; one still running after a
# minute on this loaded 2-core machine hangs (a dead containerd socket, an unmount blocked on I/O), it is not slow.
COMMAND_TIMEOUT_S = 60.0
# After SIGKILL a process is gone as soon as it leaves the kernel; one still there after this is blocked in
# uninterruptible sleep (state D), and waiting longer will not change that.
SIGKILL_WAIT_S = 5.0
_POLL_S = 0.1

# Daemons started by this process: polling their Popen reaps them, so a dead one is not kept as a zombie that
# /proc still lists.
_children: dict[int, subprocess.Popen[bytes]] = {}

# /proc/PID/stat state letters (proc(5)), spelled out in messages about a process that will not go away.
_STATES = {
    "R": "running",
    "S": "sleeping",
    "D": "uninterruptible sleep",
    "T": "stopped",
    "t": "tracing stop",
    "Z": "zombie",
    "X": "dead",
    "I": "idle",
}


class ClusterError(RuntimeError):
    """The local cluster could not be brought up or down (the message says which step, and where its log is)."""


def log(msg: str) -> None:
    print(f"[cluster] {msg}", flush=True)


def run(
    *argv: str, check: bool = True, timeout_s: float = COMMAND_TIMEOUT_S, env: dict[str, str] | None = None
) -> proc.Completed:
    """Run one command to completion; ClusterError names it when it is missing, fails (with `check`) or hangs."""
    try:
        return proc.run(argv, timeout_s=timeout_s, check=check, env=env)
    except HarnessError as e:  # MissingBinary or CommandFailed: both messages name the command
        raise ClusterError(str(e)) from e


# ---------------------------------------------------------------------------------------------- daemons by pid file


def pid_file(name: str) -> Path:
    return config.STATE_ROOT / "pids" / f"{name}.pid"


def log_file(name: str) -> Path:
    return config.STATE_ROOT / "logs" / f"{name}.log"


def spawn(name: str, argv: list[str], env: dict[str, str] | None = None, runs: str | None = None) -> int:
    """Start one daemon in its own session (it outlives this process), its output appended to logs/<name>.log.

    pids/<name>.pid records its pid and executable: `stop` may run in another process, and the executable guards
    the kill against a pid the kernel has since handed to someone else. `runs` is the program the process ends up
    running when argv[0] execs it (a launcher: `unshare ... kubelet`); the pid file records that one.
    """
    try:
        exe = proc.which(argv[0])
    except HarnessError as e:
        raise ClusterError(f"{name}: {e}") from e
    resolved = [exe, *argv[1:]]
    log_path = log_file(name)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    pid_file(name).parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as f:
        f.write(f"# {shlex.join(resolved)}\n".encode())
    # The cluster outlives the process that starts it (`python -m testbed start`).
    daemon = proc.start_daemon(name, resolved, log_path=log_path, env=env, die_with_parent=False)
    _children[daemon.pid] = daemon.popen
    if runs is not None:
        # Until the launcher has exec'd `runs`, the pid's command line is the launcher's, which `alive` would take
        # for a reused pid: the pid file is written once the exec happened.
        wait_for(f"{name} to exec {runs}", lambda: _cmd0(daemon.pid) == runs, 60)
    pid_file(name).write_text(f"{daemon.pid}\n{runs or exe}\n")
    return daemon.pid


def _cmd0(pid: int) -> str | None:
    child = _children.get(pid)
    if child is not None and child.poll() is not None:
        raise ClusterError(f"pid {pid} exited ({child.returncode}) before it exec'd its program; see its log")
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
    except OSError:
        return None


def read_pid(name: str) -> tuple[int, str] | None:
    try:
        pid_text, exe = pid_file(name).read_text().splitlines()[:2]
        return int(pid_text), exe
    except (OSError, ValueError):
        return None


def _state(pid: int) -> str | None:
    """The state letter from /proc/PID/stat, None when there is no such process."""
    try:
        # The command name in parentheses may itself contain ") ": the state follows the last one.
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def pid_alive(pid: int, exe: str | None = None) -> bool:
    child = _children.get(pid)
    if child is not None and child.poll() is not None:
        return False
    state = _state(pid)
    if state is None or state in ("Z", "X"):
        return False
    if exe is not None:
        # Guards against a reused PID. The kernel can hand back an empty cmdline for a moment while a process
        # maps memory (seen with a Go daemon starting under load): empty proves nothing either way.
        try:
            cmd0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
        except OSError:
            return False
        return cmd0 in ("", exe)
    return True


def alive(name: str) -> bool:
    entry = read_pid(name)
    return entry is not None and pid_alive(*entry)


def describe(pid: int) -> str:
    """`pid N (state D, uninterruptible sleep; cmdline: ...)`, read from /proc, for messages about a stuck process."""
    state = _state(pid) or "?"
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        cmdline = "?"
    return f"pid {pid} (state {state}, {_STATES.get(state, 'unknown')}; cmdline: {cmdline or '(empty)'})"


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _gone_within(pid: int, within_s: float) -> bool:
    deadline = time.monotonic() + within_s
    while pid_alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(_POLL_S)
    _forget(pid)
    return True


def _forget(pid: int) -> None:
    """Drop our Popen of a child that is gone, reaping it first.

    /proc shows a multi-threaded child (every Go daemon here) as a zombie while its other threads are still being
    torn down, and waitpid cannot reap it until they are: poll() then still says "running". A Popen dropped unreaped
    warns from its finalizer ("subprocess is still running") at a random later point of whatever runs then, so wait
    for the reap (bounded); one that does not come keeps its Popen for a later stop.
    """
    child = _children.get(pid)
    if child is None:
        return
    try:
        child.wait(timeout=REAP_WAIT_S)
    except subprocess.TimeoutExpired:
        return
    _children.pop(pid, None)


def reap_exited() -> None:
    """Reap every daemon of ours that has exited, whoever ended it: a node lost and restored by another process
    (`node lose|restore`) leaves our Popen of its first kubelet and containerd behind a pid file that names their
    successors, so no stop would ever look at it again."""
    for pid, child in list(_children.items()):
        if child.poll() is not None:
            _children.pop(pid, None)


# How long a child seen gone in /proc may take to become reapable (its threads exiting).
REAP_WAIT_S = 5.0


def kill_pid(
    pid: int, timeout_s: float, exe: str | None = None, *, sigkill: bool = True, kill_wait_s: float = SIGKILL_WAIT_S
) -> None:
    """Stop `pid`: SIGTERM and up to `timeout_s` for it to exit, then SIGKILL and up to `kill_wait_s`.

    A process still there after that is in uninterruptible sleep (state D: blocked in the kernel, usually on I/O to a
    hung mount) and no signal will end it, so this gives up with a ClusterError naming the pid, its state and command
    line instead of waiting forever. `exe` guards against a reused pid (see pid_alive). `sigkill=False` stops after
    SIGTERM: a test reaches the give-up path with a real process that ignores SIGTERM.
    """
    if not pid_alive(pid, exe):
        _forget(pid)
        return
    _signal(pid, signal.SIGTERM)
    if _gone_within(pid, timeout_s):
        return
    waited = f"{timeout_s:g} s after SIGTERM"
    if sigkill:
        log(f"pid {pid} ignored SIGTERM for {timeout_s:g} s; sending SIGKILL")
        _signal(pid, signal.SIGKILL)
        if _gone_within(pid, kill_wait_s):
            return
        waited += f" and {kill_wait_s:g} s after SIGKILL"
    else:
        waited += " (SIGKILL not sent)"
    raise ClusterError(
        f"gave up stopping {describe(pid)}: still there {waited}. A process in state D is blocked in the kernel "
        "(often on I/O to a hung mount) and exits only when that I/O ends"
    )


def terminate(name: str, timeout_s: float = 20) -> None:
    """Stop the daemon of pids/<name>.pid; the pid file stays when it would not die, so a later stop retries."""
    entry = read_pid(name)
    if entry is not None:
        kill_pid(entry[0], timeout_s, entry[1])
    pid_file(name).unlink(missing_ok=True)


def tail(name: str, lines: int = 25) -> str:
    try:
        return "\n".join(log_file(name).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def wait_for(what: str, check: Callable[[], bool], timeout_s: float, daemon: str | None = None) -> None:
    """Poll `check` every 0.5 s until it returns True; give up with a ClusterError that says what it waited for
    (and shows the tail of `daemon`'s log) after `timeout_s`, or at once when `daemon` exits.

    `check` says "not yet" by returning False. An exception it raises is a bug or a failure that waiting will not
    fix: it propagates unchanged, with a note saying what was being waited for.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        if daemon is not None and not alive(daemon):
            raise ClusterError(f"{daemon} exited while waiting for {what}; {log_file(daemon)}:\n{tail(daemon)}")
        try:
            if check():
                return
        except Exception as e:
            e.add_note(f"raised by the check while waiting for {what}")
            raise
        if time.monotonic() >= deadline:
            break
        time.sleep(0.5)
    log_tail = f"; {log_file(daemon)}:\n{tail(daemon)}" if daemon else ""
    raise ClusterError(f"timed out after {timeout_s:g}s waiting for {what}{log_tail}")
