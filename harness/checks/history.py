"""History survival: are the samples Prometheus acknowledged before a cut-off still there, with exact values?

Exactness at scale comes from narrowing down. Prometheus' cost is per series and per query: every query selecting a
series costs it a few microseconds (postings, sorting, chunk iterators: 8-12 us on 2.42, 2-4 us on 3.16, measured
by ``nox -s benchmark``), whatever the samples it holds, and every query costs it about 10 ms of its own. So with a
few samples per series the number of queries and of times a series is selected decide the check's speed. Each series
is selected once in the common case, by one of a few queries per checkpoint window: the metrics are split into
``concurrency`` groups of about equal expected samples (one query per group keeps every core of Prometheus busy), and
each group's query asks for the value sum of all its stored samples (``sum(sum_over_time({__name__=~"a|b",...}))``);
the ledger's values make float sums exact, so the sum is a checksum of the values, and it is compared with the
expectation by equality. A window is as long as ``SAMPLES_PER_AGGREGATE_QUERY`` expected samples of a metric allow
(one window per checkpoint up to 5M samples per metric). Only a group whose sum differs is narrowed: each of its
metrics is asked for its own sum, and only a metric whose sum differs is drilled into: per series count and sum
(answers streamed, never held whole), and only the series whose numbers differ have their raw samples fetched (an
instant query of a range selector: what is stored, not step-evaluated) and compared sample by sample. Samples
Prometheus holds that were never acknowledged (a request it stored but could not answer before being killed) are
ignored there.

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

Prometheus evaluates one query on one core, so the queries go out a few at a time (``QUERY_CONCURRENCY``).
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
            windows = _windows(expected, span, cutoff_unix_ms, concurrency)
            pending = [_ask(pool, prom, list(counts), run_id=run_id, lo_ms=lo, hi_ms=hi) for lo, hi, counts in windows]
            spots = _ask_spots(pool, prom, expected, windows, run_id=run_id, seed=cutoff_unix_ms)
            held: list[_Held] = []
            for group in pending:
                # The ledger's sums, computed while Prometheus answers the queries sent above.
                wants = {m: expected.totals(m, group.lo_ms, group.hi_ms) for m in group.metrics}
                held += _check_group(pool, prom, expected, tally, group, wants=wants, run_id=run_id)
            _spot_check(prom, expected, tally, held, spots, run_id=run_id)
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


Wants = dict[str, tuple[int, float]]  # metric -> the count and value sum the ledger expects of it in a window


def _windows(
    expected: ExpectedHistory, span: tuple[int, int], cutoff_ms: int, groups: int
) -> list[tuple[int, int, dict[str, int]]]:
    """(lo, hi, each metric's expected count) for every window and group of metrics that expects samples. Windows
    are sized by the samples the ledger expects, not by ticks: a writer that skipped ticks leaves fewer samples per
    tick, and every extra window selects every series of its metric once more. Counts only: the value sums take the
    ledger longer (0.35 s for 11M samples), and are computed while Prometheus answers."""
    interval_ms = expected.interval_ms
    half = interval_ms // 2
    lo_all = span[0] - half
    hi_all = (cutoff_ms // interval_ms) * interval_ms + half
    whole = {metric: expected.count(metric, lo_all, hi_all) for metric in expected.metric_names()}
    most = max(whole.values(), default=0)
    parts = max(1, math.ceil(most / SAMPLES_PER_AGGREGATE_QUERY))
    if parts == 1:
        bounds = [(lo_all, hi_all)]
    else:
        ticks = (hi_all - lo_all) // interval_ms
        step_ms = max(1, math.ceil(ticks / parts)) * interval_ms
        bounds = [(lo, min(hi_all, lo + step_ms)) for lo in range(lo_all, hi_all, step_ms)]
    windows = []
    for lo, hi in bounds:
        counts = whole if parts == 1 else {metric: expected.count(metric, lo, hi) for metric in whole}
        windows += [(lo, hi, group) for group in _grouped({m: n for m, n in counts.items() if n}, groups)]
    return windows


def _grouped(counts: dict[str, int], groups: int) -> list[dict[str, int]]:
    """``counts`` in at most ``groups`` groups of about equal expected samples (each metric to the lightest group so
    far, the largest first): one query per group keeps every core of Prometheus busy, and fewer queries cost less
    than one per metric (each query pays for its postings and its start, about 10 ms on 3.x)."""
    bins: list[dict[str, int]] = [{} for _ in range(min(groups, len(counts)))]
    load = [0] * len(bins)
    for metric, n in sorted(counts.items(), key=lambda kv: -kv[1]):
        lightest = load.index(min(load))
        bins[lightest][metric] = n
        load[lightest] += n
    return [b for b in bins if b]


@dataclass(frozen=True)
class _Group:
    """Metrics of one window: what the ledger expects of each, and the aggregate query asking Prometheus for all."""

    lo_ms: int
    hi_ms: int
    metrics: list[str]
    sum: Future[float]


@dataclass(frozen=True)
class _Held:
    """A metric in a window whose value sum matched the ledger's: counted present, and due for the spot check."""

    metric: str
    lo_ms: int
    hi_ms: int
    want_count: int


def _selector(metrics: list[str], matchers: str) -> str:
    """``m{matchers}`` for one metric, ``{__name__=~"a|b",matchers}`` for several."""
    if len(metrics) == 1:
        return f"{metrics[0]}{{{matchers}}}"
    return f'{{__name__=~"{"|".join(re.escape(m) for m in sorted(metrics))}",{matchers}}}'


def _range(run_id: str, metrics: list[str], lo_ms: int, hi_ms: int) -> tuple[str, str]:
    return _selector(metrics, f'run_id="{run_id}"'), f"[{hi_ms - lo_ms}ms]"


def _ask(
    pool: ThreadPoolExecutor, prom: PromClient, metrics: list[str], *, run_id: str, lo_ms: int, hi_ms: int
) -> _Group:
    """Send the group's one aggregate query to the pool."""
    return _Group(lo_ms, hi_ms, metrics, _sum_of(pool, prom, metrics, run_id=run_id, lo_ms=lo_ms, hi_ms=hi_ms))


def _sum_of(
    pool: ThreadPoolExecutor, prom: PromClient, metrics: list[str], *, run_id: str, lo_ms: int, hi_ms: int
) -> Future[float]:
    sel, rng = _range(run_id, metrics, lo_ms, hi_ms)
    return pool.submit(_scalar_sum, prom, f"sum(sum_over_time({sel}{rng}))", hi_ms / 1000)


def _scalar_sum(prom: PromClient, expr: str, at_s: float) -> float:
    return sum(s.value for s in prom.instant(expr, at_s))  # no sample stored: an empty vector, i.e. 0


def _check_group(
    pool: ThreadPoolExecutor,
    prom: PromClient,
    expected: ExpectedHistory,
    tally: _Tally,
    group: _Group,
    *,
    wants: Wants,
    run_id: str,
) -> list[_Held]:
    """Count the group's samples; where its sum differs, ask each of its metrics (at once), then drill into those
    whose own sum differs. Returns the metrics whose sum held."""
    lo_ms, hi_ms = group.lo_ms, group.hi_ms
    group_count = sum(n for n, _ in wants.values())
    group_sum = sum(v for _, v in wants.values())  # exact: the ledger's values make every float sum exact
    tally.acknowledged += group_count
    if group.sum.result() == group_sum:
        tally.present += group_count
        return [_Held(m, lo_ms, hi_ms, n) for m, (n, _) in wants.items()]
    if len(wants) == 1:
        sums = {m: group.sum for m in wants}
    else:
        log.info("%s in (%d, %d]: stored values sum to %r, the acknowledged ones to %r: asking each metric",
                 "+".join(sorted(wants)), lo_ms, hi_ms, group.sum.result(), group_sum)  # fmt: skip
        sums = {m: _sum_of(pool, prom, [m], run_id=run_id, lo_ms=lo_ms, hi_ms=hi_ms) for m in wants}
    held = []
    for metric, (want_count, want_sum) in wants.items():
        got_sum = sums[metric].result()
        if got_sum == want_sum:
            tally.present += want_count
            held.append(_Held(metric, lo_ms, hi_ms, want_count))
            continue
        log.info("%s in (%d, %d]: stored values sum to %r, the %d acknowledged ones to %r: drilling down",
                 metric, lo_ms, hi_ms, got_sum, want_count, want_sum)  # fmt: skip
        _drill(prom, expected, tally, metric, run_id=run_id, lo_ms=lo_ms, hi_ms=hi_ms)
    return held


def _drill(
    prom: PromClient, expected: ExpectedHistory, tally: _Tally, metric: str, *, run_id: str, lo_ms: int, hi_ms: int
) -> None:
    """Per series count and sum of one metric in a window (streamed), then the raw samples of the series that differ."""
    sel, rng = _range(run_id, [metric], lo_ms, hi_ms)
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
    for keys in _raw_batches(expected, suspects, lo_ms, hi_ms):
        _tally_raw(tally, *_fetch_raw(prom, expected, keys, run_id=run_id, lo_ms=lo_ms, hi_ms=hi_ms))


def _raw_batches(expected: ExpectedHistory, keys: list[LabelsKey], lo_ms: int, hi_ms: int) -> list[list[LabelsKey]]:
    """``keys`` in batches of about ``SAMPLES_PER_RAW_QUERY`` expected samples: one raw query each."""
    ticks = max(1, (hi_ms - lo_ms) // expected.interval_ms)
    size = max(1, SAMPLES_PER_RAW_QUERY // ticks)
    return [keys[start : start + size] for start in range(0, len(keys), size)]


RawPair = tuple[dict[LabelsKey, dict[int, float]], dict[LabelsKey, dict[int, float]]]  # expected, stored


def _fetch_raw(
    prom: PromClient, expected: ExpectedHistory, keys: list[LabelsKey], *, run_id: str, lo_ms: int, hi_ms: int
) -> RawPair:
    return expected.samples(keys, lo_ms, hi_ms), _raw(prom, keys, run_id=run_id, lo_ms=lo_ms, hi_ms=hi_ms)


def _tally_raw(
    tally: _Tally, want: dict[LabelsKey, dict[int, float]], stored: dict[LabelsKey, dict[int, float]]
) -> None:
    """Count each expected sample present (its timestamp with its exact value), mismatched or lost."""
    for key, samples in want.items():
        have = stored.get(key, {})
        for ts_ms, value in samples.items():
            found = have.get(ts_ms)
            if found is not None and found == value:
                tally.present += 1
                continue
            if found is not None:
                tally.mismatched += 1
            tally.lost_at(key, ts_ms)


def _ask_spots(
    pool: ThreadPoolExecutor,
    prom: PromClient,
    expected: ExpectedHistory,
    windows: list[tuple[int, int, dict[str, int]]],
    *,
    run_id: str,
    seed: int,
) -> dict[tuple[int, int], list[Future[RawPair]]]:
    """Fetch the spot check's series of every window (what the sums cannot see, see the module's doc) while the sums
    are being answered: a few series of every metric, one raw query per window for all metrics. Which metrics'
    sums hold is known only later, so every metric's series are fetched; those drilled into are not looked at."""
    if SPOT_SERIES_PER_METRIC <= 0:
        return {}
    keys: dict[tuple[int, int], list[LabelsKey]] = {}
    for lo_ms, hi_ms, counts in windows:  # a window's groups, one after the other
        keys.setdefault((lo_ms, hi_ms), []).extend(
            k for m in counts for k in expected.some_series(m, lo_ms, hi_ms, SPOT_SERIES_PER_METRIC, seed)
        )
    return {
        (lo_ms, hi_ms): [
            pool.submit(_fetch_raw, prom, expected, batch, run_id=run_id, lo_ms=lo_ms, hi_ms=hi_ms)
            for batch in _raw_batches(expected, spotted, lo_ms, hi_ms)
        ]
        for (lo_ms, hi_ms), spotted in keys.items()
    }


def _spot_check(
    prom: PromClient,
    expected: ExpectedHistory,
    tally: _Tally,
    held: list[_Held],
    spots: dict[tuple[int, int], list[Future[RawPair]]],
    *,
    run_id: str,
) -> None:
    """Compare the spotted series of every metric and window whose sum held sample by sample. Where one of them
    differs, the sum was fooled: the samples of that metric and window, counted present by it, are compared again,
    every series sample by sample."""
    for lo_ms, hi_ms in dict.fromkeys((h.lo_ms, h.hi_ms) for h in held):
        window = [h for h in held if (h.lo_ms, h.hi_ms) == (lo_ms, hi_ms)]
        names = {h.metric for h in window}
        spot = _Tally()
        for fetched in spots.get((lo_ms, hi_ms), []):
            want, stored = fetched.result()
            _tally_raw(spot, {k: v for k, v in want.items() if dict(k)["__name__"] in names}, stored)
        fooled = {dict(k)["__name__"] for k in spot.lost_series}
        for h in window:
            if h.metric not in fooled:
                continue
            log.info("%s in (%d, %d]: the value sum held but spotted samples differ: comparing every series",
                     h.metric, lo_ms, hi_ms)  # fmt: skip
            tally.present -= h.want_count
            every = list(expected.per_series(h.metric, lo_ms, hi_ms))
            _compare_raw(prom, expected, tally, every, run_id=run_id, lo_ms=lo_ms, hi_ms=hi_ms)


def _raw(
    prom: PromClient, keys: list[LabelsKey], *, run_id: str, lo_ms: int, hi_ms: int
) -> dict[LabelsKey, dict[int, float]]:
    names = sorted({dict(k).get("__name__", "") for k in keys})
    ids = sorted({dict(k).get("series", "") for k in keys})
    sel = _selector(names, f'run_id="{run_id}",series=~"{"|".join(re.escape(i) for i in ids)}"')
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
