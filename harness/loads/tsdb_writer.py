"""The TSDB write load's remote-write writer (``TsdbWriter``): one request per batch per tick from a background
thread, each request encoded from a per-batch template (``RequestTemplate``) and recorded in the writer's
``WriteLog`` as it ends.

The writer never back-fills: a request that fails while Prometheus is down is retried only until ``retry_bound_s``
after its timestamp, then counted as failed and never recorded as acknowledged; ticks it fell behind on are skipped.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Sequence

import cramjam
import numpy as np

from harness.loads import remote_pb2
from harness.loads.ledger import IntArray, SeriesLayout
from harness.loads.tsdb import RequestRecord, SkippedTicks, WriteLog, WriterResults, make_layout
from harness.prom import PromClient, WriteOutcome
from harness.scenario.model import TsdbLoad

log = logging.getLogger(__name__)


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
            layout = make_layout(load, run_id, start_unix_s)
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
