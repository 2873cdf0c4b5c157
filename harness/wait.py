"""Bounded waiting. Every wait in the harness goes through here, so each one has a timeout and a description."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from typing import TypeVar

from harness.errors import WaitTimeout
from harness.ownership import process_state

T = TypeVar("T")


def wait_for(
    probe: Callable[[], T | None],
    *,
    what: str,
    timeout_s: float,
    interval_s: float = 0.1,
    describe: Callable[[], str] | None = None,
) -> T:
    """Call ``probe`` until it returns something other than None/False, or raise WaitTimeout naming ``what``.

    ``describe`` is asked for the last observed state when giving up, so the error says what was seen.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if value is not None and value is not False:
            return value
        if time.monotonic() >= deadline:
            raise WaitTimeout(what, timeout_s, describe() if describe else "")
        time.sleep(interval_s)


def terminate(pid: int, gone: Callable[[], bool], what: str, *, term_wait_s: float, kill_wait_s: float) -> str:
    """SIGTERM ``pid`` unless ``gone()`` already (the caller's test that it is no longer the process it means: exited,
    a zombie, or the pid reused), SIGKILL after ``term_wait_s``; returns how it ended ("exited", "SIGTERM",
    "SIGKILL after N s of SIGTERM"). Raises WaitTimeout after ``kill_wait_s`` more, naming the process' state
    (D: uninterruptible, e.g. stuck on a dead mount, which no signal ends)."""
    if gone():
        return "exited"
    os.kill(pid, signal.SIGTERM)
    try:
        wait_for(gone, what=f"{what} to exit after SIGTERM", timeout_s=term_wait_s, interval_s=0.05)
        return "SIGTERM"
    except WaitTimeout:
        pass
    if not gone():
        os.kill(pid, signal.SIGKILL)
    wait_for(
        gone,
        what=f"{what} to exit after SIGKILL",
        timeout_s=kill_wait_s,
        interval_s=0.05,
        describe=lambda: f"state {process_state(pid)} (D: uninterruptible, e.g. stuck on a dead mount)",
    )
    return f"SIGKILL after {term_wait_s:g} s of SIGTERM"
