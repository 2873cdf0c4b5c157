"""The Ceph faults on the local runtime against an embedded single-host cluster, in one run: ``ceph_osd_down`` ends
as docs/faults/ceph.md predicts (CephFS: ceph-fuse's cache absorbs the outage, the OSD comes back with its
placement groups active, nothing acknowledged is lost), and so does ``ceph_mds_restart`` (the MDS exits on SIGTERM,
comes back through replay, reconnect and rejoin; Prometheus' appends to its open WAL segment go on): exit 0. Each is
refused before anything starts against a cluster the run did not start (and the MDS on RBD), in its capability's
words. ``ceph_client_crash`` is shown by scenarios/ceph-client-crash.yaml's conformance row (exit 1)."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.leftovers import run

DAEMONS_DOWN = """
name: ceph-daemons-down
duration: 14s
storage: {backend: cephfs, monitors: embedded, embedded: {osd_size: 4Gi}, fs_name: cephfs}
prometheus: {scrape_interval: 2s, ready_timeout: 30s}
loads: {tsdb: {mode: remote_write, series: 500, interval: 1s}}
faults:
  - {action: ceph_osd_down, at: 2s, for: 4s}
  - {action: ceph_mds_restart, at: 11s, for: 4s}
checks: {history_survival: {max_samples_lost: 0}}
"""


@pytest.mark.slow
@pytest.mark.root(reason="ceph-fuse mounts for Prometheus' uid need root")
@pytest.mark.skipif(
    shutil.which("ceph-osd") is None or shutil.which("ceph-fuse") is None,
    reason="Ceph is missing (Debian packages ceph-mon ceph-mgr ceph-osd ceph-mds ceph-fuse ceph-common)",
)
@pytest.mark.skipif(not Path("/dev/fuse").exists(), reason="no /dev/fuse: FUSE is not available here")
def test_an_osd_and_then_the_mds_down_for_a_while_under_cephfs_lose_nothing_and_recover_by_stage(
    tmp_path: Path,
) -> None:
    scenario = tmp_path / "daemons.yaml"
    scenario.write_text(DAEMONS_DOWN)
    work = Path(tempfile.mkdtemp(prefix="harness-osd-", dir="/var/tmp"))  # BlueStore needs O_DIRECT: not tmpfs
    work.chmod(0o755)
    try:
        done = run(scenario, tmp_path / "reports", work).expect(0)
        [result_file] = done.result_files
        result = json.loads(Path(result_file).read_text())
        osd, mds = result["faults"]
        assert osd["status"] == "PASSED" and "osd.0" in osd["detail"], osd
        assert "the monitor counts 0 OSD(s) up" in osd["detail"] and "placement group active" in osd["detail"]
        assert mds["status"] == "PASSED" and "mds.a" in mds["detail"], mds
        assert "the file system cephfs lists no MDS" in mds["detail"], mds["detail"]
        assert "(through replay -> reconnect -> rejoin -> active)" in mds["detail"], mds["detail"]
        for fault in (osd, mds):
            stages = [s["stage"] for s in fault["stages"]]
            assert stages[:2] == ["injected", "lifted"] and stages[-1] == "first_sample", stages
            assert fault["lifted_at_s"] - fault["injected_at_s"] >= 4  # down for `for`, then back
            assert fault["write_failures"] == {}, fault  # the load saw nothing (ceph-fuse held the writes)
        # Not tests.leftovers.left_behind: its `losetup -a` waits on any loop device of the host whose file hangs.
        mounts = [line for line in Path("/proc/self/mountinfo").read_text().splitlines() if str(work) in line]
        ps = subprocess.run(["ps", "-ww", "-eo", "args"], capture_output=True, text=True, check=True).stdout
        assert mounts == [] and str(work) not in ps and not list(work.iterdir()), (mounts, ps)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def test_an_osd_of_a_cluster_the_run_did_not_start_is_never_stopped(tmp_path: Path) -> None:
    scenario = tmp_path / "theirs.yaml"
    scenario.write_text(
        "name: theirs\nduration: 9s\n"
        "storage: {backend: rbd, monitors: '10.0.0.1:6789', keyring: /etc/ceph/k, pool: rbd, size: 1Gi}\n"
        "faults: [{action: ceph_osd_down, at: 2s, for: 4s}]\n"
    )
    done = run(scenario, tmp_path / "reports", tmp_path).expect(2)
    said = " ".join(done.stderr.split())
    assert "stop and start an OSD" in said and "never a daemon of someone else's cluster" in said, said
    assert "Traceback" not in done.output and done.result_files == []


def test_the_mds_is_restarted_only_on_cephfs_of_a_cluster_the_run_started(tmp_path: Path) -> None:
    scenario = tmp_path / "mds.yaml"
    for storage, said in (
        ("{backend: rbd, monitors: embedded, pool: rbd, size: 1Gi}", "storage.backend rbd has no CephFS metadata"),
        (
            "{backend: cephfs, monitors: '10.0.0.1:6789', keyring: /etc/ceph/k, fs_name: cephfs}",
            "never a daemon of someone else's cluster",
        ),
    ):
        scenario.write_text(
            f"name: mds\nduration: 9s\nstorage: {storage}\nfaults: [{{action: ceph_mds_restart, at: 2s, for: 4s}}]\n"
        )
        done = run(scenario, tmp_path / "reports", tmp_path).expect(2)
        words = " ".join(done.stderr.split())
        assert "stop and start the CephFS metadata server" in words and said in words, words
        assert "Traceback" not in done.output and done.result_files == []
