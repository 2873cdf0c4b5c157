"""The history check against storage that really lost or moved samples: a Prometheus whose TSDB blocks were built by
``promtool tsdb create-blocks-from openmetrics`` from a ledger's expected samples (hours in the past, so they sit in
persisted 2-hour blocks, not the head), then a block deleted, a series left out, or timestamps shifted.

A value sum per metric and window is the check's first question; a shifted timestamp keeps it (the same values in the
same window), and so does any error that cancels. The spot check (a few series per metric compared sample by sample
at every checkpoint) is what sees those: these tests show it does, and show what the sums alone would have missed.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.checks import history
from harness.checks.history import check_history
from harness.loads.ledger import Ledger, SeriesLayout
from harness.prom import selector
from harness.results.model import DurabilityCheckpoint
from tests.prometheus_fixture import PrometheusLauncher, prometheus_launcher

SERIES, METRICS, INTERVAL_MS, BATCH = 200, 4, 10_000, 50
BLOCK_MS = 2 * 3600 * 1000  # promtool's default block duration
TICKS = 360  # an hour at 10 s, half of it on each side of a block boundary


@pytest.fixture
def launcher(tmp_path: Path) -> Iterator[PrometheusLauncher]:
    if shutil.which("promtool") is None:
        pytest.skip("promtool is not installed (Debian package 'prometheus')")
    yield from prometheus_launcher(tmp_path)


def _ledger() -> Ledger:
    """Every batch acknowledged at every tick of an hour centred on a block boundary some hours ago."""
    boundary = (int(time.time() * 1000) // BLOCK_MS - 3) * BLOCK_MS
    k0 = (boundary - TICKS // 2 * INTERVAL_MS) // INTERVAL_MS
    layout = SeriesLayout("losses", SERIES, METRICS, 4, INTERVAL_MS, BATCH, start_ms=k0 * INTERVAL_MS)
    ledger = Ledger(layout)
    for tick in range(k0, k0 + TICKS):
        for batch in range(layout.batches):
            ledger.record_ack(tick, batch)
    return ledger


def _blocks(
    ledger: Ledger, data: Path, *, skip_slot: int | None = None, shift_ms: dict[int, int] | None = None
) -> None:
    """Build the TSDB in ``data`` from the ledger's samples with promtool, minus ``skip_slot``, with the samples of
    the slots in ``shift_ms`` moved by that many ms."""
    layout, shift_ms = ledger.layout, shift_ms or {}
    k0 = layout.start_ms // INTERVAL_MS
    lines: list[str] = []
    for m in range(METRICS):
        lines.append(f"# TYPE {layout.metric_name(m)} gauge")
        for slot in range(m, SERIES, METRICS):
            if slot == skip_slot:
                continue
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(layout.labels(slot, 0).items()) if k != "__name__")
            for tick in range(k0, k0 + TICKS):
                ts_ms = tick * INTERVAL_MS + shift_ms.get(slot, 0)
                lines.append(f"{layout.metric_name(m)}{{{labels}}} {layout.value(slot, 0, tick)!r} {ts_ms / 1000:.3f}")
    lines.append("# EOF")
    source = data.parent / "samples.om"
    source.write_text("\n".join(lines) + "\n")
    data.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["promtool", "tsdb", "create-blocks-from", "openmetrics", str(source), str(data)],
        check=True,
        capture_output=True,
        timeout=120,
    )


def _check(launcher: PrometheusLauncher, data: Path, ledger: Ledger, concurrency: int = 4) -> DurabilityCheckpoint:
    prom = launcher.start(data)
    try:
        return check_history(
            prom.client,
            ledger,
            cutoff_unix_ms=int(time.time() * 1000),
            label="check",
            checked_at_s=0.0,
            run_id=ledger.run_id,
            concurrency=concurrency,
        )
    finally:
        prom.stop()


def test_a_deleted_block_is_lost_exactly(launcher: PrometheusLauncher, tmp_path: Path) -> None:
    ledger = _ledger()
    data = tmp_path / "data"
    _blocks(ledger, data)
    intact = _check(launcher, data, ledger)
    assert (intact.acknowledged, intact.lost) == (SERIES * TICKS, 0)

    metas = {d: json.loads((d / "meta.json").read_text()) for d in data.iterdir() if (d / "meta.json").is_file()}
    assert len(metas) == 2, f"promtool should have cut the hour at the block boundary: {sorted(metas)}"
    later = max(metas, key=lambda d: metas[d]["minTime"])
    lo, hi = metas[later]["minTime"], metas[later]["maxTime"]
    shutil.rmtree(later)
    cp = _check(launcher, data, ledger)
    in_block = sum(1 for t in range(TICKS) if lo <= ledger.layout.start_ms + t * INTERVAL_MS < hi) * SERIES
    assert in_block > 0
    assert (cp.lost, cp.lost_series_count, cp.mismatched_values) == (in_block, SERIES, 0)
    assert cp.loss_window_start_unix_ms is not None and cp.loss_window_start_unix_ms >= lo
    assert cp.loss_window_end_unix_ms is not None and cp.loss_window_end_unix_ms < hi


def test_a_dropped_series_is_lost_exactly(launcher: PrometheusLauncher, tmp_path: Path) -> None:
    ledger = _ledger()
    _blocks(ledger, tmp_path / "data", skip_slot=13)
    cp = _check(launcher, tmp_path / "data", ledger)
    assert (cp.lost, cp.lost_series, cp.mismatched_values) == (TICKS, [selector(ledger.layout.key(13, 0))], 0)


def test_shifted_timestamps_keep_the_sums_and_the_spot_check_finds_them(
    launcher: PrometheusLauncher, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A clock off by 1 s for every series: each window's value sum holds (the same values, in the same window), so
    only the spot check sees it, at its first look, whichever series it picks; then every series is compared."""
    ledger = _ledger()
    _blocks(ledger, tmp_path / "all", shift_ms=dict.fromkeys(range(SERIES), 1000))
    cp = _check(launcher, tmp_path / "all", ledger)
    assert (cp.acknowledged, cp.lost, cp.lost_series_count) == (SERIES * TICKS, SERIES * TICKS, SERIES)

    # One series shifted by 10 ms: invisible to the sums; found when the spot check covers it, missed when the spot
    # check is off. The residual risk: a cancelling error confined to series no checkpoint spots.
    _blocks(ledger, tmp_path / "one", shift_ms={13: 10})
    monkeypatch.setattr(history, "SPOT_SERIES_PER_METRIC", SERIES // METRICS)
    cp = _check(launcher, tmp_path / "one", ledger)
    assert (cp.lost, cp.lost_series) == (TICKS, [selector(ledger.layout.key(13, 0))])
    monkeypatch.setattr(history, "SPOT_SERIES_PER_METRIC", 0)
    assert _check(launcher, tmp_path / "one", ledger).lost == 0


def test_one_query_for_every_metric_drills_only_into_the_one_that_lost_and_still_spots_the_others(
    launcher: PrometheusLauncher, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """With one query at a time, every metric is in one group, asked with one value sum. A dropped series in one
    metric makes that sum differ: each metric is asked on its own, only the one that lost is drilled into, and the
    others, whose sums hold, are still spot-checked: a shifted series in one of them is found beside the loss."""
    ledger = _ledger()
    dropped, shifted = 13, 14  # metrics 1 and 2
    _blocks(ledger, tmp_path / "data", skip_slot=dropped, shift_ms={shifted: 10})
    monkeypatch.setattr(history, "SPOT_SERIES_PER_METRIC", SERIES // METRICS)
    with caplog.at_level("INFO", logger=history.__name__):
        cp = _check(launcher, tmp_path / "data", ledger, concurrency=1)
    assert (cp.acknowledged, cp.lost, cp.mismatched_values) == (SERIES * TICKS, 2 * TICKS, 0)
    assert cp.lost_series == sorted(selector(ledger.layout.key(s, 0)) for s in (dropped, shifted))
    layout = ledger.layout
    asked = [r.getMessage() for r in caplog.records if "asking each metric" in r.getMessage()]
    drilled = [r.getMessage() for r in caplog.records if "drilling down" in r.getMessage()]
    assert len(asked) == 1 and all(layout.metric_name(m) in asked[0] for m in range(METRICS)), asked
    assert [d.split(" ")[0] for d in drilled] == [layout.metric_name(dropped % METRICS)], drilled
