"""The TSDB write load: synthetic series written to Prometheus by remote write (``TsdbWriter``) or exposed to its
scraper (``SyntheticExporter``), with every acknowledged sample recorded in a ``Ledger`` for the history check.

Samples sit on the interval grid (timestamp = tick * interval_ms) and their values are a pure function of (series,
generation, tick) (see ``SeriesLayout``), so the check knows every expected value without storing any. The writer
never back-fills: a request that fails while Prometheus is down is retried only until ``retry_bound_s`` after its
timestamp, then counted as failed and never recorded as acknowledged.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from abc import ABC, abstractmethod
from array import array
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Protocol

import cramjam
import numpy as np

from harness.loads import remote_pb2
from harness.loads.ledger import IntArray, Ledger, ScrapeSnapshot, SeriesLayout
from harness.prom import LabelsKey, PromClient, WriteOutcome
from harness.results.model import IngestPoint
from harness.scenario.model import TsdbLoad

log = logging.getLogger(__name__)

MAX_ERRORS_KEPT = 5  # distinct error answers kept per window: they repeat, a few say what happened
_RAW_SAMPLES_PER_QUERY = 500_000  # keeps each snapshot answer to a few tens of MB of JSON


def make_layout(load: TsdbLoad, run_id: str, start_unix_s: float) -> SeriesLayout:
    """The series layout of ``load`` for one run, its first tick the first grid point at or after ``start_unix_s``."""
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


class TsdbWriter(WriterResults):
    """Remote-writes ``load`` to the current endpoint from a background thread, one request per batch per tick.

    ``layout`` (default: the load's, starting now) is given where several writers share one run's layout;
    ``batches`` (default: all) is this writer's share of them; ``report`` sees every request as it ends and every
    skip (a writer shard passes them on to the harness)."""

    def __init__(
        self,
        load: TsdbLoad,
        run_id: str,
        *,
        endpoint: str | None = None,
        request_timeout_s: float = 5.0,
        retry_bound_s: float = 1.0,
        start_unix_s: float | None = None,
        layout: SeriesLayout | None = None,
        batches: Sequence[int] | None = None,
        report: Callable[[RequestRecord | SkippedTicks], None] | None = None,
    ) -> None:
        self.load = load
        if layout is None:
            layout = make_layout(load, run_id, time.time() if start_unix_s is None else start_unix_s)
        self.layout = layout
        self.batches = list(range(layout.batches)) if batches is None else list(batches)
        self.log = WriteLog(layout)
        self.request_timeout_s = request_timeout_s
        self.retry_bound_s = retry_bound_s
        self._report = report
        self._samples_per_tick = sum(len(layout.batch_slots(b)) for b in self.batches)
        self._client: PromClient | None = None
        self._client_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._templates: dict[int, RequestTemplate] = {}  # batch -> its encoded request
        self.set_endpoint(endpoint)

    # --- control ---------------------------------------------------------------------------------------

    def set_endpoint(self, base_url: str | None) -> None:
        """Point the writer at a (new) Prometheus base URL; ``None`` while no instance is up (writes fail fast).

        Returns once a request in flight to the old endpoint has ended (at most ``request_timeout_s``): the writer
        holds the client's lock through each request, so that Prometheus' count of the requests it answered can be
        read as final once the writer is detached (``detached``)."""
        with self._client_lock:
            old, self._client = self._client, None if base_url is None else PromClient(base_url, self.request_timeout_s)
        if old is not None:
            old.close()

    def detached(self, timeout_s: float = 0.0) -> bool:
        # set_endpoint(None) returned only after the request in flight ended, and none starts without a client.
        with self._client_lock:
            return self._client is None

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("TsdbWriter already started")
        self._thread = threading.Thread(target=self._loop, name="tsdb-writer", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop after the tick in progress; the ledger then holds everything that was acknowledged."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                log.warning("tsdb writer did not stop within %g s", timeout_s)
        self.set_endpoint(None)

    def check(self) -> None:
        """Nothing to check: a writer thread of the harness cannot break apart from it (``ShardedWriter`` can)."""

    # --- the loop --------------------------------------------------------------------------------------

    def _loop(self) -> None:
        interval_ms = self.layout.interval_ms
        tick = max(self.layout.start_ms // interval_ms, math.ceil(time.time() * 1000 / interval_ms))
        while not self._stop.is_set():
            delay_s = tick * interval_ms / 1000 - time.time()
            if delay_s > 0 and self._stop.wait(delay_s):
                break
            self._send_tick(tick)
            # Never back-fill ticks we fell behind on: their timestamps would be old by the time they are sent.
            current = math.floor(time.time() * 1000 / interval_ms)
            if current > tick + 1:
                self._skip(current - tick - 1)
                tick = current
            else:
                tick += 1

    def _send_tick(self, tick: int) -> None:
        ts_ms = tick * self.layout.interval_ms
        deadline = ts_ms / 1000 + self.retry_bound_s
        for batch in self.batches:
            body = self._body(batch, tick)
            n = len(self.layout.batch_slots(batch))
            sent = time.time()
            unanswered = 0
            while True:
                outcome, error = self._attempt(body)
                if outcome is WriteOutcome.UNKNOWN:
                    unanswered += 1  # no answer: Prometheus may have committed it (and counted it) all the same
                if outcome is WriteOutcome.ACKED or time.time() >= deadline or self._stop.is_set():
                    break
                time.sleep(0.05)
            record = RequestRecord(tick, batch, sent, time.time(), n, outcome, error, unanswered)
            self.log.add(record)
            if self._report is not None:
                self._report(record)

    def _attempt(self, body: bytes) -> tuple[WriteOutcome, str | None]:
        """One attempt at the current endpoint, holding the client's lock throughout (see ``set_endpoint``); the
        outcome and the error the client kept (None once acknowledged; none yet: no client)."""
        with self._client_lock:
            client = self._client
            if client is None:
                return WriteOutcome.UNREACHABLE, None
            return client.remote_write(body), client.last_write_error

    def _skip(self, ticks: int) -> None:
        skipped = SkippedTicks(ticks, ticks * self._samples_per_tick)
        self.log.skipped(skipped)
        if self._report is not None:
            self._report(skipped)

    def _body(self, batch: int, tick: int) -> bytes:
        slots = np.arange(self.layout.batch_slots(batch).start, self.layout.batch_slots(batch).stop, dtype=np.int64)
        ticks = np.array([tick], dtype=np.int64)
        gens = self.layout.gens(slots, ticks)
        ts_ms = tick * self.layout.interval_ms
        epoch = int(gens.sum())  # changes exactly when some slot of this batch got a new generation
        cached = self._templates.get(batch)
        if cached is None or not cached.fits(epoch, ts_ms):
            cached = self._templates[batch] = RequestTemplate(self.layout, slots, gens[:, 0], epoch, ts_ms)
        units = self.layout.value_units(slots, gens, ticks)[:, 0]
        return cached.body(units, ts_ms)


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        if n:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


class RequestTemplate:
    """The encoded WriteRequest of one batch, with a hole for each series' sample, so a tick costs two numpy
    scatters and a snappy compression instead of a protobuf message filled series by series (which cost the writer
    most of its CPU).

    The labels are encoded by protobuf itself, once per churn epoch; only the frame around each series' one sample
    is written here: ``timeseries`` (field 1) = labels + ``samples`` (field 2) = {``value`` (1, fixed64 double),
    ``timestamp`` (2, varint)}. Every sample of a tick has the same timestamp, so its varint has one length and the
    template holds while that length does (until the year 2109 for milliseconds). Fields are written even when they
    are zero, which proto3 readers accept. tests/test_tsdb_load.py checks the bytes decode to what protobuf encodes.
    """

    def __init__(self, layout: SeriesLayout, slots: IntArray, gens: IntArray, epoch: int, ts_ms: int) -> None:
        self.epoch = epoch
        self.ts_len = len(_varint(ts_ms))
        sample_len = 1 + 8 + 1 + self.ts_len
        buf = bytearray()
        value_at: list[int] = []
        for slot, gen in zip(slots.tolist(), gens.tolist(), strict=True):
            series = remote_pb2.TimeSeries()
            for name, value in layout.labels(slot, gen).items():
                series.labels.add(name=name, value=value)
            labels = series.SerializeToString()
            inner = len(labels) + 2 + sample_len
            buf += b"\x0a" + _varint(inner) + labels + b"\x12" + bytes([sample_len]) + b"\x09"
            value_at.append(len(buf))
            buf += bytes(8) + b"\x10" + bytes(self.ts_len)
        self._buf = np.frombuffer(bytes(buf), dtype=np.uint8).copy()
        values = np.array(value_at, dtype=np.int64)
        self._value_idx = values[:, None] + np.arange(8, dtype=np.int64)
        self._ts_idx = values[:, None] + (9 + np.arange(self.ts_len, dtype=np.int64))

    def fits(self, epoch: int, ts_ms: int) -> bool:
        return epoch == self.epoch and len(_varint(ts_ms)) == self.ts_len

    def body(self, units: IntArray, ts_ms: int) -> bytes:
        """The snappy-compressed request for one tick: each series' value ``units / 4`` at ``ts_ms``."""
        ts = _varint(ts_ms)
        if len(ts) != self.ts_len:
            raise ValueError(f"timestamp {ts_ms} does not fit this template (varint of {self.ts_len} bytes)")
        values = (units / 4.0).astype("<f8")
        self._buf[self._value_idx] = values.view(np.uint8).reshape(-1, 8)
        self._buf[self._ts_idx] = np.frombuffer(ts, dtype=np.uint8)
        return bytes(cramjam.snappy.compress_raw(self._buf.tobytes()))


class ScrapeExporter(Protocol):
    """Where scrape mode's series are served: on this host (``SyntheticExporter``) or, where Prometheus cannot reach
    this host, in a pod of the cluster (``harness.runtime.cluster_exporter``). Both serve ``render_exposition``."""

    @property
    def layout(self) -> SeriesLayout: ...

    @property
    def description(self) -> str:
        """Where it runs, for the result's environment."""
        ...

    def start(self) -> None:
        """Serve, before Prometheus starts (its config names the target)."""

    def stop(self) -> None: ...

    def scrape_config(self) -> dict[str, object]:
        """The ``scrape_configs`` entry Prometheus needs to scrape it."""
        ...

    def first_scrape_after(self, t_unix_s: float) -> float | None:
        """Wall time of the first scrape served after ``t_unix_s`` (recovery timeline in scrape mode)."""
        ...


class SyntheticExporter:
    """Serves the load's series on ``/metrics`` with explicit timestamps on the interval grid, for Prometheus to scrape.

    Each scrape shows the samples of the latest grid tick; scraping the same tick twice stores nothing new, because
    Prometheus drops a duplicate (same timestamp, same value) sample silently.
    """

    def __init__(self, load: TsdbLoad, run_id: str, *, port: int | None = None, start_unix_s: float | None = None):
        from harness import proc

        self.load = load
        self.layout = make_layout(load, run_id, time.time() if start_unix_s is None else start_unix_s)
        self.port = port if port is not None else proc.free_port()
        self._scrapes = array("d")
        self._lock = threading.Lock()
        self._label_text: dict[tuple[int, int], str] = {}
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def description(self) -> str:
        return f"{self.target} on the harness host (a thread of the harness)"

    def start(self) -> None:
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?")[0] != "/metrics":
                    self.send_error(404)
                    return
                body = exporter.render(time.time()).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                with exporter._lock:
                    exporter._scrapes.append(time.time())

            def log_message(self, format: str, *args: object) -> None:
                log.debug("exporter: " + format, *args)

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="tsdb-exporter", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(10.0)

    def scrape_config(self) -> dict[str, object]:
        return scrape_config(self.layout, self.target)

    def scrape_config_snippet(self) -> str:
        """``scrape_config()`` as one YAML list item (JSON flow style is YAML) to append under ``scrape_configs:``."""
        return "- " + json.dumps(self.scrape_config()) + "\n"

    def first_scrape_after(self, t_unix_s: float) -> float | None:
        """Wall time of the first scrape served after ``t_unix_s`` (recovery timeline in scrape mode)."""
        with self._lock:
            return next((t for t in self._scrapes if t > t_unix_s), None)

    def render(self, now_unix_s: float) -> str:
        """The exposition text at ``now_unix_s``: every series' sample at the latest grid tick."""
        return render_exposition(self.layout, now_unix_s, self._label_text)

    def snapshot(self, prom: PromClient, cutoff_unix_ms: int) -> ScrapeSnapshot:
        """Every sample of this run Prometheus returns up to ``cutoff_unix_ms`` (see ``scrape_snapshot``)."""
        return scrape_snapshot(self.layout, prom, cutoff_unix_ms)


def scrape_config(layout: SeriesLayout, target: str, metrics_path: str = "/metrics") -> dict[str, object]:
    """The ``scrape_configs`` entry for an exporter of ``layout`` at ``target`` (host:port): scraped once per sample
    interval, timestamps honoured."""
    interval = f"{layout.interval_ms}ms"
    config: dict[str, object] = {
        "job_name": f"harness-load-{layout.run_id}",
        "honor_timestamps": True,
        "scrape_interval": interval,
        "scrape_timeout": interval,
    }
    if metrics_path != "/metrics":
        config["metrics_path"] = metrics_path
    config["static_configs"] = [{"targets": [target]}]
    return config


def render_exposition(
    layout: SeriesLayout, now_unix_s: float, label_text: dict[tuple[int, int], str] | None = None
) -> str:
    """The exposition text of ``layout`` at ``now_unix_s``: every series' sample at the latest grid tick, with its
    timestamp; empty before the first tick. ``label_text`` caches the label part per (slot, generation)."""
    label_text = {} if label_text is None else label_text
    tick = math.floor(now_unix_s * 1000 / layout.interval_ms)
    ts_ms = tick * layout.interval_ms
    if ts_ms < layout.start_ms:
        return ""
    slots = np.arange(layout.series, dtype=np.int64)
    ticks = np.array([tick], dtype=np.int64)
    gens = layout.gens(slots, ticks)[:, 0]
    units = layout.value_units(slots, gens[:, None], ticks)[:, 0]
    lines: list[str] = []
    for m in range(layout.metrics):
        lines.append(f"# TYPE {layout.metric_name(m)} gauge")
        for slot in range(m, layout.series, layout.metrics):
            gen = int(gens[slot])
            labels = label_text.get((slot, gen))
            if labels is None:
                pairs = layout.labels(slot, gen)
                name = pairs.pop("__name__")
                labels = name + "{" + ",".join(f'{k}="{v}"' for k, v in pairs.items()) + "}"
                label_text[(slot, gen)] = labels
            lines.append(f"{labels} {int(units[slot]) / 4.0!r} {ts_ms}")
    lines.append("")
    return "\n".join(lines)


def scrape_snapshot(layout: SeriesLayout, prom: PromClient, cutoff_unix_ms: int) -> ScrapeSnapshot:
    """Every sample of ``layout``'s run Prometheus returns up to ``cutoff_unix_ms``: taken just before a fault, it is
    what must still be there after it, wherever the exporter runs."""
    window_ms = cutoff_unix_ms - layout.start_ms + layout.interval_ms // 2
    samples: dict[LabelsKey, dict[int, float]] = {}
    if window_ms <= 0:
        return ScrapeSnapshot(layout.run_id, layout.interval_ms, samples)
    per_metric = math.ceil(layout.series / layout.metrics)
    chunk_ticks = max(1, _RAW_SAMPLES_PER_QUERY // per_metric)
    chunk_ms = chunk_ticks * layout.interval_ms
    for name in layout.metric_names():
        hi = cutoff_unix_ms
        while hi > layout.start_ms - layout.interval_ms // 2:
            width = min(chunk_ms, hi - (layout.start_ms - layout.interval_ms // 2))
            got = prom.raw_samples(f'{name}{{run_id="{layout.run_id}"}}', width / 1000, hi / 1000)
            for key, values in got.items():
                samples.setdefault(key, {}).update(values)
            hi -= width
    return ScrapeSnapshot(layout.run_id, layout.interval_ms, samples)
