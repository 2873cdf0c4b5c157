"""The field notes' iSCSI PV on the local cluster, attached, formatted and mounted by the kubelet's own iSCSI plugin.

This kernel has no iSCSI initiator; the test bed gives each kubelet a user-space one (testbed/iscsi_helper.py: an
``iscsiadm`` that attaches the LUN with qemu-storage-daemon and a loop device, and the sysfs and by-path entries
the plugin reads, in the kubelet's own mount namespace). Everything else is the kubelet's: the login calls, the
wait for the device, ``blkid``, ``mkfs.ext4`` of a blank disk, the refusal of a partitioned one, the mount, the
logout after the unmount. The target is a tgt of the test's own on 127.0.0.1, which the nodes share with this host.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.datapath import kept_server
from harness.datapath.servers import IscsiTarget, start_tgt
from harness.doctor.iscsi import check_iscsi
from harness.results.model import Severity, Status
from harness.results.store import load_result
from harness.scenario.loader import load_scenario
from harness.scenario.storage import IscsiStorage
from testbed import config, iscsi_helper
from tests.k8s.helpers import assert_cleaned_objects_then_server, assert_nothing_left, harness_run, write_scenario
from tests.leftovers import cleanup, left_behind, run_argv, sigkill_during_load

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.slow,
    pytest.mark.skipif(not Path("/dev/fuse").exists(), reason="the nodes' user-space iSCSI initiator needs FUSE"),
]

IQN = "iqn.2020-02.com:wsg"  # the field notes' target
LEFTOVERS_TIMEOUT_S = 60  # the kubelet unmounts and logs out within seconds of the pod's deletion


@pytest.fixture
def target(tmp_path: Path, local_cluster: bool) -> Iterator[IscsiTarget]:
    if not local_cluster:
        pytest.skip("the target runs on this host's 127.0.0.1, which only the local cluster's nodes share")
    server = start_tgt(tmp_path / "tgt", iqn=IQN)
    try:
        yield server
    finally:
        server.stop()


def lun_file(tmp_path: Path, layout: str) -> Path:
    path = tmp_path / f"{layout}.img"
    with path.open("wb") as f:
        f.truncate(1024**3)
    if layout == "ext4":
        subprocess.run(["mkfs.ext4", "-q", "-F", "-m0", str(path)], check=True, capture_output=True, timeout=120)
    elif layout == "partitioned":  # what the field notes had: a partition table, the filesystem (if any) inside
        subprocess.run(["sgdisk", "-n", "1:0:0", "-t", "1:8300", str(path)], check=True, capture_output=True)
    return path


def scenario(tmp_path: Path, portal: str, tag: str, *, duration: str, faults: str = "", extra: str = "") -> Path:
    return write_scenario(
        tmp_path,
        f"""
version: 1
name: k8s-iscsi
duration: {duration}
storage:
  backend: iscsi
  target_portal: "{portal}"
  iqn: {IQN}
  lun: 1
  fs_type: ext4
  claim: {{storage_class: "", size: 1Gi, selector: {{app: wsg-prometheus-{tag}}}}}
  volume: {{name: harness-iscsi-{tag}, labels: {{app: wsg-prometheus-{tag}}}}}
loads: {{tsdb: {{series: 200, interval: 1s}}}}
{faults}{extra}""",
    )


def assert_logged_out(portal: str) -> None:
    """No session, loop device, qemu-storage-daemon or FUSE mount of this target left on any node (bounded)."""
    deadline = time.monotonic() + LEFTOVERS_TIMEOUT_S
    left: list[str] = []
    while time.monotonic() < deadline:
        left = [f"{n.name}: {x}" for n in config.nodes() for x in iscsi_helper.leftovers(n, portal)]
        if not left:
            return
        time.sleep(0.5)
    raise AssertionError(f"after {LEFTOVERS_TIMEOUT_S} s the kubelets still had logins to {portal}: {left}")


def blkid_type(path: Path) -> str:
    out = subprocess.run(
        ["blkid", "-p", "-o", "export", str(path)], check=False, capture_output=True, text=True, timeout=30
    )
    return dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line).get("TYPE", "")


def debugfs_ls(path: Path) -> str:
    out = subprocess.run(
        ["debugfs", "-R", "ls -l /", str(path)], check=False, capture_output=True, text=True, timeout=30
    )
    return out.stdout


def test_the_field_notes_iscsi_pv_is_formatted_by_the_kubelet_and_keeps_everything_through_sigkill_and_restart(
    kubeconfig: Path, api_client: Any, tmp_path: Path, target: IscsiTarget
) -> None:
    """The notes' PV (portal, IQN, LUN 1, fsType ext4) on a blank LUN: it binds, the kubelet logs in, finds no
    filesystem and formats the whole disk ext4 (mount-utils' mkfs), Prometheus is Ready on it and keeps every
    acknowledged sample over SIGKILL and a pod restart (whose new mount found the filesystem and did not format it
    again: the samples before it are there); the kubelet's logout after the run leaves nothing of the login."""
    lun = lun_file(tmp_path, "blank")
    target.add_lun(1, lun)
    tag = uuid.uuid4().hex[:8]
    faults = "faults:\n  - {action: sigkill, at: 6s}\n  - {action: restart, at: 12s}\n"
    scenario_file = scenario(tmp_path, target.portal, tag, duration="20s", faults=faults)
    proc = harness_run(scenario_file, tmp_path / "r", kubeconfig)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    [result_file] = (tmp_path / "r").glob("*/*/result.json")
    result = load_result(result_file.parent)
    assert result.verdict is Status.PASSED and [f.status for f in result.faults] == [Status.PASSED] * 2
    assert all(c.lost == 0 and c.acknowledged > 0 for c in result.durability)
    # The doctor read the LUN from this host before the run: blank, which the kubelet formats (a warning).
    assert any(f.check.startswith("iscsi.") and "blank" in f.title.lower() for f in result.doctor), result.doctor
    assert_nothing_left(api_client, result.run_id, (f"harness-iscsi-{tag}",))
    assert_logged_out(target.portal)
    assert blkid_type(lun) == "ext4"  # on the whole disk: no partition table
    assert "wal" in debugfs_ls(lun), debugfs_ls(lun)  # the TSDB is on the LUN


def test_a_partitioned_lun_gives_the_kubelets_own_mount_error_and_the_doctors_finding(
    kubeconfig: Path, api_client: Any, tmp_path: Path, target: IscsiTarget
) -> None:
    """The notes' trap: the kubelet formats only a blank disk and mounts the whole disk, so a LUN with a partition
    table fails to mount. The doctor, reading the LUN from this host (what `harness run` does first, and stops on),
    says so; past it (--skip-doctor), the run stops within ready_timeout quoting the kubelet's FailedMount (mount(8)'s
    words), and the LUN is untouched."""
    lun = lun_file(tmp_path, "partitioned")
    before = lun.read_bytes()[: 34 * 512]
    target.add_lun(1, lun)
    tag = uuid.uuid4().hex[:8]
    scenario_file = scenario(tmp_path, target.portal, tag, duration="10s", extra="prometheus: {ready_timeout: 12s}\n")
    storage = load_scenario(scenario_file).storage
    assert isinstance(storage, IscsiStorage)
    findings = check_iscsi(storage)
    assert any(f.severity is Severity.BLOCKER and "partition" in (f.title + f.evidence).lower() for f in findings)

    proc = harness_run(scenario_file, tmp_path / "r", kubeconfig, "--skip-doctor")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    [result_file] = (tmp_path / "r").glob("*/*/result.json")
    result = load_result(result_file.parent)
    error = result.error or ""
    assert "FailedMount" in error and "MountVolume.MountDevice failed" in error, error
    assert "wrong fs type, bad option, bad superblock on /dev/loop" in error, error  # the kubelet's mount(8)
    assert "Traceback" not in proc.stdout + proc.stderr
    assert lun.read_bytes()[: 34 * 512] == before  # never formatted
    assert_nothing_left(api_client, result.run_id, (f"harness-iscsi-{tag}",))
    # The kubelet does not log out after a failed mount (nor does it on a real node); the test bed's session is
    # a daemon and a loop device, so the test logs it out once the PV is gone.
    for node in config.nodes():
        iscsi_helper.logout_idle(node, target.portal)
    assert_logged_out(target.portal)


def killed_run_scenario(tmp_path: Path, tag: str, faults: str) -> Path:
    return write_scenario(
        tmp_path,
        f"""
version: 1
name: k8s-iscsi-killed
duration: 2m
storage:
  backend: iscsi
  target_portal: embedded
  embedded: {{layout: blank, size: 256Mi}}
  iqn: {IQN}
  lun: 1
  fs_type: ext4
  claim: {{storage_class: "", size: 256Mi}}
  volume: {{name: harness-iscsi-{tag}}}
loads: {{tsdb: {{series: 100, interval: 1s}}}}
{faults}""",
    )


def kept_record(work: Path) -> kept_server.ServerRecord | None:
    """The killed run's record of its embedded tgtd (harness.datapath.kept_server), if it wrote one yet."""
    found = next(work.glob(f"*/{kept_server.SERVER_DIR}/{kept_server.RECORD_NAME}"), None)
    return None if found is None else kept_server.read(found)


def replacement_timeouts(portal: str) -> list[str]:
    """The lines in which a node's initiator gave up on ``portal`` (testbed/iscsiadm_shim.py's watcher: the target
    refused connections for its replacement timeout): a kubelet that had to unmount from a dead target."""
    return [
        f"{n.name}: {line}"
        for n in config.nodes()
        for log in [iscsi_helper.iscsi_dir(n).parent / "var-log" / "kern.log"]
        if log.exists()
        for line in log.read_text(errors="replace").splitlines()
        if f"{portal} unreachable" in line
    ]


def test_cleanup_of_a_sigkilled_run_removes_its_cluster_objects_first_and_its_kept_target_last(
    kubeconfig: Path, kube_context: str, api_client: Any, tmp_path: Path, local_cluster: bool
) -> None:
    """Issue 24, the killed run whose embedded tgtd serves a node: SIGKILLed during its load, the run's tgtd does
    not die with it (it would leave the node's initiator with a dead target under a mounted filesystem): after the
    SIGKILL it still runs, from the record in the run's work area, and the node's session is still connected to it
    with the pod's filesystem mounted. `harness cleanup` deletes the namespace and the PV first, waits for the
    kubelet to unmount and log out (its connection closes), then stops tgtd, then removes the work area: the
    node never had to give up on a dead target (no replacement-timeout line in any node's kern.log), and nothing
    is left on the host or in any node."""
    from kubernetes import client

    if not local_cluster:
        pytest.skip("the embedded tgt runs on this host's 127.0.0.1, which only the local cluster's nodes share")
    tag = uuid.uuid4().hex[:8]
    reports, work = tmp_path / "r", tmp_path / "work"
    work.mkdir()
    env = {"KUBECONFIG": str(kubeconfig)}
    argv = [*run_argv(killed_run_scenario(tmp_path, tag, ""), reports, work)]
    argv += ["--runtime", "kubernetes", "--context", kube_context]
    result_file = sigkill_during_load(argv, reports, env)
    run_id = load_result(result_file.parent).run_id
    core = client.CoreV1Api(api_client)
    [pv] = core.list_persistent_volume(label_selector=f"harness/run-id={run_id}").items
    portal = pv.spec.iscsi.target_portal
    record = kept_record(work)
    assert record is not None and f"{record.listen}:{record.ports[0]}" == portal, record
    time.sleep(2.0)  # what PR_SET_PDEATHSIG would have done, it has done by now
    assert record.alive(), f"the run's tgtd died with it: {record}"
    # The pod's filesystem is still mounted on its node from that tgtd, through a connected session.
    assert any(iscsi_helper.leftovers(n, portal) for n in config.nodes())
    assert kept_server.clients(record), "no node is connected to the kept tgtd"
    assert core.list_namespaced_pod(f"harness-{run_id}").items, "the pod is gone before cleanup"

    done = cleanup("--run", run_id, "--context", kube_context, "--workdir", str(work), env=env)
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    print(out, done.stderr)  # what cleanup said, for the record
    assert not record.alive()
    assert_nothing_left(api_client, run_id, (f"harness-iscsi-{tag}",))
    assert_logged_out(portal)
    assert replacement_timeouts(portal) == []  # the kubelet logged out while its target was still there
    assert left_behind(work) == []
    assert list(work.iterdir()) == []
    assert_cleaned_objects_then_server(out, run_id, pv.metadata.name, record.describe(), work)


def test_cleanup_of_a_sigkilled_server_restart_run_leaves_nothing_on_the_host_or_in_any_node(
    kubeconfig: Path, kube_context: str, api_client: Any, tmp_path: Path, local_cluster: bool
) -> None:
    """Must-show 3 of issue 24 for a killed run: a kubernetes run on the notes' PV from its own embedded tgt (the
    kubelet's plugin logs in through the nodes' user-space initiator), SIGKILLed while its server_restart has the
    target stopped (its record in the work area says so). Nothing of the run's own undo runs, and cleanup does not
    start a server the run had stopped: the node's initiator fails the volume's I/O after its replacement timeout
    (as open-iscsi does; before it had one, Prometheus and the kubelet's unmount hung for ever). `harness cleanup`
    then removes the run's namespace and PV, after which the kubelet unmounts and logs out, and the run's work area:
    no loop device, FUSE mount, qemu-storage-daemon, tgtd or session of that portal is left on the host or in any
    node."""
    from kubernetes import client

    if not local_cluster:
        pytest.skip("the embedded tgt runs on this host's 127.0.0.1, which only the local cluster's nodes share")
    tag = uuid.uuid4().hex[:8]
    scenario_file = killed_run_scenario(tmp_path, tag, "faults:\n  - {action: server_restart, at: 3s, for: 60s}\n")
    reports, work = tmp_path / "r", tmp_path / "work"
    work.mkdir()
    env = {"KUBECONFIG": str(kubeconfig)}
    argv = [*run_argv(scenario_file, reports, work), "--runtime", "kubernetes", "--context", kube_context]

    def tgtd_stopped() -> bool:
        record = kept_record(work)
        return record is not None and record.state == "halted"

    result_file = sigkill_during_load(argv, reports, env, until=tgtd_stopped)
    run_id = load_result(result_file.parent).run_id
    core = client.CoreV1Api(api_client)
    [pv] = core.list_persistent_volume(label_selector=f"harness/run-id={run_id}").items
    portal = pv.spec.iscsi.target_portal
    assert portal.startswith("127.0.0.1:"), portal
    # The kubelet logged in (its plugin mounted the LUN for the pod): what cleanup must see undone.
    assert any(iscsi_helper.leftovers(n, portal) for n in config.nodes())

    done = cleanup("--run", run_id, "--context", kube_context, "--workdir", str(work), env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"removed namespace harness-{run_id}" in done.stdout, done.stdout
    assert "(it was down: the run's server_restart had stopped it; not started again)" in done.stdout, done.stdout
    assert f"removed work directory {work}" in done.stdout, done.stdout
    assert_nothing_left(api_client, run_id, (f"harness-iscsi-{tag}",))
    assert_logged_out(portal)
    assert left_behind(work) == []  # tgtd, mounts, loop devices of the run's own
    assert list(work.iterdir()) == []
