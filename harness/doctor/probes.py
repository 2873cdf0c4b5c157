"""Probe budget vs WAL replay: a startup probe (or, without one, the liveness probe) that gives up before the WAL
replay ends makes the kubelet kill Prometheus mid-replay, and the next start replays again: a restart loop.

The expected replay time comes from a previous run's result (``FaultRecord.wal_replay_s``, read from Prometheus' own
``WAL replay completed ... total_replay_duration=`` log line), since it grows with the series count and the disk.
"""

from __future__ import annotations

from harness.results.model import DoctorFinding, Severity
from harness.scenario.model import Probes

# Below this share of the budget the replay has room to grow (more series, slower disk) before it loops.
COMFORTABLE_SHARE = 0.5


def probe_budget_s(probes: Probes) -> tuple[float, str]:
    """Seconds the kubelet waits for a (re)starting Prometheus, and which probe sets it."""
    if probes.startup is not None:
        p = probes.startup
        return p.budget_s, f"startup probe: {p.failure_threshold} x {p.period_s:g} s"
    p = probes.liveness
    return p.budget_s, f"liveness probe (no startup probe): {p.failure_threshold} x {p.period_s:g} s"


def check_probes(probes: Probes, previous_wal_replay_s: float | None) -> list[DoctorFinding]:
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
