"""One interface over the two TSDB load modes, so the pipeline does not care how samples reach Prometheus.

Remote write has an acknowledgement per request, so its oracle is the ledger of acknowledged samples. A scrape has
none, so in scrape mode the oracle is a snapshot of what Prometheus returned just before each fault.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, NamedTuple

from harness.loads.hop import DelayHop
from harness.loads.ledger import ExpectedHistory, ScrapeSnapshot
from harness.loads.shards import ShardedWriter, ShardLauncher
from harness.loads.tsdb import WriteFailures, make_layout
from harness.loads.tsdb_scrape import ScrapeExporter, SyntheticExporter, scrape_snapshot
from harness.loads.tsdb_writer import TsdbWriter
from harness.prom import PromClient
from harness.results.model import IngestPoint, LoadStats
from harness.scenario.model import TsdbLoad

LEDGER_FILE = "tsdb-ledger.json"


class LedgerCounts(NamedTuple):
    requests: int  # acknowledged remote-write requests
    samples: int  # the samples they carried
    unanswered_attempts: int  # attempts that got no answer: Prometheus may have taken (and counted) them unseen


class TsdbDriver:
    def __init__(
        self,
        load: TsdbLoad,
        run_id: str,
        *,
        exporter: ScrapeExporter | None = None,
        shards: ShardLauncher | None = None,
    ) -> None:
        """``exporter``: scrape mode's exporter where the runtime needs one of its own (default: on this host).
        ``shards``: where the writer shards run when the load has more than one."""
        self.load = load
        self.run_id = run_id
        self.shards = shards
        self.writer: TsdbWriter | ShardedWriter | None = None
        self.exporter: ScrapeExporter | None = None
        self._snapshot: ScrapeSnapshot | None = None
        self.hop: DelayHop | None = None
        if load.mode == "scrape":
            self.exporter = exporter if exporter is not None else SyntheticExporter(load, run_id)

    @property
    def mode(self) -> str:
        return self.load.mode

    def prepare(self) -> list[dict[str, Any]]:
        """Before Prometheus starts: the scrape configs it needs (the exporter must be listening already)."""
        if self.exporter is None:
            return []
        self.exporter.start()
        return [self.exporter.scrape_config()]

    def _route(self, endpoint: str | None) -> str | None:
        """Where the writers send: Prometheus itself, or the slow hop in front of it (``loads.tsdb.latency``)."""
        if self.load.latency_s is None:
            return endpoint
        if self.hop is None:
            self.hop = DelayHop(self.load.latency_s)
            self.hop.start()
        return self.hop.route(endpoint)

    def start(self, endpoint: str | None) -> None:
        """The load phase begins (t0): remote write starts on the grid from now."""
        if self.exporter is not None:
            return
        endpoint = self._route(endpoint)
        if self.load.shards > 1:
            if self.shards is None:
                raise ValueError("a sharded load needs the runtime's shard launcher")
            layout = make_layout(self.load, self.run_id, time.time())
            self.writer = ShardedWriter(layout, self.load.shards, self.shards, endpoint)
        else:
            self.writer = TsdbWriter(self.load, self.run_id, endpoint=endpoint)
        self.writer.start()

    def set_endpoint(self, endpoint: str | None) -> None:
        if self.writer is not None:
            self.writer.set_endpoint(self._route(endpoint))

    def before_fault(self, prom_url: str, cutoff_unix_ms: int) -> None:
        """Scrape mode: remember what Prometheus shows now; it must still be there after the fault."""
        if self.exporter is not None:
            with PromClient(prom_url, timeout_s=60) as client:
                self._snapshot = scrape_snapshot(self.exporter.layout, client, cutoff_unix_ms)

    def expected(self, prom_url: str) -> ExpectedHistory:
        """What must be in Prometheus: the ledger (remote write) or the last snapshot before a fault (scrape)."""
        if self.writer is not None:
            self.writer.check()
            return self.writer.ledger
        assert self.exporter is not None
        if self._snapshot is None:  # no fault yet: the promise is what Prometheus shows now
            self.before_fault(prom_url, int(time.time() * 1000))
        assert self._snapshot is not None
        return self._snapshot

    def acknowledged_since(self, cutoff_unix_ms: int) -> int | None:
        """Samples acknowledged with a timestamp after ``cutoff_unix_ms``, from the ledger (no Prometheus needed: it
        may be gone); None in scrape mode, where nothing is acknowledged to the harness."""
        if self.writer is None:
            return None
        ledger = self.writer.ledger
        return ledger.acknowledged() - ledger.acknowledged(cutoff_unix_ms)

    def detached(self, timeout_s: float) -> bool:
        """Remote write: True once no request of the load can reach the Prometheus it wrote to before
        ``set_endpoint(None)`` or ``stop``, so that its own count of them is final (waits at most ``timeout_s``).
        False where the writers write on through a fault (shards writing to a Service), or in scrape mode."""
        return self.writer is not None and self.writer.detached(timeout_s)

    def ledger_counts(self) -> LedgerCounts | None:
        """Remote write: what the ledger holds, for the comparison with Prometheus' own count; None in scrape mode."""
        if self.writer is None:
            return None
        ledger = self.writer.ledger
        return LedgerCounts(ledger.acknowledged_requests(), ledger.acknowledged(), self.writer.unanswered_attempts)

    def check(self) -> None:
        """InfraError if the load broke apart from the harness (a writer shard ended)."""
        if self.writer is not None:
            self.writer.check()

    def first_sample_after(self, t_unix_s: float) -> float | None:
        if self.writer is not None:
            return self.writer.first_ack_after(t_unix_s)
        assert self.exporter is not None
        return self.exporter.first_scrape_after(t_unix_s)

    def failures(self, since_unix_s: float, until_unix_s: float) -> WriteFailures:
        """Remote writes that failed in the window (scrape mode has none to tell: Prometheus pulls)."""
        return self.writer.failures(since_unix_s, until_unix_s) if self.writer is not None else WriteFailures()

    def ingest(self, t0_unix_s: float) -> list[IngestPoint]:
        return self.writer.ingest(t0_unix_s) if self.writer is not None else []

    def stats(self) -> LoadStats:
        stats = LoadStats(mode=self.load.mode, series=self.load.series, interval_s=self.load.interval_s)
        if self.writer is not None:
            stats.acked_samples = self.writer.acked_samples
            stats.failed_samples = self.writer.failed_samples
            stats.skipped_ticks = self.writer.skipped_ticks
            stats.skipped_samples = self.writer.skipped_samples
            stats.shards = self.load.shards
        return stats

    def stop(self) -> None:
        if self.writer is not None:
            self.writer.stop()
        if self.exporter is not None:
            self.exporter.stop()
        if self.hop is not None:
            self.hop.stop()

    def save(self, run_dir: Path) -> str | None:
        """Keep the ledger with the result (a few KB), so the check can be re-examined later."""
        if self.writer is None:
            return None
        self.writer.ledger.save(run_dir / LEDGER_FILE)
        return LEDGER_FILE
