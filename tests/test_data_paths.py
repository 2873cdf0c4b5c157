"""The same whole run over each network data path with no kernel client (``client: user-space``): NFS through the
harness's FUSE client against an embedded NFS-Ganesha, iSCSI through qemu-storage-daemon's libiscsi driver against
an embedded tgt. A SIGKILL, a restart and a reschedule lose nothing, fio writes through the path, and the run leaves
nothing; the environment says how the data was reached. What only one path does is tested in its own module
(tests/test_nfs_data_path.py, tests/test_iscsi_data_path.py); Ctrl-C in tests/test_ctrl_c.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.results.model import Environment, Status
from tests import test_iscsi_data_path as iscsi
from tests import test_nfs_data_path as nfs
from tests.leftovers import left_behind, run


@dataclass(frozen=True)
class DataPath:
    scenario: Callable[[Path], Path]  # writes the scenario into the directory given; its path
    environment: Callable[[Environment], None]  # what the stored environment must say of the path


def _nfs_environment(env: Environment) -> None:
    assert env.data_access is not None and "user-space NFS client over FUSE" in env.data_access
    assert "owner 1000:2000 and mode 0755" in env.data_access
    assert env.data_filesystem == "fuse.nfs-user"


def _iscsi_environment(env: Environment) -> None:
    assert env.data_access is not None and "user-space initiator (qemu-storage-daemon, libiscsi)" in env.data_access
    assert "formatted ext4 by this run (the LUN was blank)" in env.data_access
    assert env.data_filesystem == "ext4" and (env.data_device or "").startswith("/dev/loop")
    assert "embedded iSCSI target" in env.extra["storage server"]


PATHS = [
    pytest.param(
        DataPath(
            lambda directory: nfs.scenario_file(
                directory,
                "server: embedded",
                faults="[{action: sigkill, at: 3s}, {action: restart, at: 5s}, {action: reschedule, at: 7s}]",
            ),
            _nfs_environment,
        ),
        marks=nfs.pytestmark,
        id="nfs",
    ),
    pytest.param(
        DataPath(
            lambda directory: iscsi.scenario_file(
                directory,
                "embedded",
                duration="12s",
                faults="[{action: sigkill, at: 3s}, {action: restart, at: 6s}, {action: reschedule, at: 9s}]",
            ),
            _iscsi_environment,
        ),
        marks=iscsi.pytestmark,
        id="iscsi",
    ),
]


@pytest.mark.parametrize("path", PATHS)
def test_embedded_server_keeps_history_across_sigkill_restart_and_reschedule(
    path: DataPath, area: tuple[Path, Path], tmp_path: Path
) -> None:
    reports, work = area
    result = run(path.scenario(tmp_path), reports, work).expect(0).result
    path.environment(result.environment)
    assert result.fio and result.fio[0].write is not None and result.fio[0].write.iops > 0
    assert [f.status for f in result.faults] == [Status.PASSED] * 3
    assert result.durability and all(c.lost == 0 and c.acknowledged > 0 for c in result.durability)
    assert result.verdict is Status.PASSED
    assert left_behind(work) == [] and list(work.iterdir()) == []
