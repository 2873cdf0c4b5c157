"""Trends over nights: every metric's history over the stored runs of a scenario, its change points, and the verdict
of the latest night.

A night is one stored run (ordered by its start); its value of a metric is the median of the run's values of it
(fio's per-second points, several faults of one kind), so the unit of the statistics is the night, never points
inside one job. The metrics are the comparison's (``harness.report.compare``); the change points come from
``harness.report.changepoints``. A change point for the worse that the latest night confirms (the history up to the
night before did not hold it confirmed: usually it is at the latest night itself, or a night or two before when the
step took a few nights to stand out of the noise) and that the ack file (``harness.report.acks``) does not
acknowledge is a regression of that night: ``harness trend`` exits 1. Each step is marked once, at the night it
happened, and fails one night only. Runs that cannot
be read, and runs that ended in ERROR (the tool or the environment broke, not the storage), are named with the reason
and left out.
"""

from __future__ import annotations

import datetime as dt
import statistics
from dataclasses import dataclass, field, replace
from datetime import UTC
from enum import StrEnum
from pathlib import Path

from harness import fmt
from harness.errors import UsageError
from harness.report import changepoints
from harness.report.acks import ACK_FILE, Ack, load_acks

# The per-run metric series of the comparison (and the facts that make a metric comparable), reused as they are so a
# trend and a comparison name and measure the same metrics.
from harness.report.compare import Series, Skipped, run_facts, run_series, storage_facts
from harness.results.model import RunResult, Status
from harness.results.store import RESULT_FILE, load_result

DRIFT_NIGHTS = 3  # drift compares the median of the first and of the last this many nights
# Recovery stages and WAL replay times jitter by tenths of a second on any machine (the comparison's rule too): a
# step smaller than this is never a change point, however large relative to a 0.1 s time.
MIN_TIME_SHIFT_S = 0.25


class Kind(StrEnum):
    REGRESSION = "regression"  # worse, first confirmed by the latest night, not acknowledged: fails that night
    POSSIBLE = "possible regression"  # at the latest night, worse, but too little history to confirm it
    ACKNOWLEDGED = "acknowledged"
    WORSE = "worse (earlier night)"  # confirmed before the latest night: failed that night, not this one
    IMPROVEMENT = "improvement"


@dataclass(frozen=True)
class Night:
    index: int
    run_dir: str  # the run directory's name, e.g. 20261203T020000Z-a1b2c3
    run_id: str
    path: str
    started_utc: str
    date: dt.date  # the UTC date it started: what an ack's `date` names
    verdict: Status
    complete: bool


@dataclass(frozen=True)
class TrendChange:
    metric: str
    unit: str
    night: Night
    before: float
    after: float
    change_pct: float | None  # + = larger value
    worse: bool
    confirmed: bool
    kind: Kind
    ack: Ack | None = None
    # What else changed that night for this metric (fio settings or version, kernel, node, Prometheus, load), from the
    # comparison's facts: a step that comes with a new kernel is explained before anyone looks at the disk.
    also_changed: str = ""


@dataclass(frozen=True)
class MetricTrend:
    group: str
    metric: str
    unit: str
    higher_is_better: bool
    points: list[tuple[int, float]]  # (night index, the night's median)
    changes: list[TrendChange]
    drift_pct: float | None  # last nights' median vs the first nights', + = larger value


@dataclass(frozen=True)
class ScenarioTrend:
    name: str
    nights: list[Night]
    metrics: list[MetricTrend]

    @property
    def changes(self) -> list[TrendChange]:
        return sorted((c for m in self.metrics for c in m.changes), key=lambda c: (c.night.index, c.metric))

    @property
    def regressions(self) -> list[TrendChange]:
        return [c for c in self.changes if c.kind is Kind.REGRESSION]


@dataclass(frozen=True)
class Trend:
    results_dir: str
    scenarios: list[ScenarioTrend]
    skipped: list[Skipped] = field(default_factory=list)
    ack_file: str | None = None
    unused_acks: list[Ack] = field(default_factory=list)

    @property
    def regressions(self) -> list[tuple[str, TrendChange]]:
        return [(s.name, c) for s in self.scenarios for c in s.regressions]

    @property
    def regressed(self) -> bool:
        return bool(self.regressions)


# --- reading the runs ----------------------------------------------------------------------------------------


def _load_runs(
    results_dir: Path, scenarios: list[str]
) -> tuple[dict[str, list[tuple[Path, RunResult]]], list[Skipped]]:
    by_scenario: dict[str, list[tuple[Path, RunResult]]] = {}
    skipped: list[Skipped] = []
    for path in sorted(results_dir.rglob(RESULT_FILE)):
        guess = path.parent.parent.name  # reports/<scenario>/<run>/result.json
        if scenarios and guess not in scenarios:
            continue
        try:
            result = load_result(path)
        except UsageError as e:
            skipped.append(Skipped(str(path), str(e).removeprefix(f"{path}: ")))
            continue
        if scenarios and result.scenario_name not in scenarios:
            continue
        if result.verdict is Status.ERROR:
            # The harness or the environment broke: its numbers (if any) say nothing about the storage.
            skipped.append(
                Skipped(str(path), f"the run ended in ERROR: {fmt.shorten(result.error or 'incomplete', 200)}")
            )
            continue
        by_scenario.setdefault(result.scenario_name, []).append((path.parent, result))
    return by_scenario, skipped


def _nights(runs: list[tuple[Path, RunResult]]) -> list[Night]:
    return [
        Night(
            index=i,
            run_dir=path.name,
            run_id=result.run_id,
            path=str(path),
            started_utc=fmt.utc(result.started_at.astimezone(UTC)),
            date=result.started_at.astimezone(UTC).date(),
            verdict=result.verdict,
            complete=result.complete,
        )
        for i, (path, result) in enumerate(runs)
    ]


# --- analysis ------------------------------------------------------------------------------------------------


def _drift(values: list[float]) -> float | None:
    if len(values) < 2 * DRIFT_NIGHTS:
        return None
    first, last = statistics.median(values[:DRIFT_NIGHTS]), statistics.median(values[-DRIFT_NIGHTS:])
    return None if first == 0 else 100 * (last - first) / abs(first)


def _kind(cp: changepoints.ChangePoint, *, worse: bool, new: bool, latest: bool, ack: Ack | None) -> Kind:
    if not worse:
        return Kind.IMPROVEMENT
    if ack is not None:
        return Kind.ACKNOWLEDGED
    if cp.confirmed and new:
        return Kind.REGRESSION
    return Kind.POSSIBLE if latest and not cp.confirmed else Kind.WORSE


def _held_before(values: list[float], cp: changepoints.ChangePoint, min_shift: float) -> bool:
    """Whether a shorter history (up to any night from the change on, before the latest) already held this change,
    confirmed, a night either way (one more night can move a boundary by one). A step that stands out of the noise
    only a few nights after it happened thus fails exactly one night, the first that confirms it, and no later one,
    even when a noisy night in between made it unclear again. Newest first: an old change is found at once."""
    for end in range(len(values) - 1, cp.index, -1):
        for earlier in changepoints.detect(values[:end], min_shift=min_shift):
            if (
                earlier.confirmed
                and abs(earlier.index - cp.index) <= 1
                and (earlier.after > earlier.before) == (cp.after > cp.before)
            ):
                return True
    return False


def _also_changed(before: dict[str, str], after: dict[str, str]) -> str:
    """ "kernel 6.1 → 6.6; fio-settings ..." for the facts that differ between two nights ("" when none does)."""
    return "; ".join(
        f"{key} {before.get(key, '–')} → {after.get(key, '–')}"
        for key in sorted(set(before) | set(after))
        if before.get(key) != after.get(key)
    )


def _metric_trend(
    scenario: str,
    nights: list[Night],
    series_by_night: list[dict[str, Series]],
    metric: str,
    *,
    acks: list[Ack],
    used: set[int],
) -> MetricTrend | None:
    points: list[tuple[int, float]] = []
    facts: list[dict[str, str]] = []
    template = None
    for night, by_metric in zip(nights, series_by_night, strict=True):
        series = by_metric.get(metric)
        if series is not None and series.values:
            template = series
            points.append((night.index, statistics.median(series.values)))
            facts.append(series.facts)
    if template is None:
        return None
    values = [v for _, v in points]
    latest_night = nights[-1].index
    min_shift = MIN_TIME_SHIFT_S if template.unit == "s" else 0.0
    measured_tonight = points[-1][0] == latest_night
    changes = []
    for cp in changepoints.detect(values, min_shift=min_shift):
        night = nights[points[cp.index][0]]
        delta = cp.after - cp.before
        worse = delta < 0 if template.higher_is_better else delta > 0
        ack_index = next(
            (i for i, a in enumerate(acks) if a.matches(scenario, metric, night.run_dir, night.run_id, night.date)),
            None,
        )
        if ack_index is not None:
            used.add(ack_index)
        ack = acks[ack_index] if ack_index is not None else None
        new = measured_tonight and cp.confirmed and worse and ack is None and not _held_before(values, cp, min_shift)
        kind = _kind(cp, worse=worse, new=new, latest=night.index == latest_night, ack=ack)
        also = _also_changed(facts[cp.index - 1], facts[cp.index]) if cp.index > 0 else ""
        changes.append(
            TrendChange(
                metric, template.unit, night, cp.before, cp.after, cp.change_pct, worse, cp.confirmed, kind, ack, also
            )
        )
    return MetricTrend(
        template.group, metric, template.unit, template.higher_is_better, points, changes, _drift(values)
    )


def _series(result: RunResult) -> dict[str, Series]:
    """The run's metrics by name, each with the facts it depends on plus the storage (a fio throttle standing for a
    slower volume, another filesystem or data path), so a change point can say what else changed that night."""
    storage = storage_facts(result)
    return {s.metric: replace(s, facts=s.facts | {"storage": storage}) for s in run_series(result, run_facts(result))}


def _scenario_trend(name: str, runs: list[tuple[Path, RunResult]], acks: list[Ack], used: set[int]) -> ScenarioTrend:
    nights = _nights(runs)
    # Each run's series once (not once per metric): a year of nights has tens of thousands of (night, metric) pairs.
    series_by_night = [_series(result) for _, result in runs]
    metrics = dict.fromkeys(m for by_metric in series_by_night for m in by_metric)
    trends = [_metric_trend(name, nights, series_by_night, m, acks=acks, used=used) for m in metrics]
    return ScenarioTrend(name, nights, [t for t in trends if t is not None])


def build_trend(
    results_dir: Path, *, scenarios: list[str] | None = None, last: int | None = None, ack_path: Path | None = None
) -> Trend:
    """The trend of every scenario (or those named) under ``results_dir``, over its last ``last`` runs.

    ``ack_path`` defaults to ``results_dir/acks.yaml`` when that exists. UsageError (exit 2) for a missing results
    directory, an explicit ack file that is missing, or an invalid ack file (every problem with file:line).
    """
    if not results_dir.is_dir():
        raise UsageError(f"{results_dir}: no such results directory (expected reports/ with <scenario>/<run>/)")
    if last is not None and last < 2:
        raise UsageError(f"--last {last}: a trend needs at least 2 nights")
    if ack_path is None and (results_dir / ACK_FILE).exists():
        ack_path = results_dir / ACK_FILE
    acks = load_acks(ack_path) if ack_path is not None else []
    by_scenario, skipped = _load_runs(results_dir, scenarios or [])
    missing = [s for s in scenarios or [] if s not in by_scenario]
    if missing:
        raise UsageError(f"{results_dir}: no readable runs of scenario(s) {', '.join(missing)}")
    used: set[int] = set()
    trends = []
    for name in sorted(by_scenario):
        runs = sorted(by_scenario[name], key=lambda pr: pr[1].started_at)
        trends.append(_scenario_trend(name, runs[-last:] if last else runs, acks, used))
    unused = [a for i, a in enumerate(acks) if i not in used]
    return Trend(str(results_dir), trends, skipped, str(ack_path) if ack_path else None, unused)


# --- text ----------------------------------------------------------------------------------------------------


def describe_change(c: TrendChange) -> str:
    before = fmt.measure(c.before, c.unit)
    after = fmt.measure(c.after, c.unit)
    return f"{c.metric}: {before} → {after} ({fmt.change_pct(c.change_pct)})"


def verdict_line(trend: Trend) -> str:
    if trend.regressed:
        listed = "; ".join(f"{s}: {describe_change(c)}" for s, c in trend.regressions)
        return f"{len(trend.regressions)} regression(s) at the latest night: {listed}"
    return "no unacknowledged change for the worse at the latest night"


def summary_text(trend: Trend) -> str:
    lines = []
    for s in trend.scenarios:
        lines.append(f"{s.name}: {len(s.nights)} night(s), {len(s.metrics)} metric(s), latest {s.nights[-1].run_dir}")
        for c in s.changes:
            reason = f" ({c.ack.reason})" if c.ack else ""
            reason += f" [also changed: {c.also_changed}]" if c.also_changed else ""
            lines.append(f"  {c.night.started_utc}  {c.kind.value.upper():<22} {describe_change(c)}{reason}")
    lines += [f"skipped {k.path}: {k.reason}" for k in trend.skipped]
    lines += [f"ack matched no change point: {a.describe()}" for a in trend.unused_acks]
    lines.append(verdict_line(trend))
    return "\n".join(lines)
