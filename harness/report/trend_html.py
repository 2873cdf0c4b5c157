"""The trend report as a self-contained HTML page: the latest night's verdict at the top, then per scenario the
change points and one history chart per metric (PNG data URIs, inline CSS, no scripts, like the other reports)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from harness import fmt
from harness.report import charts
from harness.report.page import STYLE, ChartView, Table, chart_view, render_template
from harness.report.trend import Kind, ScenarioTrend, Trend, describe_change, verdict_line
from harness.results.store import atomic_write_text

_ROW_CLASS = {Kind.REGRESSION: "bad", Kind.POSSIBLE: "warn", Kind.WORSE: "warn", Kind.IMPROVEMENT: "good"}


@dataclass(frozen=True)
class ScenarioView:
    name: str
    summary: str
    changes: Table
    charts: list[ChartView]  # metrics with a change point: shown first, open
    quiet_charts: list[ChartView]  # the others, folded away (still on the page: no network, no script)


def _changes_table(s: ScenarioTrend) -> Table:
    rows, classes = [], []
    for c in s.changes:
        before, after = fmt.measure(c.before, c.unit), fmt.measure(c.after, c.unit)
        rows.append(
            [
                _night(c.night.started_utc),
                c.night.run_dir,
                c.metric,
                f"{before} → {after}".replace(" ", fmt.NBSP, 1),
                fmt.change_pct(c.change_pct),
                "worse" if c.worse else "better",
                c.kind.value + ("" if c.confirmed else " (size only: fewer than 5 nights before)"),
                c.ack.reason if c.ack else "",
                fmt.shorten(c.also_changed, 300) or "–",
            ]
        )
        classes.append(_ROW_CLASS.get(c.kind, ""))
    headers = [
        "night",
        "run",
        "metric",
        "before → after",
        "change",
        "direction",
        "status",
        "acknowledged because",
        "also changed",
    ]
    return Table(headers, rows, classes)


def _night(started_utc: str) -> str:
    """ "2026-12-03 02:00 UTC": a night needs no seconds, and the shorter cell keeps the table within the window."""
    return f"{started_utc[:16]} UTC".replace(" ", fmt.NBSP)


def _charts(s: ScenarioTrend, *, changed: bool) -> list[ChartView]:
    views = []
    labels = {n.index: n.started_utc[5:16] for n in s.nights}  # "12-03 02:00": the night, short enough to tick
    for m in s.metrics:
        if bool(m.changes) != changed:
            continue
        history = pd.DataFrame([(n, labels[n], v) for n, v in m.points], columns=["night", "label", "value"])
        changes = pd.DataFrame([(c.night.index, c.kind.value) for c in m.changes], columns=["night", "kind"])
        better = "higher is better" if m.higher_is_better else "lower is better"
        drift = "" if m.drift_pct is None else f"; drift over the history {fmt.change_pct(m.drift_pct)}"
        title = f"{m.metric} ({better})"
        png = charts.trend_chart(history, changes, title, m.unit)
        caption = f"{len(m.points)} night(s){drift}" + "".join(
            f"; {describe_change(c)} at {_night(c.night.started_utc)}" for c in m.changes
        )
        views.append(chart_view(title, png, "no values", caption=caption))
    return views


def render_trend(trend: Trend, out: Path) -> Path:
    """Write the trend as a self-contained HTML page to ``out`` (atomically); returns ``out``."""
    views = [
        ScenarioView(
            name=s.name,
            summary=f"{len(s.nights)} night(s) from {s.nights[0].started_utc} to {s.nights[-1].started_utc}, "
            f"{len(s.metrics)} metric(s), {len(s.changes)} change point(s)",
            changes=_changes_table(s),
            charts=_charts(s, changed=True),
            quiet_charts=_charts(s, changed=False),
        )
        for s in trend.scenarios
    ]
    context = {
        "style": STYLE,
        "trend": trend,
        "verdict": verdict_line(trend),
        "scenarios": views,
        "generated": fmt.utc(datetime.now(UTC)),
    }
    atomic_write_text(out, render_template("trend.html.j2", context))
    return out
