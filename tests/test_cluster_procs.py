"""testbed/procs.py, the process handling of the local Kubernetes cluster, on real processes: commands under a
timeout, daemons by pid file, the bounded SIGTERM -> SIGKILL kill, and the wait that does not swallow its check's
errors. Written after `_kill_pid` could loop forever on a process SIGKILL does not end (state D), `_wait` turned a
bug in its own check into a 30 s timeout, and commands ran without any timeout. No cluster and no root needed:
pid files and logs go to a temporary STATE_ROOT.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.proc import free_port
from testbed import config, control_plane, procs

# A child that ignores SIGTERM, and says so once the handler is in place (before that, SIGTERM would end it and a
# test of the SIGKILL path would pass without reaching it).
IGNORES_SIGTERM = (
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ignoring-sigterm', flush=True); "
    "time.sleep(120)"
)


@pytest.fixture(autouse=True)
def state_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """pids/ and logs/ in a temporary directory: a cluster on this machine may be using the real STATE_ROOT."""
    monkeypatch.setattr(config, "STATE_ROOT", tmp_path)
    return tmp_path


@pytest.fixture
def stubborn() -> Iterator[subprocess.Popen[str]]:
    """A real child process that ignores SIGTERM; killed and reaped afterwards whatever the test did."""
    child = subprocess.Popen([sys.executable, "-c", IGNORES_SIGTERM], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "ignoring-sigterm"
    try:
        yield child
    finally:
        child.kill()
        child.wait(timeout=10)
        child.stdout.close()


# ---------------------------------------------------------------------------------------------- commands


def test_run_names_the_command_when_it_times_out() -> None:
    started = time.monotonic()
    with pytest.raises(procs.ClusterError, match=r"sleep 30 did not finish within 0\.3 s"):
        procs.run("sleep", "30", timeout_s=0.3)
    assert time.monotonic() - started < 10


def test_run_names_the_command_its_exit_code_and_stderr_when_it_fails() -> None:
    with pytest.raises(procs.ClusterError, match=r"(?s)sh -c .*failed \(exit code 3\).*oops"):
        procs.run("sh", "-c", "echo oops >&2; exit 3")
    assert procs.run("sh", "-c", "exit 3", check=False).returncode == 3


def test_run_names_a_missing_program() -> None:
    with pytest.raises(procs.ClusterError, match="no-such-program-here"):
        procs.run("no-such-program-here")


# ---------------------------------------------------------------------------------------------- killing by pid


def test_kill_pid_sigkills_a_process_that_ignores_sigterm(stubborn: subprocess.Popen[str]) -> None:
    started = time.monotonic()
    procs.kill_pid(stubborn.pid, 0.5)
    assert stubborn.wait(timeout=5) == -signal.SIGKILL
    assert time.monotonic() - started < 0.5 + procs.SIGKILL_WAIT_S


def test_kill_pid_gives_up_naming_the_pid_its_state_and_command_line(stubborn: subprocess.Popen[str]) -> None:
    """With SIGKILL held back, a real process that ignores SIGTERM stands in for one SIGKILL cannot end."""
    started = time.monotonic()
    with pytest.raises(procs.ClusterError) as info:
        procs.kill_pid(stubborn.pid, 0.5, sigkill=False)
    assert time.monotonic() - started < 5
    message = str(info.value)
    assert f"pid {stubborn.pid} (state S, sleeping;" in message
    assert "signal.SIG_IGN" in message  # its command line
    assert "0.5 s after SIGTERM (SIGKILL not sent)" in message
    assert stubborn.poll() is None


def test_kill_pid_gives_up_when_sigkill_does_not_end_it_fake_d_state(
    stubborn: subprocess.Popen[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fake: a process in uninterruptible sleep (state D) cannot be made on demand, so SIGKILL is dropped on its way
    out instead; this walks the whole SIGTERM, wait, SIGKILL, wait, give up sequence that used to loop forever."""
    sent: list[signal.Signals] = []
    real_signal = procs._signal

    def drop_sigkill(pid: int, sig: signal.Signals) -> None:
        sent.append(sig)
        if sig != signal.SIGKILL:
            real_signal(pid, sig)

    monkeypatch.setattr(procs, "_signal", drop_sigkill)
    with pytest.raises(
        procs.ClusterError, match=rf"pid {stubborn.pid} .*0\.3 s after SIGTERM and 0\.4 s after SIGKILL"
    ):
        procs.kill_pid(stubborn.pid, 0.3, kill_wait_s=0.4)
    assert sent == [signal.SIGTERM, signal.SIGKILL]


def test_kill_pid_leaves_a_reused_pid_alone(stubborn: subprocess.Popen[str]) -> None:
    procs.kill_pid(stubborn.pid, 0.5, exe="/usr/bin/some-other-daemon")
    assert stubborn.poll() is None


def test_spawn_and_terminate_a_daemon_through_its_pid_file(state_root: Path) -> None:
    pid = procs.spawn("stubborn", [sys.executable, "-c", IGNORES_SIGTERM])
    assert procs.read_pid("stubborn") == (pid, sys.executable)
    procs.wait_for(
        "the daemon to ignore SIGTERM", lambda: "ignoring-sigterm" in procs.log_file("stubborn").read_text(), 30
    )
    assert procs.alive("stubborn")
    procs.terminate("stubborn", 0.5)
    assert not procs.alive("stubborn")
    assert not procs.pid_file("stubborn").exists()
    assert not Path(f"/proc/{pid}").exists()  # reaped, not left as a zombie
    assert procs.log_file("stubborn").read_text().startswith(f"# {sys.executable} -c ")


# ---------------------------------------------------------------------------------------------- waiting


def test_wait_for_lets_an_exception_of_its_check_through() -> None:
    def broken() -> bool:
        raise ValueError("a bug in the check")

    started = time.monotonic()
    with pytest.raises(ValueError, match="a bug in the check") as info:
        procs.wait_for("the thing", broken, 30)
    assert time.monotonic() - started < 5  # at once, not after the 30 s timeout
    assert "raised by the check while waiting for the thing" in info.value.__notes__


def test_wait_for_says_what_it_waited_for_on_timeout() -> None:
    with pytest.raises(procs.ClusterError, match=r"timed out after 0\.3s waiting for the thing"):
        procs.wait_for("the thing", lambda: False, 0.3)


def test_wait_for_stops_when_the_daemon_exits() -> None:
    procs.spawn("short-lived", [sys.executable, "-c", "print('bye')"])
    with pytest.raises(procs.ClusterError, match=r"(?s)short-lived exited while waiting for the thing.*bye"):
        procs.wait_for("the thing", lambda: False, 30, "short-lived")


def test_a_daemon_that_does_not_answer_yet_is_not_ready_but_a_bad_answer_is_an_error() -> None:
    port = free_port()  # nothing listens there: connection refused, as while a daemon starts

    def probe() -> bool:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as resp:
            return bool(resp.status == 200)

    assert control_plane.until_it_answers(probe)() is False

    def bad_answer() -> bool:
        raise ValueError("not JSON")

    with pytest.raises(ValueError, match="not JSON"):
        control_plane.until_it_answers(bad_answer)()
