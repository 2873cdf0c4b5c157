"""Scrape mode of the TSDB load: the load's series served for Prometheus to scrape, with explicit timestamps on the
interval grid, by an exporter on this host (``SyntheticExporter``) or in a pod (``ScrapeExporter`` is what both
offer); the exposition text (``render_exposition``), the scrape config naming it, and the snapshot of what
Prometheus holds (``scrape_snapshot``), the oracle in scrape mode where no sample is acknowledged.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from array import array
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Protocol

import numpy as np

from harness.loads.ledger import ScrapeSnapshot, SeriesLayout
from harness.loads.tsdb import make_layout
from harness.prom import LabelsKey, PromClient
from harness.scenario.model import TsdbLoad

log = logging.getLogger(__name__)

_RAW_SAMPLES_PER_QUERY = 500_000  # keeps each snapshot answer to a few tens of MB of JSON


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
        self.layout = make_layout(load, run_id, start_unix_s)
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
