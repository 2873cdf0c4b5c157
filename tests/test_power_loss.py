"""The ``power_loss`` fault on the local runtime: the fault layer (``harness.datapath.fault_fuse``, real FUSE) on its
own, then whole runs with the real prometheus.

Prometheus' WAL fsyncs only when a segment is completed or closed, so a power cut loses acknowledged samples back
to the last fsync (here: the clean shutdown of a SIGTERM), while a SIGKILL over the same layer loses nothing. The
verdict follows ``checks.history_survival.max_samples_lost``.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.capabilities.fault_layer import FaultLayerControl
from harness.datapath.mounts import mount_table
from harness.errors import UsageError
from harness.refusals import refuse_faults
from harness.results.model import FaultRecord, RunResult, Status
from harness.runtime.kubernetes import KubernetesRuntime
from harness.scenario.model import Scenario
from harness.wait import wait_for
from tests.leftovers import left_behind, run

ROOT = Path(__file__).resolve().parent.parent


FUSE_AS_ROOT = [
    pytest.mark.root(reason="a FUSE mount other users may enter (allow_other) needs root"),
    pytest.mark.skipif(not Path("/dev/fuse").exists(), reason="no /dev/fuse: FUSE is not available here"),
]


def needs_fuse_as_root(test: Any) -> Any:
    for mark in FUSE_AS_ROOT:
        test = mark(test)
    return test


# --- the layer on its own ----------------------------------------------------------------------------------------


class Layer:
    def __init__(self, directory: Path, report: Path) -> None:
        self.directory, self.report = directory, report

    def command(self, command: bytes) -> dict[str, Any]:
        """Write one command to the control file; the answer the layer wrote before the write returned."""
        fd = os.open(self.directory / ".harness-control", os.O_WRONLY)
        try:
            os.write(fd, command)
        finally:
            os.close(fd)
        report: dict[str, Any] = json.loads(self.report.read_text())
        return report

    def cut(self) -> dict[str, Any]:
        return self.command(b"cut")


def _mounted(directory: Path) -> bool:
    return any(e.mount_point == directory and e.fstype == "fuse.harness-faults" for e in mount_table())


@pytest.fixture
def layer(public_tmp: Path) -> Iterator[Layer]:
    """The layer mounted over a directory that already holds a durable file ``old`` ("hello\\n")."""
    directory = public_tmp / "data"
    directory.mkdir()
    (directory / "old").write_text("hello\n")
    report = public_tmp / "cut.json"
    argv = [sys.executable, "-m", "harness.datapath.fault_fuse", str(directory), "--report", str(report)]
    daemon = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(lambda: _mounted(directory), what="the fault layer's mount", timeout_s=30)
        yield Layer(directory, report)
    finally:
        subprocess.run(["umount", str(directory)], capture_output=True, check=False, timeout=60)
        daemon.terminate()
        daemon.communicate(timeout=30)


def _write(path: Path, data: bytes, *, sync: bool = False, flags: int = os.O_CREAT | os.O_WRONLY) -> None:
    fd = os.open(path, flags, 0o644)
    try:
        os.write(fd, data)
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)


@needs_fuse_as_root
def test_a_cut_keeps_exactly_what_was_fsynced(layer: Layer) -> None:
    d = layer.directory
    fd = os.open(d / "seg", os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o644)
    os.write(fd, b"a" * 10_000)
    os.fsync(fd)
    synced_at = time.time()
    os.write(fd, b"b" * 5_000)
    os.close(fd)
    fd = os.open(d / "seg", os.O_WRONLY)
    os.pwrite(fd, b"X" * 3, 4_095)  # an overwrite of durable bytes across a page boundary: put back at the cut
    os.close(fd)
    _write(d / "old", b"more", flags=os.O_WRONLY | os.O_APPEND)
    os.truncate(d / "old", 2)
    assert (d / "seg").stat().st_size == 15_000 and (d / "old").read_bytes() == b"he"  # visible before the cut
    report = layer.cut()
    assert (d / "seg").read_bytes() == b"a" * 10_000
    assert (d / "old").read_bytes() == b"hello\n"  # the write and the truncate since it was last durable, undone
    assert report["reverted"] == ["old", "seg"] and report["removed"] == []
    last = report["last_fsync_unix_s"]
    assert isinstance(last, dict) and set(last) == {"seg"} and synced_at - 1 < last["seg"] <= synced_at
    # A second cut has nothing left to drop: the first one made everything durable.
    assert layer.cut()["reverted"] == [] and (d / "seg").stat().st_size == 10_000


@needs_fuse_as_root
def test_a_new_file_needs_its_own_or_its_directorys_fsync(layer: Layer) -> None:
    d = layer.directory
    (d / "sub").mkdir()  # durable at once
    _write(d / "never", b"x" * 100)
    _write(d / "sub" / "synced", b"y" * 100, sync=True)
    _write(d / "sub" / "named", b"z" * 100)
    dir_fd = os.open(d / "sub", os.O_RDONLY | os.O_DIRECTORY)
    os.fsync(dir_fd)  # makes the name of "named" durable, not its data
    os.close(dir_fd)
    report = layer.cut()
    assert not (d / "never").exists()
    assert (d / "sub" / "synced").read_bytes() == b"y" * 100
    assert (d / "sub" / "named").read_bytes() == b""
    assert report["removed"] == ["never"] and sorted(p.name for p in d.iterdir()) == ["old", "sub"]


@needs_fuse_as_root
def test_renames_are_durable_and_a_renamed_file_keeps_its_unsynced_state(layer: Layer) -> None:
    d = layer.directory
    _write(d / "tmp-synced", b"s" * 10, sync=True)
    _write(d / "tmp-synced", b"S" * 10, flags=os.O_WRONLY | os.O_APPEND)
    (d / "tmp-synced").rename(d / "old")  # replaces the durable "old": the rename itself survives
    _write(d / "tmp-new", b"n" * 10)
    (d / "dir").mkdir()
    (d / "tmp-new").rename(d / "dir" / "new")
    layer.cut()
    assert (d / "old").read_bytes() == b"s" * 10  # the data synced before the rename, not what came after
    assert not (d / "tmp-synced").exists()
    assert list((d / "dir").iterdir()) == []  # never synced: gone under its new name too


@needs_fuse_as_root
def test_only_the_layers_own_user_may_cut(layer: Layer) -> None:
    control = layer.directory / ".harness-control"
    code = f"import os\ntry:\n  os.open('{control}', os.O_WRONLY)\nexcept OSError as e:\n  print(e.errno)"
    denied = subprocess.run(
        ["setpriv", "--reuid=1000", "--regid=1000", "--clear-groups", sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert denied.stdout.strip() == str(errno.EACCES), denied.stderr
    with pytest.raises(OSError) as junk:
        _write(layer.directory / ".harness-control", b"explode", flags=os.O_WRONLY)
    assert junk.value.errno == errno.EINVAL
    assert ".harness-control" not in [p.name for p in layer.directory.iterdir()]


# --- whole runs ----------------------------------------------------------------------------------------------------

SCENARIO = """
name: power-loss
duration: 11s
storage: {{backend: local}}
loads: {{tsdb: {{series: 50, interval: 1s}}}}
faults: [{faults}]
checks: {{history_survival: {{max_samples_lost: {budget}}}}}
"""
FAULTS = "{action: sigterm, at: 2s}, {action: sigkill, at: 5s}, {action: power_loss, at: 8s}"


def assert_the_cut_lost_what_came_after_the_last_fsync(result: RunResult, slack_ms: float = 0) -> FaultRecord:
    """SIGTERM, SIGKILL, power cut, in that order, each PASSED: the SIGKILL lost nothing; the cut lost acknowledged
    samples, all written after the last fsync the layer saw under wal/ (the SIGTERM's shutdown) and none after the
    cut (``slack_ms`` later at most: where the cut and the kill are one request, a request in flight); what came
    after the cut stayed, and the history check FAILED. The cut's record."""
    assert [(f.action, f.status) for f in result.faults] == [
        ("sigterm", Status.PASSED),
        ("sigkill", Status.PASSED),
        ("power_loss", Status.PASSED),
    ]
    sigterm, sigkill, cut = result.faults
    after_sigterm, after_sigkill, after_cut, final = result.durability
    assert after_sigterm.lost == 0 and after_sigkill.lost == 0 and after_sigkill.acknowledged > 0
    assert sigterm.last_wal_fsync_at_s is None and sigkill.last_wal_fsync_at_s is None
    assert after_cut.lost > 0 and after_cut.present > 0 and after_cut.mismatched_values == 0
    assert cut.last_wal_fsync_at_s is not None and result.t0_unix_s is not None
    assert sigterm.injected_at_s <= cut.last_wal_fsync_at_s < sigkill.injected_at_s
    last_fsync_ms = (result.t0_unix_s + cut.last_wal_fsync_at_s) * 1000
    cut_ms = (result.t0_unix_s + cut.injected_at_s) * 1000
    assert after_cut.loss_window_start_unix_ms is not None and after_cut.loss_window_end_unix_ms is not None
    assert last_fsync_ms <= after_cut.loss_window_start_unix_ms <= after_cut.loss_window_end_unix_ms
    assert after_cut.loss_window_end_unix_ms <= cut_ms + slack_ms
    assert final.lost == after_cut.lost  # what came after the cut stayed
    history = {c.name: c for c in result.checks}["history_survival"]
    assert history.status is Status.FAILED
    assert f"{after_cut.lost:,} of {after_cut.acknowledged:,} acknowledged samples lost" in history.reason
    return cut


@needs_fuse_as_root
@pytest.mark.slow
def test_power_loss_loses_acknowledged_samples_back_to_the_last_fsync_and_sigkill_loses_none(
    area: tuple[Path, Path], tmp_path: Path
) -> None:
    """SIGTERM (a clean shutdown fsyncs the WAL segment), SIGKILL, then the power cut, all over the layer. With
    max_samples_lost 0 the run FAILS (exit 1); with a budget the same run passes."""
    reports, work = area
    path = tmp_path / "power-loss.yaml"
    path.write_text(SCENARIO.format(faults=FAULTS, budget=0))
    started = time.monotonic()
    done = run(path, reports / "strict", work).expect(1)
    assert time.monotonic() - started < 60
    result = done.result
    assert result.environment.data_access is not None and "fault layer" in result.environment.data_access
    cut = assert_the_cut_lost_what_came_after_the_last_fsync(result)
    assert "the last fsync under wal/ was" in cut.detail and "SIGKILL" in cut.detail
    # A local disk holds nothing volatile below its filesystem for the cut to take (RBD's librbd cache:
    # tests/test_rbd_power_loss.py).
    assert "below the filesystem it took nothing more (no write-back cache" in cut.detail
    assert result.t0_unix_s is not None
    assert result.durability[2].cutoff_unix_ms == int((result.t0_unix_s + cut.injected_at_s) * 1000)
    assert result.verdict is Status.FAILED
    assert left_behind(work) == []

    # The same scenario with a budget for the loss passes. Its first fault deletes the pod (Prometheus stops cleanly
    # too): the volume, and the layer over it, outlive the pod, so the cut still knows that shutdown's fsync.
    path.write_text(SCENARIO.format(faults=FAULTS.replace("sigterm", "restart"), budget=100_000))
    result = run(path, reports / "budget", work).expect(0).result
    restart, sigkill, cut = result.faults
    assert cut.last_wal_fsync_at_s is not None and restart.injected_at_s <= cut.last_wal_fsync_at_s
    assert cut.last_wal_fsync_at_s < sigkill.injected_at_s
    assert result.durability[1].lost == 0 and result.durability[2].lost > 0
    assert {c.name: c.status for c in result.checks}["history_survival"] is Status.PASSED
    assert result.verdict is Status.PASSED
    assert left_behind(work) == [] and list(work.iterdir()) == []


@needs_fuse_as_root
@pytest.mark.slow
def test_without_a_power_loss_there_is_no_layer_and_sigkill_loses_nothing(
    area: tuple[Path, Path], tmp_path: Path
) -> None:
    reports, work = area
    path = tmp_path / "sigkill.yaml"
    path.write_text(SCENARIO.format(faults="{action: sigkill, at: 3s}", budget=0).replace("11s", "6s"))
    result = run(path, reports, work).expect(0).result
    assert result.environment.data_access is None  # Prometheus wrote straight to the directory
    assert all(c.lost == 0 and c.acknowledged > 0 for c in result.durability)


def test_the_kubernetes_runtime_takes_power_loss_only_where_a_privileged_helper_is_allowed() -> None:
    scenario = Scenario.model_validate(
        {
            "name": "t",
            "duration": "1m",
            "storage": {"backend": "ephemeral"},
            "faults": [{"action": "power_loss", "at": "10s"}],
        }
    )
    refuse_faults("local", scenario)
    refuse_faults("kubernetes", scenario)
    with pytest.raises(UsageError) as refused:
        KubernetesRuntime(scenario, "r1", logs_dir=Path("/nonexistent"), needs=frozenset({FaultLayerControl}))
    said = str(refused.value)
    assert "power_loss" in said and "privileged_helper: true" in said and "--runtime local" in said
