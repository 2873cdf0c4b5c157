"""The Ceph doctor findings (``harness.doctor.ceph``), each against a real single-host cluster put in the state it
names, then put back: pool size 1 (no redundancy), min_size 1 and OSDs up below the pool's size or min_size, the
nearfull and full ratios, HEALTH_WARN named and HEALTH_ERR blocking (a run against it ends in exit 2 before anything
is mounted), no active MDS for CephFS, and a client whose caps lack what the data path needs. One cluster for the
module (about 20 s)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.datapath.ceph_cluster import CephCluster
from harness.doctor.ceph import check_ceph
from harness.results.model import DoctorFinding, Severity
from harness.scenario.model import CephFsStorage, RbdStorage
from harness.wait import wait_for
from tests.ceph_cluster import module_ceph
from tests.leftovers import run

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        shutil.which("ceph-osd") is None or shutil.which("ceph-mds") is None,
        reason="Ceph is missing (Debian packages ceph-mon ceph-mgr ceph-osd ceph-mds ceph-fuse ceph-common)",
    ),
]


@pytest.fixture(scope="module")
def cluster() -> Iterator[CephCluster]:
    with module_ceph("harness-ceph-doctor-", "/var/tmp") as started:
        yield started


def rbd(cluster: CephCluster, **keys: str) -> RbdStorage:
    given = {"backend": "rbd", "monitors": cluster.monitors, "keyring": str(cluster.admin_keyring), "pool": "rbd"}
    return RbdStorage.model_validate({**given, **keys})


def cephfs(cluster: CephCluster) -> CephFsStorage:
    given = {"backend": "cephfs", "monitors": cluster.monitors, "keyring": str(cluster.admin_keyring)}
    return CephFsStorage.model_validate({**given, "fs_name": "cephfs"})


def of(findings: list[DoctorFinding], check: str) -> list[DoctorFinding]:
    return [f for f in findings if f.check == check]


def test_pool_size_one_is_no_redundancy_and_a_healthy_one_osd_cluster_says_nothing_else(cluster: CephCluster) -> None:
    found = check_ceph(rbd(cluster))
    [redundancy] = of(found, "ceph.redundancy")
    assert redundancy.severity is Severity.WARNING and "no redundancy" in redundancy.title, redundancy
    assert "pool rbd: size 1, min_size 1" in redundancy.evidence
    assert not of(found, "ceph.osds") and not of(found, "ceph.full") and not of(found, "ceph.caps"), found
    # HEALTH_OK: the monitor's store warns of a low disk only below 5 % free (MON_DISK_LOW came from Ceph's 30 %).
    assert not of(found, "ceph.health"), found
    assert not [f for f in found if f.severity is Severity.BLOCKER], found
    fs = check_ceph(cephfs(cluster))
    assert len(of(fs, "ceph.redundancy")) == 2 and not of(fs, "ceph.mds"), fs  # its data and metadata pools


def test_fewer_osds_than_size_is_degraded_and_than_min_size_blocks(cluster: CephCluster) -> None:
    admin = cluster.admin
    try:
        admin.ceph("osd", "pool", "set", "rbd", "size", "2")
        admin.ceph("osd", "pool", "set", "rbd", "min_size", "1")
        found = check_ceph(rbd(cluster))
        [osds] = of(found, "ceph.osds")
        assert (
            osds.severity is Severity.WARNING
            and "degraded" in osds.title
            and "ceph osd dump: 1 of 1 OSD(s) up" in osds.evidence
        )
        [min_one] = of(found, "ceph.redundancy")
        assert "min_size 1 of size 2" in min_one.title, min_one

        def warned() -> list[DoctorFinding] | None:
            health = [f for f in of(check_ceph(rbd(cluster)), "ceph.health") if "PG_DEGRADED" in f.title]
            return health or None

        [health] = wait_for(warned, what="Ceph to raise PG_DEGRADED", timeout_s=30, interval_s=1)
        assert health.severity is Severity.WARNING and "HEALTH_WARN" in health.title, health

        admin.ceph("osd", "pool", "set", "rbd", "min_size", "2")
        [blocked] = of(check_ceph(rbd(cluster)), "ceph.osds")
        assert blocked.severity is Severity.BLOCKER and "its I/O blocks" in blocked.title, blocked
    finally:
        admin.ceph("osd", "pool", "set", "rbd", "min_size", "1")
        admin.ceph("osd", "pool", "set", "rbd", "size", "1", "--yes-i-really-mean-it")


def test_nearfull_warns_and_full_blocks(cluster: CephCluster) -> None:
    admin = cluster.admin
    try:
        admin.ceph("osd", "set-nearfull-ratio", "0.001")
        [near] = of(check_ceph(rbd(cluster)), "ceph.full")
        assert (
            near.severity is Severity.WARNING
            and "nearly full" in near.title
            and "nearfull_ratio 0.001" in near.evidence
        )
        admin.ceph("osd", "set-backfillfull-ratio", "0.0015")
        admin.ceph("osd", "set-full-ratio", "0.002")
        [full] = of(check_ceph(rbd(cluster)), "ceph.full")
        assert full.severity is Severity.BLOCKER and "refuses writes" in full.title, full
    finally:
        admin.ceph("osd", "set-full-ratio", "0.95")
        admin.ceph("osd", "set-backfillfull-ratio", "0.9")
        admin.ceph("osd", "set-nearfull-ratio", "0.85")

        def cleared() -> bool:
            return not any("FULL" in f.title for f in of(check_ceph(rbd(cluster)), "ceph.health"))

        wait_for(cleared, what="Ceph to clear its full and nearfull flags", timeout_s=60, interval_s=1)


def test_no_active_mds_blocks_and_health_err_stops_a_run_with_exit_2(cluster: CephCluster, tmp_path: Path) -> None:
    admin = cluster.admin
    try:
        admin.ceph("fs", "fail", "cephfs")

        def errored() -> list[DoctorFinding] | None:
            found = check_ceph(cephfs(cluster))
            return found if any(f.check == "ceph.health" and f.severity is Severity.BLOCKER for f in found) else None

        found = wait_for(errored, what="Ceph to raise HEALTH_ERR", timeout_s=30, interval_s=1)
        [health] = of(found, "ceph.health")
        assert "HEALTH_ERR" in health.title and "MDS_ALL_DOWN" in health.title, health
        [mds] = of(found, "ceph.mds")
        assert mds.severity is Severity.BLOCKER and "No MDS is active for the file system cephfs" in mds.title, mds

        scenario = tmp_path / "s.yaml"
        storage = (
            f"{{backend: cephfs, monitors: '{cluster.monitors}', keyring: '{cluster.admin_keyring}', fs_name: cephfs}}"
        )
        scenario.write_text(f"name: ceph-err\nduration: 5s\nstorage: {storage}\nloads: {{tsdb: {{series: 10}}}}\n")
        work = tmp_path / "work"
        work.mkdir()
        done = run(scenario, tmp_path / "reports", work).expect(2)
        assert "HEALTH_ERR" in done.stderr and "Traceback" not in done.output, done.output
        assert not list(work.glob("prom-harness-*"))  # refused by the doctor before anything was made or mounted
    finally:
        admin.ceph("fs", "set", "cephfs", "joinable", "true")

        def active() -> bool:
            return not of(check_ceph(cephfs(cluster)), "ceph.mds")

        wait_for(active, what="the MDS active again", timeout_s=60, interval_s=1)


def test_caps_that_lack_what_the_data_path_needs_block(cluster: CephCluster, tmp_path: Path) -> None:
    admin = cluster.admin
    keyring = tmp_path / "client.limited.keyring"
    admin.ceph(
        "auth", "get-or-create", "client.limited", "mon", 'allow r, allow command "auth get"', "-o", str(keyring)
    )
    blind_keyring = tmp_path / "client.blind.keyring"
    admin.ceph("auth", "get-or-create", "client.blind", "mon", "allow r", "-o", str(blind_keyring))
    try:
        spec = CephFsStorage.model_validate(
            {
                "backend": "cephfs",
                "monitors": cluster.monitors,
                "keyring": str(keyring),
                "user": "limited",
                "fs_name": "cephfs",
            }
        )
        [caps] = of(check_ceph(spec), "ceph.caps")
        assert caps.severity is Severity.BLOCKER and "osd, mds" in caps.title, caps
        blind = rbd(cluster, keyring=str(blind_keyring), user="blind")
        [unread] = of(check_ceph(blind), "ceph.caps")
        assert unread.severity is Severity.INFO and "may not read its own caps" in unread.title, unread
    finally:
        admin.ceph("auth", "del", "client.limited")
        admin.ceph("auth", "del", "client.blind")
