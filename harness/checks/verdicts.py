"""Verdicts that are simple functions of the recorded run: recovery time per fault, fio IOPS floor.

Each returns a ``CheckResult`` whose reason a person can act on; a fault that broke the harness is ERROR, one that
Prometheus did not recover from is FAILED.
"""

from __future__ import annotations

from harness.results.model import CheckResult, FaultRecord, FioJobResult, Status


def recovery_check(faults: list[FaultRecord], max_recovery_s: float | None) -> CheckResult:
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
    times = {f.index: f.recovery_s for f in faults}
    worst_index, worst = max(((i, t) for i, t in times.items() if t is not None), key=lambda x: x[1], default=(0, None))
    details: dict[str, object] = {f"fault_{i}_recovery_s": t for i, t in times.items()}
    if worst is None:
        return CheckResult(
            name="recovery",
            status=Status.PASSED,
            reason="Prometheus became ready after every fault (no write load, so no first-sample time)",
            details=details,
        )
    if max_recovery_s is not None and worst > max_recovery_s:
        action = next(f.action for f in faults if f.index == worst_index)
        return CheckResult(
            name="recovery",
            status=Status.FAILED,
            reason=(
                f"fault {worst_index} ({action}): {worst:.2f} s from fault to the first new sample stored, "
                f"over the limit of {max_recovery_s:g} s"
            ),
            details=details,
        )
    limit = f" (limit {max_recovery_s:g} s)" if max_recovery_s is not None else ""
    return CheckResult(
        name="recovery",
        status=Status.PASSED,
        reason=f"worst recovery {worst:.2f} s (fault {worst_index}) over {len(faults)} fault(s){limit}",
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
