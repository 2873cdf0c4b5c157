"""iSCSI end to end with no kernel initiator: the harness attaches the LUN itself (qemu-storage-daemon's libiscsi
driver exporting it over FUSE, a loop device, a mount) against a real tgt on 127.0.0.1, embedded or external.

The kubelet's rules hold: a blank LUN is formatted with ``fs_type`` and passes; a partitioned LUN is never formatted
(its partition table is intact afterwards) and its mount fails with the system's own error; a wrong portal or IQN
ends in exit 2 within a bounded wait. After every run, interrupted ones too, nothing is left: no process, FUSE
mount, loop device or mount of the run. The run with faults that NFS makes too is in tests/test_data_paths.py, Ctrl-C
in tests/test_ctrl_c.py.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.datapath.servers import IscsiTarget, start_tgt
from harness.results.model import Status
from tests.leftovers import left_behind, run

ROOT = Path(__file__).resolve().parent.parent
IQN = "iqn.2020-02.com:wsg"

pytestmark = [
    pytest.mark.root(reason="a loop device and a mount need root"),
    pytest.mark.slow,
    pytest.mark.skipif(
        shutil.which("qemu-storage-daemon") is None,
        reason="qemu-storage-daemon is missing (Debian packages qemu-system-common qemu-block-extra)",
    ),
    pytest.mark.skipif(not Path("/dev/fuse").exists(), reason="no /dev/fuse: FUSE is not available here"),
]


def scenario_file(
    tmp_path: Path, portal: str, *, iqn: str = IQN, duration: str = "10s", faults: str = "[{action: sigkill, at: 4s}]"
) -> Path:
    path = tmp_path / "iscsi.yaml"
    path.write_text(
        f"name: iscsi-user-space\nduration: {duration}\n"
        f"storage: {{backend: iscsi, client: user-space, target_portal: '{portal}', iqn: '{iqn}', lun: 1, "
        "claim: {storage_class: '', size: 1Gi}}\n"
        "loads: {tsdb: {series: 200}, fio: [{profile: wal-append, runtime: 2s, size: 16Mi}]}\n"
        f"faults: {faults}\n"
    )
    return path


@pytest.fixture
def target(public_tmp: Path) -> Iterator[IscsiTarget]:
    """An external tgt the test owns (the run must attach to it and leave it as it was)."""
    server = start_tgt(public_tmp / "tgt", iqn=IQN)
    try:
        yield server
    finally:
        server.stop()


def test_partitioned_lun_is_never_formatted_and_its_mount_fails(
    area: tuple[Path, Path], tmp_path: Path, target: IscsiTarget, public_tmp: Path
) -> None:
    reports, work = area
    lun = public_tmp / "partitioned.img"
    with lun.open("wb") as f:
        f.truncate(1024**3)
    subprocess.run(["sgdisk", "-n", "1:0:0", "-t", "1:8300", str(lun)], check=True, capture_output=True)
    before = lun.read_bytes()[: 34 * 512]
    target.add_lun(1, lun)
    scenario = scenario_file(tmp_path, target.portal)
    # The doctor stops this run first (tests/doctor); past it, the mount itself must fail as the kubelet's does.
    stopped = run(scenario, reports, work, "--skip-doctor").expect(2)
    out = stopped.output
    assert "holds a gpt partition table, so it was not formatted" in out
    assert "wrong fs type, bad option, bad superblock" in out  # mount(8)'s own words
    assert "Traceback" not in out
    assert lun.read_bytes()[: 34 * 512] == before and before[512:520] == b"EFI PART"
    assert stopped.result.verdict is Status.ERROR
    assert left_behind(work) == []


def test_a_wrong_iqn_or_an_unreachable_portal_exit_2_quickly(
    area: tuple[Path, Path], tmp_path: Path, target: IscsiTarget
) -> None:
    reports, work = area
    closed_port = target.port + 1 if target.port < 65535 else target.port - 1
    for portal, iqn in ((target.portal, "iqn.2020-02.com:nobody"), (f"127.0.0.1:{closed_port}", IQN)):
        scenario = scenario_file(tmp_path, portal, iqn=iqn)
        started = time.monotonic()
        out = run(scenario, reports, work, "--skip-doctor").expect(2).output
        assert f"could not attach {iqn} lun 1 at {portal}" in out and "Traceback" not in out
        assert time.monotonic() - started < 120
        assert left_behind(work) == []
