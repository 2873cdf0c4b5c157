"""A stored run's metrics as series of independent values: fio bandwidth, IOPS and p99 latencies per job (one value
per repetition), recovery time, its stages and WAL replay per fault kind, samples lost; each with the facts it
depends on."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from harness import stages
from harness.report.compare.facts import FIO_FACTS, PROMETHEUS_FACTS, fio_settings
from harness.results.model import FioJobResult, RunResult


@dataclass(frozen=True)
class Series:
    group: str
    metric: str
    unit: str
    higher_is_better: bool
    values: list[float]
    # What must match for this metric to be comparable: fact name -> value (per run, merged per side).
    facts: dict[str, str]


def _fio_series(result: RunResult, facts: dict[str, str]) -> list[Series]:
    """One value per repetition of each job: its whole-run aggregate (fio's own), never the per-second points."""
    by_job: dict[str, list[FioJobResult]] = defaultdict(list)
    for job in result.fio:
        if job.error is None:  # a failed job measured something else (ENOSPC, a dead mount)
            by_job[job.job_key].append(job)
    out: list[Series] = []
    for name, reps in by_job.items():
        first = reps[0]
        label = name if name == first.profile else f"{name} ({first.profile})"
        settings = {f: facts[f] for f in FIO_FACTS} | {"fio-settings": fio_settings(first)}
        measured: list[tuple[str, str, bool, list[float]]] = []
        for direction in ("read", "write"):
            data = [d for r in reps if (d := getattr(r, direction)) is not None and d.io_bytes > 0]
            measured += [
                (f"{direction} bandwidth", "MiB/s", True, [d.bw_bytes_per_s / 1024**2 for d in data]),
                (f"{direction} IOPS", "IOPS", True, [d.iops for d in data]),
                (
                    f"{direction} p99 latency",
                    "ms",
                    False,
                    [d.clat_percentiles_ns["p99"] / 1e6 for d in data if "p99" in d.clat_percentiles_ns],
                ),
            ]
        sync = [r.sync_lat_ns_percentiles["p99"] / 1e6 for r in reps if "p99" in r.sync_lat_ns_percentiles]
        measured.append(("sync p99 latency", "ms", False, sync))
        out += [
            Series("fio", f"{label} {metric}", unit, higher, values, settings)
            for metric, unit, higher, values in measured
            if values
        ]
    return out


def run_series(result: RunResult, facts: dict[str, str]) -> list[Series]:
    prom = {f: facts[f] for f in PROMETHEUS_FACTS}
    out = _fio_series(result, facts)
    recovery: dict[str, list[float]] = defaultdict(list)
    replay: dict[str, list[float]] = defaultdict(list)
    for f in result.faults:
        if f.recovery_s is not None:
            recovery[f.action].append(f.recovery_s)
        if f.wal_replay_s is not None:
            replay[f.action].append(f.wal_replay_s)
    out += [Series("recovery", f"recovery after {a}", "s", False, v, prom) for a, v in sorted(recovery.items())]
    out += _stage_series(result, prom)
    out += [Series("WAL replay", f"WAL replay after {a}", "s", False, v, prom) for a, v in sorted(replay.items())]
    if result.durability:
        lost = float(max(c.lost + c.mismatched_values for c in result.durability))
        out.append(Series("durability", "samples lost (worst checkpoint)", "samples", False, [lost], prom))
    return out


def _stage_series(result: RunResult, facts: dict[str, str]) -> list[Series]:
    """Seconds from the injection to each intermediate stage, per fault kind: which stage got slower. The API's
    whole-second stages are left out: a second's resolution cannot show a change of tenths."""
    by_stage: dict[tuple[str, str], list[float]] = defaultdict(list)
    for f in result.faults:
        for st in f.stages:
            if st.stage in ("injected", "first_sample") or st.resolution_s >= 1.0:
                continue
            by_stage[(f.action, st.stage)].append(st.at_s - f.injected_at_s)
    return [
        Series("recovery", f"{stages.label(stage)} after {action}", "s", False, values, facts)
        for (action, stage), values in sorted(by_stage.items(), key=lambda kv: (kv[0][0], stages.ORDER[kv[0][1]]))
    ]
