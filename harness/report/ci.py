"""What CI reads: JUnit XML and a JSON summary of a run (its checks), of a comparison (its metrics and gate), of a
trend (its metric series) and of a night (its steps, from ``harness.nightly``).

JUnit, as Jenkins, GitLab and GitHub's test reporters read it: one ``<testsuite>`` per run or per compared side, one
``<testcase>`` per check, per metric and per gate. A FAILED check or a regression is a ``<failure>`` whose message
names what failed (for a regression: metric, baseline, new value, change and p-values), a PARTIAL check a
``<failure>`` whose message starts "PARTIAL: " (part of it was never checked: it must not look green, and its run is
FAILED), an ERROR an ``<error>``, and what was not judged (a skipped check; a threshold-only, unstable or not
comparable metric) a ``<skipped>`` with the reason, so it shows without failing the build. Written with
``xml.etree`` (escaping is its business, not ours).

The JSON summary holds the same verdicts as plain data, with ``"schema": "prom-storage-harness/<kind>-summary/1"``.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import UsageError
from harness.report.compare import Change, Comparison, MetricDelta, describe, rule_text
from harness.report.trend import Kind, MetricTrend, Trend, TrendChange, describe_change, verdict_line
from harness.results.model import CheckResult, RunResult, Status
from harness.results.store import atomic_write_text

# 2: a check can be PARTIAL (run summaries); each compared metric has p_runs (compare summaries); overrides (run).
SUMMARY_VERSION = 2
_NOT_JUDGED = (Change.THRESHOLD_ONLY, Change.UNSTABLE, Change.INCONCLUSIVE, Change.NOT_COMPARABLE, Change.MISSING)


def _suite(parent: ET.Element, name: str, properties: dict[str, str]) -> ET.Element:
    suite = ET.SubElement(parent, "testsuite", name=name)
    props = ET.SubElement(suite, "properties")
    for key, value in properties.items():
        ET.SubElement(props, "property", name=key, value=value)
    return suite


def _case(
    suite: ET.Element, classname: str, name: str, outcome: str = "", *, message: str = "", text: str = ""
) -> None:
    """A testcase; ``outcome`` is "" (passed), "failure", "error" or "skipped"."""
    case = ET.SubElement(suite, "testcase", classname=classname, name=name, time="0")
    if outcome:
        ET.SubElement(case, outcome, message=message).text = text or message


def _count(root: ET.Element) -> None:
    """The tests/failures/errors/skipped attributes every reader wants, on each suite and on the root."""
    totals = dict.fromkeys(("tests", "failures", "errors", "skipped"), 0)
    for suite in root.iter("testsuite"):
        cases = suite.findall("testcase")
        counts = {
            "tests": len(cases),
            "failures": sum(c.find("failure") is not None for c in cases),
            "errors": sum(c.find("error") is not None for c in cases),
            "skipped": sum(c.find("skipped") is not None for c in cases),
        }
        for key, value in counts.items():
            suite.set(key, str(value))
            totals[key] += value
    for key, value in totals.items():
        root.set(key, str(value))


def _write(path: Path, text: str) -> Path:
    try:
        atomic_write_text(path, text)
    except OSError as e:
        raise UsageError(f"{path}: cannot write it: {e.strerror or e}") from e
    return path


def _write_xml(root: ET.Element, path: Path) -> Path:
    _count(root)
    ET.indent(root)
    return _write(path, '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n")


def _write_json(data: dict[str, Any], path: Path) -> Path:
    return _write(path, json.dumps(data, indent=2) + "\n")


@dataclass(frozen=True)
class Case:
    """One testcase of a suite another module builds (the night's steps); ``outcome`` as for ``_case``."""

    classname: str
    name: str
    outcome: str = ""
    message: str = ""
    text: str = ""


def write_cases(title: str, suite: str, properties: dict[str, str], cases: Sequence[Case], path: Path) -> Path:
    """One suite of ``cases`` as JUnit at ``path``."""
    root = ET.Element("testsuites", name=title)
    parent = _suite(root, suite, properties)
    for c in cases:
        _case(parent, c.classname, c.name, c.outcome, message=c.message, text=c.text)
    return _write_xml(root, path)


def write_summary(data: dict[str, Any], path: Path) -> Path:
    """A JSON summary another module built (its ``schema`` names its kind and ``SUMMARY_VERSION``)."""
    return _write_json(data, path)


# --- a run ---------------------------------------------------------------------------------------------------


def _check_outcome(check: CheckResult, expected: Status | None) -> tuple[str, str]:
    if check.status is Status.FAILED and expected is Status.FAILED:
        # A scenario that must fail (the emptyDir baseline): its failing check is the expected finding.
        return "skipped", f"failed as this scenario must: {check.reason}"
    partial = f"PARTIAL: {check.reason}"
    if check.status is Status.PARTIAL and expected is Status.FAILED:
        # It makes the run FAILED, as this scenario must end; what was not checked still shows, not as green.
        return "skipped", partial
    return {
        Status.PASSED: ("", ""),
        Status.FAILED: ("failure", check.reason),
        Status.ERROR: ("error", check.reason),
        Status.SKIPPED: ("skipped", check.reason),
        # Not a pass: part of the check never happened. A failure, so CI does not show it green; the prefix tells a
        # reader it is not a loss found.
        Status.PARTIAL: ("failure", partial),
    }[check.status]


def run_junit(result: RunResult, path: Path, *, expected: Status | None = None) -> Path:
    """A run's checks as JUnit, plus the gate: the verdict (or, with ``expected``, that the verdict is that one)."""
    root = ET.Element("testsuites", name=f"harness run {result.scenario_name}")
    suite = _suite(
        root,
        f"run {result.scenario_name}/{result.run_id}",
        {
            "runtime": result.runtime,
            "started": result.started_at.isoformat(),
            "verdict": result.verdict.value,
            **({"overrides": " ".join(result.overrides)} if result.overrides else {}),
        },
    )
    classname = f"harness.run.{result.scenario_name}"
    for check in result.checks:
        outcome, message = _check_outcome(check, expected)
        _case(suite, classname, check.name, outcome, message=message)
    if result.error:
        _case(suite, classname, "run", "error", message=result.error.splitlines()[0], text=result.error)
    want = expected or Status.PASSED
    gate = f"gate: verdict is {want.value}"
    if result.verdict is want:
        _case(suite, classname, gate)
    else:
        reasons = "; ".join(
            f"{c.name} ({c.status.value}): {c.reason}" for c in result.checks if c.status is not Status.PASSED
        )
        outcome = "error" if result.verdict is Status.ERROR else "failure"
        _case(
            suite,
            classname,
            gate,
            outcome,
            message=f"verdict {result.verdict.value}, expected {want.value}",
            text=reasons,
        )
    return _write_xml(root, path)


def run_summary(result: RunResult, *, expected: Status | None = None) -> dict[str, Any]:
    want = expected or Status.PASSED
    return {
        "schema": f"prom-storage-harness/run-summary/{SUMMARY_VERSION}",
        "scenario": result.scenario_name,
        "run_id": result.run_id,
        "runtime": result.runtime,
        "overrides": result.overrides,
        "started": result.started_at.isoformat(),
        "complete": result.complete,
        "verdict": result.verdict.value,
        "expected_verdict": want.value,
        "gate_passed": result.verdict is want,
        "error": result.error,
        "checks": [{"name": c.name, "status": c.status.value, "reason": c.reason} for c in result.checks],
    }


def write_run_outputs(
    result: RunResult, *, junit: Path | None, summary: Path | None, expected: Status | None = None
) -> None:
    if junit is not None:
        run_junit(result, junit, expected=expected)
    if summary is not None:
        _write_json(run_summary(result, expected=expected), summary)


# --- a comparison ------------------------------------------------------------------------------------------


def _delta_outcome(d: MetricDelta, comparison: Comparison) -> tuple[str, str]:
    if d in comparison.failures:
        return "failure", describe(d, comparison)
    if d.status in _NOT_JUDGED:
        return "skipped", describe(d, comparison)
    return "", ""


def comparison_junit(comparison: Comparison, path: Path) -> Path:
    root = ET.Element("testsuites", name="harness compare")
    base = comparison.sides[0]
    for index in range(1, len(comparison.sides)):
        side = comparison.sides[index]
        suite = _suite(
            root,
            f"compare {side.label} vs {base.label}",
            {
                "kind": comparison.kind,
                "rule": rule_text(comparison),
                "baseline": ", ".join(r.path for r in base.runs),
                "candidate": ", ".join(r.path for r in side.runs),
            },
        )
        deltas = [d for d in comparison.deltas if d.run_index == index]
        for d in deltas:
            outcome, message = _delta_outcome(d, comparison)
            _case(suite, f"harness.compare.{d.group.replace(' ', '_')}", d.metric, outcome, message=message)
        failures = [d for d in deltas if d in comparison.failures]
        if failures:
            text = "\n".join(describe(d, comparison) for d in failures)
            _case(
                suite,
                "harness.compare",
                "gate: no regression",
                "failure",
                message=f"{len(failures)} regression(s)",
                text=text,
            )
        else:
            _case(suite, "harness.compare", "gate: no regression")
        for s in comparison.skipped:
            _case(suite, "harness.compare.inputs", s.path, "skipped", message=f"left out: {s.reason}")
        for difference in comparison.differences:
            _case(suite, "harness.compare.setup", difference, "skipped", message=f"not comparable: {difference}")
    return _write_xml(root, path)


def _delta_json(d: MetricDelta, comparison: Comparison) -> dict[str, Any]:
    return {
        "group": d.group,
        "metric": d.metric,
        "unit": d.unit,
        "baseline": d.baseline,
        "candidate": d.candidate,
        "baseline_median": d.baseline_median,
        "candidate_median": d.candidate_median,
        "n_baseline": d.n_baseline,
        "n_candidate": d.n_candidate,
        "sample_unit": "run" if d.per_run else "repetition",
        "change_pct": d.change_pct,
        "worse_pct": d.worse_pct,
        "p_value": d.p_value,
        "p_adjusted": d.p_adjusted,
        "p_runs": d.p_runs,
        "status": d.status.value,
        "fails": d in comparison.failures,
        "note": d.note,
    }


def comparison_summary(comparison: Comparison) -> dict[str, Any]:
    return {
        "schema": f"prom-storage-harness/compare-summary/{SUMMARY_VERSION}",
        "kind": comparison.kind,
        "threshold": comparison.threshold,
        "alpha": comparison.alpha,
        "rule": rule_text(comparison),
        "fail_on_threshold_only": comparison.fail_on_threshold_only,
        "regressed": comparison.regressed,
        "sides": [
            {
                "label": s.label,
                "runs": [
                    {"label": r.label, "path": r.path, "verdict": r.verdict.value, "complete": r.complete}
                    for r in s.runs
                ],
            }
            for s in comparison.sides
        ],
        "skipped": [{"path": s.path, "reason": s.reason} for s in comparison.skipped],
        "differences": comparison.differences,
        "notes": comparison.notes,
        "comparisons": [
            {
                "baseline": comparison.sides[0].label,
                "candidate": comparison.sides[i].label,
                "metrics": [_delta_json(d, comparison) for d in comparison.deltas if d.run_index == i],
            }
            for i in range(1, len(comparison.sides))
        ],
        "regressions": [describe(d, comparison) for d in comparison.failures],
    }


def write_comparison_outputs(comparison: Comparison, *, junit: Path | None, summary: Path | None) -> None:
    if junit is not None:
        comparison_junit(comparison, junit)
    if summary is not None:
        _write_json(comparison_summary(comparison), summary)


# --- a trend -------------------------------------------------------------------------------------------------


def _series_failure(m: MetricTrend) -> list[TrendChange]:
    return [c for c in m.changes if c.kind is Kind.REGRESSION]


def trend_junit(trend: Trend, path: Path) -> Path:
    """One suite per scenario, one testcase per metric series: failed when the latest night is the first to confirm
    an unacknowledged change for the worse in it (what makes `harness trend` exit 1), passed otherwise."""
    root = ET.Element("testsuites", name="harness trend")
    for s in trend.scenarios:
        suite = _suite(
            root,
            f"trend {s.name}",
            {"nights": str(len(s.nights)), "latest": s.nights[-1].run_dir, "results": trend.results_dir},
        )
        for m in s.metrics:
            failed = _series_failure(m)
            if failed:
                text = "\n".join(f"{c.night.run_dir} ({c.night.started_utc}): {describe_change(c)}" for c in failed)
                _case(suite, f"harness.trend.{s.name}", m.metric, "failure", message=text.splitlines()[0], text=text)
            else:
                _case(suite, f"harness.trend.{s.name}", m.metric)
    if trend.skipped:
        suite = _suite(root, "trend inputs", {"results": trend.results_dir})
        for k in trend.skipped:
            _case(suite, "harness.trend.inputs", k.path, "skipped", message=f"left out: {k.reason}")
    return _write_xml(root, path)


def _change_json(c: TrendChange) -> dict[str, Any]:
    return {
        "run": c.night.run_dir,
        "started": c.night.started_utc,
        "before": c.before,
        "after": c.after,
        "change_pct": c.change_pct,
        "worse": c.worse,
        "confirmed": c.confirmed,
        "kind": c.kind.value,
        "ack": c.ack.reason if c.ack else None,
        "also_changed": c.also_changed,
    }


def trend_summary(trend: Trend) -> dict[str, Any]:
    return {
        "schema": f"prom-storage-harness/trend-summary/{SUMMARY_VERSION}",
        "results": trend.results_dir,
        "ack_file": trend.ack_file,
        "regressed": trend.regressed,
        "verdict": verdict_line(trend),
        "scenarios": [
            {
                "name": s.name,
                "nights": len(s.nights),
                "latest": s.nights[-1].run_dir,
                "metrics": [
                    {
                        "group": m.group,
                        "metric": m.metric,
                        "unit": m.unit,
                        "nights": len(m.points),
                        "latest": m.points[-1][1],
                        "drift_pct": m.drift_pct,
                        "fails": bool(_series_failure(m)),
                        "changes": [_change_json(c) for c in m.changes],
                    }
                    for m in s.metrics
                ],
            }
            for s in trend.scenarios
        ],
        "skipped": [{"path": k.path, "reason": k.reason} for k in trend.skipped],
        "unused_acks": [a.describe() for a in trend.unused_acks],
        "regressions": [f"{name}: {describe_change(c)}" for name, c in trend.regressions],
    }


def write_trend_outputs(trend: Trend, *, junit: Path | None, summary: Path | None) -> None:
    if junit is not None:
        trend_junit(trend, junit)
    if summary is not None:
        _write_json(trend_summary(trend), summary)
