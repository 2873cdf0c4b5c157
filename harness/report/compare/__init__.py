"""Comparing stored runs: which numbers got worse between a baseline and a candidate, and whether that can be trusted.

One room per concern, each public name importable from here:

- ``facts``: what each run was measured under, and whether runs are comparable (``FACTS``, storage labels);
- ``series``: a run's metrics as independent values (fio per job, recovery and its stages, replay, loss);
- ``model``: the types (``Rules``, ``Change``, ``Side``, ``MetricDelta``, ``Comparison``, ``Skipped``);
- ``judge``: pooling, the tests and each metric's status: the rules are its docstring;
- ``render``: the terminal summary, one line per regression, and the HTML page;
- ``load``: reading the inputs, leaving out the unreadable ones with the reason.
"""

from __future__ import annotations

from harness.report.compare.facts import FACTS, Difference, RunRef, fio_settings, run_facts, storage_facts
from harness.report.compare.judge import MIN_TIME_DELTA_S, UNSTABLE_SPREAD, compare_results, compare_sides
from harness.report.compare.load import compare_paths, compare_runs, load_inputs
from harness.report.compare.model import (
    ALPHA,
    THRESHOLD,
    Change,
    Comparison,
    MetricDelta,
    Rules,
    Side,
    Skipped,
)
from harness.report.compare.render import describe, render_comparison, rule_text, summary_text
from harness.report.compare.series import Series, run_series

__all__ = [
    "ALPHA",
    "FACTS",
    "MIN_TIME_DELTA_S",
    "THRESHOLD",
    "UNSTABLE_SPREAD",
    "Change",
    "Comparison",
    "Difference",
    "MetricDelta",
    "Rules",
    "RunRef",
    "Series",
    "Side",
    "Skipped",
    "compare_paths",
    "compare_results",
    "compare_runs",
    "compare_sides",
    "describe",
    "fio_settings",
    "load_inputs",
    "render_comparison",
    "rule_text",
    "run_facts",
    "run_series",
    "storage_facts",
    "summary_text",
]
