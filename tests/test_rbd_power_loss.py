"""``power_loss`` on RBD (librbd in qemu-storage-daemon over FUSE and a loop device, ext4), with librbd's write-back
cache on and off, on one embedded Ceph cluster the runs name as a user's own.

The cut takes the page cache above the filesystem (the fault layer: what Prometheus wrote but did not fsync) in
both modes. With ``cache: writeback`` it also takes librbd's cache below the filesystem: qemu-storage-daemon is
SIGKILLed, ext4 over the dead disk unmounted, the image attached again by a new daemon and ext4 mounted again
(journal replay) before Prometheus restarts. Either way the acknowledged samples lost must all come after the last
WAL fsync: what Prometheus fsynced is still there, so the storage honours flushes with the cache on.

Broken on purpose, it fails: with QEMU told to drop librbd's flushes (``cache.no-flush=on``) the ``writeback-60s``
run's ext4 no longer mounts after the cut (the fault is FAILED); with the daemon's kill skipped, the old
qemu-storage-daemon is still alive.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.datapath.ceph_cluster import CephCluster
from tests.ceph_cluster import module_ceph
from tests.leftovers import left_behind, run
from tests.test_power_loss import FAULTS, assert_the_cut_lost_what_came_after_the_last_fsync

pytestmark = [
    pytest.mark.root(reason="a loop device, FUSE mounts other users may enter, and a mount need root"),
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("ceph-osd") is None, reason="Ceph is missing (Debian packages ceph-mon ...)"),
    pytest.mark.skipif(
        shutil.which("qemu-storage-daemon") is None,
        reason="qemu-storage-daemon is missing (Debian packages qemu-system-common qemu-block-extra)",
    ),
    pytest.mark.skipif(not Path("/dev/fuse").exists(), reason="no /dev/fuse: FUSE is not available here"),
]

SCENARIO = """
name: rbd-power-loss
duration: 11s
storage: {{backend: rbd, monitors: '{monitors}', keyring: '{keyring}', pool: rbd, size: 256Mi, cache: {cache}}}
loads: {{tsdb: {{series: 50, interval: 1s}}}}
faults: [{faults}]
checks: {{history_survival: {{max_samples_lost: 0}}}}
"""
QSD = re.compile(r"qemu-storage-daemon \(pid (\d+)\)")


@pytest.fixture(scope="module")
def cluster() -> Iterator[CephCluster]:
    with module_ceph("harness-rbd-power-", "/tmp") as started:
        yield started


# The pool's librbd settings for each run: the cache off; on with the cluster's default policy (Pacific: writearound,
# which sends every write to the OSDs at once); on as a true write-back cache that keeps up to a minute of writes, so
# only a flush can have put what Prometheus fsynced on the OSDs before the daemon dies.
MODES = {
    "none": ("none", {}),
    "writeback-default": ("writeback", {}),
    "writeback-60s": (
        "writeback",
        # Write-back from the first write: by default librbd writes through until it sees a flush, which would
        # keep a client that never flushes safe, and hide one whose flushes are lost.
        {
            "rbd_cache_policy": "writeback",
            "rbd_cache_max_dirty_age": "60",
            "rbd_cache_writethrough_until_flush": "false",
        },
    ),
}


def test_power_loss_on_rbd_loses_only_what_came_after_the_last_wal_fsync_with_the_cache_on_and_off(
    cluster: CephCluster, area: tuple[Path, Path], tmp_path: Path
) -> None:
    reports, work = area
    details = {}
    for mode, (cache, pool_config) in MODES.items():
        for key, value in pool_config.items():
            cluster.admin.rbd("config", "pool", "set", "rbd", key, value)
        path = tmp_path / f"{mode}.yaml"
        keys = {"monitors": cluster.monitors, "keyring": cluster.admin_keyring, "cache": cache, "faults": FAULTS}
        path.write_text(SCENARIO.format(**keys))
        try:
            result = run(path, reports / mode, work).expect(1).result
        finally:
            for key in pool_config:
                cluster.admin.rbd("config", "pool", "remove", "rbd", key)
        # The loss is bounded by the last WAL fsync (the SIGTERM's clean shutdown): nothing fsynced was lost.
        cut = assert_the_cut_lost_what_came_after_the_last_fsync(result)
        after_cut = result.durability[2]
        details[mode] = cut.detail
        print(f"{mode}: {after_cut.lost} of {after_cut.acknowledged} lost; {cut.detail}")
        assert left_behind(work) == []
        assert cluster.admin.rbd("ls", "rbd").split() == []  # the run's image went with it
        assert cluster.admin.ceph("osd", "blocklist", "ls").count("127.0.0.1") == 0  # the fence was lifted

    # With the cache on, the cut killed the daemon holding it and a new one attached the image again.
    for mode, policy in (("writeback-default", "policy writearound"), ("writeback-60s", "policy writeback")):
        detail = details[mode]
        assert f"librbd's write-back cache ({policy}" in detail
        assert mode != "writeback-60s" or "unflushed for up to 60 s" in detail
        killed, attached = (int(pid) for pid in QSD.findall(detail)[-2:])
        assert killed != attached and not Path(f"/proc/{killed}").exists()
        assert "fenced (osd blocklist, lifted after)" in detail and "replaying its journal" in detail
    # With it off there is nothing volatile below the filesystem: the cut took the page cache above only.
    assert "below the filesystem it took nothing more (librbd's cache is off (cache.direct=on)" in details["none"]
    assert "SIGKILL to qemu-storage-daemon" not in details["none"]
