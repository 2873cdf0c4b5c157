"""The report layer: the HTML report of one stored run and comparisons of several; reads only stored results.

``render_report(run_dir)`` re-renders ``run_dir/report.html`` from ``result.json``; ``compare_runs(paths, out)``,
``render_comparison(comparison, out)`` and ``summary_text(comparison)`` compare runs. Nothing here imports the
runtime or the loads: the report must work on any old run, on any machine.
"""

from __future__ import annotations

from harness.report.compare import Change, Comparison, MetricDelta, compare_runs, render_comparison, summary_text
from harness.report.html import render_report

__all__ = [
    "Change",
    "Comparison",
    "MetricDelta",
    "compare_runs",
    "render_comparison",
    "render_report",
    "summary_text",
]
