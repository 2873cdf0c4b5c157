"""The load-and-faults phase of a run: the write load runs from t0, each planned fault is injected at its time,
Prometheus is waited for, the fault's own undo is unwound, the history checkpoints are taken; then the load stops and
the last readings are made.

Each fault's injector is resolved once. Its record is in the result before anything happens, so a fault that breaks
is reported with its error, never dropped. A fault's own undo (an uncordon) is unwound as soon as Prometheus has
recovered from it, or failed to.

Verdicts: Prometheus not coming back after a fault (``NotRecovered``) ends the phase with the fault recorded as FAILED
and the recovery check FAILED (exit 1), and ``history_survival`` PARTIAL when the checkpoints before it held (what
was acknowledged after them was never checked); the harness or the environment breaking (``InfraError``) is ERROR
(exit 2), with the fault in the result all the same.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from harness import ui
from harness.checks.acks import count_acks
from harness.checks.history import check_history
from harness.errors import HarnessError, InfraError, NotRecovered, WaitTimeout
from harness.faults import injector_for
from harness.faults.base import AnyInjector
from harness.faults.timeline import PlannedFault
from harness.loads.driver import TsdbDriver
from harness.prom import PromClient
from harness.promlog import warnings_between
from harness.results.model import AckReading, FaultRecord, RecoveryStage, RunResult, Status
from harness.runtime.base import Injection, NotReady, Recovery, Runtime, StageMark
from harness.scenario.model import Scenario
from harness.undo import UndoLog
from harness.wait import wait_for

# How long the writers may take to let go of Prometheus before its count is read: a shard process ends the request it
# has in flight (at most its request timeout, 5 s) and says so.
DETACH_TIMEOUT_S = 15.0
METRICS_TIMEOUT_S = 10.0
FIRST_SAMPLE_SOURCE = "harness: the first sample of the write load acknowledged after the fault"


class RunBook(Protocol):
    """What the phase needs of its run (``harness.pipeline.Run``): what it plays, where it writes, how it tells."""

    @property
    def scenario(self) -> Scenario: ...

    @property
    def run_id(self) -> str: ...

    @property
    def run_dir(self) -> Path: ...

    @property
    def planned(self) -> list[PlannedFault]: ...

    @property
    def result(self) -> RunResult: ...

    @property
    def undo(self) -> UndoLog: ...

    def event(self, kind: str, message: str) -> None: ...

    def save(self) -> None: ...


@dataclass
class FaultPhase:
    run: RunBook
    runtime: Runtime
    load: TsdbDriver | None  # None: no TSDB load (faults alone)
    # Prometheus' own count of the remote writes it answered, read through the phase (``harness.checks.acks``).
    ack_readings: list[AckReading] = field(default_factory=list)

    def execute(self) -> None:
        run, runtime, load = self.run, self.runtime, self.load
        if load is not None:
            self._read_acks("start", settled=False)
            load.start(runtime.base_url())
            if load.shards is not None and load.load.shards > 1:
                run.result.environment.extra["writer shards"] = load.shards.description
        # t0 once the load writes: writer shards may take seconds to start (pods), and fault times count from here.
        run.result.t0_unix_s = t0 = time.time()
        run.save()
        history = run.scenario.checks.history_survival
        checkpoints = history.enabled
        duration = run.scenario.duration_s
        recovered = True
        with ui.phase(f"load and faults for {duration:g} s", duration) as bar:
            for planned in run.planned:
                self._sleep_until(t0 + planned.at_s, bar)
                try:
                    record = self._fault(planned, t0, bar)
                except NotRecovered:
                    recovered = False
                    left = [f"{p.index} ({p.action})" for p in run.planned if p.index > planned.index]
                    if left:
                        run.event("warning", f"fault(s) {', '.join(left)} not injected: Prometheus is not back")
                    break
                if load is not None and checkpoints and history.after_each_fault:
                    # What was acknowledged before the fault, and during it when it lasted (a slow disk still takes
                    # writes), must all be there.
                    cutoff_unix_ms = int((t0 + (record.lifted_at_s or record.injected_at_s)) * 1000)
                    label = f"after fault {planned.index} ({planned.action})"
                    self._checkpoint(load, label, cutoff_unix_ms, after_fault=planned.index)
                run.save()
            if recovered:
                self._sleep_until(t0 + duration, bar)
        if load is not None:
            load.stop()
            if recovered:
                self._read_acks("end of the load", settled=load.detached(DETACH_TIMEOUT_S))
            self._count_acks(load)
            if checkpoints and recovered:
                self._checkpoint(load, "final", int(time.time() * 1000))
            ledger = load.save(run.run_dir)
            if ledger:
                run.event("phase", f"ledger of acknowledged samples saved as {ledger}")
            stats = load.stats()
            if stats.skipped_ticks:
                writers = f" (summed over its {stats.shards} writers)" if stats.shards > 1 else ""
                run.event(
                    "warning",
                    f"the write load fell behind and skipped {stats.skipped_ticks:,} of its {stats.interval_s:g} s "
                    f"ticks{writers} ({stats.skipped_samples:,} samples never sent): Prometheus' answers were too "
                    f"slow for {stats.series:,} series (a busy host, or slow storage under it); those times are not "
                    f"covered by the history check",
                )
        run.save()

    def _sleep_until(self, deadline_unix_s: float, bar: ui.PhaseBar) -> None:
        while (left := deadline_unix_s - time.time()) > 0:
            time.sleep(min(0.5, left))
            bar.update(time.time() - self.run.result.origin_unix_s)
            if self.load is not None:
                self.load.check()  # a broken writer shard ends the run now, not when the load would have ended

    def _fault(self, planned: PlannedFault, t0: float, bar: ui.PhaseBar) -> FaultRecord:
        """Inject one fault and wait for recovery. The record is in the result before anything happens, so a fault
        that breaks (NotRecovered: FAILED; any other HarnessError: ERROR) is reported with its error, never dropped."""
        run, runtime = self.run, self.runtime
        bar.note(f"fault {planned.index}: {planned.action} at {time.time() - t0:.1f} s")
        record = FaultRecord(
            index=planned.index,
            action=planned.action,
            parameters=planned.spec.model_dump(mode="json", by_alias=True, exclude_none=True),
            scheduled_at_s=planned.at_s,
            injected_at_s=time.time() - t0,
            instance_before=runtime.instance(),
        )
        run.result.faults.append(record)
        mark = run.undo.mark()
        try:
            self._inject_and_recover(planned, injector_for(planned.spec), record, t0)
        except NotRecovered as e:
            record.status, record.error = Status.FAILED, str(e)
            record.instance_after = runtime.instance()
            run.event("error", f"fault {planned.index} ({planned.action}): Prometheus did not recover: {e}")
            raise
        except HarnessError as e:
            record.status, record.error = Status.ERROR, str(e)
            run.event("error", f"fault {planned.index} ({planned.action}): the harness could not go on: {e}")
            raise
        finally:
            for problem in run.undo.unwind_to(mark):
                run.event("error", f"fault {planned.index}: {problem}")
            run.save()
        record.status = Status.PASSED
        bar.note(
            f"fault {planned.index}: ready after {_fmt(record.ready_at_s, record.injected_at_s)}, first sample after "
            f"{_fmt(record.first_sample_at_s, record.injected_at_s)}, WAL replay {record.wal_replay_s or 0:.2f} s"
        )
        return record

    def _inject_and_recover(self, planned: PlannedFault, injector: AnyInjector, record: FaultRecord, t0: float) -> None:
        load = self.load
        record.below_prometheus = injector.below_prometheus
        if load is not None:
            url = self.runtime.base_url()
            if url is None:
                raise InfraError(f"Prometheus has no address before fault {planned.index}")
            load.before_fault(url, int(time.time() * 1000))
            if not injector.keeps_instance:
                load.set_endpoint(None)
                # This process' count ends here: the fault replaces it, and the load no longer reaches it.
                label = f"before fault {planned.index} ({planned.action})"
                self._read_acks(label, settled=load.detached(DETACH_TIMEOUT_S))
        try:
            self._inject(planned, injector, record, t0)
        finally:
            if record.below_prometheus:
                self._what_it_saw(record, t0)

    def _inject(self, planned: PlannedFault, injector: AnyInjector, record: FaultRecord, t0: float) -> None:
        run, runtime, load = self.run, self.runtime, self.load
        injection = injector.inject(planned.spec, runtime, run.undo)
        record.injected_at_s = injection.injected_at_unix_s - t0
        record.instance_after = injection.instance_after
        record.detail = injection.detail
        if injection.last_wal_fsync_unix_s is not None:
            record.last_wal_fsync_at_s = round(injection.last_wal_fsync_unix_s - t0, 3)
        if injection.lifted_at_unix_s is not None:
            record.lifted_at_s = injection.lifted_at_unix_s - t0
        run.event("fault", f"fault {planned.index} ({planned.action}): {injection.detail}")
        timeout_s = run.scenario.prometheus.ready_timeout_s
        try:
            recovery = runtime.wait_recovered(timeout_s)
        except NotReady as e:
            # Up but not ready in time: how far it got (its container started, /-/healthy) is part of the finding.
            _record_recovery(record, injection, e.recovery, t0)
            raise
        record.instance_after = runtime.instance()
        _record_recovery(record, injection, recovery, t0)
        if load is None:
            return
        # Which process the load writes to from now on (the same one after a fault that keeps it, unless it was
        # replaced unseen): read before the load reaches it.
        self._read_acks(f"after fault {planned.index} ({planned.action})", settled=False)
        load.set_endpoint(runtime.base_url())
        # A fault that lasts has recovered when writes succeed again after it was lifted, not during its window.
        since = injection.lifted_at_unix_s or injection.injected_at_unix_s
        try:
            first = wait_for(
                lambda: load.first_sample_after(since),
                what=f"the first sample acknowledged after fault {planned.index}",
                timeout_s=timeout_s,
                interval_s=0.05,
            )
        except WaitTimeout as e:
            # Ready but taking no writes is Prometheus not being back, as far as its users can tell.
            raise NotRecovered(f"Prometheus answered /-/ready but {e}") from e
        record.first_sample_at_s = first - t0
        record.stages.append(RecoveryStage(stage="first_sample", at_s=first - t0, source=FIRST_SAMPLE_SOURCE))

    def _what_it_saw(self, record: FaultRecord, t0: float) -> None:
        """For a fault below Prometheus: what the load saw fail and what Prometheus logged, from the injection to the
        first sample after it (or to now, when none came)."""
        since = t0 + record.injected_at_s
        until = time.time() if record.first_sample_at_s is None else t0 + record.first_sample_at_s
        if self.load is not None:
            failures = self.load.failures(since, until)
            record.write_failures, record.write_errors = failures.samples, failures.errors
        record.prometheus_log = warnings_between(self.runtime.log_text(), since, until)

    def _read_acks(self, label: str, *, settled: bool) -> None:
        """Remote write: Prometheus' own count of the remote writes it has answered so far, from its ``/metrics``;
        ``settled`` when the load can no longer reach this process. A failed reading is kept with its error: it
        leaves the comparison incomplete, it does not stop the run."""
        runtime = self.runtime
        if self.load is None or self.load.mode != "remote_write":
            return
        reading = AckReading(label=label, at_unix_s=round(time.time(), 3), instance=runtime.instance(), settled=settled)
        url = runtime.base_url()
        try:
            if url is None:
                raise InfraError("Prometheus has no address")
            with PromClient(url, timeout_s=METRICS_TIMEOUT_S) as client:
                writes = client.server_writes()
            reading.process_start_unix_s = writes.process_start_unix_s
            reading.write_requests = writes.write_requests
        except InfraError as e:
            reading.error = str(e)
            self.run.event(
                "warning", f"could not read Prometheus' count of the remote writes it answered ({label}): {e}"
            )
        self.ack_readings.append(reading)

    def _count_acks(self, load: TsdbDriver) -> None:
        """The ledger beside Prometheus' count, once the load has stopped (the ledger is final)."""
        counts = load.ledger_counts()
        if counts is None:
            return
        acks = self.run.result.server_acks = count_acks(
            self.ack_readings,
            ledger_requests=counts.requests,
            ledger_samples=counts.samples,
            unanswered_attempts=counts.unanswered_attempts,
        )
        if acks.server_requests is not None:
            self.run.event(
                "phase",
                f"Prometheus answered {acks.server_requests:,} remote writes 2xx over {acks.lifetimes} process "
                f"lifetime(s); the ledger holds {acks.ledger_requests:,} acknowledged requests",
            )

    def _checkpoint(self, load: TsdbDriver, label: str, cutoff_unix_ms: int, after_fault: int | None = None) -> None:
        run = self.run
        url = self.runtime.base_url()
        if url is None:
            raise InfraError(f"Prometheus has no address for the history check {label}")
        started = time.monotonic()
        with PromClient(url, timeout_s=60) as client:
            checkpoint = check_history(
                client,
                load.expected(url),
                cutoff_unix_ms=cutoff_unix_ms,
                label=label,
                checked_at_s=time.time() - run.result.origin_unix_s,
                run_id=run.run_id,
            )
        checkpoint.check_duration_s = round(time.monotonic() - started, 3)
        checkpoint.after_fault = after_fault
        run.result.durability.append(checkpoint)
        kind = "phase" if checkpoint.lost == 0 else "warning"
        run.event(
            kind,
            f"history {label}: {checkpoint.present:,} of {checkpoint.acknowledged:,} acknowledged "
            f"samples present, {checkpoint.lost:,} lost",
        )


def _record_recovery(record: FaultRecord, injection: Injection, recovery: Recovery, t0: float) -> None:
    record.process_up_at_s = None if recovery.process_up_at_unix_s is None else recovery.process_up_at_unix_s - t0
    record.ready_at_s = None if recovery.ready_at_unix_s is None else recovery.ready_at_unix_s - t0
    record.wal_replay_s = recovery.wal_replay_s
    record.stages = _stages(injection, recovery, t0)
    record.stages_note = recovery.stages_note


def _stages(injection: Injection, recovery: Recovery, t0: float) -> list[RecoveryStage]:
    """The fault's stages in order: the injection, what the fault saw (a lost node marked NotReady), what the
    runtime saw (a new pod scheduled, its volumes mounted, the container started), then /-/healthy and /-/ready
    as the harness polled them."""
    # What the runtime read of a pod the fault did not replace (a fault Prometheus runs through, such as a kubelet
    # restart) can be older than the fault, e.g. when its container started: not a stage of this recovery.
    since = injection.injected_at_unix_s
    seen = [m for m in recovery.stages if m.at_unix_s >= since - m.resolution_s]
    marks = [StageMark("injected", since, "harness: the fault was injected"), *injection.stages, *seen]
    if recovery.process_up_at_unix_s is not None:
        marks.append(StageMark("healthy", recovery.process_up_at_unix_s, "harness: polled /-/healthy"))
    if recovery.ready_at_unix_s is not None:
        marks.append(StageMark("ready", recovery.ready_at_unix_s, "harness: polled /-/ready"))
    return [
        RecoveryStage(stage=m.stage, at_s=round(m.at_unix_s - t0, 3), source=m.source, resolution_s=m.resolution_s)
        for m in marks
    ]


def _fmt(at_s: float | None, since_s: float) -> str:
    return "n/a" if at_s is None else f"{at_s - since_s:.2f} s"
