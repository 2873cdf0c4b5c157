"""The full run on real network storage through a kernel mount: NFS-Ganesha (NFSv4) and tgt (iSCSI) on loopback.

These need a kernel NFS client / iSCSI initiator, which ordinary Linux hosts have and this project's CI machines do
not (no nfs in /proc/filesystems, no iscsi_tcp): there they are skipped with that reason. The doctor's user-space
checks of the same servers run everywhere (tests/doctor/).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.datapath.mounts import kernel_filesystems
from harness.datapath.servers import start_ganesha, start_tgt
from harness.results.model import Status
from tests.cli import CliRun, harness_cli

ROOT = Path(__file__).resolve().parent.parent

pytestmark = [
    pytest.mark.root(reason="mounting needs root"),
    pytest.mark.slow,
]


def _modprobe(module: str) -> None:
    """Load a kernel module where the host has it; without kmod there is nothing to load it with."""
    if shutil.which("modprobe") is not None:
        subprocess.run(["modprobe", module], capture_output=True, check=False, timeout=60)


def _can_mount_nfs() -> str | None:
    if not {"nfs", "nfs4"} & kernel_filesystems():
        _modprobe("nfs")
    if not {"nfs", "nfs4"} & kernel_filesystems():
        return "this kernel has no NFS client (nfs/nfs4 not in /proc/filesystems, modprobe nfs failed)"
    if shutil.which("mount.nfs4") is None:
        return "mount.nfs4 is missing (Debian package nfs-common)"
    return None


def _can_login_iscsi() -> str | None:
    if shutil.which("iscsiadm") is None:
        return "no iSCSI initiator: iscsiadm is missing (Debian package open-iscsi)"
    if not Path("/sys/module/iscsi_tcp").exists():
        _modprobe("iscsi_tcp")
    if not Path("/sys/module/iscsi_tcp").exists():
        return "this kernel has no iSCSI initiator (module iscsi_tcp not available)"
    return None


def _run(scenario: Path, reports: Path) -> CliRun:
    return harness_cli("run", str(scenario), "--reports", str(reports), timeout_s=600)


@pytest.fixture
def nfs_mount(public_tmp: Path) -> Iterator[tuple[int, Path]]:
    reason = _can_mount_nfs()
    if reason:
        pytest.skip(reason)
    export = public_tmp / "export"
    export.mkdir()
    # The kube-prometheus-stack uid owns the export, as the field notes' fix has it.
    os.chown(export, 1000, 2000)
    server = start_ganesha(public_tmp, export)
    mnt = public_tmp / "mnt"
    mnt.mkdir()
    try:
        subprocess.run(
            ["mount", "-t", "nfs4", "-o", f"port={server.port},vers=4.1", "127.0.0.1:/export", str(mnt)],
            check=True,
            capture_output=True,
            timeout=60,
        )
        yield server.port, mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True, check=False, timeout=60)
        server.stop()


def test_nfs_pv_keeps_history_across_sigkill_and_reschedule(nfs_mount: tuple[int, Path], tmp_path: Path) -> None:
    port, mnt = nfs_mount
    scenario = tmp_path / "nfs.yaml"
    scenario.write_text(
        "name: nfs-loopback\nduration: 12s\n"
        f"storage: {{backend: nfs, server: 127.0.0.1, port: {port}, export: /export, mount_path: {mnt}}}\n"
        "prometheus: {security_context: {fs_group: null}}\n"
        "loads: {tsdb: {series: 200}, fio: [{profile: wal-append, runtime: 2s, size: 16Mi}]}\n"
        "faults: [{action: sigkill, at: 4s}, {action: reschedule, at: 8s}]\n"
    )
    result = _run(scenario, tmp_path / "reports").expect(0).result
    assert result.verdict is Status.PASSED
    assert result.environment.data_filesystem and result.environment.data_filesystem.startswith("nfs")


def test_iscsi_pv_keeps_history(public_tmp: Path, tmp_path: Path) -> None:
    reason = _can_login_iscsi()
    if reason:
        pytest.skip(reason)
    lun = public_tmp / "lun.img"
    with lun.open("wb") as f:
        f.truncate(512 * 1024**2)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(lun)], check=True)
    target = start_tgt(public_tmp)
    mnt = public_tmp / "mnt"
    mnt.mkdir()
    try:
        target.add_lun(1, lun)
        subprocess.run(["iscsiadm", "-m", "discovery", "-t", "st", "-p", target.portal], check=True, timeout=60)
        subprocess.run(["iscsiadm", "-m", "node", "-T", target.iqn, "-p", target.portal, "--login"], check=True)
        device = next(Path("/dev/disk/by-path").glob(f"*{target.iqn}-lun-1"))
        subprocess.run(["mount", str(device), str(mnt)], check=True, timeout=60)
        scenario = tmp_path / "iscsi.yaml"
        scenario.write_text(
            "name: iscsi-loopback\nduration: 10s\n"
            f"storage: {{backend: iscsi, target_portal: '{target.portal}', iqn: '{target.iqn}', lun: 1, "
            f"mount_path: {mnt}}}\n"
            "loads: {tsdb: {series: 200}}\nfaults: [{action: sigkill, at: 4s}]\n"
        )
        _run(scenario, tmp_path / "reports").expect(0)
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True, check=False)
        subprocess.run(["iscsiadm", "-m", "node", "-T", target.iqn, "--logout"], capture_output=True, check=False)
        target.stop()
