"""The ``disk_full`` fault on the local runtime: ``harness.datapath.fill`` on a real loop-mounted ext4, then whole
runs with
the real prometheus on a loop-mounted ext4 image (the scenario's ``image:``).

What Prometheus does (2.42 and 3.16 alike): while the volume is full every remote write is answered ``HTTP 500:
write to WAL: log samples: write .../wal/00000000: no space left on device`` and nothing is acknowledged; once the
space is back it takes writes again and, as long as it runs, nothing acknowledged is missing. But the WAL write that
ENOSPC broke off left a torn record: the next start's replay stops there ("unexpected first record"), and the repair
truncates the WAL at that point, deleting every sample acknowledged after the disk was freed
(prometheus/prometheus#13027). The tests assert exactly that count.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from harness.capabilities.volume_fill import VolumeFiller
from harness.datapath.fill import Space, fill, free
from harness.datapath.mounts import parse_mountinfo
from harness.errors import UsageError
from harness.loads.driver import LEDGER_FILE
from harness.loads.ledger import Ledger
from harness.refusals import refuse_faults
from harness.results.model import Status
from harness.results.store import load_result
from harness.runtime.kubernetes import KubernetesRuntime
from harness.scenario.model import Scenario
from tests.leftovers import cleanup, left_behind, run, run_argv, sigkill_during_load

ROOT = Path(__file__).resolve().parent.parent
NO_SPACE = "no space left on device"


LOOP_AS_ROOT = [
    pytest.mark.root(reason="a loop-mounted ext4 image needs root (losetup, mount)"),
    pytest.mark.skipif(shutil.which("losetup") is None, reason="no losetup (Debian package mount)"),
    pytest.mark.skipif(shutil.which("mkfs.ext4") is None, reason="no mkfs.ext4 (Debian package e2fsprogs)"),
]


def needs_loop_as_root(test: Any) -> Any:
    for mark in LOOP_AS_ROOT:
        test = mark(test)
    return test


# --- the fill on its own ---------------------------------------------------------------------------------------


@contextmanager
def _loop_fs(directory: Path, filesystem: str) -> Iterator[Path]:
    """A freshly made 64 MiB filesystem, loop-mounted (5 % reserved for root, as mkfs makes it), open to all."""
    image, mount_point = directory / f"{filesystem}.img", directory / f"{filesystem}-mnt"
    with image.open("wb") as f:
        f.truncate(64 << 20)
    subprocess.run([f"mkfs.{filesystem}", "-q", "-F", str(image)], check=True, capture_output=True, timeout=60)
    mount_point.mkdir()
    argv = ["mount", "-t", filesystem, "-o", "loop", str(image), str(mount_point)]
    subprocess.run(argv, check=True, capture_output=True, timeout=60)
    mount_point.chmod(0o777)
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=False, capture_output=True, timeout=60)


@pytest.fixture
def ext4(public_tmp: Path) -> Iterator[Path]:
    with _loop_fs(public_tmp, "ext4") as mount_point:
        yield mount_point


def _write_as(uid: int, path: Path) -> str:
    """Write and fsync 4 KiB to a new file as ``uid`` (dd); what dd said when it failed ("": it worked)."""
    argv = ["dd", "if=/dev/zero", f"of={path}", "bs=4096", "count=1", "conv=fsync", "status=none"]
    if uid != 0:
        argv = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", *argv]
    done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60)
    return done.stderr.strip() if done.returncode else ""


@needs_loop_as_root
@pytest.mark.parametrize(
    ("filesystem", "method"),
    [("ext4", "fallocate"), ("ext2", "zeros written")],  # ext2 files have no extents, hence no fallocate
)
def test_the_fill_leaves_no_block_even_for_root_and_freeing_gives_it_all_back(
    public_tmp: Path, filesystem: str, method: str
) -> None:
    with _loop_fs(public_tmp, filesystem) as mount_point:
        _fill_and_free(mount_point, method)


def _fill_and_free(volume: Path, method: str) -> None:
    before = Space.of(volume)
    assert before.for_root > before.for_users > 0  # the root reserve exists
    fill_file = volume / ".harness-fill-test"
    filled = fill(fill_file)
    assert filled.method == method and filled.before == before
    assert filled.after.for_users == 0
    # What statvfs still counts free is volume's own reserve for metadata (at most 4096 clusters), no file's data.
    assert filled.after.for_root <= 4096 * os.statvfs(volume).f_frsize
    assert filled.allocated_bytes >= before.for_root - filled.after.for_root
    assert "No space left on device" in _write_as(0, volume / "root-probe")  # not even root (Prometheus as root)
    assert "No space left on device" in _write_as(1000, volume / "user-probe")  # nor the security context's uid
    (volume / "root-probe").unlink()
    (volume / "user-probe").unlink()
    assert free(fill_file) is True
    assert not fill_file.exists() and Space.of(volume) == before  # every block back, usable at once
    assert _write_as(1000, volume / "user-probe") == ""
    assert free(fill_file) is False  # an undo that runs twice does nothing the second time


# --- whole runs --------------------------------------------------------------------------------------------------

# 5,000 series: each remote write is a WAL record (~44 KB) larger than a WAL page, so the first write the full disk
# refuses always tears one (scenarios/disk-full.yaml says why 1,000 series did not, about one run in five).
SCENARIO = """
name: disk-full
duration: {duration}
storage: {{backend: local, image: {{filesystem: ext4, size: 256Mi}}}}
loads: {{tsdb: {{series: 5000, interval: 1s}}}}
faults: [{faults}]
checks: {{history_survival: {{max_samples_lost: 0}}, max_recovery: {max_recovery}}}
"""


def _scenario(tmp_path: Path, *, duration: str, faults: str, max_recovery: str = "30s") -> Path:
    path = tmp_path / "disk-full.yaml"
    path.write_text(SCENARIO.format(duration=duration, faults=faults, max_recovery=max_recovery))
    return path


@needs_loop_as_root
@pytest.mark.slow
def test_a_full_disk_rejects_writes_and_the_wal_repair_after_a_restart_deletes_acknowledged_samples(
    area: tuple[Path, Path], tmp_path: Path
) -> None:
    """prometheus/prometheus#13027 reproduced: nothing is lost while Prometheus runs; its next start repairs the WAL
    at the record ENOSPC tore and deletes exactly the samples acknowledged from the fill to the SIGKILL."""
    reports, work = area
    path = _scenario(
        tmp_path, duration="17s", faults="{action: disk_full, at: 3s, for: 6s}, {action: sigkill, at: 13s}"
    )
    done = run(path, reports, work).expect(1)
    result = done.result
    assert result.t0_unix_s is not None
    full, kill = result.faults
    assert (full.action, full.status, kill.action, kill.status) == (
        "disk_full",
        Status.PASSED,
        "sigkill",
        Status.PASSED,
    )
    assert full.below_prometheus and "not one more block could be allocated, even as root" in full.detail
    assert "ext4 on /dev/loop" in full.detail and ".harness-fill-" in full.detail

    # While the disk was full: writes rejected with Prometheus' own words, none acknowledged.
    assert full.write_failures.get("rejected", 0) > 0, full.write_failures
    assert any(NO_SPACE in e and e.startswith("HTTP 500") for e in full.write_errors), full.write_errors
    assert any(NO_SPACE in line for line in full.prometheus_log), full.prometheus_log
    ledger = Ledger.load(done.run_dir / LEDGER_FILE)
    fill_ms = int((result.t0_unix_s + full.injected_at_s) * 1000)
    assert full.lifted_at_s is not None and full.first_sample_at_s is not None
    lift_ms = int((result.t0_unix_s + full.lifted_at_s) * 1000)
    # The load retries a request until 1 s after its tick: a tick in the window's last second may be acknowledged
    # once the space is back, none before.
    assert ledger.acknowledged(lift_ms - 1000) == ledger.acknowledged(fill_ms)
    # Back after the space returned: the first acknowledged sample comes after the lift, never during the window.
    assert full.first_sample_at_s > full.lifted_at_s >= full.injected_at_s + 6

    after_full, after_kill, final = result.durability
    assert after_full.lost == 0 and after_full.acknowledged > 0  # Prometheus running: nothing missing
    # After the restart's WAL repair: every sample acknowledged after the fill is gone, every one before it stays.
    expected_lost = ledger.acknowledged(after_kill.cutoff_unix_ms) - ledger.acknowledged(fill_ms)
    assert expected_lost > 0
    assert after_kill.lost == expected_lost and after_kill.mismatched_values == 0
    assert after_kill.loss_window_start_unix_ms is not None and after_kill.loss_window_end_unix_ms is not None
    assert lift_ms <= after_kill.loss_window_start_unix_ms + 1000  # the interval grid: the first tick after the lift
    assert after_kill.loss_window_end_unix_ms <= after_kill.cutoff_unix_ms
    assert final.lost == after_kill.lost  # what came after the restart stayed
    restarted = (done.run_dir / "logs" / "prometheus-pod1-restart1.log").read_text()
    # The record after the torn one is a new one, whole ("full") or, as these records span pages, its "first" part.
    assert "Encountered WAL read error, attempting repair" in restarted
    assert re.search(r"corruption in segment \S+ at \d+: unexpected (full|first) record", restarted), restarted
    checks = {c.name: c for c in result.checks}
    assert checks["history_survival"].status is Status.FAILED
    assert checks["recovery"].status is Status.PASSED
    assert left_behind(work) == [] and list(work.iterdir()) == []


@needs_loop_as_root
@pytest.mark.slow
def test_without_a_restart_nothing_is_lost_and_a_recovery_limit_shorter_than_the_window_fails(
    area: tuple[Path, Path], tmp_path: Path
) -> None:
    """The oracle must say FAILED: recovery is timed from the injection, and no write can succeed before the space
    is back, so a 2 s limit on a 4 s window fails (exit 1) while the history check passes."""
    reports, work = area
    path = _scenario(tmp_path, duration="9s", faults="{action: disk_full, at: 2s, for: 4s}", max_recovery="2s")
    result = run(path, reports, work).expect(1).result
    [full] = result.faults
    assert full.write_failures.get("rejected", 0) > 0
    assert all(c.lost == 0 and c.acknowledged > 0 for c in result.durability)
    checks = {c.name: c for c in result.checks}
    assert checks["history_survival"].status is Status.PASSED
    assert checks["recovery"].status is Status.FAILED and "disk_full" in checks["recovery"].reason
    assert left_behind(work) == [] and list(work.iterdir()) == []


@needs_loop_as_root
@pytest.mark.slow
def test_cleanup_deletes_the_fill_a_killed_run_left_on_a_disk_at_storage_path(
    area: tuple[Path, Path], tmp_path: Path, ext4: Path
) -> None:
    """On a disk of the user's (storage.path) the volume outlives a run killed outright: ``harness cleanup`` deletes
    the fill (the disk is full until then) and lists the run's directory there as data it keeps."""
    reports, work = area
    before = Space.of(ext4)
    path = tmp_path / "on-a-disk.yaml"
    path.write_text(
        f"name: on-a-disk\nduration: 5m\nstorage: {{backend: local, path: {ext4}}}\n"
        "loads: {tsdb: {series: 100, interval: 1s}}\nfaults: [{action: disk_full, at: 1s, for: 4m}]\n"
    )

    def full() -> bool:
        return next(ext4.glob("harness-*/.harness-fill-*"), None) is not None and Space.of(ext4).for_users == 0

    result_file = sigkill_during_load(run_argv(path, reports, work), reports, until=full)
    run_id = load_result(result_file).run_id
    fill_file = ext4 / f"harness-{run_id}" / f".harness-fill-{run_id}"
    assert fill_file.exists() and Space.of(ext4).for_users == 0  # a killed run cannot free it
    done = cleanup("--run", run_id, "--workdir", str(work)).expect(0)
    assert f"removed disk_full fill file {fill_file}" in done.stdout, done.stdout
    assert f"kept    {ext4 / f'harness-{run_id}'}: storage data outside the work area" in done.stdout, done.stdout
    assert not fill_file.exists() and Space.of(ext4).for_users > before.for_users // 2
    assert left_behind(work / f"prom-harness-{run_id}") == [] and not list(work.glob(f"prom-harness-{run_id}-*"))


def test_a_plain_directory_on_the_hosts_filesystem_is_refused_before_prometheus_starts(
    area: tuple[Path, Path], tmp_path: Path
) -> None:
    reports, work = area
    path = tmp_path / "plain.yaml"
    path.write_text(
        "name: plain\nduration: 10s\nstorage: {backend: local}\nfaults: [{action: disk_full, at: 2s, for: 2s}]\n"
    )
    started = time.monotonic()
    said = run(path, reports, work).expect(2).output
    assert "fills only a filesystem of the volume's own" in said and "storage.image" in said
    assert "Traceback" not in said
    assert time.monotonic() - started < 30
    assert left_behind(work) == []


def test_the_kubernetes_runtime_takes_disk_full_on_a_pv_and_refuses_it_on_an_emptydir() -> None:
    def scenario(storage: dict[str, object]) -> Scenario:
        return Scenario.model_validate(
            {
                "name": "t",
                "duration": "1m",
                "storage": storage,
                "faults": [{"action": "disk_full", "at": "10s", "for": "5s"}],
            }
        )

    on_pv = scenario({"backend": "local", "path": "/mnt/disks/prometheus", "node": "n1"})
    refuse_faults("kubernetes", on_pv)  # what the volume is, the fill pod reads from its own mount table
    baseline = scenario({"backend": "ephemeral"})
    refuse_faults("kubernetes", baseline)
    with pytest.raises(UsageError) as refused:
        KubernetesRuntime(baseline, "r1", logs_dir=Path("/nonexistent"), needs=frozenset({VolumeFiller}))
    said = str(refused.value)
    assert "fills only a filesystem of the volume's own" in said and "emptyDir" in said


@needs_loop_as_root
def test_the_mount_table_tells_a_filesystem_of_its_own_from_a_directory_bound_from_another(
    ext4: Path, public_tmp: Path
) -> None:
    """What the kubernetes runtime's fill pod decides on (``MountEntry.own_block_filesystem``), on real mounts: a
    loop-mounted ext4 is one; a directory of it bind-mounted elsewhere (how the kubelet mounts a directory local PV
    or an emptyDir into a container) is not, nor is a tmpfs."""
    sub = ext4 / "pv"
    sub.mkdir()
    bound = public_tmp / "bound"
    bound.mkdir()
    subprocess.run(["mount", "--bind", str(sub), str(bound)], check=True, capture_output=True, timeout=60)
    try:
        table = {str(e.mount_point): e for e in parse_mountinfo(Path("/proc/self/mountinfo").read_text())}
        whole, part = table[str(ext4)], table[str(bound)]
    finally:
        subprocess.run(["umount", str(bound)], check=False, capture_output=True, timeout=60)
    assert (whole.fstype, whole.root, whole.own_block_filesystem) == ("ext4", "/", True)
    assert whole.source.startswith("/dev/loop")
    assert (part.source, part.root, part.own_block_filesystem) == (whole.source, "/pv", False)
    shm = next(e for e in table.values() if e.fstype == "tmpfs")
    assert not shm.own_block_filesystem
