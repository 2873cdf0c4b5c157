"""Judging a comparison: pooling each side's values per metric, testing them, and the status of every metric.

A side is one run or several (a series of nights, or runs repeated on purpose); every other side is compared with
the first, the baseline, metric by metric: fio bandwidth, IOPS and p99 latency per job, recovery time, its stages
and WAL replay per fault kind, samples lost, and the verdict. The values of a metric on a side are its independent
repetitions: one per fio job repetition (``repeat: N`` in the scenario) of every run on the side, one per fault,
one loss count per run; never fio's per-second points (they are autocorrelated). When both sides hold several runs,
the unit is the run (its median): repetitions inside a run share that run's conditions.

A change is a regression only when it is both large (the median worse by more than ``THRESHOLD``) and significant:
a Mann-Whitney U test, its p-value adjusted over all the metrics of the comparison (Benjamini-Hochberg, see
``harness.report.stats``), below ``ALPHA`` (asv's strict 0.002). One run against several (the nightly gate's form:
tonight against the nights before it, pooled) must also stand out from how those runs vary among themselves:
Student's t prediction test of its median against their medians, and the larger of the two p-values is the one
adjusted. Repetitions inside one run share its minute of the machine, so without that test one ordinary run on a
busier machine was a "regression" in 6% of identical nightly comparisons (benchmark section 7, 2026-12-06). A single
run against a single run (``harness compare A B``) has nothing to say how runs vary: it is judged on the
repetitions alone, and its false-alarm rate is what section 7 measures, not ``ALPHA``.

Runs of one side that disagree among themselves by more than the threshold (one night's machine was busier) make
the metric "unstable": the repetitions inside a run share its conditions, so only agreeing runs may be pooled into
one sample. A metric with a single value on a side cannot be tested: it is "threshold only", shown with its change,
and fails nothing unless asked (``fail_on_threshold_only``). A verdict that got worse (PASSED -> FAILED) is a
regression by itself: it is an outcome, not a measurement.

What may be compared at all is the facts' business (``harness.report.compare.facts``): a metric measured under
different facts is "not comparable" and is not tested.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from harness import fmt
from harness.errors import UsageError
from harness.report.compare.facts import Difference, metric_differences, run_ref, setup
from harness.report.compare.model import VERDICT_RANK, Change, Comparison, MetricDelta, Rules, Side, Skipped
from harness.report.compare.series import Series, run_series
from harness.report.stats import (
    adjust_p_values,
    mann_whitney_u,
    min_p_value,
    new_run_p_value,
    quartiles,
    relative_spread,
    values_needed,
)
from harness.results.model import RunResult, Status

# Recovery and replay times below a second jitter by tenths on any machine: smaller differences are never regressions.
MIN_TIME_DELTA_S = 0.25
UNSTABLE_SPREAD = 0.5  # interquartile range / median above which a side's values are too scattered to judge


@dataclass(frozen=True)
class _Pooled:
    """A metric's values over all runs of a side, and the facts each run measured it under."""

    template: Series
    values: list[float]
    facts: list[tuple[str, dict[str, str]]]  # (run label, facts)
    run_medians: list[float]  # one per run: how far the runs of a side agree


def _pool(side: Side, results: list[RunResult]) -> dict[str, _Pooled]:
    pooled: dict[str, _Pooled] = {}
    for ref, result in zip(side.runs, results, strict=True):
        for s in run_series(result, ref.facts):
            p = pooled.setdefault(s.metric, _Pooled(s, [], [], []))
            p.values.extend(s.values)
            p.facts.append((ref.label, s.facts))
            p.run_medians.append(statistics.median(s.values))
    return pooled


def _fmt(values: list[float], unit: str, *, per_run: bool = False) -> str:
    if not values:
        return "–"
    number = fmt.measure(statistics.median(values), unit, whole=unit in ("IOPS", "samples"))
    return number + (f" (n={len(values)}{' runs' if per_run else ''})" if len(values) > 1 else "")


@dataclass
class _Pending:
    """A metric between the two passes: its p-value is known, its verdict waits for the family's adjustment."""

    base: _Pooled
    cand: _Pooled
    index: int
    a: list[float]  # the samples tested: repetitions, or each run's median when both sides hold several runs
    b: list[float]
    per_run: bool
    worse_pct: float | None
    delta: float
    p_value: float | None = None
    p_runs: float | None = None
    differs: list[Difference] = field(default_factory=list)

    @property
    def p_family(self) -> float | None:
        """The p-value adjusted with the family's: both tests must find the change (the larger p counts)."""
        if self.p_value is None:
            return None
        return max(self.p_value, self.p_runs if self.p_runs is not None else 0.0)


def _small_change(unit: str, delta: float, worse_pct: float | None, threshold: float) -> str | None:
    """A note (possibly empty) when the change is too small to matter; None when it is large enough to judge."""
    if delta == 0 or (worse_pct is not None and abs(worse_pct) <= 100 * threshold):
        return ""
    if unit == "s" and abs(delta) < MIN_TIME_DELTA_S:
        return f"less than {MIN_TIME_DELTA_S:g} s apart"
    return None


def _judge(m: _Pending, p_adjusted: float | None, family: int, threshold: float, alpha: float) -> tuple[Change, str]:
    """(status, note) of one metric; see the module docstring for the rules."""
    a, b = m.a, m.b
    if m.differs:
        return Change.NOT_COMPARABLE, "; ".join(d.text for d in m.differs)
    small = _small_change(m.base.template.unit, m.delta, m.worse_pct, threshold)
    if small is not None:
        return Change.UNCHANGED, small
    direction = Change.REGRESSION if m.delta > 0 else Change.IMPROVEMENT
    if p_adjusted is None:
        how = "worse" if m.delta > 0 else "better"
        size = f" by {abs(m.worse_pct):.0f}%" if m.worse_pct is not None else ""
        return Change.THRESHOLD_ONLY, (
            f"{how}{size}; {len(a)} vs {len(b)} value(s): no significance test possible (repeat the measurement)"
        )
    return _judge_tested(m, p_adjusted, family, threshold, alpha=alpha, direction=direction)


def _within_runs(m: _Pending) -> bool:
    """Whether one side's median lies between the medians of the other side's runs: a change no larger than the
    runs' own variation (one night's machine was busier)."""
    for runs, other in ((m.base.run_medians, m.b), (m.cand.run_medians, m.a)):
        if len(runs) > 1 and min(runs) <= statistics.median(other) <= max(runs):
            return True
    return False


def _quartiles_overlap(a: list[float], b: list[float]) -> bool:
    qa, qb = quartiles(a), quartiles(b)
    return qa[0] <= qb[1] and qb[0] <= qa[1]


def _judge_tested(
    m: _Pending, p_adjusted: float, family: int, threshold: float, *, alpha: float, direction: Change
) -> tuple[Change, str]:
    a, b = m.a, m.b
    spread = max(relative_spread(a), relative_spread(b))
    if spread > UNSTABLE_SPREAD and _quartiles_overlap(a, b):
        # Scattered values, and the change is no larger than the scatter. A change that takes one side's middle
        # half clear of the other's (a throttled disk on a noisy machine) is judged all the same.
        return Change.UNSTABLE, (
            f"values spread {spread:.0%} of the median and the sides' middle halves overlap: too noisy to judge"
        )
    between = max(relative_spread(m.base.run_medians), relative_spread(m.cand.run_medians))
    if not m.per_run and between > threshold and _within_runs(m):
        return Change.UNSTABLE, (
            f"the runs of a side disagree by {between:.0%} of the median (more than the threshold) and the other "
            "side lies among them: the change may be the runs' own conditions"
        )
    if p_adjusted >= alpha:
        note = f"not significant (adjusted p={p_adjusted:.2g} over {family} metric(s))"
        if m.p_runs is not None and m.p_value is not None and m.p_runs > m.p_value:
            runs = max(len(m.base.run_medians), len(m.cand.run_medians))
            note += (
                f"; one run against {runs} runs that vary among themselves by {between:.0%} of their median: "
                f"this run is not out of their range (Student's t p={m.p_runs:.2g})"
            )
            return Change.INCONCLUSIVE, note
        if min_p_value(len(a), len(b)) * family >= alpha:
            what = "runs" if m.per_run else "values"
            more = "more runs per side" if m.per_run else "repeat: N in the scenario, or more runs per side"
            note += (
                f"; {len(a)} vs {len(b)} {what} cannot reach it: about {values_needed(alpha, family)} per side "
                f"would ({more})"
            )
        return Change.INCONCLUSIVE, note
    return direction, ""


def _verdict_delta(base: Side, cand: Side, index: int) -> MetricDelta:
    """The worst verdict of each side: a run that newly fails is a regression by itself (an outcome, not noise)."""
    vb, vc = base.verdict, cand.verdict
    rb, rc = VERDICT_RANK[vb], VERDICT_RANK[vc]
    status = Change.UNCHANGED if rb == rc else Change.REGRESSION if rc > rb else Change.IMPROVEMENT
    note = "" if vc is not Status.ERROR else "ERROR means the harness or environment broke, not the storage"
    return MetricDelta(
        group="verdict",
        metric="verdict",
        unit="",
        run_index=index,
        baseline=vb.value,
        candidate=vc.value,
        change_pct=None,
        worse_pct=None,
        p_value=None,
        status=status,
        note=note,
    )


def _distinct_labels(sides: list[list[tuple[Path, RunResult]]]) -> list[Side]:
    seen: dict[str, int] = defaultdict(int)
    out = []
    for i, side in enumerate(sides):
        refs = []
        for path, result in side:
            ref = run_ref(path, result)
            seen[ref.label] += 1
            if seen[ref.label] > 1:  # the same run given twice still gets distinct labels
                ref = replace(ref, label=f"{ref.label}#{seen[ref.label]}")
            refs.append(ref)
        label = refs[0].label if len(refs) == 1 else f"{'baseline' if i == 0 else f'side {i}'} ({len(refs)} runs)"
        out.append(Side(label, refs))
    return out


def compare_sides(
    sides: Sequence[Sequence[tuple[Path, RunResult]]], rules: Rules = Rules(), *, skipped: Sequence[Skipped] = ()
) -> Comparison:
    """Compare loaded results side by side; the first side is the baseline, each side one run or several."""
    if len(sides) < 2 or any(not s for s in sides):
        raise UsageError("compare needs a baseline and at least one run to compare with it")
    allowed = rules.allow_different
    threshold, alpha = rules.threshold, rules.alpha
    refs = _distinct_labels([list(s) for s in sides])
    kind, differences, notes = setup([r for s in refs for r in s.runs], allowed)
    base = _pool(refs[0], [r for _, r in sides[0]])
    deltas: list[MetricDelta] = []
    for index in range(1, len(refs)):
        cand = _pool(refs[index], [r for _, r in sides[index]])
        deltas.append(_verdict_delta(refs[0], refs[index], index))
        deltas += _compare_pools(base, cand, index, allowed=allowed, threshold=threshold, alpha=alpha)
    # Differences met only by some metrics (one fio job's settings) are named once for the whole comparison too.
    differences += [x.text for d in deltas for x in d.differences if x.fact == "fio-settings"]
    return Comparison(
        sides=refs,
        deltas=deltas,
        notes=notes,
        skipped=list(skipped),
        kind=kind if not differences else f"{kind}, with differences that make some metrics not comparable",
        differences=list(dict.fromkeys(differences)),
        threshold=threshold,
        alpha=alpha,
        fail_on_threshold_only=rules.fail_on_threshold_only,
    )


def _compare_pools(
    base: dict[str, _Pooled],
    cand: dict[str, _Pooled],
    index: int,
    *,
    allowed: frozenset[str],
    threshold: float,
    alpha: float,
) -> list[MetricDelta]:
    """Two passes: every comparable metric's test first, then each verdict from the family's adjusted p-values."""
    deltas: list[MetricDelta] = []
    pending: list[_Pending] = []
    for metric in list(base) + [m for m in cand if m not in base]:
        b, c = base.get(metric), cand.get(metric)
        if b is None or c is None:
            some = (b or c).template  # type: ignore[union-attr]
            status = Change.NEW if b is None else Change.MISSING
            b_txt = _fmt(b.values, some.unit) if b else "–"
            c_txt = _fmt(c.values, some.unit) if c else "–"
            deltas.append(
                MetricDelta(
                    group=some.group,
                    metric=metric,
                    unit=some.unit,
                    run_index=index,
                    baseline=b_txt,
                    candidate=c_txt,
                    change_pct=None,
                    worse_pct=None,
                    p_value=None,
                    status=status,
                )
            )
            continue
        # Repetitions inside one run share its conditions (the machine's load that minute): when both sides hold
        # several runs, the run is the unit, so a side's runs that happened to meet a quiet machine weigh as one.
        per_run = len(b.run_medians) > 1 and len(c.run_medians) > 1
        sa, sb = (b.run_medians, c.run_medians) if per_run else (b.values, c.values)
        ma, mb = statistics.median(sa), statistics.median(sb)
        delta = (ma - mb) if b.template.higher_is_better else (mb - ma)  # positive = worse
        worse_pct = None if ma == 0 else 100 * delta / abs(ma)
        m = _Pending(
            b, c, index, sa, sb, per_run, worse_pct, delta, differs=metric_differences(b.facts + c.facts, allowed)
        )
        if not m.differs:
            m.p_value = mann_whitney_u(sa, sb).p_value
            m.p_runs = _one_run_against_runs(b, c)
        pending.append(m)
    tested = [m for m in pending if m.p_family is not None]
    adjusted = dict(
        zip(map(id, tested), adjust_p_values([m.p_family for m in tested if m.p_family is not None]), strict=True)
    )
    for m in pending:
        t = m.base.template
        p_adj = adjusted.get(id(m))
        status, note = _judge(m, p_adj, len(tested), threshold, alpha)
        if m.worse_pct is None and m.delta > 0 and not note:
            note = f"{m.delta:+,.4g} {t.unit} from zero"
        change_pct = None if m.worse_pct is None else -m.worse_pct if t.higher_is_better else m.worse_pct
        deltas.append(
            MetricDelta(
                group=t.group,
                metric=t.metric,
                unit=t.unit,
                run_index=index,
                baseline=_fmt(m.a, t.unit, per_run=m.per_run),
                candidate=_fmt(m.b, t.unit, per_run=m.per_run),
                change_pct=change_pct,
                worse_pct=m.worse_pct,
                p_value=m.p_value,
                status=status,
                note=note,
                p_adjusted=p_adj,
                baseline_median=statistics.median(m.a),
                candidate_median=statistics.median(m.b),
                n_baseline=len(m.a),
                n_candidate=len(m.b),
                per_run=m.per_run,
                p_runs=m.p_runs,
                differences=tuple(m.differs),
            )
        )
    return deltas


def _one_run_against_runs(base: _Pooled, cand: _Pooled) -> float | None:
    """The nightly gate's form (one run against several): Student's t p-value of the single run's median among the
    other side's run medians; None unless exactly one side is a single run and the other holds several."""
    if len(base.run_medians) > 1 and len(cand.run_medians) == 1:
        return new_run_p_value(base.run_medians, cand.run_medians[0])
    if len(cand.run_medians) > 1 and len(base.run_medians) == 1:
        return new_run_p_value(cand.run_medians, base.run_medians[0])
    return None


def compare_results(results: list[tuple[Path, RunResult]], rules: Rules = Rules()) -> Comparison:
    """Compare loaded results one by one; the first is the baseline (the form of ``harness compare A B C``)."""
    if len(results) < 2:
        raise UsageError("compare needs at least two results (the first one is the baseline)")
    return compare_sides([[r] for r in results], rules)
