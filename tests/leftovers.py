"""Local runs as subprocesses, and what a run left on this host: processes, mounts and loop devices that still name
its work area; a run SIGKILLed during its load phase, and `harness cleanup`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.wait import wait_for

ROOT = Path(__file__).resolve().parent.parent


def left_behind(work: Path) -> list[str]:
    found = []
    ps = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True, check=True).stdout
    found += [line.strip() for line in ps.splitlines() if str(work) in line]
    found += [line for line in Path("/proc/self/mountinfo").read_text().splitlines() if str(work) in line]
    loops = subprocess.run(["losetup", "-a"], capture_output=True, text=True, check=True).stdout
    found += [line for line in loops.splitlines() if str(work) in line]
    return found


def run_argv(scenario: Path, reports: Path, work: Path, *args: str) -> list[str]:
    argv = ["run", str(scenario), "--reports", str(reports), "--workdir", str(work), "--no-report", *args]
    return [sys.executable, "-m", "harness.cli", *argv]


def run(scenario: Path, reports: Path, work: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`harness run` on the local runtime, to the end (bounded)."""
    argv = run_argv(scenario, reports, work, *args)
    return subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, check=False, timeout=300)


def wait_for_load_phase(reports: Path, proc: subprocess.Popen[Any], timeout_s: float = 120) -> Path | None:
    """The run's result.json once its load phase is under way (t0 set: Prometheus up, samples flowing); None when
    the run ended first or ``timeout_s`` ran out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and proc.poll() is None:
        result_file = next(reports.glob("*/*/result.json"), None)
        if result_file is not None and json.loads(result_file.read_text())["t0_unix_s"] is not None:
            return result_file
        time.sleep(0.2)
    return None


def interrupt_during_load(
    scenario: Path,
    reports: Path,
    work: Path,
    until: Callable[[], bool] | None = None,
    *,
    first: Callable[[Path], None] | None = None,
) -> tuple[int, str, list[str]]:
    """Start a run, SIGINT it once its load phase is under way and ``first``, given the run's result.json, has
    returned (e.g. waited for a fault to begin), and ``until`` holds (waited for up to 60 s, e.g. a fault's
    condition in place): (exit code, stderr, what was there just before)."""
    argv = run_argv(scenario, reports, work)
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        result_file = wait_for_load_phase(reports, proc)
        if first is not None and result_file is not None:
            first(result_file)
        if until is not None:
            wait_for(until, what="the state to interrupt the run in", timeout_s=60, interval_s=0.05)
        before = left_behind(work)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=30)
    return proc.returncode, stderr, before


def sigkill_during_load(
    command: list[str], reports: Path, env: dict[str, str] | None = None, until: Callable[[], bool] | None = None
) -> Path:
    """Start a run (``command``, as ``run_argv`` makes it), SIGKILL it once its load phase is under way (and
    ``until`` holds, waited for up to 60 s); its result.json."""
    proc = subprocess.Popen(
        command, cwd=ROOT, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        result_file = wait_for_load_phase(reports, proc)
        if until is not None:
            wait_for(until, what="the state to kill the run in", timeout_s=60, interval_s=0.05)
        proc.kill()
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=30)
    assert result_file is not None, f"the run never reached its load phase: {stderr}"
    return result_file


def cleanup(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`harness cleanup ARGS` to the end (bounded)."""
    return subprocess.run(
        [sys.executable, "-m", "harness.cli", "cleanup", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        check=False,
        timeout=300,
    )
