"""Where a run's numbers cannot be trusted, said next to them (kbench's rules, for our results).

Each rule reads only the stored result, so an old run re-rendered gets the same warnings. None of them changes a
verdict: they say what a number measured instead of the storage (the page cache, a volatile cache that ignores
flushes, the CPU), so that nobody compares it as if it were the disk's.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness import fmt
from harness.results.model import FioJobResult, RunResult

# A buffered job that went over its file more than this many times was served by the page cache, not the disk.
PAGE_CACHE_PASSES = 2.0
# No device makes data durable this fast (an NVMe flush with power-loss protection is ~20 µs; a disk, milliseconds):
# a mean fsync below it means the storage acknowledges flushes it does not do (tmpfs, an async NFS export, a
# volatile write cache that ignores FLUSH).
NO_REAL_FSYNC_NS = 10_000.0
MIN_SYNCS = 10  # fewer say nothing about a mean
# fio's own thread using this much of a CPU was bound by the CPU, not the storage.
CPU_BOUND_PCT = 90.0


@dataclass(frozen=True)
class SanityWarning:
    subject: str  # "fio job randwrite-4k"
    message: str


def sanity_warnings(result: RunResult) -> list[SanityWarning]:
    warnings: list[SanityWarning] = []
    for job in result.fio:
        if job.error is None:
            warnings.extend(_fio_warnings(job))
    return warnings


def _fio_warnings(job: FioJobResult) -> list[SanityWarning]:
    subject = f"fio job {job.name}"
    found = []
    moved = max((d.io_bytes for d in (job.read, job.write) if d is not None), default=0)
    # Syncing jobs (wal-append) pushed their data to the device at every sync, whatever the cache held.
    if job.direct is not True and job.sync_count == 0 and job.size_bytes > 0:
        passes = moved / job.size_bytes
        if passes > PAGE_CACHE_PASSES:
            found.append(
                SanityWarning(
                    subject,
                    f"buffered I/O over a {fmt.iec_bytes(job.size_bytes)} file moved {fmt.iec_bytes(moved)} "
                    f"({passes:.0f} passes): the page cache answered, not the storage. Use direct: true, or a file "
                    "larger than what the job moves (bandwidth x runtime)",
                )
            )
    if job.sync_count >= MIN_SYNCS and job.sync_lat_ns_mean is not None and job.sync_lat_ns_mean < NO_REAL_FSYNC_NS:
        found.append(
            SanityWarning(
                subject,
                f"{job.sync_count:,} fsyncs took {fmt.latency_ns(job.sync_lat_ns_mean)} on average, faster than any "
                "device makes data durable: this storage does not honour sync (tmpfs, an async NFS export, a "
                "write cache that ignores flushes), and what Prometheus fsyncs there can still be lost",
            )
        )
    if job.cpu_pct is not None and job.cpu_pct >= CPU_BOUND_PCT:
        found.append(
            SanityWarning(
                subject,
                f"fio itself used {job.cpu_pct:.0f}% of a CPU: the job was bound by the CPU, so its IOPS and latency "
                "say how fast this host submits I/O, not how fast the storage serves it",
            )
        )
    return found
