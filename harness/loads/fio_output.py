"""fio's output read back: its JSON document (``load_fio_json``) turned into a typed result (``parse_fio_json``), and
its bw/iops/latency logs into per-second series (``parse_fio_logs``).

Pure functions, tested against recorded output as well as against the real binary's.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from harness.errors import CommandFailed
from harness.loads.fio_job import LOG_AVG_MSEC, KiB, job_name, resolve
from harness.results.model import FioDirection, FioJobResult, FioPoint
from harness.scenario.model import FioJob

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


def load_fio_json(raw: str) -> dict[str, Any]:
    """fio's JSON document from its output, which may carry fio's error lines before it (and, rarely, after it)."""
    match = re.search(r"^\{", raw, flags=re.MULTILINE)
    try:
        if match is None:
            raise json.JSONDecodeError("no line starts a JSON object", raw, 0)
        doc, _end = json.JSONDecoder().raw_decode(raw, match.start())
    except json.JSONDecodeError as e:
        raise CommandFailed(f"fio did not print a JSON document: {e}", stderr_tail=tail(raw)) from e
    if not isinstance(doc, dict) or not isinstance(doc.get("jobs"), list) or not doc["jobs"]:
        raise CommandFailed("fio's JSON has no jobs", stderr_tail=tail(raw))
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


def fio_error_lines(text: str) -> str:
    """fio's own error lines ("fio: io_u error on file ...: No space left on device"), without repeats."""
    lines = [line for line in text.splitlines() if line.startswith("fio:")]
    return "\n".join(dict.fromkeys(lines))[-2000:]


def tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])
