"""``disk_full`` on the local cluster: a pod of the run's own on Prometheus' node mounts the claim and fills the
volume, a local PV on a loop-mounted ext4 of its own (made here on the node's directory, as an admin mounts a disk
for a local PV). Prometheus, in its pod, rejects every write while the volume is full (the load records the
rejections) and takes writes again once the space is back; the restart after it deletes what was acknowledged after
the fill (prometheus/prometheus#13027, as on the local runtime). A local PV that is only a directory of the node's
filesystem is refused (filling it would fill the node), as an ERROR, and nothing is left."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.datapath.fill import Space
from harness.datapath.mounts import LoopMount, create_loop_mount
from harness.loads.driver import LEDGER_FILE
from harness.loads.ledger import Ledger
from harness.results.model import Status
from harness.results.store import load_result
from tests.k8s.conftest import LocalPv
from tests.k8s.helpers import assert_nothing_left, harness_run, write_scenario
from tests.leftovers import cleanup, run_argv, sigkill_during_load

NO_SPACE = "no space left on device"
pytestmark = [
    pytest.mark.cluster,
    pytest.mark.slow,
    pytest.mark.root(reason="a loop-mounted ext4 for the PV needs root (losetup, mount)"),
    pytest.mark.skipif(shutil.which("mkfs.ext4") is None, reason="no mkfs.ext4 (Debian package e2fsprogs)"),
]


@pytest.fixture
def pv_on_its_own_ext4(local_pv: Callable[[str], LocalPv], tmp_path: Path) -> Iterator[LocalPv]:
    """A local PV whose path is a 256 MiB ext4 of its own, loop-mounted on the node's directory."""
    vol = local_pv("node-1")
    mount: LoopMount = create_loop_mount(
        tmp_path / "pv.img", Path(vol.path), filesystem="ext4", size_bytes=256 << 20, direct_io=False
    )
    try:
        yield vol
    finally:
        mount.unmount()
        mount.image.unlink(missing_ok=True)


def _scenario(name: str, vol: LocalPv, faults: str) -> str:
    return (
        # 5,000 series: a WAL record larger than a page, so ENOSPC always tears one (scenarios/disk-full.yaml).
        f"name: {name}\nduration: 25s\n{vol.storage_yaml()}loads: {{tsdb: {{series: 5000, interval: 1s}}}}\n"
        f"faults: {faults}\nchecks: {{history_survival: {{max_samples_lost: 0}}, max_recovery: 60s}}\n"
    )


def test_a_full_pv_rejects_writes_and_the_restart_after_it_deletes_acknowledged_samples(
    kubeconfig: Path, api_client: Any, tmp_path: Path, pv_on_its_own_ext4: LocalPv
) -> None:
    vol = pv_on_its_own_ext4
    before = Space.of(Path(vol.path))
    text = _scenario("k8s-disk-full", vol, "[{action: disk_full, at: 4s, for: 8s}, {action: sigkill, at: 18s}]")
    reports = tmp_path / "reports"
    proc = harness_run(write_scenario(tmp_path, text), reports, kubeconfig)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    [result_file] = reports.glob("*/*/result.json")
    result = load_result(result_file)
    full, kill = result.faults
    assert (full.action, full.status, kill.status) == ("disk_full", Status.PASSED, Status.PASSED)
    assert "not one more block could be allocated, even as root" in full.detail, full.detail
    assert "ext4 from /dev/loop" in full.detail and "pod harness-" in full.detail

    # While the volume was full: writes rejected with Prometheus' own words, none acknowledged.
    assert full.write_failures.get("rejected", 0) > 0, full.write_failures
    assert any(NO_SPACE in e and e.startswith("HTTP 500") for e in full.write_errors), full.write_errors
    assert result.t0_unix_s is not None and full.lifted_at_s is not None and full.first_sample_at_s is not None
    ledger = Ledger.load(result_file.parent / LEDGER_FILE)
    # The fault is timed when the fill's exec returned, the lift when the rm's exec returned: the space came back up to
    # that exec's latency earlier. It cannot come back before the window's 8 s, and the load retries a tick for 1 s:
    # no tick of the window's first 7 s is acknowledged, and nothing is stored before the 8 s are over.
    fill_ms = int((result.t0_unix_s + full.injected_at_s) * 1000)
    assert ledger.acknowledged(fill_ms + 7000) == ledger.acknowledged(fill_ms)
    assert full.first_sample_at_s >= full.injected_at_s + 8

    after_full, after_kill, _final = result.durability
    assert after_full.lost == 0 and after_full.acknowledged > 0  # Prometheus running: nothing missing
    # The restart's WAL repair (#13027): what was acknowledged after the fill is gone, what came before stays.
    assert after_kill.lost > 0, after_kill
    assert after_kill.lost <= ledger.acknowledged(after_kill.cutoff_unix_ms) - ledger.acknowledged(fill_ms)
    checks = {c.name: c for c in result.checks}
    assert checks["history_survival"].status is Status.FAILED
    assert checks["recovery"].status is Status.PASSED

    # The space is back on the node's filesystem: the fill file went with its pod.
    assert not list(Path(vol.path).glob(".harness-fill-*"))
    assert Space.of(Path(vol.path)).for_users > before.for_users // 2
    assert_nothing_left(api_client, result.run_id, (vol.pv,), (vol.storage_class,))


def test_a_pv_that_is_a_directory_of_the_nodes_filesystem_is_never_filled(
    kubeconfig: Path, api_client: Any, tmp_path: Path, local_pv: Callable[[str], LocalPv]
) -> None:
    vol = local_pv("node-1")
    node_free = Space.of(Path(vol.path))
    text = _scenario("k8s-disk-full-dir", vol, "[{action: disk_full, at: 3s, for: 5s}]")
    reports = tmp_path / "reports"
    proc = harness_run(write_scenario(tmp_path, text), reports, kubeconfig)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert "fills only a filesystem of the volume's own" in proc.stderr and "directory" in proc.stderr, proc.stderr
    [result_file] = reports.glob("*/*/result.json")
    result = load_result(result_file)
    assert result.verdict is Status.ERROR
    assert not list(Path(vol.path).glob(".harness-fill-*"))
    # The node was not filled: a fill leaves no block for users. Not "within 256 MiB of before": the node's disk is
    # this host's, where the tests beside this one write gigabytes meanwhile (1.1 GiB in CI, 2026-12-06).
    assert Space.of(Path(vol.path)).for_users > node_free.for_users // 2
    assert_nothing_left(api_client, result.run_id, (vol.pv,), (vol.storage_class,))


def test_a_run_killed_while_the_pv_is_full_gets_its_space_back_from_cleanup(
    kubeconfig: Path, kube_context: str, tmp_path: Path, pv_on_its_own_ext4: LocalPv
) -> None:
    """SIGKILL of the harness in the window: nothing of its own undo runs, the volume stays full; ``harness
    cleanup`` deletes the run's namespace, and the fill pod's SIGTERM trap deletes the file as the pod ends."""
    vol = pv_on_its_own_ext4
    volume = Path(vol.path)
    text = _scenario("k8s-disk-full-killed", vol, "[{action: disk_full, at: 3s, for: 4m}]").replace("25s", "5m")
    reports, work = tmp_path / "reports", tmp_path / "work"
    work.mkdir()
    argv = run_argv(write_scenario(tmp_path, text), reports, work, "--runtime", "kubernetes", "--context", kube_context)
    env = {"KUBECONFIG": str(kubeconfig)}

    def full() -> bool:
        return next(volume.glob(".harness-fill-*"), None) is not None and Space.of(volume).for_users == 0

    result_file = sigkill_during_load(argv, reports, env=env, until=full)
    run_id = load_result(result_file).run_id
    assert full()  # a killed run cannot free it
    done = cleanup("--run", run_id, "--context", kube_context, "--workdir", str(work), env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"removed namespace harness-{run_id}" in done.stdout, done.stdout
    assert not list(volume.glob(".harness-fill-*"))
    assert Space.of(volume).for_users > 0
