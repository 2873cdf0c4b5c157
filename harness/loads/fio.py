"""The fio load: named profiles turned into fio argv, the job sized to the free space, fio's JSON output and its
bw/iops/latency logs parsed into typed results, and the data files removed afterwards (Ctrl-C included).

Everything except ``fio_version`` and ``run_fio_job`` is pure, so the argv builder and the parsers are tested
against recorded output as well as against the real binary.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any, Literal

from harness import fmt, proc
from harness.errors import CommandFailed, StorageUnavailable, UsageError, WaitTimeout
from harness.results.model import FioDirection, FioJobResult, FioPoint
from harness.scenario.model import FioJob

log = logging.getLogger(__name__)

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

# fio's default percentile list holds all of these; keys are what the result model and the report use.
PERCENTILE_KEYS: dict[str, str] = {
    "p50": "50.000000",
    "p90": "90.000000",
    "p99": "99.000000",
    "p99.9": "99.900000",
    "p99.99": "99.990000",
}

Direction = Literal["read", "write"]
_DDIR: dict[Direction, int] = {"read": 0, "write": 1}


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


def fio_version() -> str:
    """The installed fio's version, e.g. "3.33" (``fio --version`` prints "fio-3.33")."""
    out = proc.run(["fio", "--version"], timeout_s=30).stdout.strip()
    return out.removeprefix("fio-")


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


# --- parsing ---------------------------------------------------------------------------------------------------


def load_fio_json(raw: str) -> dict[str, Any]:
    """fio's JSON document from its output, which may carry fio's error lines before it (and, rarely, after it)."""
    match = re.search(r"^\{", raw, flags=re.MULTILINE)
    try:
        if match is None:
            raise json.JSONDecodeError("no line starts a JSON object", raw, 0)
        doc, _end = json.JSONDecoder().raw_decode(raw, match.start())
    except json.JSONDecodeError as e:
        raise CommandFailed(f"fio did not print a JSON document: {e}", stderr_tail=_tail(raw)) from e
    if not isinstance(doc, dict) or not isinstance(doc.get("jobs"), list) or not doc["jobs"]:
        raise CommandFailed("fio's JSON has no jobs", stderr_tail=_tail(raw))
    return doc


def parse_fio_json(
    raw: dict[str, Any] | str,
    *,
    job: FioJob,
    argv: Sequence[str],
    directory: Path,
    size_bytes: int,
) -> FioJobResult:
    """Typed result of one fio run. Several entries in ``jobs`` (numjobs without --group_reporting) are merged:
    bytes, bandwidth and IOPS add up, runtime is the longest, the mean is weighted by I/O count, and a percentile
    is the largest of the jobs' (an upper bound: the exact value needs the histograms fio merges itself with
    --group_reporting, which build_argv passes)."""
    doc = load_fio_json(raw) if isinstance(raw, str) else raw
    jobs: list[dict[str, Any]] = doc["jobs"]
    read = _merge_direction([j.get("read", {}) for j in jobs])
    write = _merge_direction([j.get("write", {}) for j in jobs])
    sync = _merge_latency([j.get("sync", {}).get("lat_ns", {}) for j in jobs])
    errors = sorted({int(j.get("error", 0)) for j in jobs} - {0})
    # A direction's runtime is wall time; "job_runtime" is summed over the jobs under --group_reporting.
    measured = [d.runtime_s * 1000 for d in (read, write) if d is not None]
    runtime_ms = max(measured) if measured else max(_ms(j.get("job_runtime")) for j in jobs)
    settings = resolve(job, size_bytes)
    return FioJobResult(
        name=job_name(job),
        profile=job.profile,
        argv=list(argv),
        directory=str(directory),
        size_bytes=size_bytes,
        runtime_s=runtime_ms / 1000.0,
        read=read,
        write=write,
        sync_lat_ns_percentiles=sync.percentiles if sync else {},
        error="; ".join(f"fio job error {e}: {os.strerror(e)}" for e in errors) or None,
        block_size_bytes=settings.block_size_bytes,
        ioengine=settings.ioengine,
        direct=settings.direct,
        iodepth=settings.iodepth,
        numjobs=job.numjobs,
        sync_every_bytes=settings.sync_every_bytes,
        sync_count=sync.count if sync else 0,
        sync_lat_ns_mean=sync.mean_ns if sync else None,
        cpu_pct=_cpu_pct(jobs),
    )


def _cpu_pct(jobs: list[dict[str, Any]]) -> float | None:
    """fio's own CPU use per job (usr_cpu + sys_cpu, % of one CPU), averaged over its job entries."""
    used = [float(j["usr_cpu"]) + float(j["sys_cpu"]) for j in jobs if "usr_cpu" in j and "sys_cpu" in j]
    return round(sum(used) / len(used), 2) if used else None


@dataclass(frozen=True)
class _Latency:
    count: int
    mean_ns: float | None
    percentiles: dict[str, float]


def _merge_latency(sections: list[dict[str, Any]]) -> _Latency | None:
    used = [s for s in sections if int(s.get("N", 0)) > 0]
    if not used:
        return None
    count = sum(int(s["N"]) for s in used)
    mean = sum(float(s.get("mean", 0.0)) * int(s["N"]) for s in used) / count
    percentiles: dict[str, float] = {}
    for key, fio_key in PERCENTILE_KEYS.items():
        values = [float(s["percentile"][fio_key]) for s in used if fio_key in s.get("percentile", {})]
        if values:
            percentiles[key] = max(values)
    return _Latency(count=count, mean_ns=mean, percentiles=percentiles)


def _merge_direction(sections: list[dict[str, Any]]) -> FioDirection | None:
    used = [s for s in sections if int(s.get("io_bytes", 0)) > 0 or int(s.get("total_ios", 0)) > 0]
    if not used:
        return None
    clat = _merge_latency([s.get("clat_ns", {}) for s in used])
    return FioDirection(
        io_bytes=sum(int(s["io_bytes"]) for s in used),
        bw_bytes_per_s=float(sum(int(s.get("bw_bytes", 0)) for s in used)),
        iops=sum(float(s.get("iops", 0.0)) for s in used),
        runtime_s=max(_ms(s.get("runtime")) for s in used) / 1000.0,
        clat_ns_mean=clat.mean_ns if clat else None,
        clat_percentiles_ns=clat.percentiles if clat else {},
    )


def _ms(value: object) -> float:
    return float(value) if isinstance(value, int | float) else 0.0


_LOG_FILE = re.compile(r"_(?P<kind>bw|iops|clat)\.(?P<job>\d+)\.log$")


def parse_fio_logs(log_prefix: Path, direction: Direction, *, log_avg_msec: int = LOG_AVG_MSEC) -> list[FioPoint]:
    """Bandwidth, IOPS and mean completion latency over time for one direction, from the logs fio wrote with
    ``--write_{bw,iops,lat}_log=<log_prefix>``: ``<prefix>_bw.<job>.log`` etc., lines ``time_ms, value, ddir, bs,
    offset``, bw in KiB/s, latency in ns. With numjobs > 1 the jobs' entries are put into ``log_avg_msec``
    buckets and summed (bandwidth, IOPS) or IOPS-weighted (latency)."""
    ddir = _DDIR[direction]
    # bucket -> job -> value
    series: dict[str, dict[int, dict[str, float]]] = {"bw": {}, "iops": {}, "clat": {}}
    directory = log_prefix.parent
    if not directory.is_dir():
        return []
    for path in sorted(directory.iterdir()):
        if not path.name.startswith(log_prefix.name + "_"):
            continue
        m = _LOG_FILE.search(path.name)
        if m is None or path.name[: m.start()] != log_prefix.name:
            continue
        kind, jobnum = m["kind"], m["job"]
        for line in path.read_text().splitlines():
            fields = [f.strip() for f in line.split(",")]
            if len(fields) < 3 or not fields[0]:
                continue
            try:
                t_ms, value, line_ddir = int(fields[0]), float(fields[1]), int(fields[2])
            except ValueError:
                continue
            if line_ddir != ddir:
                continue
            # When a job ends, fio flushes what the last window held as one more entry, often in the same bucket
            # as the window before (a few draining I/Os): the first entry of the bucket is the representative one.
            series[kind].setdefault(round(t_ms / log_avg_msec), {}).setdefault(jobnum, value)
    points: list[FioPoint] = []
    for bucket in sorted(series["bw"].keys() | series["iops"].keys()):
        bw = series["bw"].get(bucket, {})
        iops = series["iops"].get(bucket, {})
        clat = series["clat"].get(bucket, {})
        weights = {j: iops.get(j, 0.0) for j in clat}
        total_weight = sum(weights.values())
        if clat and total_weight > 0:
            lat: float | None = sum(clat[j] * weights[j] for j in clat) / total_weight
        elif clat:
            lat = sum(clat.values()) / len(clat)
        else:
            lat = None
        points.append(
            FioPoint(
                t_s=bucket * log_avg_msec / 1000.0,
                bw_bytes_per_s=sum(bw.values()) * KiB,
                iops=sum(iops.values()),
                lat_ns_mean=lat,
            )
        )
    return points


# --- running ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class JobFiles:
    """Where one job's outputs go in the run directory, under the same names on every runtime: fio's JSON
    (``fio-<name>.json``, the result's ``raw_json_file``), its console output (``fio-<name>.log``) and its
    bw/iops/latency logs (``fio-<name>.logs/<name>_*.log``)."""

    name: str
    out_dir: Path

    @property
    def raw_json(self) -> Path:
        return self.out_dir / f"fio-{self.name}.json"

    @property
    def console_log(self) -> Path:
        return self.out_dir / f"fio-{self.name}.log"

    @property
    def logs_dir(self) -> Path:
        return self.out_dir / f"fio-{self.name}.logs"

    @property
    def log_prefix(self) -> Path:
        return self.logs_dir / self.name


def job_files(job: FioJob, out_dir: Path) -> JobFiles:
    """The job's output files in ``out_dir``; UsageError when another job of the run already wrote there."""
    files = JobFiles(job_name(job), out_dir)
    if files.raw_json.exists() or files.logs_dir.exists():
        raise UsageError(f"fio job name {files.name!r} is used twice in {out_dir}; give each fio job a distinct name")
    return files


def collect_result(
    job: FioJob,
    files: JobFiles,
    *,
    argv: list[str],
    directory: str,
    size_bytes: int,
    returncode: int,
    where: str,
) -> FioJobResult:
    """The typed result of a finished fio run whose outputs are in ``files`` (written there by fio itself, or
    copied out of a pod): JSON, per-second series, and fio's own error lines when it failed. ``where`` says what
    ran it where (e.g. this host, or a pod on a node), for the report."""
    raw = _read(files.raw_json)
    try:
        doc = load_fio_json(raw)
    except CommandFailed as e:
        raise CommandFailed(
            f"fio job {files.name!r} in {directory} ({where}) wrote no JSON",
            returncode,
            _tail(_read(files.console_log)),
        ) from e
    result = parse_fio_json(doc, job=job, argv=argv, directory=Path(directory), size_bytes=size_bytes)
    update: dict[str, object] = {"raw_json_file": files.raw_json.name, "measured_on": where}
    if result.read is not None:
        update["read"] = result.read.model_copy(update={"timeseries": parse_fio_logs(files.log_prefix, "read")})
    if result.write is not None:
        update["write"] = result.write.model_copy(update={"timeseries": parse_fio_logs(files.log_prefix, "write")})
    if returncode != 0:
        detail = _fio_error_lines(_read(files.console_log)) or _fio_error_lines(raw) or result.error
        update["error"] = f"fio exited with code {returncode}" + (f": {detail}" if detail else "")
    return result.model_copy(update=update)


def run_fio_job(job: FioJob, directory: Path, out_dir: Path, *, timeout_s: float | None = None) -> FioJobResult:
    """Run one fio job on this host in a fresh subdirectory of ``directory`` (the storage under test) and return
    its result; its outputs go to ``out_dir`` (see ``JobFiles``). The subdirectory and the data files in it are
    removed afterwards, also on timeout or Ctrl-C; nothing else is touched.

    A job fio reports as failed (non-zero exit or a job error such as ENOSPC) comes back with ``error`` set and
    whatever it measured. StorageUnavailable: the directory is unusable or too full; CommandFailed: fio timed out or
    wrote no JSON; MissingBinary: fio is not installed.
    """
    files = job_files(job, out_dir)
    proc.which("fio")
    try:
        work_dir = Path(tempfile.mkdtemp(prefix=f"fio-{files.name}-", dir=directory))
    except OSError as e:
        raise StorageUnavailable(f"cannot create a directory for fio job {files.name!r} in {directory}: {e}") from e
    try:
        size = plan_size_bytes(job, shutil.disk_usage(work_dir).free)
        files.logs_dir.mkdir(parents=True)
        argv = [*build_argv(job, work_dir, size, files.log_prefix), f"--output={files.raw_json}"]
        budget_s = timeout_s if timeout_s is not None else default_timeout_s(job, size)
        log.info("fio %s: %s x %d in %s for %gs", files.name, fmt.size(size), job.numjobs, work_dir, job.runtime_s)
        returncode = _run_to_completion(files.name, argv, files.console_log, budget_s)
    finally:
        _remove_work_dir(work_dir)
    where = f"this host ({socket.gethostname()})"
    return collect_result(
        job, files, argv=argv, directory=str(directory), size_bytes=size, returncode=returncode, where=where
    )


def _run_to_completion(name: str, argv: list[str], console_log: Path, timeout_s: float) -> int:
    """Run fio and wait for it; on timeout or Ctrl-C stop it and reap it by PID before returning or raising.

    fio runs as a daemon rather than through ``proc.run``: subprocess.run does not wait for a child it killed on
    KeyboardInterrupt, so the caller could start removing the data files while fio still writes them.
    """
    daemon = proc.start_daemon(f"fio {name}", argv, log_path=console_log)
    try:
        return daemon.wait(timeout_s)
    except WaitTimeout as e:
        raise CommandFailed(
            f"fio job {name!r} did not finish within {timeout_s:g} s", stderr_tail=_tail(daemon.log_text())
        ) from e
    finally:
        # A no-op when fio has exited; otherwise SIGTERM (fio stops its jobs and still writes its JSON), then SIGKILL.
        daemon.stop(timeout_s=10.0)


def _remove_work_dir(work_dir: Path) -> None:
    """Remove the directory run_fio_job created with mkdtemp: only fio's data files live there."""
    try:
        shutil.rmtree(work_dir)
    except OSError as e:
        # Raising here would hide the exception in flight (Ctrl-C, timeout); the measurement itself is fine.
        log.warning("could not remove fio's data directory %s (space is still taken): %s", work_dir, e)


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""


def _fio_error_lines(text: str) -> str:
    """fio's own error lines ("fio: io_u error on file ...: No space left on device"), without repeats."""
    lines = [line for line in text.splitlines() if line.startswith("fio:")]
    return "\n".join(dict.fromkeys(lines))[-2000:]


def _tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])
