"""`harness cleanup` on this host, after a real `harness run` SIGKILLed during its load phase: it removes what that
run left (its loop-mounted image, the loop device, a process that outlived it, the work directory) and nothing
that merely looks like it (a directory named like it without a marker, with a mount of its own; another run's
marker; processes of another run or in another directory). A run that is still running is never touched, and the
next `harness run` warns about the leftovers, naming the command."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.config import load_user_config
from harness.datapath.mounts import LoopMount, create_loop_mount, is_mount_point
from harness.ownership import RUN_ID_ENV, RunLock, new_marker
from harness.settings import Settings
from tests.leftovers import ROOT, cleanup, left_behind, run, run_argv, sigkill_during_load, wait_for_load_phase

pytestmark = [
    pytest.mark.slow,
    pytest.mark.root(reason="a loop-mounted image needs root"),
]

KILLED = """
name: killed
duration: 5m
storage: {backend: local, image: {filesystem: ext4, size: 64Mi}}
loads: {tsdb: {series: 50, interval: 1s}}
"""
SHORT = """
name: after
duration: 1s
storage: {backend: local}
"""


@pytest.fixture
def sleepers() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for p in started:
        if p.poll() is None:
            p.kill()
        p.wait(timeout=10)


def sleeper(started: list[subprocess.Popen[bytes]], *, run_id: str | None = None, cwd: Path | None = None) -> int:
    env = {**os.environ, RUN_ID_ENV: run_id} if run_id else {k: v for k, v in os.environ.items() if k != RUN_ID_ENV}
    p = subprocess.Popen(["sleep", "300"], env=env, cwd=cwd, start_new_session=True)
    started.append(p)
    return p.pid


def test_cleanup_removes_what_a_killed_run_left_and_nothing_else(
    area: tuple[Path, Path], tmp_path: Path, sleepers: list[subprocess.Popen[bytes]]
) -> None:
    reports, root = area
    scenario = tmp_path / "killed.yaml"
    scenario.write_text(KILLED)
    run_id = json.loads(sigkill_during_load(run_argv(scenario, reports, root), reports).read_text())["run_id"]
    [workdir] = root.glob(f"prom-harness-{run_id}-*")
    left = left_behind(workdir)
    assert any("harness-" in line and "-mnt" in line for line in left), left  # the image's mount
    assert any(".img" in line for line in left), left  # its loop device

    # What must survive: a directory named like the run's without a marker (with a loop-mounted image of its own),
    # another run's marker (same owner, also gone), a process of that run and one in the unmarked directory.
    decoy = root / f"prom-harness-{run_id}-decoy"
    decoy.mkdir()
    loop: LoopMount | None = None
    other = root / "prom-harness-0ther1-x"
    other.mkdir()
    owner = load_user_config(Settings.from_environ(os.environ)).effective_owner()
    fields = {"scenario_file": "", "scenario_name": "", "runtime": "local", "reports_dir": ""}
    RunLock.create(
        other,
        new_marker(
            run_id="0ther1", owner=owner, workdir=other, kube_context=None, kubeconfig=None, host_paths=[], **fields
        ),
    ).release()
    try:
        loop = create_loop_mount(
            decoy / "disk.img", decoy / "mnt", filesystem="ext4", size_bytes=16 * 1024**2, direct_io=False
        )
        outlived = sleeper(sleepers, run_id=run_id)  # as if a child of the run had survived it
        sleeper(sleepers, run_id="0ther1")  # another run's: stays
        sleeper(sleepers, cwd=decoy)  # in the unmarked directory: stays

        # The next run says what is there and how to remove it; it removes nothing itself.
        after = tmp_path / "after.yaml"
        after.write_text(SHORT)
        said = " ".join(run(after, tmp_path / "after-reports", root).expect(0).stderr.split())
        assert f"harness cleanup --all-mine --workdir {root}" in said and run_id in said and "0ther1" in said, said

        listed = cleanup("--all-mine", "--dry-run", "--workdir", str(root)).expect(0)
        assert f"run {run_id} on this host" in listed.stdout and "run 0ther1 on this host" in listed.stdout
        assert f"would remove process {outlived}" in listed.stdout
        assert "decoy" not in listed.stdout
        assert left_behind(workdir) == left and workdir.is_dir()  # a dry run removes nothing

        done = cleanup("--run", run_id, "--workdir", str(root)).expect(0)
        assert f"removed process {outlived}" in done.stdout
        assert "removed mount" in done.stdout and "removed loop device" in done.stdout
        assert f"removed work directory {workdir}" in done.stdout
        assert not workdir.exists() and left_behind(workdir) == []
        assert [p.poll() is None for p in sleepers] == [False, True, True]  # only the run's own one is gone
        assert loop is not None and is_mount_point(loop.mount_point)
        assert Path(f"/sys/block/{Path(loop.device).name}/loop/backing_file").read_text().strip() == str(loop.image)
        assert (other / "harness-run.json").is_file()

        again = cleanup("--run", run_id, "--workdir", str(root)).expect(0)
        assert f"nothing left by run {run_id}" in again.stdout, again.stdout
    finally:
        if loop is not None:
            loop.unmount()
        shutil.rmtree(decoy, ignore_errors=True)
        shutil.rmtree(other, ignore_errors=True)


def test_a_running_run_is_never_touched(area: tuple[Path, Path], tmp_path: Path) -> None:
    """`cleanup --run ID` of a run that is running: exit 2, saying so; `--all-mine` passes it over."""
    reports, root = area
    scenario = tmp_path / "s.yaml"
    scenario.write_text(SHORT.replace("1s", "5m"))
    proc = subprocess.Popen(run_argv(scenario, reports, root), cwd=ROOT, stderr=subprocess.PIPE, text=True)
    try:
        from tests.leftovers import wait_for_load_phase

        result_file = wait_for_load_phase(reports, proc)
        assert result_file is not None
        run_id = json.loads(result_file.read_text())["run_id"]
        [workdir] = root.glob(f"prom-harness-{run_id}-*")
        refused = cleanup("--run", run_id, "--workdir", str(root)).expect(2)
        assert "it is running" in refused.stdout and "Traceback" not in refused.stderr
        passed_over = cleanup("--all-mine", "--workdir", str(root)).expect(0)
        assert run_id not in passed_over.stdout, passed_over.stdout
        assert workdir.is_dir() and proc.poll() is None
    finally:
        proc.kill()
        proc.communicate(timeout=30)
    swept = cleanup("--run", run_id, "--workdir", str(root)).expect(0)
    assert not workdir.exists(), swept.output


HELD = """
name: held
duration: 4s
storage: {backend: nfs, server: embedded, version: "4"}
loads: {tsdb: {series: 50, interval: 1s}}
"""


def _cmdline(entry: Path) -> bytes:
    try:
        return (entry / "cmdline").read_bytes()
    except OSError:
        return b""


def test_a_mount_the_run_could_not_undo_keeps_its_marker_and_cleanup_removes_it(
    area: tuple[Path, Path], tmp_path: Path, sleepers: list[subprocess.Popen[bytes]]
) -> None:
    """The FUSE NFS client dies (SIGKILL: no unmount of its own) while a process works in its mount: the run's
    unmount fails (busy) and the dead mount stays. The run says its work directory stays, with its marker (it used
    to remove both, so `harness cleanup` found nothing while the mount stayed); cleanup then removes the holder, the
    mount and the directory."""
    reports, root = area
    scenario = tmp_path / "held.yaml"
    scenario.write_text(HELD)
    argv = run_argv(scenario, reports, root)
    p = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:

        def fuse_mount() -> Path | None:
            for line in Path("/proc/self/mountinfo").read_text().splitlines():
                point = Path(line.split()[4])
                if str(root) in str(point) and "nfs-mnt-" in point.name and " - fuse" in line:
                    return point
            if p.poll() is not None:
                raise AssertionError(f"the run ended before its mount came: {p.communicate()}")
            return None

        from harness.wait import wait_for

        mount_point = wait_for(fuse_mount, what="the run's FUSE NFS mount", timeout_s=60, interval_s=0.05)
        holder = sleeper(sleepers, cwd=mount_point)
        assert wait_for_load_phase(reports, p) is not None
        client = next(
            int(e.name)
            for e in Path("/proc").iterdir()
            if e.name.isdigit() and str(mount_point).encode() in _cmdline(e) and b"nfs_fuse" in _cmdline(e)
        )
        os.kill(client, signal.SIGKILL)  # no unmount of its own on the way out: the mount is dead, and busy
        _, stderr = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate(timeout=30)
    try:
        _the_run_said_so_and_cleanup_removes_it(stderr, root, holder, mount_point)
    finally:  # whatever failed above: no dead mount stays on this host
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            if str(root) in line.split()[4]:
                subprocess.run(["umount", "-l", line.split()[4]], check=False)


def _the_run_said_so_and_cleanup_removes_it(stderr: str, root: Path, holder: int, mount_point: Path) -> None:
    said = " ".join(stderr.split())
    assert "Traceback" not in said, said
    assert "stays, with the run's marker" in said and "harness cleanup --run" in said, said
    [workdir] = root.glob("prom-harness-*")
    run_id = json.loads((workdir / "harness-run.json").read_text())["run_id"]
    assert left_behind(workdir), "the busy mount was expected to stay"

    done = cleanup("--run", run_id, "--workdir", str(root)).expect(0)
    assert f"removed process {holder}" in done.stdout, done.stdout
    assert f"removed mount {mount_point}" in done.stdout and f"removed work directory {workdir}" in done.stdout
    assert not workdir.exists() and left_behind(workdir) == []
