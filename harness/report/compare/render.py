"""The comparison for people: one line per regression (``describe``), the terminal summary and the HTML page."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from harness import fmt
from harness.report import charts
from harness.report.compare.model import Change, Comparison, MetricDelta
from harness.report.page import STYLE, chart_view, render_template
from harness.results.store import atomic_write_text


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
