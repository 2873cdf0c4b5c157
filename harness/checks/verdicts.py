"""Verdicts that are simple functions of the recorded run: recovery time per fault, fio IOPS floor.

Each returns a ``CheckResult`` whose reason a person can act on; a fault that broke the harness is ERROR, one that
Prometheus did not recover from is FAILED.
"""

from __future__ import annotations

from collections.abc import Mapping

from harness.results.model import CheckResult, FaultRecord, FioJobResult, Status
from harness.stages import StageId, label


def recovery_check(faults: list[FaultRecord], limits_s: Mapping[StageId, float]) -> CheckResult:
    """Every fault recovered, and no bounded stage (``harness.stages``; first_sample is the recovery) took longer
    after the injection than its limit. A stage a fault did not pass through (no scheduling for a container
    restarted in its pod) is not held against it."""
    if not faults:
        return CheckResult(name="recovery", status=Status.SKIPPED, reason="the scenario injects no faults")
    # A fault after which Prometheus did not come back is the storage or Prometheus failing (FAILED); one during
    # which the harness broke says nothing about them (ERROR).
    for status in (Status.FAILED, Status.ERROR):
        broken = [f for f in faults if f.status is status]
        if broken:
            first = broken[0]
            what = "Prometheus did not recover" if status is Status.FAILED else "the harness broke"
            return CheckResult(
                name="recovery",
                status=status,
                reason=f"fault {first.index} ({first.action}): {what}: {first.error}",
            )
    details: dict[str, object] = {f"fault_{f.index}_recovery_s": f.recovery_s for f in faults}
    over: list[tuple[float, str]] = []  # (how far over, why)
    for stage, limit in limits_s.items():
        for f in faults:
            took = f.stage_s(stage)
            if took is None:
                continue
            details[f"fault_{f.index}_{stage}_s"] = took
            if took > limit:
                what = "the first new sample stored" if stage == "first_sample" else f"stage {label(stage)!r}"
                over.append(
                    (
                        took - limit,
                        f"fault {f.index} ({f.action}): {took:.2f} s to {what}, over the limit of {limit:g} s",
                    )
                )
    if over:
        over.sort(reverse=True)
        more = f" (and {len(over) - 1} more over their limits)" if len(over) > 1 else ""
        return CheckResult(name="recovery", status=Status.FAILED, reason=over[0][1] + more, details=details)
    times = {f.index: f.recovery_s for f in faults}
    worst_index, worst = max(((i, t) for i, t in times.items() if t is not None), key=lambda x: x[1], default=(0, None))
    bounds = ", ".join(f"{label(stage)} {limit:g} s" for stage, limit in limits_s.items())
    limit_text = f" (limits: {bounds})" if bounds else ""
    if worst is None:
        return CheckResult(
            name="recovery",
            status=Status.PASSED,
            reason=f"Prometheus became ready after every fault (no write load, so no first-sample time){limit_text}",
            details=details,
        )
    return CheckResult(
        name="recovery",
        status=Status.PASSED,
        reason=f"worst recovery {worst:.2f} s (fault {worst_index}) over {len(faults)} fault(s){limit_text}",
        details=details,
    )


def fio_iops_check(jobs: list[FioJobResult], min_write_iops: float) -> CheckResult:
    writers = [j for j in jobs if j.write is not None and j.write.iops > 0]
    if not writers:
        return CheckResult(name="fio-write-iops", status=Status.ERROR, reason="no fio job measured write IOPS")
    slow = [j for j in writers if j.write is not None and j.write.iops < min_write_iops]
    if slow:
        worst = min(slow, key=lambda j: j.write.iops if j.write else 0.0)
        assert worst.write is not None
        return CheckResult(
            name="fio-write-iops",
            status=Status.FAILED,
            reason=f"{worst.name}: {worst.write.iops:,.0f} write IOPS, below the floor of {min_write_iops:,.0f}",
        )
    return CheckResult(
        name="fio-write-iops",
        status=Status.PASSED,
        reason=f"every write job at or above {min_write_iops:,.0f} IOPS",
    )
