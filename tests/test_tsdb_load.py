"""The TSDB write load: series layout and churn, the ledger (size, persistence), remote write and scrape mode against
the real ``prometheus`` binary."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from harness.checks.history import check_history
from harness.loads.ledger import Ledger, SeriesLayout
from harness.loads.tsdb_scrape import SyntheticExporter
from harness.loads.tsdb_writer import RequestTemplate, TsdbWriter
from harness.scenario.model import TsdbLoad
from harness.wait import wait_for
from tests.prometheus_fixture import PrometheusLauncher, prometheus_launcher


@pytest.fixture
def launcher(tmp_path: Path) -> Iterator[PrometheusLauncher]:
    yield from prometheus_launcher(tmp_path)


def _load(**kw: object) -> TsdbLoad:
    return TsdbLoad.model_validate({"series": 60, "metrics": 3, "interval": "200ms", "batch_series": 25, **kw})


def _run_id() -> str:
    return uuid.uuid4().hex[:8]


def test_churn_renews_a_rotating_window_of_slots() -> None:
    layout = SeriesLayout(
        run_id="r", series=10, metrics=2, label_cardinality=3, interval_ms=1000, batch_series=4,
        start_ms=100_000, churn_every_ms=2000, churn_fraction=0.3,
    )  # fmt: skip
    slots = np.arange(10, dtype=np.int64)
    ticks = np.array([100, 101, 102, 104, 106, 108], dtype=np.int64)  # epochs 0, 0, 1, 2, 3, 4
    gens = layout.gens(slots, ticks)
    assert gens[:, 0].tolist() == [0] * 10
    assert gens[:, 2].tolist() == [1, 1, 1, 0, 0, 0, 0, 0, 0, 0]
    assert gens[:, 4].tolist() == [1, 1, 1, 1, 1, 1, 1, 1, 1, 0]
    assert gens[:, 5].tolist() == [2, 2, 1, 1, 1, 1, 1, 1, 1, 1]  # 4 churns x 3 slots wrapped around 10 slots
    assert layout.metric_slots(1, 1).tolist() == [5, 7]
    assert layout.labels(7, 2) == {"__name__": "harness_load_1", "run_id": "r", "series": "7", "gen": "2", "shard": "0"}


def test_ledger_records_runs_and_survives_a_round_trip(tmp_path: Path) -> None:
    layout = SeriesLayout(
        run_id="r", series=10, metrics=2, label_cardinality=3, interval_ms=1000, batch_series=4, start_ms=0
    )
    ledger = Ledger(layout)
    for tick in [5, 6, 7, 9, 10]:
        for batch in range(layout.batches):
            ledger.record_ack(tick, batch)
    ledger.record_ack(11, 0)
    with pytest.raises(ValueError, match="recorded after"):
        ledger.record_ack(11, 0)
    assert ledger.acknowledged() == 5 * 10 + 4
    assert ledger.acknowledged(cutoff_ms=7999) == 3 * 10
    assert ledger.span_ms(10_500) == (5000, 10_000)
    ledger.save(tmp_path / "l.json")
    loaded = Ledger.load(tmp_path / "l.json")
    assert loaded.acknowledged() == ledger.acknowledged()
    assert loaded.totals("harness_load_1", 0, 20_000) == ledger.totals("harness_load_1", 0, 20_000)
    key = layout.key(5, 0)  # batch 1, which did not get tick 11
    assert ledger.samples([key], 0, 20_000)[key] == {k * 1000: layout.value(5, 0, k) for k in [5, 6, 7, 9, 10]}
    assert ledger.per_series("harness_load_1", 0, 20_000)[key][0] == 5


def test_ledger_stays_small_for_a_million_samples(tmp_path: Path) -> None:
    layout = SeriesLayout(
        run_id="r", series=20_000, metrics=10, label_cardinality=100, interval_ms=1000, batch_series=5000,
        start_ms=1_700_000_000_000, churn_every_ms=10_000, churn_fraction=0.05,
    )  # fmt: skip
    ledger = Ledger(layout)
    first = layout.start_ms // 1000
    for tick in range(first, first + 60):
        if tick % 20 in (3, 4):  # two faults: two ticks of every batch failed
            continue
        for batch in range(layout.batches):
            ledger.record_ack(tick, batch)
    size = ledger.save(tmp_path / "ledger.json")
    started = time.monotonic()
    totals = sum(ledger.totals(m, 0, 2**62)[0] for m in ledger.metric_names())
    elapsed_s = time.monotonic() - started
    print(f"\nledger: {ledger.acknowledged():,} acknowledged samples in {size:,} bytes; totals in {elapsed_s:.2f} s")
    assert ledger.acknowledged() == totals == 20_000 * 54
    # The count alone (what the history check sizes its queries by) agrees with the totals in every window, edges
    # on gaps and churns included.
    for lo, hi in [(0, 2**62), (first * 1000, (first + 3) * 1000), ((first + 2) * 1000, (first + 25) * 1000)]:
        for m in ledger.metric_names():
            assert ledger.count(m, lo, hi) == ledger.totals(m, lo, hi)[0], (m, lo, hi)
    assert size < 10_000
    assert json.loads((tmp_path / "ledger.json").read_text())["version"] == 1


def test_remote_write_every_acknowledged_sample_is_stored(launcher: PrometheusLauncher, tmp_path: Path) -> None:
    prom = launcher.start(tmp_path / "data")
    writer = TsdbWriter(_load(), _run_id(), endpoint=prom.url)
    t0 = time.time()
    writer.start()
    wait_for(lambda: writer.acked_samples >= 60 * 8, what="8 ticks acknowledged", timeout_s=20)
    writer.set_endpoint(None)  # Prometheus "down": writes fail and are counted, never recorded
    time.sleep(0.5)
    writer.stop()
    assert writer.failed_samples > 0
    assert writer.ledger.acknowledged() == writer.acked_samples
    cp = check_history(
        prom.client, writer.ledger, cutoff_unix_ms=int(time.time() * 1000), label="final", checked_at_s=1.0,
        run_id=writer.layout.run_id,
    )  # fmt: skip
    assert (cp.acknowledged, cp.present, cp.lost, cp.mismatched_values) == (writer.acked_samples, cp.acknowledged, 0, 0)
    points = writer.ingest(t0)
    assert sum(p.acked_samples for p in points) == writer.acked_samples
    assert sum(p.failed_samples for p in points) == writer.failed_samples
    first = writer.first_ack_after(t0)
    assert first is not None
    assert first > t0
    assert writer.first_ack_after(time.time()) is None


def test_remote_write_with_churn(launcher: PrometheusLauncher, tmp_path: Path) -> None:
    prom = launcher.start(tmp_path / "data")
    load = _load(churn={"every": "400ms", "fraction": 0.25})
    writer = TsdbWriter(load, _run_id(), endpoint=prom.url)
    writer.start()
    wait_for(lambda: writer.acked_samples >= 60 * 8, what="8 ticks acknowledged", timeout_s=20)
    writer.stop()
    run_id = writer.layout.run_id
    series = prom.client.count(f'count_over_time({{run_id="{run_id}"}}[1m])')
    assert series > 60  # churned series are new series
    cp = check_history(
        prom.client, writer.ledger, cutoff_unix_ms=int(time.time() * 1000), label="final", checked_at_s=1.0,
        run_id=run_id,
    )  # fmt: skip
    assert cp.lost == 0
    assert cp.acknowledged == writer.acked_samples

    # An invented acknowledgement forces the per-series drill-down through churned series: only it is lost.
    late_tick = int(time.time() * 1000) // writer.layout.interval_ms + 1
    writer.ledger.record_ack(late_tick, batch=0)
    cp = check_history(
        prom.client, writer.ledger, cutoff_unix_ms=late_tick * writer.layout.interval_ms, label="invented",
        checked_at_s=1.0, run_id=run_id,
    )  # fmt: skip
    assert (cp.lost, cp.lost_series_count, cp.present) == (25, 25, writer.acked_samples)


def test_scrape_mode_history_survives_a_sigkill(launcher: PrometheusLauncher, tmp_path: Path) -> None:
    exporter = SyntheticExporter(_load(interval="500ms"), _run_id())
    exporter.start()
    try:
        prom = launcher.start(tmp_path / "data", scrape_configs=[exporter.scrape_config_snippet()])
        run_id = exporter.layout.run_id
        wait_for(
            lambda: (
                prom.client.count(f'count_over_time({{run_id="{run_id}"}}[1m])') == 60
                and prom.client.instant(f'min(count_over_time({{run_id="{run_id}"}}[1m]))')[0].value >= 3
            ),
            what="three scrapes of all 60 series",
            timeout_s=30,
        )
        cutoff_ms = int(time.time() * 1000)
        before = exporter.snapshot(prom.client, cutoff_ms)
        assert before.acknowledged() >= 180
        assert exporter.first_scrape_after(cutoff_ms / 1000 - 60) is not None
        prom.kill()
        prom = launcher.start(tmp_path / "data", scrape_configs=[exporter.scrape_config_snippet()])
        cp = check_history(
            prom.client, before, cutoff_unix_ms=cutoff_ms, label="after sigkill", checked_at_s=1.0, run_id=run_id
        )
        assert (cp.lost, cp.acknowledged) == (0, before.acknowledged())
    finally:
        exporter.stop()


def test_a_writer_that_falls_behind_says_how_many_ticks_it_skipped() -> None:
    """A server that takes requests and never answers (a listening socket nobody accepts from) holds every request
    for the client's timeout, so the writer falls behind its 200 ms grid: the result must say what was never sent."""
    import socket

    from harness.loads.driver import TsdbDriver

    load = _load()
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)
        driver = TsdbDriver(load, _run_id())
        driver.start(f"http://127.0.0.1:{silent.getsockname()[1]}")
        assert driver.writer is not None
        driver.writer.request_timeout_s = 0.5
        driver.writer.set_endpoint(f"http://127.0.0.1:{silent.getsockname()[1]}")
        try:
            wait_for(lambda: driver.stats().skipped_ticks >= 3 or None, what="skipped ticks", timeout_s=30)
        finally:
            driver.stop()
    stats = driver.stats()
    assert stats.acked_samples == 0 and stats.skipped_samples == stats.skipped_ticks * load.series
    assert (stats.mode, stats.series, stats.interval_s) == ("remote_write", 60, 0.2)


def test_the_request_template_encodes_what_protobuf_decodes_as_the_layout_says() -> None:
    """The writer's bytes, read back by protobuf: every series' labels, its one value and the tick's timestamp; also
    after a churn epoch (new labels) and with a zero value and a zero timestamp (fields written, not omitted)."""
    import cramjam

    from harness.loads import remote_pb2

    load = _load(series=7, batch_series=4, churn={"every": "400ms", "fraction": 0.5})
    writer = TsdbWriter(load, _run_id(), start_unix_s=1_800_000_000.0)
    layout = writer.layout
    first = layout.start_ms // layout.interval_ms
    for tick in (first, first + 1, first + 5):
        for batch in range(layout.batches):
            req = remote_pb2.WriteRequest.FromString(bytes(cramjam.snappy.decompress_raw(writer._body(batch, tick))))
            slots = list(layout.batch_slots(batch))
            assert len(req.timeseries) == len(slots)
            gens = layout.gens(np.array(slots, dtype=np.int64), np.array([tick], dtype=np.int64))[:, 0]
            for series, slot, gen in zip(req.timeseries, slots, gens.tolist(), strict=True):
                assert {lab.name: lab.value for lab in series.labels} == layout.labels(slot, gen)
                [sample] = series.samples
                assert sample.timestamp == tick * layout.interval_ms
                assert sample.value == layout.value(slot, gen, tick)
    slots = np.arange(4, dtype=np.int64)
    template = RequestTemplate(layout, slots, np.zeros(4, dtype=np.int64), 0, 0)
    with pytest.raises(ValueError, match="does not fit"):
        template.body(slots, tick * layout.interval_ms)
    zero = template.body(np.zeros(4, dtype=np.int64), 0)
    req = remote_pb2.WriteRequest.FromString(bytes(cramjam.snappy.decompress_raw(zero)))
    assert [(s.samples[0].value, s.samples[0].timestamp) for s in req.timeseries] == [(0.0, 0)] * 4
