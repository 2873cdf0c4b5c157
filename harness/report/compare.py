"""Comparing stored runs: which numbers got worse between a baseline run and one or more later (or other) runs.

The first run is the baseline; every other run is compared with it, metric by metric: fio bandwidth, IOPS and p99
latency per profile, recovery time and WAL replay per fault kind, samples lost, and the verdict. A change is a
regression only when it is larger than ``THRESHOLD`` (relative) AND, where a run holds repeated values of the metric
(fio's per-second points, several faults of one kind), a Mann-Whitney U test says the two sets differ (p < ``ALPHA``).
When the values of either run spread too widely to tell, the metric is called unstable instead of getting a verdict.
Runs of different scenarios, runtimes or filesystems can be compared (NFS vs local is the point); the output says so.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC
from enum import StrEnum
from pathlib import Path
from typing import Any

import pandas as pd

from harness import fmt, stages
from harness.errors import UsageError
from harness.report import charts
from harness.report.html import STYLE, chart_view, render_template
from harness.report.stats import mann_whitney_u, min_p_value, relative_spread
from harness.results.model import RunResult, Status
from harness.results.store import atomic_write_text, load_result

THRESHOLD = 0.10  # a change smaller than 10% of the baseline is noise on shared CI machines
ALPHA = 0.05  # significance level of the Mann-Whitney U test
# Recovery and replay times below a second jitter by tenths on any machine: smaller differences are never regressions.
MIN_TIME_DELTA_S = 0.25
UNSTABLE_SPREAD = 0.5  # interquartile range / median above which a run's values are too scattered to judge


class Change(StrEnum):
    REGRESSION = "regression"
    IMPROVEMENT = "improvement"
    UNCHANGED = "unchanged"
    INCONCLUSIVE = "inconclusive"  # larger than the threshold, but not statistically supported
    UNSTABLE = "unstable"  # the values spread too much to say anything
    NEW = "new"  # only in the compared run
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


@dataclass(frozen=True)
class MetricDelta:
    """One metric of one compared run against the baseline."""

    group: str  # "fio", "recovery", "WAL replay", "durability", "verdict"
    metric: str
    unit: str
    run_index: int  # index into Comparison.runs (>= 1)
    baseline: str  # formatted for people: median and count
    candidate: str
    change_pct: float | None  # relative change of the median, + = larger value
    worse_pct: float | None  # the same, signed so that + = worse (less throughput, more time, more loss)
    p_value: float | None
    status: Change
    note: str = ""


@dataclass(frozen=True)
class Comparison:
    runs: list[RunRef]  # runs[0] is the baseline
    deltas: list[MetricDelta]
    notes: list[str] = field(default_factory=list)
    threshold: float = THRESHOLD
    alpha: float = ALPHA

    @property
    def regressions(self) -> list[MetricDelta]:
        return [d for d in self.deltas if d.status is Change.REGRESSION]

    @property
    def regressed(self) -> bool:
        return bool(self.regressions)


# --- metrics -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Series:
    group: str
    metric: str
    unit: str
    higher_is_better: bool
    values: list[float]
    is_count: bool = False  # samples lost: any increase from zero matters, relative change is meaningless


def _fio_series(result: RunResult) -> list[_Series]:
    out: list[_Series] = []
    profiles = [j.profile for j in result.fio]
    for job in result.fio:
        name = job.profile if profiles.count(job.profile) == 1 else f"{job.profile} ({job.name})"
        for direction, data in (("read", job.read), ("write", job.write)):
            if data is None or data.io_bytes == 0:
                continue
            points = data.timeseries
            bw = [p.bw_bytes_per_s / 1024**2 for p in points] or [data.bw_bytes_per_s / 1024**2]
            iops = [p.iops for p in points] or [data.iops]
            out.append(_Series("fio", f"{name} {direction} bandwidth", "MiB/s", True, bw))
            out.append(_Series("fio", f"{name} {direction} IOPS", "IOPS", True, iops))
            if "p99" in data.clat_percentiles_ns:
                p99 = [data.clat_percentiles_ns["p99"] / 1e6]
                out.append(_Series("fio", f"{name} {direction} p99 latency", "ms", False, p99))
        if "p99" in job.sync_lat_ns_percentiles:
            sync = [job.sync_lat_ns_percentiles["p99"] / 1e6]
            out.append(_Series("fio", f"{name} sync p99 latency", "ms", False, sync))
    return out


def _run_series(result: RunResult) -> list[_Series]:
    out = _fio_series(result)
    recovery: dict[str, list[float]] = defaultdict(list)
    replay: dict[str, list[float]] = defaultdict(list)
    for f in result.faults:
        if f.recovery_s is not None:
            recovery[f.action].append(f.recovery_s)
        if f.wal_replay_s is not None:
            replay[f.action].append(f.wal_replay_s)
    out += [_Series("recovery", f"recovery after {a}", "s", False, v) for a, v in sorted(recovery.items())]
    out += _stage_series(result)
    out += [_Series("WAL replay", f"WAL replay after {a}", "s", False, v) for a, v in sorted(replay.items())]
    if result.durability:
        lost = float(max(c.lost + c.mismatched_values for c in result.durability))
        out.append(_Series("durability", "samples lost (worst checkpoint)", "samples", False, [lost], is_count=True))
    return out


def _stage_series(result: RunResult) -> list[_Series]:
    """Seconds from the injection to each intermediate stage, per fault kind: which stage got slower. The API's
    whole-second stages are left out: a second's resolution cannot show a change of tenths."""
    by_stage: dict[tuple[str, str], list[float]] = defaultdict(list)
    for f in result.faults:
        for st in f.stages:
            if st.stage in ("injected", "first_sample") or st.resolution_s >= 1.0:
                continue
            by_stage[(f.action, st.stage)].append(st.at_s - f.injected_at_s)
    return [
        _Series("recovery", f"{stages.label(stage)} after {action}", "s", False, values)
        for (action, stage), values in sorted(by_stage.items(), key=lambda kv: (kv[0][0], stages.ORDER[kv[0][1]]))
    ]


def _fmt(values: list[float], unit: str) -> str:
    if not values:
        return "–"
    number = fmt.measure(statistics.median(values), unit, whole=unit in ("IOPS", "samples"))
    return number + (f" (n={len(values)})" if len(values) > 1 else "")


def _judge_count(delta: float, baseline: float, threshold: float) -> Change:
    """Samples lost: one number per run; any increase from zero is a regression, otherwise the threshold decides."""
    if delta == 0 or (baseline != 0 and abs(delta) / abs(baseline) <= threshold):
        return Change.UNCHANGED
    return Change.REGRESSION if delta > 0 else Change.IMPROVEMENT


def _small_change(base: _Series, delta: float, worse_pct: float | None, threshold: float) -> str | None:
    """A note (possibly empty) when the change is too small to matter; None when it is large enough to judge."""
    if delta == 0 or (worse_pct is not None and abs(worse_pct) <= 100 * threshold):
        return ""
    if base.unit == "s" and abs(delta) < MIN_TIME_DELTA_S:
        return f"less than {MIN_TIME_DELTA_S:g} s apart"
    return None


def _judge_repeated(a: list[float], b: list[float], direction: Change, alpha: float) -> tuple[Change, float, str]:
    """(status, p_value, note) for a large change between two sets of repeated values."""
    test = mann_whitney_u(a, b)
    assert test.p_value is not None  # the caller judged single values already
    p = test.p_value
    spread = max(relative_spread(a), relative_spread(b))
    if spread > UNSTABLE_SPREAD:
        return Change.UNSTABLE, p, f"values spread {spread:.0%} of the median: too noisy to judge"
    if p >= alpha:
        note = f"not significant (p={p:.2g})"
        if min_p_value(len(a), len(b)) >= alpha:
            note += f"; {len(a)} vs {len(b)} values can never reach p<{alpha:g}: repeat the faults more often"
        return Change.INCONCLUSIVE, p, note
    return direction, p, ""


def _judge(
    base: _Series, cand: _Series, threshold: float, alpha: float
) -> tuple[Change, float | None, float | None, str]:
    """(status, worse_pct, p_value, note) of one metric; see the module docstring for the rules."""
    a, b = base.values, cand.values
    ma, mb = statistics.median(a), statistics.median(b)
    delta = (ma - mb) if base.higher_is_better else (mb - ma)  # positive = worse
    worse_pct = None if ma == 0 else 100 * delta / abs(ma)
    if base.is_count:
        return _judge_count(delta, ma, threshold), worse_pct, None, f"{delta:+,.0f} samples" if delta else ""
    small = _small_change(base, delta, worse_pct, threshold)
    if small is not None:
        return Change.UNCHANGED, worse_pct, None, small
    direction = Change.REGRESSION if delta > 0 else Change.IMPROVEMENT
    if len(a) < 2 or len(b) < 2:
        # One value on a side: no statistics possible, the size threshold alone decides.
        return direction, worse_pct, None, "single value, no significance test"
    status, p, note = _judge_repeated(a, b, direction, alpha)
    return status, worse_pct, p, note


_VERDICT_RANK = {Status.PASSED: 0, Status.SKIPPED: 1, Status.FAILED: 2, Status.ERROR: 3}


def _verdict_delta(base: RunRef, cand: RunRef, index: int) -> MetricDelta:
    rb, rc = _VERDICT_RANK[base.verdict], _VERDICT_RANK[cand.verdict]
    status = Change.UNCHANGED if rb == rc else Change.REGRESSION if rc > rb else Change.IMPROVEMENT
    note = "" if cand.verdict is not Status.ERROR else "ERROR means the harness or environment broke, not the storage"
    return MetricDelta(
        "verdict", "verdict", "", index, base.verdict.value, cand.verdict.value, None, None, None, status, note
    )


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


def _notes(refs: list[RunRef]) -> list[str]:
    notes = []
    for attr, what in (
        ("scenario_name", "scenarios"),
        ("runtime", "runtimes"),
        ("data_filesystem", "filesystems"),
        ("prometheus_version", "Prometheus versions"),
        ("volume", "volumes (provisioner, source)"),
        ("nodes", "clusters (API server; nodes' kernel, kubelet, container runtime)"),
    ):
        values = [getattr(r, attr) for r in refs]
        if len(set(values)) > 1:
            listed = ", ".join(f"{r.label}: {v}" for r, v in zip(refs, values, strict=True))
            notes.append(f"different {what} ({listed}): the numbers are compared as they are")
    notes += [
        f"{r.label} is incomplete: missing metrics may just not have been measured" for r in refs if not r.complete
    ]
    return notes


def compare_results(results: list[tuple[Path, RunResult]]) -> Comparison:
    """Compare loaded results; the first is the baseline."""
    if len(results) < 2:
        raise UsageError("compare needs at least two results (the first one is the baseline)")
    refs = [_ref(p, r) for p, r in results]
    seen: dict[str, int] = defaultdict(int)
    for i, ref in enumerate(refs):
        seen[ref.label] += 1
        if seen[ref.label] > 1:  # the same run given twice still gets distinct labels
            refs[i] = RunRef(**{**ref.__dict__, "label": f"{ref.label}#{seen[ref.label]}"})
    notes = _notes(refs)
    base_series = {s.metric: s for s in _run_series(results[0][1])}
    deltas: list[MetricDelta] = []
    for index, (_, result) in enumerate(results[1:], start=1):
        deltas.append(_verdict_delta(refs[0], refs[index], index))
        cand_series = {s.metric: s for s in _run_series(result)}
        for metric in list(base_series) + [m for m in cand_series if m not in base_series]:
            base, cand = base_series.get(metric), cand_series.get(metric)
            some = base or cand
            assert some is not None
            if base is None or cand is None:
                status = Change.NEW if base is None else Change.MISSING
                b_txt = _fmt(base.values, some.unit) if base else "–"
                c_txt = _fmt(cand.values, some.unit) if cand else "–"
                deltas.append(MetricDelta(some.group, metric, some.unit, index, b_txt, c_txt, None, None, None, status))
                continue
            status, worse_pct, p, note = _judge(base, cand, THRESHOLD, ALPHA)
            change_pct = None if worse_pct is None else -worse_pct if base.higher_is_better else worse_pct
            deltas.append(
                MetricDelta(
                    base.group,
                    metric,
                    base.unit,
                    index,
                    _fmt(base.values, base.unit),
                    _fmt(cand.values, cand.unit),
                    change_pct,
                    worse_pct,
                    p,
                    status,
                    note,
                )
            )
    return Comparison(runs=refs, deltas=deltas, notes=notes)


def compare_runs(paths: list[Path], out: Path | None = None) -> Comparison:
    """Load stored results (run directories or result.json files) and compare them; the first is the baseline.

    With ``out``, also writes the HTML comparison there. Raises ``UsageError`` for fewer than two paths, a missing
    result, or a result of another schema version.
    """
    comparison = compare_results([(p, load_result(p)) for p in paths])
    if out is not None:
        render_comparison(comparison, out)
    return comparison


# --- output --------------------------------------------------------------------------------------------------


def summary_text(comparison: Comparison) -> str:
    """The comparison as plain text for the terminal: runs, notes, one line per metric, then the bottom line."""
    lines = []
    for i, ref in enumerate(comparison.runs):
        role = "baseline" if i == 0 else f"run {i}"
        lines.append(
            f"{role:>9}: {ref.label}  {ref.started_utc}  {ref.runtime}/{ref.data_filesystem}  {ref.verdict.value}"
            + ("" if ref.complete else "  (incomplete)")
        )
    lines += [f"     note: {n}" for n in comparison.notes]
    header = f"{'metric':<44} {'baseline':>26} {'this run':>26} {'change':>8} {'p':>7}  status"
    for index in range(1, len(comparison.runs)):
        lines += [
            "",
            f"run {index} vs baseline (change of the median; regression = worse by more than the threshold)",
            header,
        ]
        for d in (d for d in comparison.deltas if d.run_index == index):
            status = d.status.value.upper() if d.status is Change.REGRESSION else d.status.value
            values = f"{d.baseline:>26} {d.candidate:>26} {fmt.change_pct(d.change_pct):>8} {fmt.p_value(d.p_value):>7}"
            line = f"{d.metric:<44} {values}  {status}"
            lines.append(line + (f"  ({d.note})" if d.note else ""))
    regressions = comparison.regressions
    lines.append("")
    if regressions:
        lines.append(f"{len(regressions)} regression(s): " + "; ".join(d.metric for d in regressions))
    else:
        rule = f"threshold {comparison.threshold:.0%}, significance p<{comparison.alpha:g} where values repeat"
        lines.append(f"no regressions ({rule})")
    return "\n".join(lines)


def _changes_frame(comparison: Comparison) -> pd.DataFrame:
    many = len(comparison.runs) > 2
    rows = [
        (f"{d.metric}" + (f" [{comparison.runs[d.run_index].label}]" if many else ""), d.worse_pct, d.status.value)
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
    }.get(status, "")


def render_comparison(comparison: Comparison, out: Path) -> Path:
    """Write the comparison as a self-contained HTML page to ``out`` (atomically); returns ``out``."""
    sections: list[dict[str, Any]] = []
    for index in range(1, len(comparison.runs)):
        rows = [
            (
                [
                    *(d.group, d.metric, d.baseline, d.candidate),
                    *(fmt.change_pct(d.change_pct), fmt.p_value(d.p_value), d.status.value, d.note),
                ],
                _row_class(d.status),
            )
            for d in comparison.deltas
            if d.run_index == index
        ]
        sections.append({"run": comparison.runs[index], "rows": rows})
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
        "baseline": comparison.runs[0],
        "sections": sections,
        "chart": chart,
        "regressions": comparison.regressions,
        "threshold_pct": f"{comparison.threshold:.0%}",
        "generated": fmt.utc(pd.Timestamp.now(tz="UTC")),
    }
    atomic_write_text(out, render_template("compare.html.j2", context))
    return out
