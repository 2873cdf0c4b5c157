"""Stored result -> pandas DataFrames: the one place that flattens a ``RunResult`` into tables for charts and HTML.

Every function is pure and returns a frame with fixed columns even when the result has no data for it, so callers
test ``frame.empty`` instead of guessing at missing keys. Times stay relative to the run's ``t0_unix_s`` (seconds);
absolute sample times (Unix milliseconds) become timezone-aware UTC timestamps.
"""

from __future__ import annotations

import pandas as pd

from harness import stages
from harness.results.model import FioDirection, RunResult

# Percentiles shown in the latency chart and compared between runs, in display order.
LATENCY_PERCENTILES = ("p50", "p90", "p99", "p99.9")

FIO_TIMESERIES_COLUMNS = ["series", "job", "profile", "direction", "t_s", "bw_bytes_per_s", "iops", "lat_ns_mean"]
FIO_SUMMARY_COLUMNS = [
    "series",
    "job",
    "profile",
    "direction",
    "bw_bytes_per_s",
    "iops",
    "runtime_s",
    "io_bytes",
    "clat_ns_mean",
    *[f"{p}_ns" for p in LATENCY_PERCENTILES],
    "error",
]
FIO_LATENCY_COLUMNS = ["series", "percentile", "latency_ns"]
INGEST_COLUMNS = ["t_s", "acked_per_s", "failed_per_s"]
FAULT_COLUMNS = [
    "index",
    "action",
    "injected_at_s",
    "process_up_at_s",
    "ready_at_s",
    "first_sample_at_s",
    "wal_replay_s",
    "recovery_s",
    "instance_before",
    "instance_after",
    "detail",
    "error",
    "lifted_at_s",
]
# One row per stage a fault passed through; since_injection_s is clamped to the stage before it (the API's times
# are whole seconds, truncated, so one may read up to a second earlier than the harness-observed stage before it).
STAGE_COLUMNS = ["index", "action", "stage", "label", "since_injection_s", "source", "resolution_s"]
DURABILITY_COLUMNS = [
    "label",
    "checked_at_s",
    "acknowledged",
    "present",
    "lost",
    "mismatched_values",
    "loss_window_start",
    "loss_window_end",
    "lost_series_count",
    "lost_series",
    "check_duration_s",
]


def _directions(result: RunResult) -> list[tuple[str, str, str, str, FioDirection]]:
    """(series label, job, profile, direction, data) for every direction a fio job measured."""
    out: list[tuple[str, str, str, str, FioDirection]] = []
    for job in result.fio:
        for direction, data in (("read", job.read), ("write", job.write)):
            if data is not None and data.io_bytes > 0:
                out.append((f"{job.name} {direction}", job.name, job.profile, direction, data))
    return out


def fio_timeseries_frame(result: RunResult) -> pd.DataFrame:
    # The first repetition of each job only: the chart shows a job's shape over time, and seven repetitions of four
    # jobs would be 28 lines; every repetition's numbers are in the summary table.
    first = {j.name for j in result.fio if j.repetition == 1}
    rows = [
        (series, job, profile, direction, p.t_s, p.bw_bytes_per_s, p.iops, p.lat_ns_mean)
        for series, job, profile, direction, data in _directions(result)
        if job in first
        for p in data.timeseries
    ]
    return pd.DataFrame(rows, columns=FIO_TIMESERIES_COLUMNS)


def fio_summary_frame(result: RunResult) -> pd.DataFrame:
    """One row per job direction; jobs that failed before measuring anything keep a row carrying their error."""
    rows: list[tuple[object, ...]] = []
    measured = set()
    for series, job, profile, direction, data in _directions(result):
        measured.add(job)
        pct = [data.clat_percentiles_ns.get(p) for p in LATENCY_PERCENTILES]
        error = next((j.error for j in result.fio if j.name == job), None)
        head = (series, job, profile, direction, data.bw_bytes_per_s, data.iops, data.runtime_s, data.io_bytes)
        rows.append((*head, data.clat_ns_mean, *pct, error))
    for j in result.fio:
        if j.name not in measured:
            rows.append((j.name, j.name, j.profile, "", None, None, j.runtime_s, 0, None, *[None] * 4, j.error))
    return pd.DataFrame(rows, columns=FIO_SUMMARY_COLUMNS)


def fio_latency_frame(result: RunResult) -> pd.DataFrame:
    """Completion latency percentiles per job direction, plus sync (fsync/fdatasync) latency where fio measured it."""
    rows: list[tuple[str, str, float]] = []
    for series, _job, _profile, _direction, data in _directions(result):
        rows += [(series, p, data.clat_percentiles_ns[p]) for p in LATENCY_PERCENTILES if p in data.clat_percentiles_ns]
    for job in result.fio:
        rows += [
            (f"{job.name} sync", p, job.sync_lat_ns_percentiles[p])
            for p in LATENCY_PERCENTILES
            if p in job.sync_lat_ns_percentiles
        ]
    return pd.DataFrame(rows, columns=FIO_LATENCY_COLUMNS)


def ingest_frame(result: RunResult) -> pd.DataFrame:
    """Samples acknowledged and refused per second; buckets are one second wide, so counts are rates."""
    rows = [(p.t_s, p.acked_samples, p.failed_samples) for p in sorted(result.ingest, key=lambda p: p.t_s)]
    return pd.DataFrame(rows, columns=INGEST_COLUMNS)


def faults_frame(result: RunResult) -> pd.DataFrame:
    rows = [
        (
            f.index,
            f.action,
            f.injected_at_s,
            f.process_up_at_s,
            f.ready_at_s,
            f.first_sample_at_s,
            f.wal_replay_s,
            f.recovery_s,
            f.instance_before,
            f.instance_after,
            f.detail,
            f.error,
            f.lifted_at_s,
        )
        for f in sorted(result.faults, key=lambda f: f.index)
    ]
    return pd.DataFrame(rows, columns=FAULT_COLUMNS)


def loss_windows(result: RunResult) -> list[tuple[float, float]]:
    """The loss windows of the checkpoints, in seconds since t0 (first and last lost sample), each once."""
    if result.t0_unix_s is None:
        return []
    t0 = result.t0_unix_s
    found = {
        (c.loss_window_start_unix_ms / 1000 - t0, c.loss_window_end_unix_ms / 1000 - t0)
        for c in result.durability
        if c.loss_window_start_unix_ms is not None and c.loss_window_end_unix_ms is not None
    }
    return sorted(found)


def stages_frame(result: RunResult) -> pd.DataFrame:
    rows = []
    for f in sorted(result.faults, key=lambda f: f.index):
        floor = 0.0
        for st in sorted(f.stages, key=lambda st: stages.ORDER.get(st.stage, len(stages.ORDER))):
            since = max(floor, st.at_s - f.injected_at_s)
            floor = since
            rows.append((f.index, f.action, st.stage, stages.label(st.stage), since, st.source, st.resolution_s))
    return pd.DataFrame(rows, columns=STAGE_COLUMNS)


def _utc(unix_ms: int | None) -> pd.Timestamp | None:
    return None if unix_ms is None else pd.Timestamp(unix_ms, unit="ms", tz="UTC")


def durability_frame(result: RunResult) -> pd.DataFrame:
    rows = [
        (
            c.label,
            c.checked_at_s,
            c.acknowledged,
            c.present,
            c.lost,
            c.mismatched_values,
            _utc(c.loss_window_start_unix_ms),
            _utc(c.loss_window_end_unix_ms),
            c.lost_series_count,
            list(c.lost_series),
            c.check_duration_s,
        )
        for c in result.durability
    ]
    return pd.DataFrame(rows, columns=DURABILITY_COLUMNS)
