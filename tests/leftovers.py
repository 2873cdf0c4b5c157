"""Local runs as subprocesses (through ``tests.cli``), and what a run left on this host: processes, mounts and loop
devices that still name its work area; a run interrupted or SIGKILLed during its load phase, and `harness cleanup`."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.wait import wait_for
from tests.cli import ROOT, CliRun, command, harness_cli, stored


def left_behind(work: Path) -> list[str]:
    found = []
    # -ww: the whole command line (without it ps cuts lines at 80 columns, before a long argv names the work area)
    ps = subprocess.run(["ps", "-ww", "-eo", "pid,args"], capture_output=True, text=True, check=True).stdout
    found += [line.strip() for line in ps.splitlines() if str(work) in line]
    found += [line for line in Path("/proc/self/mountinfo").read_text().splitlines() if str(work) in line]
    # The loop devices' backing files from sysfs, not `losetup -a`: its status ioctl waits (D state) on a loop device
    # whose file sits on a frozen FUSE layer, and a leftover check must not hang the suite.
    for backing in Path("/sys/block").glob("loop*/loop/backing_file"):
        with contextlib.suppress(OSError):  # detached meanwhile
            name = backing.read_text().strip()
            if str(work) in name:
                found.append(f"/dev/{backing.parent.parent.name}: {name}")
    return found


def _run_args(scenario: Path, reports: Path, work: Path, *args: str) -> list[str]:
    return ["run", str(scenario), "--reports", str(reports), "--workdir", str(work), "--no-report", *args]


def run_argv(scenario: Path, reports: Path, work: Path, *args: str) -> list[str]:
    return command(*_run_args(scenario, reports, work, *args))


def run(scenario: Path, reports: Path, work: Path, *args: str) -> CliRun:
    """`harness run` on the local runtime, to the end (bounded)."""
    return harness_cli(*_run_args(scenario, reports, work, *args))


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
    after_s: float = 0.0,
) -> tuple[CliRun, list[str]]:
    """Start a run, SIGINT it once its load phase is under way and ``first``, given the run's result.json, has
    returned (e.g. waited for a fault to begin), and ``until`` holds (waited for up to 60 s, e.g. a fault's
    condition in place), and ``after_s`` more (e.g. inside a fault's window): (the run, as ``tests.cli`` returns
    one, what was there just before)."""
    argv = run_argv(scenario, reports, work)
    earlier = stored(reports)
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        result_file = wait_for_load_phase(reports, proc)
        if first is not None and result_file is not None:
            first(result_file)
        if until is not None:
            wait_for(until, what="the state to interrupt the run in", timeout_s=60, interval_s=0.05)
        time.sleep(after_s)
        before = left_behind(work)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=30)
    return CliRun(
        subprocess.CompletedProcess(argv, proc.returncode, stdout, stderr), sorted(stored(reports) - earlier)
    ), before


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


def cleanup(*args: str, env: dict[str, str] | None = None) -> CliRun:
    """`harness cleanup ARGS` to the end (bounded)."""
    return harness_cli("cleanup", *args, env=env)
