"""The run report's tables and key figures, and the formatting of numbers and times for people they share.

Each function turns part of a stored ``RunResult`` (or a frame built from it by ``harness.report.frames``) into a
``Table`` or a few strings; the faults and recovery section is in ``harness.report.faults_section``.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from harness import __version__ as harness_version
from harness import fmt
from harness.report import frames
from harness.report.page import Table
from harness.results.model import RunResult, Status

# --- formatting ----------------------------------------------------------------------------------------------


def missing(value: object) -> bool:
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


# --- the run's tables ----------------------------------------------------------------------------------------------


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


def checks_table(result: RunResult) -> Table:
    rows, classes = [], []
    for c in result.checks:
        details = ", ".join(f"{k}={_detail(v)}" for k, v in c.details.items() if not isinstance(v, list | dict))
        rows.append([c.name, c.status.value, c.reason, details])
        classes.append(status_class(c.status))
    return Table(["check", "status", "reason", "details"], rows, classes)


LOST_SERIES_SHOWN = 3


def _detail(value: object) -> str:
    """Check details for people: floats to a sensible precision; nested data is left to result.json."""
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def status_class(status: Status) -> str:
    return {
        Status.PASSED: "ok",
        Status.FAILED: "bad",
        Status.ERROR: "err",
        Status.SKIPPED: "skip",
        Status.PARTIAL: "part",
    }[status]


def durability_table(frame: pd.DataFrame) -> Table:
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
                "–" if missing(r["check_duration_s"]) else f"{r['check_duration_s']:.2f} s",
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


def fio_table(frame: pd.DataFrame) -> Table:
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


def fio_settings_table(result: RunResult) -> Table:
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


def environment_table(result: RunResult) -> Table:
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


def key_figures(result: RunResult, fio_summary: pd.DataFrame) -> list[tuple[str, str]]:
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
        if not missing(r["bw_bytes_per_s"]):
            figures.append(
                (f"fio {r['series']}", f"{fmt.rate(r['bw_bytes_per_s'], sep=fmt.NBSP)}, {fmt.count(r['iops'])} IOPS")
            )
    return figures
