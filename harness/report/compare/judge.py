"""Comparing stored runs: which numbers got worse between a baseline and a candidate, and whether that can be trusted.

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

Runs are comparable only when what was measured matches: fio job settings and fio version for fio's numbers, the
Prometheus version and the write load for recovery and replay, and for all of them the runtime, the node and its
kernel. A metric whose inputs differ is "not comparable" and the comparison names exactly what differs (pyperf
refuses such runs); ``allow_different`` accepts named differences (e.g. CI runners with new host names every
night). Different storage (backend, filesystem, data path, volume, a fio throttle standing for a slower volume) is
the point of "local vs NFS": allowed, and the comparison is labelled a storage comparison. Inputs that cannot be
read (missing, truncated, foreign, newer schema) are named with the reason and left out; the others are still
compared.
"""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC
from enum import StrEnum
from pathlib import Path
from typing import Any

import pandas as pd

from harness import fmt, stages
from harness.errors import UsageError
from harness.report import charts
from harness.report.html import STYLE, chart_view, render_template
from harness.report.stats import (
    adjust_p_values,
    mann_whitney_u,
    min_p_value,
    new_run_p_value,
    quartiles,
    relative_spread,
    values_needed,
)
from harness.results.model import FioJobResult, RunResult, Status
from harness.results.store import atomic_write_text, load_result

THRESHOLD = 0.10  # a change smaller than 10% of the baseline is noise on shared CI machines
# Level of the Benjamini-Hochberg adjusted p-values over all metrics of one comparison: asv's strict 0.002. When
# nothing changed, the chance that a comparison reports any regression is then at most 0.2%: a nightly gate cries
# wolf less than once a year. The price: 7 or more values per side (repeat: 7, or pooled nights).
ALPHA = 0.002
# Recovery and replay times below a second jitter by tenths on any machine: smaller differences are never regressions.
MIN_TIME_DELTA_S = 0.25
UNSTABLE_SPREAD = 0.5  # interquartile range / median above which a side's values are too scattered to judge

# What must match for a metric to be compared, by the name ``allow_different`` takes.
FACTS: dict[str, str] = {
    "runtime": "runtime",
    "node": "node",
    "kernel": "kernel",
    "prometheus": "Prometheus version",
    "fio": "fio version",
    "load": "TSDB write load",
    "fio-settings": "fio job settings",
}
_FIO_FACTS = ("runtime", "node", "kernel", "fio")
_PROMETHEUS_FACTS = ("runtime", "node", "kernel", "prometheus", "load")
# fio arguments that name where this run put its files, not what was measured.
_FIO_PATH_ARGS = ("--name=", "--directory=", "--output=", "--write_bw_log=", "--write_iops_log=", "--write_lat_log=")
# A throttle (the scenario's rate / rate_iops) models slower storage, like a cloud volume's provisioned IOPS: it is
# part of the storage compared, not of what fio was asked to measure.
_FIO_THROTTLE_ARGS = ("--rate=", "--rate_iops=")


@dataclass(frozen=True)
class Rules:
    """How a comparison judges: see the module docstring."""

    threshold: float = THRESHOLD
    alpha: float = ALPHA
    fail_on_threshold_only: bool = False  # a worse metric with one value per side fails too
    allow_different: frozenset[str] = frozenset()  # FACTS names whose differences are accepted

    def __post_init__(self) -> None:
        unknown = sorted(self.allow_different - set(FACTS))
        if unknown:
            raise UsageError(f"allow_different: unknown fact(s) {', '.join(unknown)}; known: {', '.join(FACTS)}")
        if not 0 < self.alpha < 1 or self.threshold < 0:
            raise UsageError(f"alpha must be in (0, 1) and threshold >= 0 (got {self.alpha:g}, {self.threshold:g})")


class Change(StrEnum):
    REGRESSION = "regression"
    IMPROVEMENT = "improvement"
    UNCHANGED = "unchanged"
    INCONCLUSIVE = "inconclusive"  # larger than the threshold, but not statistically supported
    UNSTABLE = "unstable"  # the values spread too much to say anything
    THRESHOLD_ONLY = "threshold only"  # one value on a side: no test possible, the size alone is shown
    NOT_COMPARABLE = "not comparable"  # what was measured differs (settings, versions, node)
    NEW = "new"  # only in the candidate
    MISSING = "missing"  # only in the baseline


@dataclass(frozen=True)
class RunRef:
    """One compared run, as the comparison names it."""

    label: str
    path: str
    scenario_name: str
    run_id: str
    started_utc: str
    runtime: str
    data_filesystem: str
    prometheus_version: str
    verdict: Status
    complete: bool
    # Kubernetes runs: what the volume was (provisioner or PV source) and the nodes' kernels and kubelets.
    volume: str = "–"
    nodes: str = "–"
    storage: str = "–"  # backend, filesystem and data path: what a storage comparison compares
    facts: dict[str, str] = field(default_factory=dict)  # FACTS name -> value


@dataclass(frozen=True)
class Side:
    """The runs of one side of a comparison; their repetitions are pooled into one sample per metric."""

    label: str
    runs: list[RunRef]

    @property
    def verdict(self) -> Status:
        return max((r.verdict for r in self.runs), key=_VERDICT_RANK.__getitem__)


@dataclass(frozen=True)
class Skipped:
    """An input left out of the comparison, and why."""

    path: str
    reason: str


@dataclass(frozen=True)
class Difference:
    """A fact one metric was measured under that differs between the compared runs."""

    fact: str  # its FACTS name
    text: str  # for people, e.g. "fio job settings: a (none) vs b --iodepth=64"


@dataclass(frozen=True, kw_only=True)
class MetricDelta:
    """One metric of one candidate side against the baseline (built with keywords only: it has many fields)."""

    group: str  # "fio", "recovery", "WAL replay", "durability", "verdict"
    metric: str
    unit: str
    run_index: int  # index into Comparison.sides (>= 1)
    baseline: str  # formatted for people: median and count
    candidate: str
    change_pct: float | None  # relative change of the median, + = larger value
    worse_pct: float | None  # the same, signed so that + = worse (less throughput, more time, more loss)
    p_value: float | None  # the Mann-Whitney U test's own
    status: Change
    note: str = ""
    p_adjusted: float | None = None  # adjusted over all tested metrics of this side's comparison
    baseline_median: float | None = None
    candidate_median: float | None = None
    n_baseline: int = 0
    n_candidate: int = 0
    per_run: bool = False  # the samples are the runs' medians (both sides hold several runs), not repetitions
    p_runs: float | None = None  # one run against the other side's several runs: Student's t prediction test
    differences: tuple[Difference, ...] = ()  # why it is not comparable (the note names them for people)

    @property
    def worse(self) -> bool:
        return self.worse_pct is not None and self.worse_pct > 0


@dataclass(frozen=True)
class Comparison:
    sides: list[Side]  # sides[0] is the baseline
    deltas: list[MetricDelta]
    notes: list[str] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    kind: str = "same setup"  # or "storage comparison"
    differences: list[str] = field(default_factory=list)  # what differs between the runs (beyond storage)
    threshold: float = THRESHOLD
    alpha: float = ALPHA
    fail_on_threshold_only: bool = False

    @property
    def runs(self) -> list[RunRef]:
        return [r for s in self.sides for r in s.runs]

    @property
    def regressions(self) -> list[MetricDelta]:
        return [d for d in self.deltas if d.status is Change.REGRESSION]

    @property
    def failures(self) -> list[MetricDelta]:
        """What fails the comparison: regressions, and worse threshold-only metrics when the user asked for it."""
        extra = [d for d in self.deltas if d.status is Change.THRESHOLD_ONLY and d.worse and self._beyond(d)]
        return self.regressions + (extra if self.fail_on_threshold_only else [])

    @property
    def regressed(self) -> bool:
        return bool(self.failures)

    def _beyond(self, d: MetricDelta) -> bool:
        return d.worse_pct is not None and d.worse_pct > 100 * self.threshold


# --- metrics -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Series:
    group: str
    metric: str
    unit: str
    higher_is_better: bool
    values: list[float]
    # What must match for this metric to be comparable: fact name -> value (per run, merged per side).
    facts: dict[str, str]


def fio_settings(job: FioJobResult) -> str:
    """What fio was asked to measure, without where this run put its files: the argv less paths and names."""
    return " ".join(a for a in job.argv[1:] if not a.startswith(_FIO_PATH_ARGS + _FIO_THROTTLE_ARGS))


def _throttles(result: RunResult) -> str:
    """The fio jobs' throttles, e.g. "randwrite-4k --rate_iops=500"; "" when none is."""
    by_job = {j.job_key: " ".join(a for a in j.argv if a.startswith(_FIO_THROTTLE_ARGS)) for j in result.fio}
    return "; ".join(f"{job} {args}" for job, args in by_job.items() if args)


def _fio_series(result: RunResult, facts: dict[str, str]) -> list[Series]:
    """One value per repetition of each job: its whole-run aggregate (fio's own), never the per-second points."""
    by_job: dict[str, list[FioJobResult]] = defaultdict(list)
    for job in result.fio:
        if job.error is None:  # a failed job measured something else (ENOSPC, a dead mount)
            by_job[job.job_key].append(job)
    out: list[Series] = []
    for name, reps in by_job.items():
        first = reps[0]
        label = name if name == first.profile else f"{name} ({first.profile})"
        settings = {f: facts[f] for f in _FIO_FACTS} | {"fio-settings": fio_settings(first)}
        measured: list[tuple[str, str, bool, list[float]]] = []
        for direction in ("read", "write"):
            data = [d for r in reps if (d := getattr(r, direction)) is not None and d.io_bytes > 0]
            measured += [
                (f"{direction} bandwidth", "MiB/s", True, [d.bw_bytes_per_s / 1024**2 for d in data]),
                (f"{direction} IOPS", "IOPS", True, [d.iops for d in data]),
                (
                    f"{direction} p99 latency",
                    "ms",
                    False,
                    [d.clat_percentiles_ns["p99"] / 1e6 for d in data if "p99" in d.clat_percentiles_ns],
                ),
            ]
        sync = [r.sync_lat_ns_percentiles["p99"] / 1e6 for r in reps if "p99" in r.sync_lat_ns_percentiles]
        measured.append(("sync p99 latency", "ms", False, sync))
        out += [
            Series("fio", f"{label} {metric}", unit, higher, values, settings)
            for metric, unit, higher, values in measured
            if values
        ]
    return out


def run_series(result: RunResult, facts: dict[str, str]) -> list[Series]:
    prom = {f: facts[f] for f in _PROMETHEUS_FACTS}
    out = _fio_series(result, facts)
    recovery: dict[str, list[float]] = defaultdict(list)
    replay: dict[str, list[float]] = defaultdict(list)
    for f in result.faults:
        if f.recovery_s is not None:
            recovery[f.action].append(f.recovery_s)
        if f.wal_replay_s is not None:
            replay[f.action].append(f.wal_replay_s)
    out += [Series("recovery", f"recovery after {a}", "s", False, v, prom) for a, v in sorted(recovery.items())]
    out += _stage_series(result, prom)
    out += [Series("WAL replay", f"WAL replay after {a}", "s", False, v, prom) for a, v in sorted(replay.items())]
    if result.durability:
        lost = float(max(c.lost + c.mismatched_values for c in result.durability))
        out.append(Series("durability", "samples lost (worst checkpoint)", "samples", False, [lost], prom))
    return out


def _stage_series(result: RunResult, facts: dict[str, str]) -> list[Series]:
    """Seconds from the injection to each intermediate stage, per fault kind: which stage got slower. The API's
    whole-second stages are left out: a second's resolution cannot show a change of tenths."""
    by_stage: dict[tuple[str, str], list[float]] = defaultdict(list)
    for f in result.faults:
        for st in f.stages:
            if st.stage in ("injected", "first_sample") or st.resolution_s >= 1.0:
                continue
            by_stage[(f.action, st.stage)].append(st.at_s - f.injected_at_s)
    return [
        Series("recovery", f"{stages.label(stage)} after {action}", "s", False, values, facts)
        for (action, stage), values in sorted(by_stage.items(), key=lambda kv: (kv[0][0], stages.ORDER[kv[0][1]]))
    ]


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


def _differences(base: _Pooled, cand: _Pooled, allowed: frozenset[str]) -> list[Difference]:
    """What differs in the facts this metric was measured under, across both sides' runs (allowed ones left out)."""
    out = []
    runs = base.facts + cand.facts
    for name in runs[0][1]:
        if name in allowed:
            continue
        first = runs[0][1].get(name, "?")
        other = next(((label, f.get(name, "?")) for label, f in runs if f.get(name, "?") != first), None)
        if other is None:
            continue
        if name == "fio-settings":
            # Only the arguments that differ: the rest of a long command line hides them.
            a, b = first.split(), other[1].split()
            first = " ".join(x for x in a if x not in b) or "(none)"
            other = (other[0], " ".join(x for x in b if x not in a) or "(none)")
        out.append(Difference(name, f"{FACTS[name]}: {runs[0][0]} {first} vs {other[0]} {other[1]}"))
    return out


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


# A run's verdict is never PARTIAL (``RunResult.overall`` makes a PARTIAL check FAILED); ranked below FAILED all the
# same, so a result file that says so by hand is compared, not refused.
_VERDICT_RANK = {Status.PASSED: 0, Status.SKIPPED: 1, Status.PARTIAL: 2, Status.FAILED: 3, Status.ERROR: 4}


def _verdict_delta(base: Side, cand: Side, index: int) -> MetricDelta:
    """The worst verdict of each side: a run that newly fails is a regression by itself (an outcome, not noise)."""
    vb, vc = base.verdict, cand.verdict
    rb, rc = _VERDICT_RANK[vb], _VERDICT_RANK[vc]
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


def run_facts(result: RunResult) -> dict[str, str]:
    env = result.environment
    if result.cluster is not None and result.cluster.nodes:
        node = ", ".join(sorted({n.name for n in result.cluster.nodes}))
        kernel = ", ".join(sorted({n.kernel for n in result.cluster.nodes}))
    else:
        node, kernel = env.hostname, env.kernel
    tsdb = result.scenario.get("loads", {}).get("tsdb") if isinstance(result.scenario, dict) else None
    return {
        "runtime": result.runtime,
        "node": node,
        "kernel": kernel,
        "prometheus": env.prometheus_version or "unknown",
        "fio": env.fio_version or "unknown",
        "load": json.dumps(tsdb, sort_keys=True) if tsdb else "none",
    }


def storage_facts(result: RunResult) -> str:
    storage = result.scenario.get("storage", {}) if isinstance(result.scenario, dict) else {}
    env = result.environment
    words = [str(storage.get("backend", "?")), env.data_filesystem or "unknown filesystem"]
    if env.data_access:
        words.append(env.data_access)
    if throttles := _throttles(result):
        words.append(f"fio throttled ({throttles})")
    return ", ".join(words)


def _ref(path: Path, result: RunResult) -> RunRef:
    env = result.environment
    return RunRef(
        label=f"{result.scenario_name}/{result.run_id}",
        path=str(path),
        scenario_name=result.scenario_name,
        run_id=result.run_id,
        started_utc=fmt.utc(result.started_at.astimezone(UTC)),
        runtime=result.runtime,
        data_filesystem=env.data_filesystem or "unknown",
        prometheus_version=env.prometheus_version or "unknown",
        verdict=result.verdict,
        complete=result.complete,
        storage=storage_facts(result),
        facts=run_facts(result),
        **_cluster_ref(result),
    )


def _cluster_ref(result: RunResult) -> dict[str, str]:
    cluster = result.cluster
    if cluster is None:
        return {}
    volume = cluster.volume
    kind = "emptyDir"
    if volume is not None:
        # The source's kind and server, portal or driver, not its path: each run has a directory of its own.
        words = (volume.source or "unbound").split()
        where = words[1].split("/")[0].rstrip(":") if len(words) > 1 else ""
        kind = f"{volume.provisioner or 'no class'}, {' '.join(filter(None, (words[0], where)))}"
    nodes = "; ".join(sorted({f"kernel {n.kernel}, kubelet {n.kubelet}, {n.container_runtime}" for n in cluster.nodes}))
    return {"volume": kind, "nodes": f"{cluster.server_version}: {nodes or 'no node'}"}


def _listing(refs: list[RunRef], get: Callable[[RunRef], str]) -> str:
    by_value: dict[str, list[str]] = defaultdict(list)
    for r in refs:
        by_value[get(r)].append(r.label)
    return "; ".join(f"{v} ({', '.join(labels)})" for v, labels in by_value.items())


def _fact(name: str) -> Callable[[RunRef], str]:
    return lambda r: r.facts.get(name, "?")


def _attribute(attr: str) -> Callable[[RunRef], str]:
    return lambda r: str(getattr(r, attr))


def _setup(refs: list[RunRef], allowed: frozenset[str]) -> tuple[str, list[str], list[str]]:
    """(kind, differences, notes) of the whole comparison."""
    differences, notes = [], []
    for name, what in FACTS.items():
        if name == "fio-settings":
            continue  # per job: named on the metrics it concerns
        if len({r.facts.get(name) for r in refs}) > 1:
            text = f"different {what}: {_listing(refs, _fact(name))}"
            if name in allowed:
                notes.append(text + " (allowed)")
            else:
                differences.append(text)
    kind = "same setup"
    for attr, what in (("storage", "storage"), ("volume", "volumes (provisioner, source)")):
        if len({getattr(r, attr) for r in refs}) > 1:
            kind = "storage comparison"
            notes.append(f"different {what}: {_listing(refs, _attribute(attr))}")
    if len({r.scenario_name for r in refs}) > 1:
        notes.append(f"different scenarios: {_listing(refs, lambda r: r.scenario_name)}")
    if len({r.nodes for r in refs}) > 1:
        notes.append(
            f"different clusters (API server; nodes' kernel, kubelet, container runtime): "
            f"{_listing(refs, lambda r: r.nodes)}"
        )
    notes += [
        f"{r.label} is incomplete: missing metrics may just not have been measured" for r in refs if not r.complete
    ]
    return kind, differences, notes


def _distinct_labels(sides: list[list[tuple[Path, RunResult]]]) -> list[Side]:
    seen: dict[str, int] = defaultdict(int)
    out = []
    for i, side in enumerate(sides):
        refs = []
        for path, result in side:
            ref = _ref(path, result)
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
    kind, differences, notes = _setup([r for s in refs for r in s.runs], allowed)
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
        differences=(differences := list(dict.fromkeys(differences))),
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
        m = _Pending(b, c, index, sa, sb, per_run, worse_pct, delta, differs=_differences(b, c, allowed))
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


def load_inputs(paths: Sequence[Path]) -> tuple[list[tuple[Path, RunResult]], list[Skipped]]:
    """The results that can be read, and the others with the reason (missing, truncated, foreign, newer schema)."""
    loaded, skipped = [], []
    for path in paths:
        try:
            loaded.append((path, load_result(path)))
        except UsageError as e:
            # The message starts with the file it concerns (the run directory's result.json): once is enough.
            where, _, reason = str(e).partition(": ")
            skipped.append(Skipped(str(path), reason if where.startswith(str(path)) else str(e)))
    return loaded, skipped


def compare_paths(baseline: Sequence[Path], candidates: Sequence[Sequence[Path]], rules: Rules = Rules()) -> Comparison:
    """Load the sides' stored results (run directories or result.json files) and compare them.

    Unreadable inputs are left out and listed in ``Comparison.skipped``; UsageError when a side is left empty.
    """
    sides, skipped = [], []
    for i, paths in enumerate([baseline, *candidates]):
        loaded, bad = load_inputs(paths)
        skipped += bad
        if not loaded:
            what = "the baseline" if i == 0 else f"side {i}"
            reasons = "; ".join(f"{s.path}: {s.reason}" for s in bad) or "no inputs"
            raise UsageError(f"no usable result left for {what} ({reasons})")
        sides.append(loaded)
    return compare_sides(sides, rules, skipped=skipped)


def compare_runs(paths: list[Path], out: Path | None = None, rules: Rules = Rules()) -> Comparison:
    """Compare stored runs one by one, the first is the baseline; unreadable ones are left out and named. Exit-2
    material (UsageError) only when fewer than two usable runs remain. With ``out``, also writes the HTML."""
    loaded, skipped = load_inputs(paths)
    if len(loaded) < 2:
        reasons = "".join(f"\n  {s.path}: {s.reason}" for s in skipped)
        raise UsageError(
            f"compare needs at least two usable results (the first one is the baseline); {len(loaded)} of "
            f"{len(paths)} could be read{reasons}"
        )
    comparison = compare_sides([[r] for r in loaded], rules, skipped=skipped)
    if out is not None:
        render_comparison(comparison, out)
    return comparison


# --- output --------------------------------------------------------------------------------------------------


def describe(d: MetricDelta, comparison: Comparison) -> str:
    """One line saying what changed, for people and CI: metric, baseline, new value, change, p-values."""
    p = "" if d.p_value is None else f" (p={fmt.p_value(d.p_value)}"
    if p and d.p_adjusted is not None:
        p += f", adjusted {fmt.p_value(d.p_adjusted)}"
    side = comparison.sides[d.run_index].label
    return (
        f"{d.metric}: baseline {d.baseline}, {side} {d.candidate}, change {fmt.change_pct(d.change_pct)}"
        f"{p + ')' if p else ''}: {d.status.value}" + (f" ({d.note})" if d.note else "")
    )


def rule_text(comparison: Comparison) -> str:
    return (
        f"threshold {comparison.threshold:.0%} of the baseline median and Mann-Whitney U with Benjamini-Hochberg "
        f"adjusted p<{comparison.alpha:g} over the comparison's metrics"
        + ("; threshold-only changes fail too" if comparison.fail_on_threshold_only else "")
    )


def summary_text(comparison: Comparison) -> str:
    """The comparison as plain text for the terminal: sides, notes, one line per metric, then the bottom line."""
    lines = [f"{comparison.kind}"]
    for i, side in enumerate(comparison.sides):
        role = "baseline" if i == 0 else f"side {i}"
        for ref in side.runs:
            lines.append(
                f"{role:>9}: {ref.label}  {ref.started_utc}  {ref.runtime}/{ref.data_filesystem}  {ref.verdict.value}"
                + ("" if ref.complete else "  (incomplete)")
            )
    lines += [f"  skipped: {s.path}: {s.reason}" for s in comparison.skipped]
    lines += [f"  differs: {d}" for d in comparison.differences]
    lines += [f"     note: {n}" for n in comparison.notes]
    header = f"{'metric':<44} {'baseline':>24} {'this side':>24} {'change':>8} {'p':>7} {'p adj':>7}  status"
    for index in range(1, len(comparison.sides)):
        lines += ["", f"{comparison.sides[index].label} vs {comparison.sides[0].label}", header]
        for d in (d for d in comparison.deltas if d.run_index == index):
            status = d.status.value.upper() if d in comparison.failures else d.status.value
            values = (
                f"{d.baseline:>24} {d.candidate:>24} {fmt.change_pct(d.change_pct):>8} "
                f"{fmt.p_value(d.p_value):>7} {fmt.p_value(d.p_adjusted):>7}"
            )
            lines.append(f"{d.metric:<44} {values}  {status}" + (f"  ({d.note})" if d.note else ""))
    failures = comparison.failures
    lines.append("")
    if failures:
        lines.append(f"{len(failures)} regression(s): " + "; ".join(describe(d, comparison) for d in failures))
    else:
        lines.append(f"no regressions ({rule_text(comparison)})")
    return "\n".join(lines)


def _changes_frame(comparison: Comparison) -> pd.DataFrame:
    many = len(comparison.sides) > 2
    rows = [
        (f"{d.metric}" + (f" [{comparison.sides[d.run_index].label}]" if many else ""), d.worse_pct, d.status.value)
        for d in comparison.deltas
        if d.worse_pct is not None and d.group != "verdict" and d.status is not Change.UNCHANGED
    ]
    return pd.DataFrame(rows, columns=["label", "worse_pct", "status"])


def _row_class(status: Change) -> str:
    return {
        Change.REGRESSION: "bad",
        Change.IMPROVEMENT: "good",
        Change.UNSTABLE: "warn",
        Change.INCONCLUSIVE: "warn",
        Change.THRESHOLD_ONLY: "warn",
        Change.NOT_COMPARABLE: "warn",
    }.get(status, "")


def render_comparison(comparison: Comparison, out: Path) -> Path:
    """Write the comparison as a self-contained HTML page to ``out`` (atomically); returns ``out``."""
    sections: list[dict[str, Any]] = []
    for index in range(1, len(comparison.sides)):
        rows = [
            (
                [
                    *(d.group, d.metric, d.baseline, d.candidate, fmt.change_pct(d.change_pct)),
                    *(fmt.p_value(d.p_value), fmt.p_value(d.p_adjusted), d.status.value, d.note),
                ],
                _row_class(d.status),
            )
            for d in comparison.deltas
            if d.run_index == index
        ]
        sections.append({"side": comparison.sides[index], "rows": rows})
    chart = chart_view(
        "relative change vs baseline",
        charts.comparison_chart(_changes_frame(comparison)),
        f"no metric changed by more than {comparison.threshold:.0%} of its baseline",
        caption="Metrics that changed by more than the threshold; positive = worse (slower, less throughput). "
        "Colour: vermilion regression, green improvement, amber unstable, grey not significant.",
    )
    context = {
        "style": STYLE,
        "comparison": comparison,
        "baseline": comparison.sides[0],
        "sections": sections,
        "chart": chart,
        "regressions": comparison.failures,
        "threshold_pct": f"{comparison.threshold:.0%}",
        "rule": rule_text(comparison),
        "generated": fmt.utc(pd.Timestamp.now(tz="UTC")),
    }
    atomic_write_text(out, render_template("compare.html.j2", context))
    return out
