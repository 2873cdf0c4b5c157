"""The TSDB write load: synthetic series written to Prometheus by remote write (``harness.loads.tsdb_writer``) or
exposed to its scraper (``harness.loads.tsdb_scrape``), with every acknowledged sample recorded in a ``Ledger`` for
the history check. This module holds what both sides share: the run's series layout (``make_layout``) and what the
writers saw (``WriteLog``: the ledger, the per-second counters, the failures and the ticks skipped).

Samples sit on the interval grid (timestamp = tick * interval_ms) and their values are a pure function of (series,
generation, tick) (see ``SeriesLayout``), so the check knows every expected value without storing any. The writer
never back-fills: a request that fails while Prometheus is down is retried only until ``retry_bound_s`` after its
timestamp, then counted as failed and never recorded as acknowledged.
"""

from __future__ import annotations

import math
import threading
import time
from abc import ABC, abstractmethod
from array import array
from collections import defaultdict
from dataclasses import dataclass, field

from harness.loads.ledger import Ledger, SeriesLayout
from harness.prom import WriteOutcome
from harness.results.model import IngestPoint
from harness.scenario.model import TsdbLoad

MAX_ERRORS_KEPT = 5  # distinct error answers kept per window: they repeat, a few say what happened


def make_layout(load: TsdbLoad, run_id: str, start_unix_s: float | None = None) -> SeriesLayout:
    """The series layout of ``load`` for one run, its first tick the first grid point at or after ``start_unix_s``
    (default: now)."""
    if start_unix_s is None:
        start_unix_s = time.time()
    interval_ms = round(load.interval_s * 1000)
    start_ms = math.ceil(start_unix_s * 1000 / interval_ms) * interval_ms
    return SeriesLayout(
        run_id=run_id,
        series=load.series,
        metrics=min(load.metrics, load.series),
        label_cardinality=load.label_cardinality,
        interval_ms=interval_ms,
        batch_series=min(load.batch_series, load.series),
        start_ms=start_ms,
        churn_every_ms=None if load.churn is None else round(load.churn.every_s * 1000),
        churn_fraction=0.0 if load.churn is None else load.churn.fraction,
    )


@dataclass
class WriteFailures:
    """What the load saw fail in a window: samples by outcome (``WriteOutcome`` values) and the distinct errors."""

    samples: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


class _IngestCounters:
    """Samples acknowledged and failed per wall-clock second, and when each acknowledged request was sent/acked."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buckets: dict[int, list[int]] = defaultdict(lambda: [0, 0])
        self._sent = array("d")
        self._acked = array("d")
        # Every request that was not acknowledged: (when it gave up, samples, outcome, what it last got). Only
        # faults make these, so the list stays short.
        self._failures: list[tuple[float, int, str, str]] = []
        self.acked_samples = 0
        self.failed_samples = 0
        self.unanswered_attempts = 0

    def add(
        self,
        sent_unix_s: float,
        done_unix_s: float,
        samples: int,
        outcome: WriteOutcome,
        *,
        error: str | None = None,
        unanswered: int = 0,
    ) -> None:
        with self._lock:
            self.unanswered_attempts += unanswered
            bucket = self._buckets[math.floor(done_unix_s)]
            if outcome is WriteOutcome.ACKED:
                bucket[0] += samples
                self.acked_samples += samples
                self._sent.append(sent_unix_s)
                self._acked.append(done_unix_s)
            else:
                bucket[1] += samples
                self.failed_samples += samples
                self._failures.append((done_unix_s, samples, outcome.value, error or outcome.value))

    def failures(self, since_unix_s: float, until_unix_s: float) -> WriteFailures:
        """The samples whose requests gave up between the two times, by outcome, and the distinct errors seen."""
        found = WriteFailures()
        with self._lock:
            for done, samples, outcome, error in self._failures:
                if since_unix_s <= done <= until_unix_s:
                    found.samples[outcome] = found.samples.get(outcome, 0) + samples
                    if error not in found.errors and len(found.errors) < MAX_ERRORS_KEPT:
                        found.errors.append(error)
        return found

    def points(self, t0_unix_s: float) -> list[IngestPoint]:
        with self._lock:
            if not self._buckets:
                return []
            lo, hi = min(self._buckets), max(self._buckets)
            return [
                IngestPoint(
                    t_s=sec - t0_unix_s,
                    acked_samples=self._buckets[sec][0] if sec in self._buckets else 0,
                    failed_samples=self._buckets[sec][1] if sec in self._buckets else 0,
                )
                for sec in range(lo, hi + 1)
            ]

    def first_ack_after(self, t_unix_s: float) -> float | None:
        # A request already in flight when a fault hits may still be acknowledged by the old instance; only a
        # request *sent* after the fault shows the new one stores samples.
        with self._lock:
            for sent, acked in zip(self._sent, self._acked, strict=True):
                if sent > t_unix_s:
                    return acked
        return None


@dataclass(frozen=True)
class RequestRecord:
    """One remote-write request as the writer saw it end: which batch at which tick, when it was sent and answered,
    its samples and outcome, the last error it got (None once acknowledged), and how many of its attempts got no
    answer at all (timed out or broke after sending: Prometheus may have committed them, unseen)."""

    tick: int
    batch: int
    sent_unix_s: float
    done_unix_s: float
    samples: int
    outcome: WriteOutcome
    error: str | None
    unanswered: int = 0

    def to_wire(self) -> dict[str, object]:
        return {"t": self.tick, "b": self.batch, "s": self.sent_unix_s, "d": self.done_unix_s, "n": self.samples,
                "o": self.outcome.value, "e": self.error, "u": self.unanswered}  # fmt: skip

    @classmethod
    def from_wire(cls, doc: dict[str, object]) -> RequestRecord:
        error = doc.get("e")
        return cls(
            tick=int(str(doc["t"])),
            batch=int(str(doc["b"])),
            sent_unix_s=float(str(doc["s"])),
            done_unix_s=float(str(doc["d"])),
            samples=int(str(doc["n"])),
            outcome=WriteOutcome(doc["o"]),
            error=None if error is None else str(error),
            unanswered=int(str(doc.get("u", 0))),
        )


@dataclass(frozen=True)
class SkippedTicks:
    """Ticks a writer never sent because it fell behind its schedule, and the samples they would have carried."""

    ticks: int
    samples: int


class WriteLog:
    """Everything the write load saw: the ledger of acknowledged samples, the per-second counters, the failures and
    the ticks skipped. Fed by one writer in this process, or by the request records of several writer shards (each
    batch belongs to one shard, so each batch's ticks still arrive in order)."""

    def __init__(self, layout: SeriesLayout) -> None:
        self.layout = layout
        self.ledger = Ledger(layout)
        self._counters = _IngestCounters()
        self.skipped_ticks = 0  # ticks never sent because a writer fell behind (slow answers), summed over writers
        self.skipped_samples = 0

    def add(self, record: RequestRecord) -> None:
        if record.outcome is WriteOutcome.ACKED:
            self.ledger.record_ack(record.tick, record.batch)
        self._counters.add(
            record.sent_unix_s,
            record.done_unix_s,
            record.samples,
            record.outcome,
            error=record.error,
            unanswered=record.unanswered,
        )

    def skipped(self, skipped: SkippedTicks) -> None:
        self.skipped_ticks += skipped.ticks
        self.skipped_samples += skipped.samples

    @property
    def acked_samples(self) -> int:
        return self._counters.acked_samples

    @property
    def failed_samples(self) -> int:
        return self._counters.failed_samples

    @property
    def unanswered_attempts(self) -> int:
        """Attempts that got no answer: each may have been committed, and counted by Prometheus, without an ack."""
        return self._counters.unanswered_attempts

    def ingest(self, t0_unix_s: float) -> list[IngestPoint]:
        """Acknowledged/failed samples per second, ``t_s`` relative to ``t0_unix_s``, gaps filled with zeros."""
        return self._counters.points(t0_unix_s)

    def first_ack_after(self, t_unix_s: float) -> float | None:
        """Wall time of the first acknowledgement of a request sent after ``t_unix_s`` (recovery timeline)."""
        return self._counters.first_ack_after(t_unix_s)

    def failures(self, since_unix_s: float, until_unix_s: float) -> WriteFailures:
        return self._counters.failures(since_unix_s, until_unix_s)


class WriterResults(ABC):
    """What a writer shows the driver, read from its ``log``: one writer thread's (``TsdbWriter``) or the merge of
    its shards' (``harness.loads.shards.ShardedWriter``)."""

    log: WriteLog

    @property
    def ledger(self) -> Ledger:
        return self.log.ledger

    @property
    def acked_samples(self) -> int:
        return self.log.acked_samples

    @property
    def failed_samples(self) -> int:
        return self.log.failed_samples

    @property
    def unanswered_attempts(self) -> int:
        return self.log.unanswered_attempts

    @property
    def skipped_ticks(self) -> int:
        return self.log.skipped_ticks

    @property
    def skipped_samples(self) -> int:
        return self.log.skipped_samples

    def ingest(self, t0_unix_s: float) -> list[IngestPoint]:
        return self.log.ingest(t0_unix_s)

    def first_ack_after(self, t_unix_s: float) -> float | None:
        return self.log.first_ack_after(t_unix_s)

    def failures(self, since_unix_s: float, until_unix_s: float) -> WriteFailures:
        return self.log.failures(since_unix_s, until_unix_s)

    @abstractmethod
    def detached(self, timeout_s: float) -> bool:
        """True once no request of the writer can reach the endpoint it wrote to before ``set_endpoint(None)`` (or
        before it stopped), so that Prometheus' own count of them is final; waits at most ``timeout_s``."""
