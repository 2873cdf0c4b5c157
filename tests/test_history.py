"""The history-survival oracle against the real ``prometheus`` binary: nothing acknowledged is lost across a SIGKILL
(the WAL keeps it), everything before the fault is reported lost after a restart on an empty directory (the
emptyDir/reschedule case), and a perturbed or invented expectation shows up as a mismatch or a loss."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest

from harness.checks import history
from harness.checks.history import check_history, history_check_result
from harness.loads.ledger import IntArray, Ledger, SeriesLayout
from harness.loads.tsdb_writer import TsdbWriter
from harness.prom import LabelsKey, selector
from harness.results.model import DurabilityCheckpoint, Status
from harness.scenario.model import TsdbLoad
from harness.wait import wait_for
from tests.prometheus_fixture import PrometheusLauncher, RunningPrometheus, prometheus_launcher

SERIES = 2000
LOAD = TsdbLoad.model_validate({"series": SERIES, "metrics": 10, "interval": "200ms", "batch_series": 500})


@pytest.fixture
def launcher(tmp_path: Path) -> Iterator[PrometheusLauncher]:
    yield from prometheus_launcher(tmp_path)


def _acked(writer: TsdbWriter, samples: int) -> None:
    target = writer.acked_samples + samples
    wait_for(lambda: writer.acked_samples >= target, what=f"{samples} more acknowledged samples", timeout_s=30)


def _stopped_after(
    launcher: PrometheusLauncher, tmp_path: Path, samples: int
) -> tuple[RunningPrometheus, TsdbWriter, int]:
    """A real Prometheus given ``samples`` acknowledged samples by a writer that has stopped; the time after it."""
    prom = launcher.start(tmp_path / "data")
    writer = TsdbWriter(LOAD, uuid.uuid4().hex[:8], endpoint=prom.url)
    writer.start()
    try:
        _acked(writer, samples)
    finally:
        writer.stop()
    return prom, writer, int(time.time() * 1000)


def _check(prom: RunningPrometheus, expected: Ledger, cutoff_ms: int, label: str = "check") -> DurabilityCheckpoint:
    started = time.monotonic()
    cp = check_history(
        prom.client, expected, cutoff_unix_ms=cutoff_ms, label=label, checked_at_s=0.0, run_id=expected.run_id
    )
    print(
        f"\n{label}: {cp.acknowledged:,} acknowledged, {cp.lost:,} lost, checked in {time.monotonic() - started:.2f} s"
    )
    return cp


def _fault(
    launcher: PrometheusLauncher, prom: RunningPrometheus, writer: TsdbWriter, data_dir: Path
) -> tuple[RunningPrometheus, int, float]:
    """SIGKILL ``prom``, start a new instance on ``data_dir`` and point the writer at it; (new, cutoff_ms, fault_s)."""
    fault_s = time.time()
    prom.kill()
    writer.set_endpoint(None)
    cutoff_ms = int(fault_s * 1000)
    new = launcher.start(data_dir)
    writer.set_endpoint(new.url)
    _acked(writer, SERIES * 3)
    return new, cutoff_ms, fault_s


def test_sigkill_and_restart_on_the_same_dir_loses_nothing(
    launcher: PrometheusLauncher, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    prom = launcher.start(tmp_path / "data")
    writer = TsdbWriter(LOAD, uuid.uuid4().hex[:8], endpoint=prom.url)
    writer.start()
    try:
        _acked(writer, SERIES * 8)
        prom, cutoff_ms, fault_s = _fault(launcher, prom, writer, tmp_path / "data")
    finally:
        writer.stop()
    pre = _check(prom, writer.ledger, cutoff_ms, "after sigkill")
    assert pre.acknowledged == writer.ledger.acknowledged(cutoff_ms) >= SERIES * 8
    assert (pre.present, pre.lost, pre.mismatched_values, pre.lost_series) == (pre.acknowledged, 0, 0, [])
    now_ms = int(time.time() * 1000)
    final = _check(prom, writer.ledger, now_ms, "final")
    assert (final.acknowledged, final.lost) == (writer.acked_samples, 0)
    recovered = writer.first_ack_after(fault_s)
    assert recovered is not None
    print(f"first sample acknowledged {recovered - fault_s:.2f} s after the SIGKILL")

    # Many small time chunks must count each sample exactly once.
    monkeypatch.setattr(history, "SAMPLES_PER_AGGREGATE_QUERY", 3 * SERIES // 10)
    assert _check(prom, writer.ledger, now_ms, "chunked").model_dump() == {**final.model_dump(), "label": "chunked"}


def test_restart_on_an_empty_dir_reports_the_history_before_the_fault_lost(
    launcher: PrometheusLauncher, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    prom = launcher.start(tmp_path / "pod-1")
    writer = TsdbWriter(LOAD, uuid.uuid4().hex[:8], endpoint=prom.url)
    writer.start()
    try:
        _acked(writer, SERIES * 5)
        prom, cutoff_ms, _ = _fault(launcher, prom, writer, tmp_path / "pod-2")  # a reschedule onto an emptyDir
    finally:
        writer.stop()
    monkeypatch.setattr(history, "SAMPLES_PER_RAW_QUERY", 100)  # many raw queries: grouping must not lose track
    cp = _check(prom, writer.ledger, cutoff_ms, "after reschedule")
    acked_before = writer.ledger.acknowledged(cutoff_ms)
    span = writer.ledger.span_ms(cutoff_ms)
    assert span is not None
    assert (cp.acknowledged, cp.present, cp.lost, cp.mismatched_values) == (acked_before, 0, acked_before, 0)
    assert (cp.loss_window_start_unix_ms, cp.loss_window_end_unix_ms) == span
    assert cp.lost_series_count == SERIES
    assert len(cp.lost_series) == history.MAX_LISTED_SERIES
    assert cp.lost_series[0].startswith("harness_load_")

    final = _check(prom, writer.ledger, int(time.time() * 1000), "final")
    assert final.lost == acked_before  # what was written to the new instance is all there
    assert final.acknowledged == writer.acked_samples

    verdict = history_check_result([cp, final], max_samples_lost=0)
    print(verdict.reason)
    assert verdict.status is Status.FAILED
    assert f"{acked_before:,} of {acked_before:,} acknowledged samples lost between" in verdict.reason
    assert f"in {SERIES:,} series" in verdict.reason
    assert history_check_result([cp], max_samples_lost=acked_before).status is Status.PASSED


class _OneSeriesShifted(SeriesLayout):
    """Expects slot 7 to hold other values than were written."""

    def value_units(self, slots: IntArray, gens: IntArray, ticks: IntArray) -> IntArray:
        units = super().value_units(slots, gens, ticks)
        shifted: IntArray = units + np.where(slots[:, None] == 7, 1, 0)
        return shifted


def test_perturbed_or_invented_expectations_are_reported(launcher: PrometheusLauncher, tmp_path: Path) -> None:
    prom, writer, now_ms = _stopped_after(launcher, tmp_path, SERIES * 4)
    writer.ledger.save(tmp_path / "ledger.json")
    perturbed = Ledger(_OneSeriesShifted(**asdict(writer.layout)))
    perturbed._runs = Ledger.load(tmp_path / "ledger.json")._runs  # the same acknowledgements, other expected values
    cp = _check(prom, perturbed, now_ms, "perturbed")
    slot7 = selector(writer.layout.key(7, 0))
    per_series = writer.ledger.acknowledged(now_ms) // SERIES
    assert (cp.mismatched_values, cp.lost, cp.lost_series_count, cp.lost_series) == (per_series, per_series, 1, [slot7])

    # An acknowledgement Prometheus never saw (a tick after the writer stopped) must show as lost.
    invented = Ledger.load(tmp_path / "ledger.json")
    late_tick = now_ms // writer.layout.interval_ms + 1
    invented.record_ack(late_tick, batch=1)
    cp = _check(prom, invented, late_tick * writer.layout.interval_ms, "invented")
    assert (cp.lost, cp.mismatched_values, cp.lost_series_count) == (LOAD.batch_series, 0, LOAD.batch_series)
    assert cp.loss_window_start_unix_ms == cp.loss_window_end_unix_ms == late_tick * writer.layout.interval_ms


class _AckedDuringTheCheck(Ledger):
    """A live ledger that gets one more acknowledgement while a check reads it, after the check asked for its totals
    and before it drills down: what a checkpoint taken while the load still writes sees (the request was stored by
    Prometheus but its answer had not arrived when the check began; slow answers make that window long)."""

    late: tuple[int, int] | None = None  # (tick, batch)

    def per_series(self, metric: str, lo_ms: int, hi_ms: int) -> dict[LabelsKey, tuple[int, float]]:
        if self.late is not None:
            tick, batch = self.late
            self.late = None
            self.record_ack(tick, batch)
        return super().per_series(metric, lo_ms, hi_ms)


def test_an_acknowledgement_arriving_during_the_check_cannot_hide_a_loss(
    launcher: PrometheusLauncher, tmp_path: Path
) -> None:
    """One check reads one state of the ledger. Read live, the totals (asked first) and the drill-down (later) saw
    two states, and the samples acknowledged in between counted as present but not as acknowledged: an invented
    loss of one request was reported as 0 lost (and a run with slow answers saw ``lost`` below 0)."""
    prom, writer, now_ms = _stopped_after(launcher, tmp_path, SERIES * 4)
    writer.ledger.save(tmp_path / "ledger.json")
    live = _AckedDuringTheCheck(writer.layout)
    live._runs = Ledger.load(tmp_path / "ledger.json")._runs
    # Batch 0's last request is in Prometheus but not yet in the ledger: its answer arrives during the check.
    last = live._runs[0][-1]
    live.late = (last[1], 0)
    if last[0] == last[1]:
        live._runs[0].pop()
    else:
        last[1] -= 1
    # Batch 1 has a real loss: an acknowledgement Prometheus never saw.
    late_tick = now_ms // writer.layout.interval_ms + 1
    live.record_ack(late_tick, batch=1)
    cp = _check(prom, live, late_tick * writer.layout.interval_ms, "acked during the check")
    assert (cp.lost, cp.lost_series_count, cp.mismatched_values) == (LOAD.batch_series, LOAD.batch_series, 0)
    assert cp.present == cp.acknowledged - LOAD.batch_series


def test_verdict_without_checkpoints_or_samples_is_an_error() -> None:
    assert history_check_result([], 0).status is Status.ERROR
    empty = DurabilityCheckpoint(label="final", checked_at_s=1, acknowledged=0, present=0, lost=0, cutoff_unix_ms=1)
    assert history_check_result([empty], 0).status is Status.ERROR
    ok = empty.model_copy(update={"acknowledged": 10, "present": 10})
    assert history_check_result([ok, empty], 0).status is Status.PASSED
