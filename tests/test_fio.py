"""The fio load against the real fio binary, plus its parsers on output recorded from fio 3.33.

The files in tests/data/fio were recorded on this project's machine with the argv build_argv produces (tiny sizes,
2 s runtimes); ``randwrite-4k-numjobs2-separate.json`` and ``logs-numjobs2/`` without --group_reporting, so the
merging of several job entries is exercised; ``seqwrite-1m-enospc.stdout`` on a full 2 MiB tmpfs, with the error
line fio prints before its JSON.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

import pytest

from harness import proc
from harness.errors import CommandFailed, StorageUnavailable, UsageError
from harness.loads import fio, fio_job, fio_output
from harness.results.model import FioJobResult
from harness.scenario.model import FioJob

DATA = Path(__file__).parent / "data" / "fio"
MiB = 1024**2
GiB = 1024**3
PROFILES = ["randwrite-4k", "randread-4k", "seqwrite-1m", "wal-append"]

needs_fio = pytest.mark.skipif(shutil.which("fio") is None, reason="fio is not installed (Debian package 'fio')")


def job(profile: str, **fields: object) -> FioJob:
    return FioJob.model_validate({"profile": profile, **fields})


def options(argv: list[str]) -> dict[str, str]:
    """fio's --key=value options as a dict; flags without a value map to ""."""
    out: dict[str, str] = {}
    for arg in argv[1:]:
        key, _, value = arg.removeprefix("--").partition("=")
        out[key] = value
    return out


def recorded(name: str) -> dict[str, object]:
    doc: dict[str, object] = json.loads((DATA / name).read_text())
    return doc


# --- argv ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("profile", "expected"),
    [
        ("randwrite-4k", {"rw": "randwrite", "bs": "4096", "direct": "1", "ioengine": "libaio", "iodepth": "16"}),
        ("randread-4k", {"rw": "randread", "bs": "4096", "direct": "1", "ioengine": "libaio", "iodepth": "16"}),
        ("seqwrite-1m", {"rw": "write", "bs": "1048576", "direct": "1", "ioengine": "libaio", "iodepth": "16"}),
        ("wal-append", {"rw": "write", "bs": "32768", "direct": "0", "ioengine": "psync", "iodepth": None}),
    ],
)
def test_argv_per_profile(profile: str, expected: dict[str, str | None]) -> None:
    argv = fio_job.build_argv(job(profile, runtime="1500ms"), Path("/data/d"), 16 * MiB, Path("/out/logs/x"))
    opts = options(argv)
    assert argv[0] == "fio"
    assert {key: opts.get(key) for key in expected} == expected
    assert opts["name"] == profile
    assert opts["directory"] == "/data/d"
    assert opts["size"] == str(16 * MiB)
    assert opts["runtime"] == "1500ms"
    assert opts["output-format"] == "json"
    assert opts["numjobs"] == "1"
    assert "group_reporting" in opts
    assert "thread" in opts
    for log in ("write_bw_log", "write_iops_log", "write_lat_log"):
        assert opts[log] == "/out/logs/x"
    assert opts["log_avg_msec"] == "500"
    if profile == "wal-append":
        # Appends to a fresh file every loop instead of wrapping around; an fsync per (scaled) segment.
        assert "time_based" not in opts
        assert opts["fallocate"] == "none"
        assert opts["unlink_each_loop"] == "1"
        assert opts["fsync"] == str(4 * MiB // (32 * 1024))
    else:
        assert "time_based" in opts
        assert "fsync" not in opts


def test_wal_segment_scales_with_size_up_to_prometheus_128_mib() -> None:
    assert fio_job.wal_segment_bytes(16 * MiB) == 4 * MiB
    assert fio_job.wal_segment_bytes(1 * GiB) == 128 * MiB
    assert fio_job.wal_segment_bytes(64 * 1024) == 32 * 1024
    argv = fio_job.build_argv(job("wal-append"), Path("/d"), 1 * GiB, Path("/l/x"))
    assert options(argv)["fsync"] == str(128 * MiB // (32 * 1024))


def test_argv_overrides_and_escaping() -> None:
    buffered = options(fio_job.build_argv(job("randwrite-4k", direct=False), Path("/d"), 8 * MiB, Path("/l/x")))
    assert (buffered["direct"], buffered["ioengine"]) == ("0", "psync")
    assert "iodepth" not in buffered
    tuned = options(
        fio_job.build_argv(
            job("seqwrite-1m", name="big writes", ioengine="io_uring", iodepth=4, numjobs=3),
            Path("/mnt/a:b"),
            8 * MiB,
            Path("/l/x"),
        )
    )
    assert (tuned["ioengine"], tuned["iodepth"], tuned["numjobs"], tuned["name"]) == (
        "io_uring",
        "4",
        "3",
        "big_writes",
    )
    assert tuned["directory"] == "/mnt/a\\:b"


# --- sizing ----------------------------------------------------------------------------------------------------


def test_size_defaults_to_1_gib_at_most_half_the_free_space() -> None:
    assert fio_job.plan_size_bytes(job("randwrite-4k"), 100 * GiB) == 1 * GiB
    assert fio_job.plan_size_bytes(job("randwrite-4k", numjobs=4), 100 * GiB) == 256 * MiB
    assert fio_job.plan_size_bytes(job("randwrite-4k"), 101 * MiB) == 50 * MiB
    assert fio_job.plan_size_bytes(job("wal-append", size="64Mi"), 1 * GiB) == 64 * MiB


def test_size_refused_when_free_space_is_too_small() -> None:
    with pytest.raises(StorageUnavailable) as e:
        fio_job.plan_size_bytes(job("randwrite-4k"), 10 * MiB)
    assert "10 MiB free" in str(e.value)
    assert "8 MiB" in str(e.value)
    with pytest.raises(StorageUnavailable) as e:
        fio_job.plan_size_bytes(job("randwrite-4k", numjobs=8), 100 * MiB)
    assert "64 MiB (8 MiB x 8 jobs)" in str(e.value)


def test_explicit_size_refused_when_it_does_not_fit() -> None:
    with pytest.raises(StorageUnavailable) as e:
        fio_job.plan_size_bytes(job("seqwrite-1m", size="600Mi", numjobs=2), 1 * GiB)
    message = str(e.value)
    assert "1.2 GiB (600 MiB x 2 jobs)" in message
    assert "only 1 GiB is free" in message
    assert "No space left on device" in message
    with pytest.raises(UsageError, match="smaller than the 1 MiB block size"):
        fio_job.plan_size_bytes(job("seqwrite-1m", size="64Ki"), 1 * GiB)


# --- parsers on recorded output --------------------------------------------------------------------------------


def parse(name: str, profile: str, **fields: object) -> FioJobResult:
    return fio_output.parse_fio_json(
        recorded(name), job=job(profile, **fields), argv=["fio"], directory=Path("/d"), size_bytes=8 * MiB
    )


def test_parse_grouped_numjobs_2() -> None:
    result = parse("randwrite-4k-numjobs2-grouped.json", "randwrite-4k", numjobs=2)
    assert result.read is None
    assert result.write is not None
    assert result.write.io_bytes == 699043840
    assert result.write.bw_bytes_per_s == 349347246
    assert result.write.iops == pytest.approx(85289.855072)
    # job_runtime is summed over the jobs under group_reporting (4000 ms); the direction's runtime is wall time.
    assert result.runtime_s == pytest.approx(2.001)
    assert (result.numjobs, result.ioengine, result.direct, result.iodepth) == (2, "libaio", True, 16)
    assert result.sync_count == 0
    assert result.write.clat_percentiles_ns["p99"] == 3751936
    assert set(result.write.clat_percentiles_ns) == {"p50", "p90", "p99", "p99.9", "p99.99"}
    assert result.error is None


def test_parse_separate_numjobs_2_merges_the_jobs() -> None:
    doc = recorded("randwrite-4k-numjobs2-separate.json")
    jobs = doc["jobs"]
    assert isinstance(jobs, list)
    assert len(jobs) == 2
    writes = [j["write"] for j in jobs]
    result = parse("randwrite-4k-numjobs2-separate.json", "randwrite-4k", numjobs=2)
    assert result.write is not None
    assert result.write.io_bytes == sum(w["io_bytes"] for w in writes)
    assert result.write.bw_bytes_per_s == sum(w["bw_bytes"] for w in writes)
    assert result.write.iops == pytest.approx(sum(w["iops"] for w in writes))
    assert result.write.runtime_s == pytest.approx(max(w["runtime"] for w in writes) / 1000)
    n = [w["clat_ns"]["N"] for w in writes]
    mean = sum(w["clat_ns"]["mean"] * k for w, k in zip(writes, n, strict=True)) / sum(n)
    assert result.write.clat_ns_mean == pytest.approx(mean)
    assert result.write.clat_percentiles_ns["p99"] == max(w["clat_ns"]["percentile"]["99.000000"] for w in writes)


def test_parse_wal_append_reports_sync_latency() -> None:
    result = parse("wal-append.json", "wal-append")
    assert result.write is not None
    assert result.sync_lat_ns_percentiles["p99"] == 8978432
    assert result.sync_count == 522
    assert result.sync_lat_ns_mean is not None
    assert result.sync_lat_ns_mean > 0
    assert result.sync_every_bytes == 2 * MiB  # an 8 MiB file holds four scaled segments
    assert (result.block_size_bytes, result.ioengine, result.direct, result.iodepth) == (
        32 * 1024,
        "psync",
        False,
        None,
    )
    assert set(result.sync_lat_ns_percentiles) == {"p50", "p90", "p99", "p99.9", "p99.99"}


def test_parse_randread_has_only_a_read_direction() -> None:
    result = parse("randread-4k.json", "randread-4k")
    assert result.write is None
    assert result.read is not None
    assert result.read.iops == pytest.approx(94158.92054)
    assert result.read.clat_percentiles_ns["p50"] > 0


def test_parse_failed_job_output_with_error_lines_before_the_json() -> None:
    raw = (DATA / "seqwrite-1m-enospc.stdout").read_text()
    assert raw.startswith("fio: ")
    result = fio_output.parse_fio_json(
        raw, job=job("seqwrite-1m"), argv=["fio"], directory=Path("/d"), size_bytes=8 * MiB
    )
    assert result.error is not None
    assert "No space left on device" in result.error


def test_parse_refuses_output_without_json() -> None:
    with pytest.raises(CommandFailed, match="did not print a JSON document"):
        fio_output.parse_fio_json(
            "fio: unrecognized option\n", job=job("seqwrite-1m"), argv=["fio"], directory=Path("/d"), size_bytes=1
        )


def test_parse_logs_sums_jobs_per_bucket() -> None:
    points = fio_output.parse_fio_logs(DATA / "logs-numjobs2" / "randwrite-4k", "write")
    assert [p.t_s for p in points] == [0.5, 1.0, 1.5, 2.0]
    # bw logs are KiB/s: job 1 wrote 255544 and job 2 251168 KiB/s in the first window.
    assert points[0].bw_bytes_per_s == (255544 + 251168) * 1024
    assert points[0].iops == 63886 + 62792
    # Latency is weighted by each job's IOPS in the window.
    expected = (245252 * 63886 + 250132 * 62792) / (63886 + 62792)
    assert points[0].lat_ns_mean == pytest.approx(expected)
    # The extra entry fio flushes at exit (2001 ms, same bucket) does not replace the window's value.
    assert points[3].lat_ns_mean == pytest.approx((411821 * 38136 + 287495 * 54414) / (38136 + 54414))
    assert fio_output.parse_fio_logs(DATA / "logs-numjobs2" / "randwrite-4k", "read") == []
    assert fio_output.parse_fio_logs(DATA / "logs-numjobs2" / "nothing", "write") == []


# --- the real fio ----------------------------------------------------------------------------------------------


@needs_fio
def test_fio_version() -> None:
    assert fio.fio_version()[0].isdigit()


@needs_fio
@pytest.mark.parametrize("profile", PROFILES)
def test_every_profile_runs_and_parses(profile: str, tmp_path: Path) -> None:
    data, out = tmp_path / "data", tmp_path / "out"
    data.mkdir()
    result = fio.run_fio_job(job(profile, runtime="1s", size="8Mi"), data, out)
    assert result.error is None
    assert result.name == profile
    assert result.size_bytes == 8 * MiB
    assert result.runtime_s > 0
    measured = result.read if profile == "randread-4k" else result.write
    assert measured is not None
    assert measured.io_bytes > 0
    assert measured.iops > 0
    assert measured.clat_percentiles_ns["p99"] > 0
    assert measured.timeseries
    assert all(p.bw_bytes_per_s > 0 for p in measured.timeseries)
    if profile == "wal-append":
        assert result.sync_lat_ns_percentiles["p99"] > 0
        assert result.sync_count > 0
    assert result.raw_json_file == f"fio-{profile}.json"
    assert json.loads((out / result.raw_json_file).read_text())["jobs"]
    assert list(data.iterdir()) == [], "the data files fio wrote are removed"


@needs_fio
def test_numjobs_2_runs_and_aggregates(tmp_path: Path) -> None:
    result = fio.run_fio_job(job("randwrite-4k", runtime="1s", size="4Mi", numjobs=2), tmp_path, tmp_path / "out")
    assert result.error is None
    assert result.write is not None
    assert result.write.iops > 0
    assert result.runtime_s < 5, "wall time, not the sum over the two jobs"
    assert result.write.timeseries
    logs = sorted(p.name for p in (tmp_path / "out" / "fio-randwrite-4k.logs").glob("*_bw.*.log"))
    assert logs == ["randwrite-4k_bw.1.log", "randwrite-4k_bw.2.log"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


@needs_fio
def test_duplicate_job_name_is_refused(tmp_path: Path) -> None:
    first = job("wal-append", runtime="200ms", size="1Mi")
    fio.run_fio_job(first, tmp_path, tmp_path / "out")
    with pytest.raises(UsageError, match="distinct name"):
        fio.run_fio_job(first, tmp_path, tmp_path / "out")


@needs_fio
def test_timeout_kills_fio_and_removes_its_files(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    with pytest.raises(CommandFailed, match="did not finish"):
        fio.run_fio_job(job("seqwrite-1m", runtime="30s", size="4Mi"), data, tmp_path / "out", timeout_s=1.0)
    assert list(data.iterdir()) == []
    assert not _fio_running_in(data)


@needs_fio
def test_ctrl_c_kills_fio_and_removes_its_files(tmp_path: Path) -> None:
    data = tmp_path / f"data-{uuid.uuid4().hex}"
    data.mkdir()

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        signal.setitimer(signal.ITIMER_REAL, 1.0)
        with pytest.raises(KeyboardInterrupt):
            fio.run_fio_job(job("randwrite-4k", runtime="30s", size="4Mi"), data, tmp_path / "out")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert list(data.iterdir()) == []
    assert not _fio_running_in(data)


def _fio_running_in(directory: Path) -> bool:
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if str(directory).encode() in cmdline.read_bytes():
                return True
        except OSError:
            continue
    return False


# --- a real filesystem of known size (root) --------------------------------------------------------------------


@pytest.fixture
def ext4_mount(tmp_path: Path) -> Iterator[Path]:
    """A 64 MiB ext4 image, loop-mounted; unmounted (which also frees the loop device) in the finalizer."""
    image, mountpoint = tmp_path / "fs.img", tmp_path / "mnt"
    mountpoint.mkdir()
    proc.run(["truncate", "-s", str(64 * MiB), str(image)], timeout_s=30)
    proc.run(["mkfs.ext4", "-q", "-F", str(image)], timeout_s=60)
    proc.run(["mount", "-o", "loop", str(image), str(mountpoint)], timeout_s=30)
    try:
        yield mountpoint
    finally:
        proc.run(["umount", str(mountpoint)], timeout_s=60)


@needs_fio
@pytest.mark.root(reason="loop devices and mounts need root")
def test_sized_to_a_small_loop_mounted_ext4(ext4_mount: Path, tmp_path: Path) -> None:
    before = set(ext4_mount.iterdir())  # lost+found
    free = os.statvfs(ext4_mount).f_bavail * os.statvfs(ext4_mount).f_frsize
    result = fio.run_fio_job(job("wal-append", runtime="1s"), ext4_mount, tmp_path / "out")
    assert result.error is None
    assert 8 * MiB <= result.size_bytes <= free // 2
    assert result.sync_lat_ns_percentiles["p99"] > 0
    with pytest.raises(StorageUnavailable, match="free"):
        fio.run_fio_job(job("randwrite-4k", numjobs=8), ext4_mount, tmp_path / "out2")
    with pytest.raises(StorageUnavailable, match="No space left on device"):
        fio.run_fio_job(job("seqwrite-1m", size="1Gi"), ext4_mount, tmp_path / "out3")
    assert set(ext4_mount.iterdir()) == before, "only what fio created was removed, and all of it"
