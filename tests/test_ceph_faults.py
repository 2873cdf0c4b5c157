"""The Ceph faults on the local runtime against an embedded single-host cluster: ``ceph_osd_down`` ends as
docs/faults/ceph.md predicts (CephFS: ceph-fuse's cache absorbs the outage, the OSD comes back with its placement
groups active, nothing acknowledged is lost: exit 0), and is refused before anything starts against a cluster the
run did not start, in its capability's words. ``ceph_client_crash`` is shown by scenarios/ceph-client-crash.yaml's
conformance row (exit 1)."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.leftovers import run

OSD_DOWN = """
name: ceph-osd-down
duration: 9s
storage: {backend: cephfs, monitors: embedded, embedded: {osd_size: 4Gi}, fs_name: cephfs}
prometheus: {scrape_interval: 2s, ready_timeout: 30s}
loads: {tsdb: {mode: remote_write, series: 500, interval: 1s}}
faults: [{action: ceph_osd_down, at: 2s, for: 4s}]
checks: {history_survival: {max_samples_lost: 0}}
"""


@pytest.mark.slow
@pytest.mark.root(reason="ceph-fuse mounts for Prometheus' uid need root")
@pytest.mark.skipif(
    shutil.which("ceph-osd") is None or shutil.which("ceph-fuse") is None,
    reason="Ceph is missing (Debian packages ceph-mon ceph-mgr ceph-osd ceph-mds ceph-fuse ceph-common)",
)
@pytest.mark.skipif(not Path("/dev/fuse").exists(), reason="no /dev/fuse: FUSE is not available here")
def test_an_osd_down_for_a_while_under_cephfs_loses_nothing_and_recovers_by_stage(tmp_path: Path) -> None:
    scenario = tmp_path / "osd.yaml"
    scenario.write_text(OSD_DOWN)
    work = Path(tempfile.mkdtemp(prefix="harness-osd-", dir="/var/tmp"))  # BlueStore needs O_DIRECT: not tmpfs
    work.chmod(0o755)
    try:
        done = run(scenario, tmp_path / "reports", work).expect(0)
        [result_file] = done.result_files
        result = json.loads(Path(result_file).read_text())
        [fault] = result["faults"]
        assert fault["status"] == "PASSED" and "osd.0" in fault["detail"], fault
        assert "the monitor counts 0 OSD(s) up" in fault["detail"] and "placement group active" in fault["detail"]
        stages = [s["stage"] for s in fault["stages"]]
        assert stages[:2] == ["injected", "lifted"] and stages[-1] == "first_sample", stages
        assert fault["lifted_at_s"] - fault["injected_at_s"] >= 4  # the OSD was down for `for`, then came back
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
