"""The HTML report of one run: ``render_report(run_dir)`` turns ``run_dir/result.json`` into ``run_dir/report.html``.

The page is self-contained (charts are PNG data URIs, the CSS is inline, no scripts), so it can be mailed, archived
or opened from a CI artifact without network access. Only the stored result is read, so any old run re-renders.
This module assembles the page: the charts, and the tables and figures formatted for people by
``harness.report.tables`` and ``harness.report.faults_section``; the templates only lay out what they are given.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness import fmt
from harness.report import charts, frames
from harness.report.faults_section import below_views, faults_table, stage_notes, stage_sources_table, stages_table
from harness.report.page import STYLE, chart_view, render_template
from harness.report.sanity import sanity_warnings
from harness.report.tables import (
    checks_table,
    durability_table,
    environment_table,
    fio_settings_table,
    fio_table,
    fmt_run_offset,
    key_figures,
    status_class,
    verdict_reason,
    yamlish,
)
from harness.results.model import RunResult, Severity
from harness.results.store import REPORT_FILE, atomic_write_text, load_result

_SEVERITY_ORDER = {Severity.BLOCKER: 0, Severity.WARNING: 1, Severity.INFO: 2}


def build_context(result: RunResult) -> dict[str, Any]:
    """Everything the report template shows, formatted; separate from rendering so tests can inspect it."""
    fio_ts = frames.fio_timeseries_frame(result)
    fio_summary = frames.fio_summary_frame(result)
    fio_lat = frames.fio_latency_frame(result)
    ingest = frames.ingest_frame(result)
    faults = frames.faults_frame(result)
    stage_frame = frames.stages_frame(result)
    durability = frames.durability_frame(result)
    no_fio = "no fio job ran in this run" if not result.fio else "fio reported no data for this chart"
    chart_list = [
        chart_view(
            "fio bandwidth and IOPS over time",
            charts.fio_throughput_chart(fio_ts),
            no_fio,
        ),
        chart_view("fio latency percentiles", charts.fio_latency_chart(fio_lat), no_fio),
        chart_view(
            "ingest rate",
            charts.ingest_chart(ingest, faults, frames.loss_windows(result)),
            "no TSDB write load ran, or it recorded nothing",
            caption=(
                "Dashed lines mark injected faults, shading the window of a fault that lasted; a gap in acknowledged "
                "samples is the outage seen by writers; hatching marks when the samples that were lost were written."
            ),
        ),
        chart_view(
            "recovery timeline",
            charts.recovery_timeline_chart(faults, stage_frame),
            "no faults were injected",
            caption=(
                "Each fault's way back, stage by stage, to the first new sample stored; the stages and where their "
                "times come from are in the table under Faults and recovery."
            ),
        ),
        chart_view("samples lost", charts.samples_lost_chart(durability), "no durability checkpoint was recorded"),
    ]
    doctor = sorted(result.doctor, key=lambda d: _SEVERITY_ORDER.get(d.severity, 9))
    incomplete = not result.complete or result.interrupted
    return {
        "style": STYLE,
        "result": result,
        "title": f"{result.scenario_name} · {result.run_id}",
        "verdict": result.verdict.value,
        "verdict_class": status_class(result.verdict),
        "reason": verdict_reason(result),
        "incomplete": incomplete,
        "started": fmt.utc(result.started_at),
        "finished": fmt.utc(result.finished_at) if result.finished_at else "–",
        "duration": (
            fmt.duration_s((result.finished_at - result.started_at).total_seconds(), sep=fmt.NBSP)
            if result.finished_at
            else "–"
        ),
        "key_figures": key_figures(result, fio_summary),
        "sanity": sanity_warnings(result),
        "checks": checks_table(result),
        "durability": durability_table(durability),
        "fio": fio_table(fio_summary),
        "fio_settings": fio_settings_table(result),
        "faults": faults_table(result, faults),
        "stages": stages_table(stage_frame),
        "stage_sources": stage_sources_table(stage_frame),
        "stage_notes": stage_notes(result),
        "below": below_views(result),
        "charts": chart_list,
        "doctor": doctor,
        "environment": environment_table(result),
        "scenario_yaml": yamlish(result.scenario),
        "events": [
            (fmt_run_offset(result, e.at_unix_s - result.origin_unix_s), e.kind, e.message) for e in result.events
        ],
        "generated": fmt.utc(datetime.now(UTC)),
    }


def render_html(result: RunResult) -> str:
    return render_template("report.html.j2", build_context(result))


def render_report(run_dir: Path) -> Path:
    """Write ``run_dir/report.html`` from ``run_dir/result.json`` alone; returns the report's path.

    Raises ``UsageError`` (from the store) when there is no result, or one of another schema version.
    """
    result = load_result(run_dir)
    out = run_dir / REPORT_FILE
    atomic_write_text(out, render_html(result))
    return out
