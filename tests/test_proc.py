"""harness.proc on real processes: a command past its timeout is killed and reported, a missing one names its
package, a failing one carries its exit code and the end of its output."""

from __future__ import annotations

import time

import pytest

from harness import proc
from harness.errors import CommandFailed, MissingBinary


def test_a_command_past_its_timeout_is_killed_and_named() -> None:
    started = time.monotonic()
    with pytest.raises(CommandFailed, match=r"sleep 30 did not finish within 0.5 s"):
        proc.run(["sleep", "30"], timeout_s=0.5)
    assert time.monotonic() - started < proc.KILL_WAIT_S  # killed, not waited for


def test_a_failing_command_carries_its_exit_code_and_output() -> None:
    with pytest.raises(CommandFailed) as info:
        proc.run(["sh", "-c", "echo the reason >&2; exit 3"], timeout_s=10)
    assert info.value.return_code == 3 and "the reason" in str(info.value)
    done = proc.run(["sh", "-c", "cat; exit 4"], timeout_s=10, check=False, input_text="fed in")
    assert (done.returncode, done.stdout) == (4, "fed in")


def test_a_missing_program_names_the_package() -> None:
    with pytest.raises(MissingBinary, match="apt-get install tgt"):
        proc.run(["/nonexistent/tgtd"], timeout_s=1)
