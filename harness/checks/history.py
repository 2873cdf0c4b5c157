"""History survival: are the samples Prometheus acknowledged before a cut-off still there, with exact values?

Exactness at scale comes from narrowing down. Prometheus' cost is per series: every query selecting a series costs it
about 5-10 us (postings, sorting, chunk iterators; measured on 2.42 and 3.16), whatever the samples it holds, so
with a few samples per series the number of times a series is selected decides the check's speed. Each series is
therefore selected once in the common case: for each metric and checkpoint window one query asks for the value sum
of all its stored samples (``sum(sum_over_time(...))``); the ledger's values make float sums exact, so the sum is a
checksum of the values, and it is compared with the expectation by equality. A window is as long as
``SAMPLES_PER_AGGREGATE_QUERY`` expected samples of a metric allow (one window per checkpoint up to 5M samples per
metric). Only a metric whose sum differs is drilled into: per series count and sum (answers streamed, never held
whole), and only the series whose numbers differ have their raw samples fetched (an instant query of a range
selector: what is stored, not step-evaluated) and compared sample by sample. Samples Prometheus holds that were
never acknowledged (a request it stored but could not answer before being killed) are ignored there.

What a value sum cannot see: a loss of samples whose values sum to 0 (values are >= 0, so only samples of value 0:
1 in 1,048,573), and errors that cancel: a lost sample beside an unacknowledged extra one of the same value, or a
sample stored at another timestamp in the same window (a shifted timestamp keeps count and sum). Those are covered
by the spot check: at every checkpoint ``SPOT_SERIES_PER_METRIC`` series of each metric, picked anew from the
checkpoint's cut-off, are compared sample by sample, timestamps included, whatever the sums say; where one differs,
every series of that window is. A shift or a cancelling error that touches all series (a clock, a whole block) is
found at the first checkpoint; one confined to a few series is found with probability (spotted series / series) per
checkpoint, so a fault that persists is found within a few checkpoints, and one that strikes once may be missed.

Range windows start half an interval off the sample grid, so whether a range is closed on the left (Prometheus 2.x)
or open (3.x) never changes which samples it holds.

Prometheus evaluates one query on one core, so the queries go out a few at a time.
"""

from __future__ import annotations

import logging
import math
import re
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime

from harness.loads.ledger import ExpectedHistory
from harness.prom import LabelsKey, PromClient, labels_key, selector
from harness.results.model import CheckResult, DurabilityCheckpoint, FaultRecord, Status

log = logging.getLogger(__name__)

CHECK_NAME = "history_survival"
MAX_LISTED_SERIES = 20
# Expected samples of one metric per window: bounds what one query reads (Prometheus' --query.max-samples, 50M by
# default, counts the samples of one series at a time for *_over_time, so this is far from it).
SAMPLES_PER_AGGREGATE_QUERY = 5_000_000
SAMPLES_PER_RAW_QUERY = 200_000
# Series per metric compared sample by sample at every checkpoint, whatever the sums say (see the module's doc).
SPOT_SERIES_PER_METRIC = 2
# Queries in flight at once: enough for the cores of a small Prometheus, far below its own
# --query.max-concurrency (20 by default).
QUERY_CONCURRENCY = 4


@dataclass
class _Tally:
    acknowledged: int = 0
    present: int = 0
    mismatched: int = 0
    first_lost_ms: int | None = None
    last_lost_ms: int | None = None
    lost_series: set[LabelsKey] = field(default_factory=set)

    def lost_at(self, key: LabelsKey, ts_ms: int) -> None:
        self.lost_series.add(key)
        self.first_lost_ms = ts_ms if self.first_lost_ms is None else min(self.first_lost_ms, ts_ms)
        self.last_lost_ms = ts_ms if self.last_lost_ms is None else max(self.last_lost_ms, ts_ms)


def check_history(
    prom: PromClient,
    expected: ExpectedHistory,
    *,
    cutoff_unix_ms: int,
    label: str,
    checked_at_s: float,
    run_id: str,
    concurrency: int = QUERY_CONCURRENCY,
) -> DurabilityCheckpoint:
    """Compare what ``expected`` says was acknowledged up to ``cutoff_unix_ms`` with what ``prom`` returns now.

    ``lost`` counts every acknowledged sample not found with its exact timestamp and value; ``mismatched_values`` is
    the part of it found at the right timestamp with another value. Raises PrometheusError if Prometheus cannot answer.
    """
    if expected.run_id != run_id:
        raise ValueError(f"expectation is for run {expected.run_id!r}, not {run_id!r}")
    expected = expected.frozen()  # the load may still be writing: every question below gets the same answer
    tally = _Tally()
    span = expected.span_ms(cutoff_unix_ms)
    if span is not None:
        pool = ThreadPoolExecutor(concurrency, thread_name_prefix="history-check")
        try:
            pending = [
                _ask(pool, prom, want, metric=metric, run_id=run_id, lo_ms=lo, hi_ms=hi)
                for lo, hi, metric, want in _windows(expected, span, cutoff_unix_ms)
            ]
            for chunk in pending:
                _check_chunk(prom, expected, tally, chunk, run_id=run_id)
            _spot_check(prom, expected, tally, pending, run_id=run_id, seed=cutoff_unix_ms)
        finally:
            # On an error or Ctrl-C, queries not yet sent are dropped; those in flight end within the client's timeout.
            pool.shutdown(wait=True, cancel_futures=True)
    lost = tally.acknowledged - tally.present
    listed = sorted(tally.lost_series)[:MAX_LISTED_SERIES]
    return DurabilityCheckpoint(
        label=label,
        checked_at_s=checked_at_s,
        acknowledged=tally.acknowledged,
        present=tally.present,
        lost=lost,
        cutoff_unix_ms=cutoff_unix_ms,
        loss_window_start_unix_ms=tally.first_lost_ms,
        loss_window_end_unix_ms=tally.last_lost_ms,
        lost_series_count=len(tally.lost_series),
        lost_series=[selector(k) for k in listed],
        mismatched_values=tally.mismatched,
    )


def _windows(
    expected: ExpectedHistory, span: tuple[int, int], cutoff_ms: int
) -> list[tuple[int, int, str, tuple[int, float]]]:
    """(lo, hi, metric, expected count and sum) of every window that expects samples. Windows are sized by the
    samples the ledger expects, not by ticks: a writer that skipped ticks leaves fewer samples per tick, and every
    extra window selects every series of its metric once more."""
    interval_ms = expected.interval_ms
    half = interval_ms // 2
    lo_all = span[0] - half
    hi_all = (cutoff_ms // interval_ms) * interval_ms + half
    whole = {metric: expected.totals(metric, lo_all, hi_all) for metric in expected.metric_names()}
    most = max((n for n, _ in whole.values()), default=0)
    parts = max(1, math.ceil(most / SAMPLES_PER_AGGREGATE_QUERY))
    if parts == 1:
        return [(lo_all, hi_all, metric, want) for metric, want in whole.items() if want[0]]
    ticks = (hi_all - lo_all) // interval_ms
    step_ms = max(1, math.ceil(ticks / parts)) * interval_ms
    return [
        (lo, hi, metric, want)
        for lo in range(lo_all, hi_all, step_ms)
        for hi in [min(hi_all, lo + step_ms)]
        for metric in whole
        if (want := expected.totals(metric, lo, hi))[0]
    ]


@dataclass(frozen=True)
class _Chunk:
    """One metric in one window: what the ledger expects, and the aggregate query asking Prometheus."""

    metric: str
    lo_ms: int
    hi_ms: int
    want_count: int
    want_sum: float
    sum: Future[float]


def _range(run_id: str, metric: str, lo_ms: int, hi_ms: int) -> tuple[str, str]:
    return f'{metric}{{run_id="{run_id}"}}', f"[{hi_ms - lo_ms}ms]"


def _ask(
    pool: ThreadPoolExecutor,
    prom: PromClient,
    want: tuple[int, float],
    *,
    metric: str,
    run_id: str,
    lo_ms: int,
    hi_ms: int,
) -> _Chunk:
    """Send the window's one aggregate query to the pool."""
    sel, rng = _range(run_id, metric, lo_ms, hi_ms)
    total = pool.submit(_scalar_sum, prom, f"sum(sum_over_time({sel}{rng}))", hi_ms / 1000)
    return _Chunk(metric, lo_ms, hi_ms, want[0], want[1], total)


def _scalar_sum(prom: PromClient, expr: str, at_s: float) -> float:
    return sum(s.value for s in prom.instant(expr, at_s))  # no sample stored: an empty vector, i.e. 0


def _check_chunk(prom: PromClient, expected: ExpectedHistory, tally: _Tally, chunk: _Chunk, *, run_id: str) -> None:
    metric, lo_ms, hi_ms = chunk.metric, chunk.lo_ms, chunk.hi_ms
    want_count, want_sum = chunk.want_count, chunk.want_sum
    tally.acknowledged += want_count
    got_sum = chunk.sum.result()
    if got_sum == want_sum:
        tally.present += want_count
        return
    log.info(
        "%s in (%d, %d]: stored values sum to %r, the %d acknowledged ones to %r: drilling down",
        metric, lo_ms, hi_ms, got_sum, want_count, want_sum,
    )  # fmt: skip
    sel, rng = _range(run_id, metric, lo_ms, hi_ms)
    at_s = hi_ms / 1000
    want_series = expected.per_series(metric, lo_ms, hi_ms)
    # Streamed: the answers hold every series of the metric; only the counts are kept while the sums go by.
    counts = {
        labels_key({**dict(s.labels), "__name__": metric}): s.value  # *_over_time drops the name: put it back
        for s in prom.instant_stream(f"count_over_time({sel}{rng})", at_s)
    }
    for s in prom.instant_stream(f"sum_over_time({sel}{rng})", at_s):
        key = labels_key({**dict(s.labels), "__name__": metric})
        want = want_series.get(key)
        if want is not None and counts.get(key) == want[0] and s.value == want[1]:
            tally.present += want[0]
            del want_series[key]
    del counts
    _compare_raw(prom, expected, tally, list(want_series), run_id=run_id, lo_ms=lo_ms, hi_ms=hi_ms)


def _compare_raw(
    prom: PromClient,
    expected: ExpectedHistory,
    tally: _Tally,
    suspects: list[LabelsKey],
    *,
    run_id: str,
    lo_ms: int,
    hi_ms: int,
) -> None:
    """Fetch the raw samples of ``suspects`` and count each acknowledged one present or lost, a few series a time."""
    ticks = max(1, (hi_ms - lo_ms) // expected.interval_ms)
    group = max(1, SAMPLES_PER_RAW_QUERY // ticks)
    for start in range(0, len(suspects), group):
        keys = suspects[start : start + group]
        want = expected.samples(keys, lo_ms, hi_ms)
        stored = _raw(prom, keys, run_id=run_id, lo_ms=lo_ms, hi_ms=hi_ms)
        for key in keys:
            have = stored.get(key, {})
            for ts_ms, value in want[key].items():
                found = have.get(ts_ms)
                if found is not None and found == value:
                    tally.present += 1
                    continue
                if found is not None:
                    tally.mismatched += 1
                tally.lost_at(key, ts_ms)


def _spot_check(
    prom: PromClient, expected: ExpectedHistory, tally: _Tally, chunks: list[_Chunk], *, run_id: str, seed: int
) -> None:
    """Compare a few series of every window whose sum held sample by sample: what no sum can see (see the module's
    doc), one raw query per window for all metrics. Where one of them differs, the sum was fooled: the samples of
    that metric and window, counted present by it, are compared again, every series sample by sample."""
    if SPOT_SERIES_PER_METRIC <= 0:
        return
    held = [c for c in chunks if c.sum.result() == c.want_sum]  # the others were drilled into already
    for lo_ms, hi_ms in dict.fromkeys((c.lo_ms, c.hi_ms) for c in held):
        window = [c for c in held if (c.lo_ms, c.hi_ms) == (lo_ms, hi_ms)]
        keys = [k for c in window for k in expected.some_series(c.metric, lo_ms, hi_ms, SPOT_SERIES_PER_METRIC, seed)]
        spot = _Tally()
        _compare_raw(prom, expected, spot, keys, run_id=run_id, lo_ms=lo_ms, hi_ms=hi_ms)
        fooled = {dict(k)["__name__"] for k in spot.lost_series}
        for chunk in window:
            if chunk.metric not in fooled:
                continue
            log.info("%s in (%d, %d]: the value sum held but spotted samples differ: comparing every series",
                     chunk.metric, lo_ms, hi_ms)  # fmt: skip
            tally.present -= chunk.want_count
            every = list(expected.per_series(chunk.metric, lo_ms, hi_ms))
            _compare_raw(prom, expected, tally, every, run_id=run_id, lo_ms=lo_ms, hi_ms=hi_ms)


def _raw(
    prom: PromClient, keys: list[LabelsKey], *, run_id: str, lo_ms: int, hi_ms: int
) -> dict[LabelsKey, dict[int, float]]:
    names = sorted({dict(k).get("__name__", "") for k in keys})
    ids = sorted({dict(k).get("series", "") for k in keys})
    name = names[0] if len(names) == 1 else f'{{__name__=~"{"|".join(re.escape(n) for n in names)}"'
    matchers = f'run_id="{run_id}",series=~"{"|".join(re.escape(i) for i in ids)}"'
    sel = f"{name}{{{matchers}}}" if len(names) == 1 else f"{name},{matchers}}}"
    got = prom.raw_samples(sel, (hi_ms - lo_ms) / 1000, hi_ms / 1000)
    return {key: dict(samples) for key, samples in got.items()}


def history_check_result(checkpoints: list[DurabilityCheckpoint], max_samples_lost: int) -> CheckResult:
    """The history-survival verdict over all checkpoints: FAILED if any lost more than ``max_samples_lost``."""
    if not checkpoints:
        return CheckResult(name=CHECK_NAME, status=Status.ERROR, reason="no history checkpoint was taken")
    details: dict[str, object] = {
        "max_samples_lost": max_samples_lost,
        "checkpoints": [
            {"label": c.label, "acknowledged": c.acknowledged, "lost": c.lost, "mismatched": c.mismatched_values}
            for c in checkpoints
        ],
    }
    if all(c.acknowledged == 0 for c in checkpoints):
        return CheckResult(
            name=CHECK_NAME,
            status=Status.ERROR,
            reason="no sample was acknowledged before any checkpoint, so survival proves nothing",
            details=details,
        )
    worst = max(checkpoints, key=lambda c: c.lost)  # the first of the worst: usually the fault that lost it
    if worst.lost > max_samples_lost:
        allowed = f" (at most {max_samples_lost:,} allowed)" if max_samples_lost else ""
        mismatch = f", {worst.mismatched_values:,} of them with another value" if worst.mismatched_values else ""
        return CheckResult(
            name=CHECK_NAME,
            status=Status.FAILED,
            reason=(
                f"{worst.label}: {worst.lost:,} of {worst.acknowledged:,} acknowledged samples lost"
                f"{_window(worst)} in {worst.lost_series_count:,} series{mismatch}{allowed}"
            ),
            details=details,
        )
    total = sum(c.acknowledged for c in checkpoints)
    lost = max(c.lost for c in checkpoints)
    return CheckResult(
        name=CHECK_NAME,
        status=Status.PASSED,
        reason=(
            f"{len(checkpoints)} checkpoint(s), {total:,} acknowledged samples checked, "
            f"at most {lost:,} lost (limit {max_samples_lost:,})"
        ),
        details=details,
    )


def history_check_unrecovered(
    checkpoints: list[DurabilityCheckpoint],
    max_samples_lost: int,
    faults: list[FaultRecord],
    unchecked: int | None,
) -> CheckResult:
    """The history-survival verdict of a run that ended because Prometheus did not recover after a fault: the
    checkpoints taken before it were checked, what was acknowledged after the last of them (``unchecked`` samples;
    None when the load cannot count them, as in scrape mode) never was, nor was anything after that fault.

    Checkpoints that held are PARTIAL, not PASSED: a pass would claim the samples acknowledged since had been seen.
    Checkpoints that already lost samples stay FAILED, and a check that could not judge stays ERROR.
    """
    failed = next(f for f in faults if f.status is Status.FAILED)
    after = f"Prometheus did not recover after fault {failed.index} ({failed.action})"
    if not checkpoints:
        return CheckResult(
            name=CHECK_NAME,
            status=Status.SKIPPED,
            reason=f"{after} and no checkpoint was taken before it, so no acknowledged sample was checked",
        )
    if unchecked is None:
        never = f"{after}, so what it took in since the last checkpoint was never checked"
    else:
        never = f"{after}, so the {unchecked:,} samples acknowledged since the last checkpoint were never checked"
    verdict = history_check_result(checkpoints, max_samples_lost)
    details = {**verdict.details, "not_recovered_fault": failed.index, "acknowledged_unchecked": unchecked}
    if verdict.status is not Status.PASSED:
        return verdict.model_copy(update={"reason": f"{verdict.reason}; {never}", "details": details})
    last = checkpoints[-1]
    by_index = {f.index: f for f in faults}
    upto = by_index.get(last.after_fault) if last.after_fault is not None else None
    where = last.label if upto is None else f"fault {upto.index} ({upto.action})"
    lost = max(c.lost for c in checkpoints)
    allowed = f" (at most {max_samples_lost:,} allowed)" if max_samples_lost else ""
    return CheckResult(
        name=CHECK_NAME,
        status=Status.PARTIAL,
        reason=f"{lost:,} of {last.acknowledged:,} acknowledged samples lost up to {where}{allowed}; {never}",
        details=details,
    )


def _window(c: DurabilityCheckpoint) -> str:
    if c.loss_window_start_unix_ms is None or c.loss_window_end_unix_ms is None:
        return ""
    return f" between {_hms(c.loss_window_start_unix_ms)} and {_hms(c.loss_window_end_unix_ms)} UTC"


def _hms(unix_ms: int) -> str:
    return datetime.fromtimestamp(unix_ms / 1000, tz=UTC).strftime("%H:%M:%S")
