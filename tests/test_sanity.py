"""The report's sanity warnings: on real fio runs where the numbers measured something else than the storage (the
page cache, a tmpfs that acknowledges fsyncs it cannot do), and none where they measured the disk."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from harness.report.html import build_context
from harness.report.sanity import sanity_warnings
from tests.cli import harness_cli
from tests.test_report import make_result

ROOT = Path(__file__).resolve().parent.parent


def _fio_run(tmp_path: Path, data: Path, jobs: str) -> list[str]:
    """Run a fio-only scenario on ``data``; the sanity warnings of its result."""
    data.mkdir(parents=True, exist_ok=True)
    tmp_path.mkdir(parents=True, exist_ok=True)
    scenario = tmp_path / "fio.yaml"
    scenario.write_text(
        f"name: sanity\nduration: 1s\nstorage: {{backend: local, path: {data}}}\nloads: {{tsdb: null, fio: {jobs}}}\n"
    )
    reports = tmp_path / "reports"
    result = harness_cli("run", str(scenario), "--reports", str(reports), "--no-report").expect(0).result
    assert all(j.cpu_pct is not None and j.cpu_pct >= 0 for j in result.fio)
    return [f"{w.subject}: {w.message}" for w in sanity_warnings(result)]


def test_buffered_io_over_a_small_file_is_the_page_cache(tmp_path: Path) -> None:
    said = _fio_run(tmp_path, tmp_path / "disk", "[{profile: randwrite-4k, direct: false, size: 4Mi, runtime: 2s}]")
    assert any("randwrite-4k: buffered I/O over a 4.0 MiB file" in s and "page cache answered" in s for s in said)


@pytest.mark.skipif(not Path("/dev/shm").is_dir(), reason="no tmpfs at /dev/shm on this host")
def test_fsyncs_on_tmpfs_are_not_durable_and_a_disk_s_are(tmp_path: Path) -> None:
    job = "[{profile: wal-append, size: 16Mi, runtime: 2s}]"
    shm = Path("/dev/shm") / f"harness-sanity-{tmp_path.name}"
    try:
        on_tmpfs = _fio_run(tmp_path / "a", shm, job)
    finally:
        subprocess.run(["rm", "-rf", str(shm)], check=False)
    assert any("does not honour sync" in s for s in on_tmpfs), on_tmpfs
    # The same job on this host's disk: its fsyncs reach the device (a virtual disk's flush takes far over 10 µs).
    on_disk = _fio_run(tmp_path / "b", tmp_path / "b" / "disk", job)
    assert not any("does not honour sync" in s for s in on_disk), on_disk


def test_a_cpu_bound_job_is_said_and_a_clean_run_has_no_banner() -> None:
    result = make_result()
    assert sanity_warnings(result) == [] and build_context(result)["sanity"] == []
    result.fio[0].cpu_pct = 97.0
    [warning] = sanity_warnings(result)
    assert warning.subject == f"fio job {result.fio[0].name}" and "97% of a CPU" in warning.message
