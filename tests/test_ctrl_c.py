"""Ctrl-C in the middle of a local run leaves nothing behind: whatever the run had in place (a fault's loop-mounted
image or FUSE layer, an NFS or iSCSI data path with its server, client and mounts) was there just before the
SIGINT, the run exits 130 with its partial result stored, the fault's own undo ran, and no process, mount or loop
device names the work area afterwards, which is empty.

One test for every such run: the runs differ in their scenario, in when the window they interrupt is open, in what
shows that the thing was in place, and in what the fault's undo leaves to check; the rest is the same.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.datapath.fill import Space
from harness.wait import wait_for
from tests import test_ceph as ceph
from tests import test_iscsi_data_path as iscsi
from tests import test_nfs_data_path as nfs
from tests.cli import CliRun
from tests.leftovers import interrupt_during_load, left_behind
from tests.test_disk_full import LOOP_AS_ROOT
from tests.test_disk_full import SCENARIO as DISK_FULL
from tests.test_io_faults import SCENARIO as IO_FAULTS
from tests.test_power_loss import FUSE_AS_ROOT
from tests.test_power_loss import SCENARIO as POWER_LOSS


def _nothing(*_: object) -> None:
    pass


@dataclass(frozen=True)
class Interrupted:
    """One run a Ctrl-C interrupts."""

    scenario: Callable[[Path], Path]  # writes the scenario (a run of minutes) into the directory given; its path
    in_place: Callable[[str], bool]  # a line of what the run left (left_behind) that shows the thing was in place
    opened: Callable[[Path, Path], None] = _nothing  # waits for the window to open: (work area, run directory)
    undone: Callable[[CliRun], None] = _nothing  # what the fault's undo left, checked on the stopped run


def _written(name: str, text: str) -> Callable[[Path], Path]:
    def write(directory: Path) -> Path:
        path = directory / name
        path.write_text(text)
        return path

    return write


def _disk_full(work: Path, _run_dir: Path) -> None:
    def full() -> bool:
        # The file appears as soon as it is created, and is full a moment later.
        found = next(work.glob("*/harness-*-mnt/.harness-fill-*"), None)
        return found is not None and Space.of(found.parent).for_users == 0

    wait_for(full, what="the fill to take the last block", timeout_s=60, interval_s=0.05)


def _disk_full_undone(stopped: CliRun) -> None:
    result = stopped.result
    assert [f.action for f in result.faults] == ["disk_full"]
    assert not any(e.message.startswith("cleanup:") for e in result.events), result.events  # every undo worked


def _fault_layer_log(run_dir: Path) -> Path:
    return sorted(run_dir.glob("logs/fault-layer-*.log"))[0]


def _io_fault_set(_work: Path, run_dir: Path) -> None:
    log = _fault_layer_log(run_dir)
    wait_for(lambda: "I/O fault set" in log.read_text(), what="the I/O fault to be set", timeout_s=60)


def _io_fault_cleared(stopped: CliRun) -> None:
    assert "I/O fault cleared" in _fault_layer_log(stopped.run_dir).read_text()  # by the cleanup, before the unmount


def _fault_layer(line: str) -> bool:
    return "fuse.harness-faults" in line


RUNS = [
    pytest.param(
        Interrupted(
            _written(
                "disk-full.yaml",
                DISK_FULL.format(duration="5m", faults="{action: disk_full, at: 1s, for: 4m}", max_recovery="30s"),
            ),
            in_place=lambda line: "harness-" in line and "-mnt" in line,  # the image was mounted
            opened=_disk_full,
            undone=_disk_full_undone,
        ),
        marks=LOOP_AS_ROOT,
        id="disk_full",
    ),
    pytest.param(
        Interrupted(
            _written(
                "long.yaml", POWER_LOSS.format(faults="{action: power_loss, at: 4m}", budget=0).replace("11s", "5m")
            ),
            in_place=_fault_layer,
        ),
        marks=FUSE_AS_ROOT,
        id="power_loss",
    ),
    pytest.param(
        Interrupted(
            _written(
                "long.yaml",
                IO_FAULTS.format(duration="10m", faults="{action: io_errors, at: 1s, for: 5m, methods: [write]}"),
            ),
            in_place=_fault_layer,
            opened=_io_fault_set,
            undone=_io_fault_cleared,
        ),
        marks=FUSE_AS_ROOT,
        id="io_errors",
    ),
    pytest.param(
        Interrupted(
            lambda directory: nfs.scenario_file(directory, "server: embedded", duration="5m", faults="[]"),
            in_place=lambda line: True,  # the server, the client and its mount
        ),
        marks=nfs.pytestmark,
        id="nfs",
    ),
    pytest.param(
        Interrupted(
            lambda directory: iscsi.scenario_file(directory, "embedded", duration="5m", faults="[]"),
            in_place=lambda line: True,  # the server, the client, its loop device and mount
        ),
        marks=iscsi.pytestmark,
        id="iscsi",
    ),
    pytest.param(
        Interrupted(
            lambda directory: ceph.scenario_file(directory, "backend: cephfs, monitors: embedded", duration="5m"),
            in_place=lambda line: "ceph-fuse" in line,  # the embedded cluster's daemons, ceph-fuse and its mount
        ),
        marks=ceph.pytestmark,
        id="cephfs",
    ),
]


@pytest.mark.slow
@pytest.mark.parametrize("run", RUNS)
def test_ctrl_c_leaves_nothing_behind(run: Interrupted, area: tuple[Path, Path], tmp_path: Path) -> None:
    reports, work = area
    stopped, before = interrupt_during_load(
        run.scenario(tmp_path), reports, work, first=lambda result_file: run.opened(work, result_file.parent)
    )
    assert any(run.in_place(line) for line in before), before
    stopped.expect(130)
    assert stopped.result.interrupted
    run.undone(stopped)
    assert left_behind(work) == [] and list(work.iterdir()) == []
