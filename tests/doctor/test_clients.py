"""The user-space NFS and iSCSI clients against real NFS-Ganesha and tgt servers on 127.0.0.1."""

from __future__ import annotations

import errno
import subprocess
from pathlib import Path

import pytest

from harness.datapath import nfs_client
from harness.datapath.iscsi_client import IscsiError, IscsiLun, split_portal
from harness.datapath.servers import IscsiTarget, NfsServer


def test_nfs_client_acts_as_the_given_uid(nfs_server: NfsServer) -> None:
    with nfs_client.connect("127.0.0.1", "/export", port=nfs_server.port, version="4", uid=65534, gid=65534) as c:
        root = c.stat("/")
        assert (root.uid, root.gid, root.is_dir) == (1000, 1000, True)
        with pytest.raises(nfs_client.NfsError) as denied:
            c.create("/probe")
        assert denied.value.permission_denied
    with nfs_client.connect("127.0.0.1", "/export", port=nfs_server.port, version="4", uid=1000, gid=2000) as c:
        with c.create("/probe") as f:
            f.write(b"x" * 10_000)  # larger than the 4 KiB libnfs 4.0 can send in one NFSv4 WRITE
            f.fsync()
        c.rename("/probe", "/probe2")
        (entry,) = c.listdir("/")
        assert (entry.name, entry.stat.uid, entry.stat.gid, entry.stat.size_bytes) == ("probe2", 1000, 2000, 10_000)
        c.unlink("/probe2")
        assert not c.exists("/probe2")
    assert (nfs_server.export_dir / "probe2").exists() is False


def test_nfs_client_errors_name_the_operation(nfs_server: NfsServer) -> None:
    with pytest.raises(nfs_client.NfsError) as missing:
        nfs_client.NfsClient(nfs_client.nfs_url("127.0.0.1", "/nope", port=nfs_server.port, version="4", uid=0, gid=0))
    assert missing.value.errno == errno.ENOENT
    assert "mount" in str(missing.value)


def test_nfs_url() -> None:
    url = nfs_client.nfs_url("10.0.0.1", "vol/db", port=2049, version="4.1", uid=1000, gid=2000)
    assert url == "nfs://10.0.0.1/vol/db?version=4&uid=1000&gid=2000"
    assert "nfsport=20490" in nfs_client.nfs_url("h", "/x", port=20490, version="4", uid=0, gid=0)


def test_iscsi_reads_capacity_and_sectors(iscsi_target: IscsiTarget, tmp_path: Path) -> None:
    image = tmp_path / "lun.img"
    subprocess.run(["truncate", "-s", "64M", str(image)], check=True)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-L", "promdata", str(image)], check=True)
    iscsi_target.add_lun(1, image)
    try:
        with IscsiLun(iscsi_target.portal, iscsi_target.iqn, 1) as lun:
            cap = lun.read_capacity()
            assert cap.size_bytes == 64 * 1024**2
            head = lun.read(0, 1024**2, cap)
            assert len(head) == 1024**2
            assert head[1080:1082] == b"\x53\xef"
            assert lun.read(1144, 8, cap) == b"promdata"
            assert head == image.read_bytes()[: 1024**2]
    finally:
        iscsi_target.remove_lun(1)


def test_iscsi_login_errors(iscsi_target: IscsiTarget) -> None:
    with pytest.raises(IscsiError, match="Target not found"):
        IscsiLun(iscsi_target.portal, "iqn.2020-02.com:nope", 1)
    with pytest.raises(IscsiError, match="LOGICAL_UNIT_NOT_SUPPORTED"):
        IscsiLun(iscsi_target.portal, iscsi_target.iqn, 9)


def test_split_portal() -> None:
    assert split_portal("172.17.73.37:3260") == ("172.17.73.37", 3260)
    assert split_portal("target.example") == ("target.example", 3260)
    assert split_portal("[fd00::1]:3261") == ("fd00::1", 3261)
