"""The scenario's ``loads``: the TSDB write load whose acknowledged samples the history check counts, and the fio
jobs that measure the storage before Prometheus runs.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from harness.scenario.strict import Strict
from harness.scenario.units import Bytes, Seconds


class Churn(Strict):
    every_s: Seconds = Field(alias="every", description="how often a share of the series is replaced")
    fraction: float = Field(gt=0.0, le=1.0, description="share of series replaced by new ones at each churn")


class TsdbLoad(Strict):
    """A synthetic write load whose every acknowledged sample is recorded, so the history check can be exact."""

    mode: Literal["remote_write", "scrape"] = Field(
        default="remote_write",
        description="remote_write: the load sends its samples and records each one Prometheus acknowledges; "
        "scrape: an exporter serves them for Prometheus to scrape (nothing is acknowledged: the check holds "
        "Prometheus to what it returned before each fault)",
    )
    series: int = Field(default=1000, ge=1, le=5_000_000, description="series written, one sample each per interval")
    interval_s: Seconds = Field(default=1.0, alias="interval", description="time between two samples of a series")
    metrics: int = Field(default=10, ge=1, description="series are spread over this many metric names")
    label_cardinality: int = Field(
        default=100, ge=1, description="distinct values of the 'instance'-like label the series vary over"
    )
    churn: Churn | None = Field(
        default=None, description="replace a share of the series by new ones every so often; null: the same series"
    )
    batch_series: int = Field(default=5000, ge=1, description="remote write: series per request")
    shards: int = Field(
        default=1,
        ge=1,
        le=64,
        description="remote write: split the load over this many writers, each sending its share of the batches "
        "(processes on the local runtime, pods of an indexed Job on kubernetes); their acknowledgements are merged "
        "into one ledger. More than 1 where one writer falls behind (the run warns of skipped ticks)",
    )
    latency_s: Seconds | None = Field(
        default=None,
        alias="latency",
        description="remote write, local runtime: every request waits this long on its way to Prometheus, as "
        "across a WAN or a cluster's API server proxy (a hop of the harness' own delays it); one writer then "
        "sends at most one request per latency, which is what shards are for",
    )

    @model_validator(mode="after")
    def _latency(self) -> TsdbLoad:
        if self.latency_s is not None and self.mode != "remote_write":
            raise ValueError("latency: only remote_write requests pass the hop (in scrape mode Prometheus pulls)")
        if self.latency_s is not None and self.latency_s > 10:
            raise ValueError("latency: at most 10s (a writer's request times out before)")
        return self

    @model_validator(mode="after")
    def _interval(self) -> TsdbLoad:
        if self.interval_s < 0.1:
            raise ValueError("interval must be at least 100ms")
        return self

    @model_validator(mode="after")
    def _shards(self) -> TsdbLoad:
        if self.shards > 1 and self.mode != "remote_write":
            raise ValueError("shards: only remote_write is split (in scrape mode Prometheus pulls)")
        batches = -(-self.series // min(self.batch_series, self.series))
        if self.shards > batches:
            raise ValueError(
                f"shards: {self.shards} writers for {batches} batch(es) of {self.batch_series} series: each shard "
                f"needs at least one batch; lower batch_series or shards"
            )
        return self


FioProfileName = Literal["randwrite-4k", "randread-4k", "seqwrite-1m", "wal-append"]


class FioJob(Strict):
    profile: FioProfileName = Field(
        description="the I/O pattern: randwrite-4k, randread-4k (4 KiB random, O_DIRECT), seqwrite-1m (1 MiB "
        "sequential, O_DIRECT), wal-append (buffered 32 KiB appends, an fsync per segment, as Prometheus' WAL)"
    )
    name: str | None = Field(default=None, description="default: the profile name")
    runtime_s: Seconds = Field(default=10.0, alias="runtime", description="how long fio runs it (--runtime)")
    size_bytes: Bytes | None = Field(
        default=None, alias="size", description="file size; default: sized to the free space, at most 1Gi"
    )
    direct: bool | None = Field(default=None, description="O_DIRECT; default per profile")
    ioengine: str | None = Field(default=None, description="default: libaio where direct, psync otherwise")
    iodepth: int | None = Field(
        default=None, ge=1, description="I/Os in flight (--iodepth); default: 16 on an asynchronous engine, else 1"
    )
    numjobs: int = Field(
        default=1, ge=1, le=64, description="copies of the job running at once, each on a file of its own (--numjobs)"
    )
    # --- compare: repetitions and throttling (harness/report/compare/) ---
    repeat: int = Field(
        default=1,
        ge=1,
        le=100,
        description="run the job this many times, one after the other: each repetition is one independent value "
        "of its metrics for `harness compare` (5 or more per side let a change be significant)",
    )
    rate_bytes_per_s: Bytes | None = Field(
        default=None,
        alias="rate",
        description="cap the job's bandwidth (fio --rate, bytes/s, e.g. 20Mi): a slow disk on purpose, or a fair "
        "share on a shared volume",
    )
    rate_iops: int | None = Field(default=None, ge=1, description="cap the job's IOPS (fio --rate_iops)")


class Loads(Strict):
    tsdb: TsdbLoad | None = Field(default_factory=TsdbLoad)
    fio: list[FioJob] = Field(
        default_factory=list, description="fio jobs, one after the other, on the storage before Prometheus starts"
    )
