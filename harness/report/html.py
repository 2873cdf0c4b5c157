"""The HTML report of one run: ``render_report(run_dir)`` turns ``run_dir/result.json`` into ``run_dir/report.html``.

The page is self-contained (charts are PNG data URIs, the CSS is inline, no scripts), so it can be mailed, archived
or opened from a CI artifact without network access. Only the stored result is read, so any old run re-renders.
Formatting of numbers and times for people lives here; the templates only lay out what they are given.
"""

from __future__ import annotations

import base64
import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2
import markupsafe
import pandas as pd

from harness import __version__ as harness_version
from harness import fmt, stages
from harness.report import charts, frames
from harness.report.sanity import sanity_warnings
from harness.results.model import DurabilityCheckpoint, FaultRecord, RunResult, Severity, Status
from harness.results.store import REPORT_FILE, atomic_write_text, load_result

_SEVERITY_ORDER = {Severity.BLOCKER: 0, Severity.WARNING: 1, Severity.INFO: 2}

# Inline so the page needs no other file; shared by the run report and the comparison.
STYLE = markupsafe.Markup(
    """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1d2329; margin: 0 auto;
  max-width: 1180px; padding: 16px 24px 48px; }
h1 { margin: 0 0 4px; font-size: 24px; } h2 { margin: 28px 0 8px; font-size: 18px; border-bottom: 1px solid #d8dde3;
  padding-bottom: 4px; }
header { display: flex; gap: 20px; align-items: center; padding: 12px 0; border-bottom: 2px solid #d8dde3; }
.verdict { flex-shrink: 0; font-weight: 700; font-size: 20px; padding: 14px 20px; border-radius: 6px; color: #fff;
  min-width: 100px; text-align: center; letter-spacing: 0.05em; }
.verdict.ok { background: #1e7b34; } .verdict.bad { background: #c0392b; } .verdict.err { background: #7d3c98; }
.verdict.skip { background: #7f8c8d; } .verdict.part { background: #b9770e; }
.reason { margin: 0 0 4px; font-size: 15px; } .meta { margin: 0; color: #56606b; font-size: 13px; }
.banner { background: #fff4d6; border: 1px solid #e0b84c; border-left: 6px solid #e0a800; padding: 10px 14px;
  margin: 14px 0; border-radius: 4px; }
nav { margin: 12px 0; color: #56606b; font-size: 13px; } nav a { color: #0b5cad; text-decoration: none; }
.figures { display: flex; flex-wrap: wrap; gap: 10px; margin: 12px 0; }
.figure { border: 1px solid #d8dde3; border-radius: 6px; padding: 8px 12px; min-width: 170px; background: #f7f9fb; }
.fname { font-size: 12px; color: #56606b; } .fvalue { font-size: 16px; font-weight: 600; }
h3 { margin: 16px 0 6px; font-size: 15px; }
table { border-collapse: collapse; width: 100%; margin: 6px 0; font-size: 13px; }
th, td { border: 1px solid #d8dde3; padding: 4px 8px; text-align: left; vertical-align: top; }
thead th { background: #eef1f4; } tbody th { background: #f7f9fb; font-weight: 600; white-space: nowrap; }
td { overflow-wrap: break-word; }
tr.ok td:nth-child(2) { color: #1e7b34; font-weight: 600; } tr.bad td, tr.bad th { background: #fdecea; }
tr.err td, tr.err th { background: #f4ecf7; } tr.skip td { color: #7f8c8d; } tr.warn td { background: #fff8e1; }
tr.good td { background: #eaf6ec; } tr.part td, tr.part th { background: #fff4d6; }
tr.part td:nth-child(2) { color: #9a5b00; font-weight: 600; }
figure { margin: 16px 0; } figure img { max-width: 100%; height: auto; border: 1px solid #eef1f4; }
figcaption { margin-bottom: 4px; }
.note { color: #56606b; font-style: italic; } .explain { color: #56606b; font-size: 13px; margin: 4px 0; }
pre { background: #f7f9fb; border: 1px solid #d8dde3; padding: 8px 10px; overflow-x: auto; font-size: 12.5px;
  white-space: pre-wrap; }
code { font-size: 12.5px; background: #f2f4f6; padding: 0 3px; border-radius: 3px; }
.finding { border: 1px solid #d8dde3; border-left-width: 6px; border-radius: 4px; padding: 8px 12px; margin: 10px 0; }
.finding p { margin: 4px 0; } .ftitle { font-weight: 600; }
.sev-blocker { border-left-color: #c0392b; } .sev-warning { border-left-color: #e0a800; }
.sev-info { border-left-color: #2e86c1; }
.sev { font-size: 11px; padding: 1px 6px; border-radius: 3px; background: #eef1f4; margin-right: 4px; }
.events td { font-size: 12.5px; } .nowrap { white-space: nowrap; } tr.ev-error td { color: #c0392b; }
tr.ev-warning td { color: #9a6b00; } tr.ev-fault td { font-weight: 600; }
table.kv tbody th { width: 260px; }
footer { margin-top: 32px; color: #7f8c8d; font-size: 12px; }
"""
)


@dataclass(frozen=True)
class ChartView:
    """A chart as the template shows it: an embedded PNG, or the note saying why there is none."""

    title: str
    data_uri: str | None
    note: str = ""
    caption: str = ""


@dataclass(frozen=True)
class Table:
    headers: list[str]
    rows: list[list[str]]
    # Per-row CSS class ("bad", "warn", ""), same length as rows when given.
    row_classes: list[str] = field(default_factory=list)


# --- formatting ----------------------------------------------------------------------------------------------


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


# Numbers and their units are joined by a no-break space (fmt.NBSP) so narrow table columns never split "64.0 MiB".


def fmt_run_offset(result: RunResult, t_s: float | None) -> str:
    """A run-relative time as "+12.34 s (05:06:42.123 UTC)", so log lines and charts can be matched."""
    if t_s is None:
        return "–"
    absolute = datetime.fromtimestamp(result.origin_unix_s + t_s, tz=UTC)
    sign = "+" if t_s >= 0 else "−"
    return f"{sign}{abs(t_s):,.2f} s ({absolute.strftime('%H:%M:%S.%f')[:-3]})"


def yamlish(value: Any, indent: int = 0) -> str:
    """A readable YAML-like dump of the scenario as stored (dicts, lists, scalars); for people, not for parsing."""
    pad = "  " * indent
    if isinstance(value, dict):
        if not value:
            return pad + "{}"
        lines = []
        for key, item in value.items():
            if isinstance(item, dict | list) and item:
                lines.append(f"{pad}{key}:")
                lines.append(yamlish(item, indent + 1))
            else:
                lines.append(f"{pad}{key}: {_scalar(item)}")
        return "\n".join(lines)
    if isinstance(value, list):
        if not value:
            return pad + "[]"
        lines = []
        for item in value:
            if isinstance(item, dict | list) and item:
                nested = yamlish(item, indent + 1).splitlines()
                lines.append(f"{pad}- {nested[0].lstrip()}")
                lines.extend(nested[1:])
            else:
                lines.append(f"{pad}- {_scalar(item)}")
        return "\n".join(lines)
    return pad + _scalar(value)


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, dict | list):
        return "{}" if isinstance(value, dict) else "[]"
    text = str(value)
    # Quote what YAML would otherwise read as another type or as syntax.
    if (
        text == ""
        or text.strip() != text
        or any(c in text for c in ":#{}[],&*!|>'\"%@`")
        or text.lower()
        in (
            "true",
            "false",
            "null",
            "yes",
            "no",
            "on",
            "off",
        )
    ):
        return json.dumps(text, ensure_ascii=False)
    return text


def png_data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def chart_view(title: str, png: bytes | None, empty_note: str, caption: str = "") -> ChartView:
    if png is None:
        return ChartView(title=title, data_uri=None, note=empty_note)
    return ChartView(title=title, data_uri=png_data_uri(png), caption=caption)


# --- templates -----------------------------------------------------------------------------------------------


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("harness.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def render_template(name: str, context: dict[str, Any]) -> str:
    try:
        template = _environment().get_template(name)
    except jinja2.TemplateNotFound as e:
        # Only a broken installation gets here (package data missing): say which file.
        raise FileNotFoundError(f"report template {name!r} is missing from the harness installation") from e
    return template.render(**context)


# --- the report ----------------------------------------------------------------------------------------------


def verdict_reason(result: RunResult) -> str:
    """One sentence saying why the run got its verdict: the error, the checks that failed or were only partly done
    (PARTIAL counts as not passed, and says so), or that all passed."""
    if result.error:
        return result.error
    bad = [c for c in result.checks if c.status in (Status.ERROR, Status.FAILED, Status.PARTIAL)]
    if bad:
        return "; ".join(f"{c.name}{' (PARTIAL)' if c.status is Status.PARTIAL else ''}: {c.reason}" for c in bad)
    if not result.complete:
        return "the run did not complete" + (" (interrupted)" if result.interrupted else "")
    if not result.checks:
        return "no checks were run"
    passed = sum(c.status == Status.PASSED for c in result.checks)
    return f"{passed} of {len(result.checks)} checks passed" + (
        f", {len(result.checks) - passed} skipped" if passed < len(result.checks) else ""
    )


def _checks_table(result: RunResult) -> Table:
    rows, classes = [], []
    for c in result.checks:
        details = ", ".join(f"{k}={_detail(v)}" for k, v in c.details.items() if not isinstance(v, list | dict))
        rows.append([c.name, c.status.value, c.reason, details])
        classes.append(_status_class(c.status))
    return Table(["check", "status", "reason", "details"], rows, classes)


LOST_SERIES_SHOWN = 3


def _detail(value: object) -> str:
    """Check details for people: floats to a sensible precision; nested data is left to result.json."""
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def _status_class(status: Status) -> str:
    return {
        Status.PASSED: "ok",
        Status.FAILED: "bad",
        Status.ERROR: "err",
        Status.SKIPPED: "skip",
        Status.PARTIAL: "part",
    }[status]


def _durability_table(frame: pd.DataFrame) -> Table:
    rows, classes = [], []
    for r in frame.to_dict("records"):
        # A few selectors say which series; the full first list is in result.json, the counts tell the scale.
        shown = list(r["lost_series"])[:LOST_SERIES_SHOWN]
        # A zero-width space after each label lets a long selector wrap in its cell instead of widening the page.
        lost_series = ", ".join(sel.replace('",', '",\u200b') for sel in shown)
        if r["lost_series_count"] > len(shown):
            lost_series += f" … ({r['lost_series_count']:,} series in all)"
        rows.append(
            [
                str(r["label"]),
                fmt.count(r["acknowledged"]),
                fmt.count(r["present"]),
                fmt.count(r["lost"]),
                fmt.count(r["mismatched_values"]),
                fmt.utc(r["loss_window_start"]),
                fmt.utc(r["loss_window_end"]),
                lost_series or "–",
                "–" if _missing(r["check_duration_s"]) else f"{r['check_duration_s']:.2f} s",
            ]
        )
        classes.append("bad" if r["lost"] or r["mismatched_values"] else "")
    headers = [
        "checkpoint",
        "acknowledged",
        "present",
        "lost",
        "wrong value",
        "loss window from",
        "to",
        "lost series",
        "check took",
    ]
    return Table(headers, rows, classes)


def _fio_table(frame: pd.DataFrame) -> Table:
    rows, classes = [], []
    for r in frame.to_dict("records"):
        rows.append(
            [
                str(r["job"]),
                str(r["profile"]),
                str(r["direction"]) or "–",
                fmt.rate(r["bw_bytes_per_s"], sep=fmt.NBSP),
                fmt.count(r["iops"]),
                *[fmt.latency_ns(r[f"{p}_ns"], sep=fmt.NBSP) for p in frames.LATENCY_PERCENTILES],
                fmt.duration_s(r["runtime_s"], sep=fmt.NBSP),
                str(r["error"] or ""),
            ]
        )
        classes.append("bad" if r["error"] else "")
    headers = ["job", "profile", "direction", "bandwidth", "IOPS", *frames.LATENCY_PERCENTILES, "runtime", "error"]
    return Table(headers, rows, classes)


def _fio_settings_table(result: RunResult) -> Table:
    """What each profile resolved to, and its sync statistics (wal-append), so numbers can be reproduced."""
    rows = []
    for job in result.fio:
        direct = "–" if job.direct is None else ("yes" if job.direct else "no (page cache)")
        sync = "–"
        if job.sync_count or job.sync_lat_ns_percentiles:
            sync = f"{job.sync_count:,} syncs, mean {fmt.latency_ns(job.sync_lat_ns_mean, sep=fmt.NBSP)}"
            if "p99" in job.sync_lat_ns_percentiles:
                sync += f", p99 {fmt.latency_ns(job.sync_lat_ns_percentiles['p99'], sep=fmt.NBSP)}"
            if 0 < job.sync_count < 1000:
                # With fewer than 1000 syncs the p99.9 is the slowest sync, not a percentile.
                sync += " (few syncs: high percentiles are the maximum)"
        rows.append(
            [
                job.name,
                fmt.iec_bytes(job.block_size_bytes, sep=fmt.NBSP),
                job.ioengine or "–",
                direct,
                "–" if job.iodepth is None else str(job.iodepth),
                str(job.numjobs),
                fmt.iec_bytes(job.size_bytes, sep=fmt.NBSP),
                fmt.iec_bytes(job.sync_every_bytes, sep=fmt.NBSP),
                sync,
                job.directory,
                job.measured_on or "–",
                job.raw_json_file or "–",
            ]
        )
    headers = ["job", "block size", "engine", "direct I/O", "iodepth", "jobs", "size", "sync every", "syncs"]
    return Table([*headers, "directory", "measured by", "raw fio JSON"], rows)


def _faults_table(result: RunResult, frame: pd.DataFrame) -> Table:
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
        classes.append("bad" if r["error"] or _missing(r["recovery_s"]) else "")
    headers = ["fault", "action", "injected at", "process up", "ready", "first sample", "WAL replay", "recovery"]
    return Table([*headers, "instance", "detail"], rows, classes)


def _stages_table(frame: pd.DataFrame) -> Table:
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


def _stage_sources_table(frame: pd.DataFrame) -> Table:
    pairs = dict.fromkeys(zip(frame["stage"], frame["source"], strict=True))
    rows = [[stages.label(st), source] for st, source in sorted(pairs, key=lambda p: stages.ORDER.get(p[0], 99))]
    return Table(["stage", "where its time comes from"], rows)


@dataclass(frozen=True)
class BelowFaultView:
    """One fault below Prometheus as the report shows it: what happened, and in whose words."""

    title: str
    facts: Table
    write_errors: list[str]
    prometheus_log: list[str]
    failed: bool


def _below_views(result: RunResult) -> list[BelowFaultView]:
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
    return "–" if _missing(value) else f"+{float(value) - t0_s:,.2f} s"


def _environment_table(result: RunResult) -> Table:
    env = result.environment
    rows = [
        ["runtime", env.runtime],
        ["data path", env.data_path or "–"],
        ["filesystem of the data path", env.data_filesystem or "unknown"],
        ["device", env.data_device or "–"],
        ["how this host reaches the storage", env.data_access or "–"],
        ["Prometheus", env.prometheus_version or "–"],
        ["fio", env.fio_version or "–"],
        ["harness (run)", env.harness_version],
        ["harness (this report)", harness_version],
        ["kernel", env.kernel],
        ["OS", env.os],
        ["Python", env.python],
        ["host", env.hostname],
        ["CPUs", str(env.cpu_count)],
        ["memory", fmt.iec_bytes(env.memory_bytes, sep=fmt.NBSP)],
        *[[k, v] for k, v in sorted(env.extra.items())],
        *_cluster_rows(result),
    ]
    return Table(["", ""], rows)


def _cluster_rows(result: RunResult) -> list[list[str]]:
    """A kubernetes run's cluster: the versions, the nodes Prometheus ran on, the volume and its class."""
    cluster = result.cluster
    if cluster is None:
        return []
    rows = [["Kubernetes API server", cluster.server_version]]
    for node in cluster.nodes:
        rows.append(
            [
                f"node {node.name}",
                f"kernel {node.kernel}, kubelet {node.kubelet}, {node.container_runtime}, {node.os_image}",
            ]
        )
    volume = cluster.volume
    if volume is not None:
        bound = f"pv/{volume.pv}" if volume.pv else "not bound"
        size = fmt.iec_bytes(volume.capacity_bytes, sep=fmt.NBSP) if volume.capacity_bytes else "–"
        rows.append(["claim", f"{volume.claim} → {bound}, {size}, reclaim {volume.reclaim_policy or '–'}"])
        rows.append(["volume source", volume.source or "–"])
        params = ", ".join(f"{k}={v}" for k, v in sorted(volume.class_parameters.items())) or "no parameters"
        mode = f", {volume.volume_binding_mode}" if volume.volume_binding_mode else ""
        rows.append(
            [
                "StorageClass",
                f"{volume.storage_class or '(none)'}: {volume.provisioner or 'no such class'}{mode}, {params}",
            ]
        )
    return rows


def _key_figures(result: RunResult, fio_summary: pd.DataFrame) -> list[tuple[str, str]]:
    figures: list[tuple[str, str]] = []
    if result.durability:
        final = result.durability[-1]
        figures.append(("samples lost (" + final.label + ")", f"{final.lost:,} of {final.acknowledged:,}"))
    recoveries = [f.recovery_s for f in result.faults if f.recovery_s is not None]
    if result.faults:
        worst = f"{max(recoveries):.2f} s" if recoveries else "–"
        figures.append(("slowest recovery", f"{worst} over {len(result.faults)} fault(s)"))
    replays = [f.wal_replay_s for f in result.faults if f.wal_replay_s is not None]
    if replays:
        figures.append(("longest WAL replay", f"{max(replays):.2f} s"))
    if result.load is not None and result.load.skipped_ticks:
        figures.append(
            (
                "write load fell behind",
                f"{result.load.skipped_ticks:,} tick(s) skipped ({result.load.skipped_samples:,} samples never sent)",
            )
        )
    if result.load is not None and result.load.shards > 1:
        figures.append(("write load", f"{result.load.series:,} series split over {result.load.shards} writers"))
    acks = result.server_acks
    if acks is not None:
        # The ledger held to Prometheus' own count (the ack_count check says whether they agree).
        server = "incomplete" if acks.server_requests is None else f"{acks.server_requests:,}"
        figures.append(("remote writes answered 2xx by Prometheus", f"{server} (ledger {acks.ledger_requests:,})"))
    for r in fio_summary.to_dict("records"):
        if not _missing(r["bw_bytes_per_s"]):
            figures.append(
                (f"fio {r['series']}", f"{fmt.rate(r['bw_bytes_per_s'], sep=fmt.NBSP)}, {fmt.count(r['iops'])} IOPS")
            )
    return figures


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
            no_fio if result.fio else "no fio job ran in this run",
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
        "verdict_class": _status_class(result.verdict),
        "reason": verdict_reason(result),
        "incomplete": incomplete,
        "started": fmt.utc(result.started_at),
        "finished": fmt.utc(result.finished_at) if result.finished_at else "–",
        "duration": (
            fmt.duration_s((result.finished_at - result.started_at).total_seconds(), sep=fmt.NBSP)
            if result.finished_at
            else "–"
        ),
        "key_figures": _key_figures(result, fio_summary),
        "sanity": sanity_warnings(result),
        "checks": _checks_table(result),
        "durability": _durability_table(durability),
        "fio": _fio_table(fio_summary),
        "fio_settings": _fio_settings_table(result),
        "faults": _faults_table(result, faults),
        "stages": _stages_table(stage_frame),
        "stage_sources": _stage_sources_table(stage_frame),
        "below": _below_views(result),
        "charts": chart_list,
        "doctor": doctor,
        "environment": _environment_table(result),
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
