"""The report's faults and recovery section: each fault's way back, stage by stage, and what happened in the
faults below Prometheus (the storage under it failed or slowed), in the words of the writers and of Prometheus.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from harness import fmt, stages
from harness.report.page import Table
from harness.report.tables import fmt_run_offset, missing
from harness.results.model import DurabilityCheckpoint, FaultRecord, RunResult, Status


def faults_table(result: RunResult, frame: pd.DataFrame) -> Table:
    rows, classes = [], []
    for r in frame.to_dict("records"):
        injected = float(r["injected_at_s"])
        since = {c: _since(r[c], injected) for c in ("process_up_at_s", "ready_at_s", "first_sample_at_s")}
        rows.append(
            [
                f"#{r['index']}",
                str(r["action"]),
                fmt_run_offset(result, injected),
                since["process_up_at_s"],
                since["ready_at_s"],
                since["first_sample_at_s"],
                fmt.duration_s(r["wal_replay_s"], sep=fmt.NBSP),
                fmt.duration_s(r["recovery_s"], sep=fmt.NBSP),
                f"{r['instance_before']} → {r['instance_after'] or '–'}",
                str(r["error"] or r["detail"] or ""),
            ]
        )
        classes.append("bad" if r["error"] or missing(r["recovery_s"]) else "")
    headers = ["fault", "action", "injected at", "process up", "ready", "first sample", "WAL replay", "recovery"]
    return Table([*headers, "instance", "detail"], rows, classes)


def stages_table(frame: pd.DataFrame) -> Table:
    """Faults by stage: seconds from the injection to each stage the fault passed through."""
    if frame.empty:
        return Table([], [])
    order = list(dict.fromkeys(frame.sort_values("stage", key=lambda c: c.map(stages.ORDER))["stage"]))
    order = [st for st in order if st != "injected"]
    rows = []
    for (index, action), group in frame.groupby(["index", "action"], sort=True):
        cells = {}
        for r in group.to_dict("records"):
            coarse = "*" if float(r["resolution_s"]) >= 1.0 else ""
            cells[r["stage"]] = f"+{float(r['since_injection_s']):,.2f}{fmt.NBSP}s{coarse}"
        rows.append([f"#{index}", str(action), *[cells.get(st, "–") for st in order]])
    return Table(["fault", "action", *[stages.label(st) for st in order]], rows)


def stage_sources_table(frame: pd.DataFrame) -> Table:
    pairs = dict.fromkeys(zip(frame["stage"], frame["source"], strict=True))
    rows = [[stages.label(st), source] for st, source in sorted(pairs, key=lambda p: stages.ORDER.get(p[0], 99))]
    return Table(["stage", "where its time comes from"], rows)


def stage_notes(result: RunResult) -> list[str]:
    """Per fault, why stages the runtime looked for are not among its stages (a CSI volume's staging and publishing
    where the kubelet's metrics do not show them)."""
    return [
        f"#{f.index} {f.action}: {f.stages_note}" for f in sorted(result.faults, key=lambda f: f.index) if f.stages_note
    ]


@dataclass(frozen=True)
class BelowFaultView:
    """One fault below Prometheus as the report shows it: what happened, and in whose words."""

    title: str
    facts: Table
    write_errors: list[str]
    prometheus_log: list[str]
    failed: bool


def below_views(result: RunResult) -> list[BelowFaultView]:
    views = []
    for fault in sorted(result.faults, key=lambda f: f.index):
        if not fault.below_prometheus:
            continue
        checkpoint = next((c for c in result.durability if c.after_fault == fault.index), None)
        rows = [["window", _window(result, fault)], ["back", _back(fault)]]
        rows.append(["remote writes that failed", _failures(fault.write_failures)])
        if fault.last_wal_fsync_at_s is not None:
            before = fault.injected_at_s - fault.last_wal_fsync_at_s
            fsync = f"{before:,.2f}{fmt.NBSP}s before it: what was acknowledged since was not durable"
            rows.append(["last WAL fsync before the fault", fsync])
        rows.append(["acknowledged samples", _kept(checkpoint)])
        rows.append(["what the harness did", fault.error or fault.detail or "–"])
        lost = checkpoint is not None and (checkpoint.lost > 0 or checkpoint.mismatched_values > 0)
        views.append(
            BelowFaultView(
                title=f"#{fault.index} {fault.action}",
                facts=Table([], rows),
                write_errors=fault.write_errors,
                prometheus_log=fault.prometheus_log,
                failed=lost or fault.status in {Status.FAILED, Status.ERROR},
            )
        )
    return views


def _window(result: RunResult, fault: FaultRecord) -> str:
    start = fmt_run_offset(result, fault.injected_at_s)
    if fault.lifted_at_s is None:
        return f"at {start} (at once)"
    held = fmt.duration_s(fault.lifted_at_s - fault.injected_at_s, sep=fmt.NBSP)
    return f"from {start} to {fmt_run_offset(result, fault.lifted_at_s)} ({held})"


def _back(fault: FaultRecord) -> str:
    if fault.first_sample_at_s is None:
        return "no sample was acknowledged after the fault: Prometheus did not come back"
    since = fault.lifted_at_s if fault.lifted_at_s is not None else fault.injected_at_s
    after = "lifted" if fault.lifted_at_s is not None else "injected"
    took = fmt.duration_s(max(0.0, fault.first_sample_at_s - since), sep=fmt.NBSP)
    return f"the first new sample was acknowledged {took} after the fault was {after}"


def _failures(samples_by_outcome: dict[str, int]) -> str:
    meaning = {
        "rejected": "rejected (Prometheus answered an error)",
        "unreachable": "unreachable (no connection)",
        "unknown": "unknown (the connection broke or timed out: maybe stored)",
    }
    parts = [f"{fmt.count(n)} samples {meaning.get(k, k)}" for k, n in sorted(samples_by_outcome.items()) if n]
    return ", ".join(parts) or "none: every write in the window was acknowledged"


def _kept(checkpoint: DurabilityCheckpoint | None) -> str:
    if checkpoint is None:
        return "not checked after this fault (history_survival off, or the run stopped)"
    text = f"{fmt.count(checkpoint.acknowledged)} acknowledged up to the end of the fault"
    text += f", {fmt.count(checkpoint.lost)} lost"
    if checkpoint.mismatched_values:
        text += f", {fmt.count(checkpoint.mismatched_values)} with another value"
    if checkpoint.loss_window_start_unix_ms is not None and checkpoint.loss_window_end_unix_ms is not None:
        start = fmt.utc(pd.Timestamp(checkpoint.loss_window_start_unix_ms, unit="ms", tz="UTC"))
        end = fmt.utc(pd.Timestamp(checkpoint.loss_window_end_unix_ms, unit="ms", tz="UTC"))
        text += f" (written from {start} to {end})"
    return text


def _since(value: Any, t0_s: float) -> str:
    return "–" if missing(value) else f"+{float(value) - t0_s:,.2f} s"
