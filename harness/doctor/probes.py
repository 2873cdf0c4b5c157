"""Probe budget vs WAL replay: a startup probe (or, without one, the liveness probe) that gives up before the WAL
replay ends makes the kubelet kill Prometheus mid-replay, and the next start replays again: a restart loop.

The expected replay time comes from a previous run's result (``FaultRecord.wal_replay_s``, read from Prometheus' own
``WAL replay completed ... total_replay_duration=`` log line), since it grows with the series count and the disk.
Best is a replay *rate* measured on the storage under test (``replay_rate``: the samples the WAL held at a fault of a
run on the same storage over its replay time), applied to the samples this scenario's WAL will hold
(``needed_replay_samples``): a budget that fits 20k series can kill a pod replaying 1M.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harness.results.model import DoctorFinding, RunResult, Severity
from harness.scenario.model import Probes, Scenario

# Below this share of the budget the replay has room to grow (more series, slower disk) before it loops.
COMFORTABLE_SHARE = 0.5


def probe_budget_s(probes: Probes) -> tuple[float, str]:
    """Seconds the kubelet waits for a (re)starting Prometheus, and which probe sets it."""
    if probes.startup is not None:
        p = probes.startup
        return p.budget_s, f"startup probe: {p.failure_threshold} x {p.period_s:g} s"
    p = probes.liveness
    return p.budget_s, f"liveness probe (no startup probe): {p.failure_threshold} x {p.period_s:g} s"


# The head, and the WAL replayed into it, spans at most about 3 h: at 3 h the oldest 2 h are cut into a block and the
# WAL before them truncated (tsdb head compaction, chunkRange * 3/2).
WAL_WINDOW_S = 3 * 3600.0


@dataclass(frozen=True)
class ReplayRate:
    """WAL replay speed measured on one storage: samples replayed per second, and where it was measured."""

    samples_per_s: float
    source: str


def replay_rate(result: RunResult, storage: dict[str, Any]) -> ReplayRate | None:
    """The slowest WAL replay of a stored run, as samples per second, if it ran on ``storage`` (the scenario's
    ``storage`` section as written): the samples acknowledged in the WAL's window before each fault over the replay
    time Prometheus logged. None when that run used other storage or recorded no replay."""
    if result.scenario.get("storage") != storage:
        return None
    rates: list[tuple[float, int, float]] = []
    for f in result.faults:
        if not f.wal_replay_s or f.wal_replay_s <= 0:
            continue
        held = sum(p.acked_samples for p in result.ingest if f.injected_at_s - WAL_WINDOW_S <= p.t_s < f.injected_at_s)
        if held > 0:
            rates.append((held / f.wal_replay_s, held, f.wal_replay_s))
    if not rates:
        return None
    rate, held, took = min(rates)
    return ReplayRate(rate, f"run {result.run_id}: {held:,} samples replayed in {took:g} s")


def needed_replay_samples(scenario: Scenario) -> int | None:
    """Samples this scenario's WAL holds at its last fault (or its end): every series once per interval since the
    start, at most ``WAL_WINDOW_S``. None without a TSDB load."""
    tsdb = scenario.loads.tsdb
    if tsdb is None:
        return None
    at = [f.at_s for f in scenario.faults if f.at_s is not None]
    span = min(max(at) if at and all(f.every_s is None for f in scenario.faults) else scenario.duration_s, WAL_WINDOW_S)
    return int(tsdb.series * span / tsdb.interval_s)


def check_probes(
    probes: Probes,
    previous_wal_replay_s: float | None,
    rate: ReplayRate | None = None,
    needed_samples: int | None = None,
) -> list[DoctorFinding]:
    """The probe budget against the WAL replay: estimated from ``rate`` and ``needed_samples`` when both are known,
    else the previous run's replay time as it was."""
    if rate is not None and needed_samples is not None:
        return [_estimated(probes, rate, needed_samples)]
    budget_s, which = probe_budget_s(probes)
    if previous_wal_replay_s is None:
        return [
            DoctorFinding(
                check="probes.budget",
                severity=Severity.INFO,
                title=f"Probe budget {budget_s:g} s ({which}); no WAL replay time known yet",
                evidence="No previous run's result was given; the first run records total_replay_duration.",
            )
        ]
    replay = previous_wal_replay_s
    threshold = int(replay * 2 / max(0.001, _period(probes))) + 1
    if replay >= budget_s:
        return [
            DoctorFinding(
                check="probes.budget",
                severity=Severity.WARNING,
                title=f"WAL replay ({replay:g} s) outlasts the probe budget ({budget_s:g} s): restart loop",
                evidence=f"{which} = {budget_s:g} s; previous run: total_replay_duration {replay:g} s.",
                why="During replay /-/ready answers 503; the kubelet kills the container when the probe budget runs "
                "out, the next start replays the WAL from the beginning again, and Prometheus never becomes ready "
                "(CrashLoopBackOff with no crash in the log).",
                fix=f"Give the probe at least twice the replay time: failureThreshold >= {threshold} at period "
                f"{_period(probes):g} s (kube-prometheus-stack: override the prometheus container's startupProbe via "
                "prometheus.prometheusSpec.containers, a strategic merge), or shrink the WAL (fewer series).",
            )
        ]
    severity = Severity.INFO
    note = "comfortable" if replay < budget_s * COMFORTABLE_SHARE else "little headroom as the WAL grows"
    return [
        DoctorFinding(
            check="probes.budget",
            severity=severity,
            title=f"WAL replay ({replay:g} s) fits the probe budget ({budget_s:g} s): {note}",
            evidence=f"{which}; previous run: total_replay_duration {replay:g} s.",
        )
    ]


def _period(probes: Probes) -> float:
    return probes.startup.period_s if probes.startup is not None else probes.liveness.period_s


def _estimated(probes: Probes, rate: ReplayRate, needed_samples: int) -> DoctorFinding:
    budget_s, which = probe_budget_s(probes)
    replay = needed_samples / rate.samples_per_s
    evidence = (
        f"{which} = {budget_s:g} s; this scenario's WAL holds about {needed_samples:,} samples at its last fault; "
        f"replay rate measured on this storage: {rate.samples_per_s:,.0f} samples/s ({rate.source})."
    )
    if replay >= budget_s:
        threshold = int(replay * 2 / max(0.001, _period(probes))) + 1
        return DoctorFinding(
            check="probes.budget",
            severity=Severity.WARNING,
            title=f"WAL replay (about {replay:,.0f} s) will outlast the probe budget ({budget_s:g} s): restart loop",
            evidence=evidence,
            why="During replay /-/ready answers 503; the kubelet kills the container when the probe budget runs out, "
            "the next start replays the WAL from the beginning again, and Prometheus never becomes ready. The "
            "replay grows with the series the WAL holds: a budget that fits a small run kills a large one.",
            fix=f"Give the probe at least twice the replay time: failureThreshold >= {threshold} at period "
            f"{_period(probes):g} s (and the scenario's prometheus.ready_timeout beyond it), or fewer series.",
        )
    note = "comfortable" if replay < budget_s * COMFORTABLE_SHARE else "little headroom as the WAL grows"
    return DoctorFinding(
        check="probes.budget",
        severity=Severity.INFO,
        title=f"WAL replay (about {replay:,.1f} s) fits the probe budget ({budget_s:g} s): {note}",
        evidence=evidence,
    )
