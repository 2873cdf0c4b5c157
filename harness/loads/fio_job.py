"""A fio job as a command line: the named profiles, what a job's profile and overrides resolve to, the size of its
files against the free space, its time budget, and the argv (``build_argv``).

Everything here is pure, so the argv builder is tested against recorded output as well as the real binary; running
it is ``harness.loads.fio``, reading what it wrote ``harness.loads.fio_output``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePath

from harness import fmt
from harness.errors import StorageUnavailable, UsageError
from harness.scenario.model import FioJob

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB

# Sizing to the free space. kubestr's fio check fails with "No space left on device" because it writes a fixed size
# whatever the volume holds; we take at most half of what is free (Prometheus and the TSDB load need the rest) and
# at most 1 GiB in total, which lays out in seconds on slow storage yet spreads random I/O well beyond a device's
# own cache. Below 8 MiB per job the jobs would mostly rewrite the same few blocks, so we refuse instead.
AUTO_MAX_TOTAL_BYTES = 1 * GiB
AUTO_MAX_FREE_FRACTION = 0.5
AUTO_MIN_PER_JOB_BYTES = 8 * MiB
# An explicit size must leave some room: a full filesystem breaks Prometheus, not just fio.
EXPLICIT_MAX_FREE_FRACTION = 0.9

# Prometheus' WAL (tsdb/wlog): records are batched into 32 KiB pages appended to 128 MiB segment files opened
# O_APPEND without preallocation; a segment is fsynced (os.File.Sync, i.e. fsync(2)) when it is closed, never on a
# commit. The segment is scaled down with the job size so a short run still crosses several segment boundaries.
WAL_PAGE_BYTES = 32 * KiB
WAL_SEGMENT_BYTES = 128 * MiB
WAL_SEGMENTS_PER_FILE = 4

LOG_AVG_MSEC = 500
# Queue depth for the asynchronous engines: enough to keep an SSD or a network volume busy without queueing
# seconds of I/O on a slow NFS mount. The synchronous engines have one I/O in flight per job by construction.
DIRECT_IODEPTH = 16
SYNC_ENGINES = frozenset({"sync", "psync", "vsync", "pvsync", "pvsync2"})


@dataclass(frozen=True)
class Profile:
    rw: str
    block_size_bytes: int
    direct: bool  # default; the scenario may override it


PROFILES: dict[str, Profile] = {
    "randwrite-4k": Profile(rw="randwrite", block_size_bytes=4 * KiB, direct=True),
    # fio lays the file out (writes it in full) before the timed phase, so every read hits written blocks. O_DIRECT
    # by default: that layout went through the page cache, so buffered reads would measure RAM.
    "randread-4k": Profile(rw="randread", block_size_bytes=4 * KiB, direct=True),
    "seqwrite-1m": Profile(rw="write", block_size_bytes=1 * MiB, direct=True),
    "wal-append": Profile(rw="write", block_size_bytes=WAL_PAGE_BYTES, direct=False),
}


# --- names and sizes -------------------------------------------------------------------------------------------


def job_name(job: FioJob) -> str:
    """The job's name as used for fio's --name and for file names: the profile name unless the scenario gives one."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", job.name or job.profile)


def plan_size_bytes(job: FioJob, free_bytes: int) -> int:
    """Size of each of the job's files (fio's ``size``, per job: the footprint is this times ``numjobs``).

    The scenario's size if it gives one, otherwise sized to the free space: at most 1 GiB in total and at most half
    of ``free_bytes``, rounded down to a MiB. Raises StorageUnavailable, naming the numbers, when that does not fit.
    """
    name = job_name(job)
    block = PROFILES[job.profile].block_size_bytes
    if job.size_bytes is not None:
        size = int(job.size_bytes)
        if size < block:
            raise UsageError(
                f"fio job {name!r}: size {fmt.size(size)} is smaller than the {fmt.size(block)} block size of "
                f"profile {job.profile!r}"
            )
        footprint = size * job.numjobs
        allowed = int(free_bytes * EXPLICIT_MAX_FREE_FRACTION)
        if footprint > allowed:
            raise StorageUnavailable(
                f"fio job {name!r} would write {fmt.size(footprint)} ({fmt.size(size)} x {job.numjobs} jobs) "
                f"but only {fmt.size(free_bytes)} is free; it may use at most {fmt.size(allowed)} "
                f"({EXPLICIT_MAX_FREE_FRACTION:.0%} of the free space). Lower loads.fio size or numjobs, or give the "
                "storage more room (fio would stop with 'No space left on device')"
            )
        return size
    budget = min(AUTO_MAX_TOTAL_BYTES, int(free_bytes * AUTO_MAX_FREE_FRACTION))
    per_job = budget // job.numjobs // MiB * MiB
    if per_job < AUTO_MIN_PER_JOB_BYTES:
        needed = AUTO_MIN_PER_JOB_BYTES * job.numjobs
        raise StorageUnavailable(
            f"fio job {name!r}: only {fmt.size(free_bytes)} free; sizing to at most "
            f"{AUTO_MAX_FREE_FRACTION:.0%} of the free space needs at least {fmt.size(needed)} "
            f"({fmt.size(AUTO_MIN_PER_JOB_BYTES)} x {job.numjobs} jobs), i.e. "
            f"{fmt.size(needed / AUTO_MAX_FREE_FRACTION)} free. "
            "Free some space or give the storage more room"
        )
    return per_job


def wal_segment_bytes(size_bytes: int) -> int:
    """The WAL segment the wal-append profile fsyncs at: 128 MiB like Prometheus, smaller for small files."""
    scaled = size_bytes // WAL_SEGMENTS_PER_FILE // WAL_PAGE_BYTES * WAL_PAGE_BYTES
    return max(WAL_PAGE_BYTES, min(WAL_SEGMENT_BYTES, scaled))


def default_timeout_s(job: FioJob, size_bytes: int) -> float:
    """runtime + a margin for start-up, draining queued I/O and laying out files at a pessimistic 8 MiB/s."""
    return job.runtime_s + 60.0 + size_bytes * job.numjobs / (8 * MiB)


# --- argv ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """What a job's profile and the scenario's overrides resolve to."""

    rw: str
    block_size_bytes: int
    direct: bool
    ioengine: str
    iodepth: int | None  # None: a synchronous engine, one I/O in flight per job
    sync_every_bytes: int | None  # wal-append only


def resolve(job: FioJob, size_bytes: int) -> Settings:
    profile = PROFILES[job.profile]
    direct = profile.direct if job.direct is None else job.direct
    ioengine = job.ioengine or ("libaio" if direct else "psync")
    iodepth = job.iodepth if job.iodepth is not None else (None if ioengine in SYNC_ENGINES else DIRECT_IODEPTH)
    return Settings(
        rw=profile.rw,
        block_size_bytes=profile.block_size_bytes,
        direct=direct,
        ioengine=ioengine,
        iodepth=iodepth,
        sync_every_bytes=wal_segment_bytes(size_bytes) if job.profile == "wal-append" else None,
    )


def build_argv(job: FioJob, directory: PurePath, size_bytes: int, log_prefix: PurePath) -> list[str]:
    """The fio command line for ``job`` writing its files into ``directory``; logs go to ``log_prefix``_*.log."""
    settings = resolve(job, size_bytes)
    runtime_ms = max(1, round(job.runtime_s * 1000))
    prefix = str(log_prefix)
    argv = [
        "fio",
        f"--name={job_name(job)}",
        f"--directory={_escape_colons(directory)}",
        f"--rw={settings.rw}",
        f"--bs={settings.block_size_bytes}",
        f"--size={size_bytes}",
        f"--ioengine={settings.ioengine}",
        f"--direct={int(settings.direct)}",
    ]
    if settings.iodepth is not None:
        argv.append(f"--iodepth={settings.iodepth}")
    argv.append(f"--numjobs={job.numjobs}")
    # Throttles apply per job thread (fio's own semantics), so numjobs multiplies them.
    if job.rate_bytes_per_s is not None:
        argv.append(f"--rate={int(job.rate_bytes_per_s)}")
    if job.rate_iops is not None:
        argv.append(f"--rate_iops={job.rate_iops}")
    if settings.sync_every_bytes is not None:
        argv += [
            # Every loop writes a new, unallocated file (unlinked when the loop ends), so each write is an append
            # that grows it, like a fresh WAL segment. With --time_based fio would wrap around inside one file and
            # overwrite allocated blocks, and the fsync would no longer commit size and extent changes (checked with
            # stat on fio 3.33: same inode, size stays put). So this profile loops until --runtime ends it.
            "--fallocate=none",
            "--unlink_each_loop=1",
            "--loops=1000000",
            # One fsync per segment's worth of pages, timed in fio's "sync" section. fio waits for it, whereas
            # Prometheus syncs the closed segment in the background while appending to the next: the sync latency
            # is what to read here, the bandwidth is slightly pessimistic.
            f"--fsync={settings.sync_every_bytes // settings.block_size_bytes}",
        ]
    else:
        argv.append("--time_based")
    argv += [
        f"--runtime={runtime_ms}ms",
        # Threads, not forked processes: killing fio (timeout, Ctrl-C) then stops every job at once, before we
        # remove their files.
        "--thread",
        # One aggregate per direction: fio merges the latency histograms of all numjobs exactly.
        "--group_reporting",
        "--output-format=json",
        "--eta=never",
        f"--write_bw_log={prefix}",
        f"--write_iops_log={prefix}",
        f"--write_lat_log={prefix}",
        f"--log_avg_msec={LOG_AVG_MSEC}",
    ]
    return argv


def _escape_colons(path: PurePath) -> str:
    """fio splits --directory on ':' (it takes several directories); a literal colon is written as '\\:'."""
    return str(path).replace(":", "\\:")
