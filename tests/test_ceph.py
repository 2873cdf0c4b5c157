"""Ceph end to end with no kernel client: CephFS through ceph-fuse and RBD through librbd in qemu-storage-daemon
(over FUSE and a loop device), against a real single-host cluster on 127.0.0.1.

One cluster (``harness.datapath.ceph_cluster``, as ``monitors: embedded`` starts it) is shared by the tests that
treat it as a cluster the user names: a run on it with fio through the path, and every wrong setting, which must end
in exit 2 within 30 s naming what to check, with nothing left running or mounted. The embedded cluster's own life
(started by the run, stopped at its end, by Ctrl-C and by ``harness cleanup`` after a SIGKILL) is tested with runs of
their own here, in tests/test_ctrl_c.py and through the shipped files' conformance rows.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.datapath.ceph_cluster import CephCluster
from harness.proc import free_port
from tests.ceph_cluster import module_ceph
from tests.leftovers import cleanup, left_behind, run, run_argv, sigkill_during_load, wait_for_load_phase

pytestmark = [
    pytest.mark.root(reason="a loop device, FUSE mounts other users may enter, and a mount need root"),
    pytest.mark.slow,
    pytest.mark.skipif(
        shutil.which("ceph-osd") is None or shutil.which("ceph-fuse") is None,
        reason="Ceph is missing (Debian packages ceph-mon ceph-mgr ceph-osd ceph-mds ceph-fuse ceph-common)",
    ),
    pytest.mark.skipif(
        shutil.which("qemu-storage-daemon") is None,
        reason="qemu-storage-daemon is missing (Debian packages qemu-system-common qemu-block-extra)",
    ),
    pytest.mark.skipif(not Path("/dev/fuse").exists(), reason="no /dev/fuse: FUSE is not available here"),
]


def scenario_file(directory: Path, storage: str, *, duration: str = "4s", fio: bool = False) -> Path:
    """A small run on Ceph storage (``storage``: the section's keys, flow style, without the braces)."""
    path = directory / "ceph.yaml"
    jobs = "[{profile: wal-append, runtime: 1s, size: 16Mi}]" if fio else "[]"
    path.write_text(
        f"name: ceph-test\nduration: {duration}\nstorage: {{{storage}}}\n"
        f"loads: {{tsdb: {{series: 50, interval: 1s}}, fio: {jobs}}}\nfaults: []\n"
    )
    return path


@pytest.fixture(scope="module")
def cluster() -> Iterator[CephCluster]:
    """A cluster with a CephFS volume and an RBD pool, as a user would name it (monitors and client.admin's key)."""
    with module_ceph("harness-ceph-", "/tmp") as started:
        yield started


def named(cluster: CephCluster, **keys: str) -> str:
    """The storage keys that name ``cluster`` as a user's own (``keys`` override or add)."""
    given = {"monitors": cluster.monitors, "keyring": str(cluster.admin_keyring), **keys}
    return ", ".join(f"{k}: '{v}'" for k, v in given.items())


def test_a_named_cluster_takes_an_rbd_run_with_fio_and_the_run_leaves_nothing(
    cluster: CephCluster, area: tuple[Path, Path], tmp_path: Path
) -> None:
    reports, work = area
    scenario = scenario_file(tmp_path, "backend: rbd, " + named(cluster, size="256Mi"), fio=True)
    done = run(scenario, reports, work).expect(0)
    result = json.loads(done.result_files[0].read_text())
    access = result["environment"]["data_access"]
    assert "RBD via user-space librbd (qemu-storage-daemon, FUSE export) + loop device" in access, access
    assert "librbd cache off (cache.direct=on)" in access and "formatted ext4 by this run" in access
    assert result["environment"]["data_filesystem"] == "ext4"
    assert [f["name"] for f in result["fio"]] == ["wal-append"] and result["fio"][0]["write"]["bw_bytes_per_s"] > 0
    assert left_behind(work) == []
    # The image the run created went with it; the cluster is as it was.
    assert cluster.admin.rbd("ls", "rbd").split() == []


BAD = {
    "a wrong key": (
        "cephfs",
        {"keyring": "WRONG_KEYRING"},
        "Check the user and its key (storage.user 'admin', storage.keyring or storage.secret_file",
    ),
    "a missing file system": (
        "cephfs",
        {"fs_name": "nofs"},
        "the file system 'nofs' does not exist on the cluster",
    ),
    "a missing pool": ("rbd", {"pool": "nopool"}, "the pool 'nopool' does not exist on the cluster"),
    "a missing image": ("rbd", {"image": "absent"}, "the image rbd/absent does not exist on the cluster"),
    "unreachable monitors": ("cephfs", {"monitors": "UNREACHABLE"}, "Check the monitors (none answered within 10 s"),
}


@pytest.mark.parametrize("case", list(BAD), ids=[c.replace(" ", "-") for c in BAD])
def test_a_wrong_setting_ends_in_exit_2_within_30_s_naming_what_to_check(
    case: str, cluster: CephCluster, area: tuple[Path, Path], tmp_path: Path
) -> None:
    reports, work = area
    backend, keys, said = BAD[case]
    if keys.get("keyring") == "WRONG_KEYRING":
        wrong = tmp_path / "wrong.keyring"
        # A well-formed key that is not client.admin's.
        subprocess.run(
            ["ceph-authtool", "--create-keyring", str(wrong), "--gen-key", "-n", "client.admin"],
            check=True,
            capture_output=True,
        )
        keys = {"keyring": str(wrong)}
    if keys.get("monitors") == "UNREACHABLE":
        keys = {"monitors": f"127.0.0.1:{free_port()}"}
    scenario = scenario_file(tmp_path, f"backend: {backend}, " + named(cluster, **keys))
    started = time.monotonic()
    out = run(scenario, reports, work).expect(2).output
    assert time.monotonic() - started < 30, out
    assert said in " ".join(out.split()) and "Traceback" not in out, out
    assert left_behind(work) == []


def test_a_dead_ceph_fuse_fails_the_next_pod_and_its_dead_mount_is_unmounted(
    cluster: CephCluster, area: tuple[Path, Path], tmp_path: Path
) -> None:
    """ceph-fuse killed under Prometheus (a crash, the OOM killer, a CSI node plugin restart): its mount answers
    `Transport endpoint is not connected`; the pod restart after it cannot use the volume, which is the storage's
    failure (exit 1), and the run still leaves nothing mounted or running."""
    reports, work = area
    scenario = scenario_file(tmp_path, "backend: cephfs, " + named(cluster), duration="10s")
    scenario.write_text(scenario.read_text().replace("faults: []", "faults: [{action: restart, at: 6s}]"))
    proc = subprocess.Popen(
        run_argv(scenario, reports, work), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        assert wait_for_load_phase(reports, proc) is not None
        [fuse] = [line.split()[0] for line in _ps() if "ceph-fuse" in line and str(work) in line]
        os.kill(int(fuse), signal.SIGKILL)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=30)
    said = " ".join(out.split())
    assert proc.returncode == 1, out
    assert (
        f"the new pod cannot use its volume: ceph-fuse (pid {fuse}) exited with code -9, its mount is dead: "
        "Transport endpoint is not connected" in said
    ), out
    assert "FAILED recovery" in said and "Traceback" not in out
    assert left_behind(work) == [] and list(work.iterdir()) == []


def _ps() -> list[str]:
    return subprocess.run(
        ["ps", "-ww", "-eo", "pid,args"], capture_output=True, text=True, check=True
    ).stdout.splitlines()


def test_cleanup_after_a_sigkilled_rbd_run_leaves_no_daemon_mount_or_loop_device(
    area: tuple[Path, Path], tmp_path: Path
) -> None:
    """The embedded cluster's daemons and qemu-storage-daemon die with the run (PR_SET_PDEATHSIG); its FUSE export,
    the loop device on it and the ext4 mount stay until `harness cleanup` removes them."""
    reports, work = area
    scenario = scenario_file(tmp_path, "backend: rbd, monitors: embedded, size: 256Mi", duration="5m")
    run_id = json.loads(sigkill_during_load(run_argv(scenario, reports, work), reports).read_text())["run_id"]
    [workdir] = work.glob(f"prom-harness-{run_id}-*")
    left = left_behind(workdir)
    assert any("rbd-image-" in line and "fuse" in line for line in left), left  # the FUSE export
    assert any("rbd-mnt-" in line for line in left), left  # the ext4 mount
    done = cleanup("--run", run_id, "--workdir", str(work)).expect(0)
    assert "removed loop device" in done.stdout and "removed mount" in done.stdout, done.stdout
    assert f"removed work directory {workdir}" in done.stdout
    assert left_behind(workdir) == [] and not workdir.exists()
    assert not [line for line in _ps() if str(workdir) in line]
