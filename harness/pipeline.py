"""The ordered steps of a run: load -> plan -> doctor -> provision -> benchmark -> start -> execute -> check -> store
-> report.

Each step of ``Run`` takes what it needs from the step before it (the runtime, the load) as arguments and fills
``self.result``; the result is saved atomically after every step that changes it, so an interrupted or broken run
still leaves a result (marked incomplete) and a report. Whatever a step starts or creates registers its undo in
``Run.undo`` *before* acting; cleanup unwinds it newest first, exactly once, whatever happened before (Ctrl-C too).
A fault's own undo (an uncordon) is unwound as soon as Prometheus has recovered from it, or failed to.

Ownership: the work directory carries the run's marker, locked for the run's life (``harness.ownership``), and every
child process the run's id, so ``harness cleanup`` can tell a killed run's leftovers from a live run's; a cluster run
uses only a kube context it was allowed (``harness.config``), checked before anything is created.

Verdicts: Prometheus not coming back after a fault (``NotRecovered``) ends the fault phase with the fault recorded
as FAILED and the recovery check FAILED (exit 1), and ``history_survival`` PARTIAL when the checkpoints before it
held (what was acknowledged after them was never checked); the harness or the environment breaking (``InfraError``)
is ERROR (exit 2), with the fault in the result all the same.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness import proc, ui
from harness.capabilities import refusal as capability_refusal
from harness.checks.acks import ack_count_check, count_acks
from harness.checks.history import check_history, history_check_result, history_check_unrecovered
from harness.checks.verdicts import fio_iops_check, recovery_check
from harness.config import UserConfig, choose_context, load_user_config
from harness.errors import HarnessError, InfraError, NotRecovered, UsageError, WaitTimeout
from harness.faults import injector_for, needed_capabilities
from harness.faults.timeline import PlannedFault, plan_faults
from harness.loads.driver import TsdbDriver
from harness.loads.fio import job_name
from harness.ownership import WORKDIR_PREFIX, RunLock, RunOwner, new_marker
from harness.prom import PromClient
from harness.promlog import warnings_between
from harness.results import env as envinfo
from harness.results.model import (
    AckReading,
    CheckResult,
    Event,
    FaultRecord,
    RecoveryStage,
    RunResult,
    Severity,
    Status,
)
from harness.results.store import RESULT_FILE, load_result, new_run_dir, save_result
from harness.runtime import (
    RuntimeContext,
    create_runtime,
    refuse_unsupported,
    runtime_offers,
)
from harness.runtime.base import Injection, NotReady, Recovery, Runtime, StageMark
from harness.scenario.host_defaults import with_host_defaults
from harness.scenario.loader import load_scenario
from harness.scenario.model import Scenario
from harness.settings import Settings
from harness.signals import Interrupted, handled_signals
from harness.storage import backend_for
from harness.storage.base import EmbeddedServer
from harness.undo import UndoLog
from harness.wait import wait_for

log = logging.getLogger(__name__)

EXIT_PASSED, EXIT_FAILED, EXIT_ERROR, EXIT_INTERRUPTED = 0, 1, 2, 130
# How long the writers may take to let go of Prometheus before its count is read: a shard process ends the request it
# has in flight (at most its request timeout, 5 s) and says so.
DETACH_TIMEOUT_S = 15.0
METRICS_TIMEOUT_S = 10.0


@dataclass
class RunOptions:
    scenario_path: Path
    settings: Settings  # the host's HARNESS_* settings, read once by the CLI (harness.settings)
    runtime: str = "local"
    reports_root: Path = Path("reports")
    workdir_root: Path | None = None  # default: the system temp dir
    render_report: bool = True
    doctor: bool = True  # run the storage doctor first; a blocker stops the run
    keep_data: bool = False  # keep the TSDB and fio files this run created (for inspection)
    kubeconfig: str | None = None  # kubernetes runtime; None: $KUBECONFIG or ~/.kube/config
    context: str | None = None  # kubernetes runtime: the kube context (None: the current one, if the config allows)
    overrides: tuple[str, ...] = ()  # KEY.PATH=VALUE settings applied to the scenario file before it is validated


@dataclass
class RunOutcome:
    exit_code: int
    run_dir: Path | None
    result: RunResult | None


@dataclass
class Run:
    options: RunOptions
    scenario: Scenario
    run_id: str
    run_dir: Path
    result: RunResult
    planned: list[PlannedFault]
    undo: UndoLog = field(default_factory=UndoLog)
    load: TsdbDriver | None = None  # kept for saving the ingest series with every snapshot
    owner: str = ""  # who runs it (the user config's owner)
    context: str | None = None  # the kube context this run may use (kubernetes runtime)
    lock: RunLock | None = None  # the work directory's marker, locked while the run lives
    server: EmbeddedServer[Any] | None = None  # the storage server the run started (embedded), handed to the runtime
    # Prometheus' own count of the remote writes it answered, read through the run (``harness.checks.acks``).
    ack_readings: list[AckReading] = field(default_factory=list)

    # --- bookkeeping -------------------------------------------------------------------------------------------

    def event(self, kind: str, message: str) -> None:
        self.result.events.append(Event(at_unix_s=round(time.time(), 3), kind=kind, message=message))
        if kind == "warning":
            ui.warn(message)
        elif kind == "error":
            ui.error(message)
        else:
            ui.info(message, style="dim" if kind == "phase" else None)

    def save(self) -> None:
        if self.load is not None and self.result.t0_unix_s is not None:
            self.result.ingest = self.load.ingest(self.result.t0_unix_s)
            self.result.load = self.load.stats()
        save_result(self.run_dir, self.result)

    # --- steps -------------------------------------------------------------------------------------------------

    def step_servers(self, workdir: Path) -> None:
        """Start the storage server the scenario asks the run to bring (``embedded``); later steps see its address."""
        server = backend_for(self.scenario.storage).embedded_server(self.scenario.storage, workdir / "server")
        if server is None:
            return
        self.undo.record(f"stop the {server.description}", server.stop)
        self.server = server
        self.event("phase", f"starting the {server.description}")
        self.scenario = self.scenario.model_copy(update={"storage": server.start()})
        self.result.environment.extra["storage server"] = server.description

    def step_runtime(self, workdir: Path) -> Runtime:
        ctx = RuntimeContext(
            self.scenario,
            self.run_id,
            workdir=workdir,
            logs_dir=self.run_dir / "logs",
            settings=self.options.settings,
            kubeconfig=self.options.kubeconfig,
            context=self.context,
            owner=RunOwner.this_process(self.owner),
            needs=needed_capabilities([p.spec for p in self.planned]),
            storage_server=self.server,
        )
        runtime = create_runtime(self.options.runtime, ctx)
        if self.context is not None:
            self.result.environment.extra["kube context"] = self.context
        # Registered now, unwound in reverse: Prometheus stops before its storage goes.
        if not self.options.keep_data:
            self.undo.record("remove the storage this run created", runtime.teardown_storage)
        self.undo.record("stop Prometheus and delete what the runtime created", runtime.stop)
        return runtime

    def step_doctor(self, runtime: Runtime) -> bool:
        """Run the storage doctor; False when it found something that would make the run fail before it starts.

        A blocker is an ERROR, not a FAILED: the storage did not lose data, the run could not be set up on it.
        """
        from harness.doctor import blocking, run_doctor

        findings = run_doctor(
            self.scenario,
            runtime=self.options.runtime,
            kube=runtime.doctor_inventory(),
            previous_wal_replay_s=previous_wal_replay_s(self.options.reports_root / self.scenario.name, self.run_dir),
        )
        self.result.doctor = findings
        for f in findings:
            if f.severity is Severity.WARNING:
                self.event("warning", f"doctor: {f.title}")
            elif f.severity is Severity.BLOCKER:
                lines = [f"doctor: {f.title}"]
                lines += [f"  {k}: {v}" for k, v in (("evidence", f.evidence), ("fix", f.fix)) if v]
                self.event("error", "\n".join(lines))
        if blocking(findings):
            titles = "; ".join(f.title for f in findings if f.severity is Severity.BLOCKER)
            self.result.checks.append(
                CheckResult(
                    name="doctor",
                    status=Status.ERROR,
                    reason=f"the run was not started: {titles} (see `harness doctor`, or --skip-doctor)",
                )
            )
            return False
        return True

    def step_provision(self, runtime: Runtime) -> None:
        self.event("phase", f"provisioning {self.scenario.storage.backend} storage")
        described = runtime.provision_storage()
        self.result.environment.data_path = described.path
        self.result.environment.data_filesystem = described.filesystem
        self.result.environment.data_device = described.device
        self.result.environment.data_access = described.access
        self.save()

    def step_benchmark(self, runtime: Runtime) -> None:
        jobs = self.scenario.loads.fio
        if not jobs:
            return
        total = sum(j.runtime_s * j.repeat for j in jobs)
        with ui.phase(f"fio: {len(jobs)} job(s) on {runtime.fio_target()}", total) as bar:
            done = 0.0
            for job in jobs:
                base = job_name(job)
                for k in range(1, job.repeat + 1):
                    # Each repetition is a fio run of its own (fresh files, its own outputs): an independent value
                    # for compare. The first keeps the job's name, so unrepeated jobs look as they always did.
                    rep = job if k == 1 else job.model_copy(update={"name": f"{base}.r{k}"})
                    bar.update(done, f"fio {base}" + (f" ({k}/{job.repeat})" if job.repeat > 1 else ""))
                    measured = runtime.run_fio(rep, self.run_dir)
                    self.result.fio.append(measured.model_copy(update={"job": base, "repetition": k}))
                    self.result.environment.fio_version = runtime.fio_version()
                    done += job.runtime_s
                    self.save()
        for r in self.result.fio:
            if r.write is not None:
                ui.info(f"  {r.name}: write {r.write.bw_bytes_per_s / 1e6:.1f} MB/s, {r.write.iops:.0f} IOPS")
            if r.read is not None:
                ui.info(f"  {r.name}: read {r.read.bw_bytes_per_s / 1e6:.1f} MB/s, {r.read.iops:.0f} IOPS")

    def step_prometheus(self, runtime: Runtime) -> TsdbDriver | None:
        """Start Prometheus and run the load and faults; a fio-only scenario has neither and stops here."""
        if not self.scenario.runs_prometheus:
            self.event("phase", "fio only (no TSDB load, no fault): Prometheus is not started")
            return None
        load = self.step_start(runtime)
        self.step_execute(runtime, load)
        return load

    def step_start(self, runtime: Runtime) -> TsdbDriver | None:
        spec = self.scenario.loads.tsdb
        load = None
        scrape_configs = []
        if spec is not None:
            exporter = runtime.scrape_exporter(spec, self.run_id) if spec.mode == "scrape" else None
            shards = runtime.writer_shards() if spec.shards > 1 else None
            load = self.load = TsdbDriver(spec, self.run_id, exporter=exporter, shards=shards)
            self.undo.record("stop the TSDB load", load.stop)
            scrape_configs = load.prepare()
            if exporter is not None:
                self.result.environment.extra["scrape exporter"] = exporter.description
        self.event("phase", f"starting Prometheus ({runtime.name} runtime)")
        try:
            runtime.start(scrape_configs)
        except NotRecovered as e:
            # Before any fault there is nothing to recover from: the run could not be set up on this storage.
            raise InfraError(f"Prometheus did not start: {e}") from e
        self.result.environment.prometheus_version = runtime.version()
        self._record_cluster(runtime)
        self.event("phase", f"Prometheus {self.result.environment.prometheus_version} ready: {runtime.instance()}")
        return load

    def step_execute(self, runtime: Runtime, load: TsdbDriver | None) -> None:
        if load is not None:
            self._read_acks(runtime, load, "start", settled=False)
            load.start(runtime.base_url())
            if load.shards is not None and load.load.shards > 1:
                self.result.environment.extra["writer shards"] = load.shards.description
        # t0 once the load writes: writer shards may take seconds to start (pods), and fault times count from here.
        self.result.t0_unix_s = t0 = time.time()
        self.save()
        history = self.scenario.checks.history_survival
        checkpoints = history.enabled
        duration = self.scenario.duration_s
        recovered = True
        with ui.phase(f"load and faults for {duration:g} s", duration) as bar:
            for planned in self.planned:
                self._sleep_until(t0 + planned.at_s, bar)
                try:
                    record = self._fault(planned, runtime, load, t0, bar)
                except NotRecovered:
                    recovered = False
                    left = [f"{p.index} ({p.action})" for p in self.planned if p.index > planned.index]
                    if left:
                        self.event("warning", f"fault(s) {', '.join(left)} not injected: Prometheus is not back")
                    break
                if load is not None and checkpoints and history.after_each_fault:
                    # What was acknowledged before the fault, and during it when it lasted (a slow disk still takes
                    # writes), must all be there.
                    cutoff_unix_ms = int((t0 + (record.lifted_at_s or record.injected_at_s)) * 1000)
                    label = f"after fault {planned.index} ({planned.action})"
                    self._checkpoint(runtime, load, label, cutoff_unix_ms, after_fault=planned.index)
                self.save()
            if recovered:
                self._sleep_until(t0 + duration, bar)
        if load is not None:
            load.stop()
            if recovered:
                self._read_acks(runtime, load, "end of the load", settled=load.detached(DETACH_TIMEOUT_S))
            self._count_acks(load)
            if checkpoints and recovered:
                self._checkpoint(runtime, load, "final", int(time.time() * 1000))
            ledger = load.save(self.run_dir)
            if ledger:
                self.event("phase", f"ledger of acknowledged samples saved as {ledger}")
            stats = load.stats()
            if stats.skipped_ticks:
                writers = f" (summed over its {stats.shards} writers)" if stats.shards > 1 else ""
                self.event(
                    "warning",
                    f"the write load fell behind and skipped {stats.skipped_ticks:,} of its {stats.interval_s:g} s "
                    f"ticks{writers} ({stats.skipped_samples:,} samples never sent): Prometheus' answers were too "
                    f"slow for {stats.series:,} series (a busy host, or slow storage under it); those times are not "
                    f"covered by the history check",
                )
        self.save()

    def _record_cluster(self, runtime: Runtime) -> None:
        """The cluster's facts, again after the faults (Prometheus may have moved to other nodes)."""
        try:
            self.result.cluster = runtime.cluster_facts()
        except InfraError as e:
            self.event("warning", f"could not record the cluster's versions and volume: {e}")

    def step_check(self, runtime: Runtime, load: TsdbDriver | None) -> None:
        self._record_cluster(runtime)
        checks = self.scenario.checks
        if checks.history_survival.enabled and load is not None:
            self.result.checks.append(self._history_check(load))
        if self.result.server_acks is not None:
            self.result.checks.append(ack_count_check(self.result.server_acks))
        self.result.checks.append(recovery_check(self.result.faults, checks.recovery_limits_s))
        if checks.min_fio_write_iops is not None:
            self.result.checks.append(fio_iops_check(self.result.fio, checks.min_fio_write_iops))
        self.result.complete = True

    # --- helpers -----------------------------------------------------------------------------------------------

    def _history_check(self, load: TsdbDriver) -> CheckResult:
        checks = self.scenario.checks.history_survival
        durability = self.result.durability
        if not any(f.status is Status.FAILED for f in self.result.faults):
            return history_check_result(durability, checks.max_samples_lost)
        # Prometheus never came back: no final checkpoint, and what was acknowledged after the last one is unseen.
        unchecked = load.acknowledged_since(durability[-1].cutoff_unix_ms) if durability else None
        return history_check_unrecovered(durability, checks.max_samples_lost, self.result.faults, unchecked)

    def _sleep_until(self, deadline_unix_s: float, bar: ui.PhaseBar) -> None:
        while (left := deadline_unix_s - time.time()) > 0:
            time.sleep(min(0.5, left))
            bar.update(time.time() - self.result.origin_unix_s)
            if self.load is not None:
                self.load.check()  # a broken writer shard ends the run now, not when the load would have ended

    def _fault(
        self, planned: PlannedFault, runtime: Runtime, load: TsdbDriver | None, t0: float, bar: ui.PhaseBar
    ) -> FaultRecord:
        """Inject one fault and wait for recovery. The record is in the result before anything happens, so a fault
        that breaks (NotRecovered: FAILED; any other HarnessError: ERROR) is reported with its error, never dropped."""
        bar.note(f"fault {planned.index}: {planned.action} at {time.time() - t0:.1f} s")
        record = FaultRecord(
            index=planned.index,
            action=planned.action,
            parameters=planned.spec.model_dump(mode="json", by_alias=True, exclude_none=True),
            scheduled_at_s=planned.at_s,
            injected_at_s=time.time() - t0,
            instance_before=runtime.instance(),
        )
        self.result.faults.append(record)
        mark = self.undo.mark()
        try:
            self._inject_and_recover(planned, record, runtime, load, t0)
        except NotRecovered as e:
            record.status, record.error = Status.FAILED, str(e)
            record.instance_after = runtime.instance()
            self.event("error", f"fault {planned.index} ({planned.action}): Prometheus did not recover: {e}")
            raise
        except HarnessError as e:
            record.status, record.error = Status.ERROR, str(e)
            self.event("error", f"fault {planned.index} ({planned.action}): the harness could not go on: {e}")
            raise
        finally:
            for problem in self.undo.unwind_to(mark):
                self.event("error", f"fault {planned.index}: {problem}")
            self.save()
        record.status = Status.PASSED
        bar.note(
            f"fault {planned.index}: ready after {_fmt(record.ready_at_s, record.injected_at_s)}, first sample after "
            f"{_fmt(record.first_sample_at_s, record.injected_at_s)}, WAL replay {record.wal_replay_s or 0:.2f} s"
        )
        return record

    def _inject_and_recover(
        self, planned: PlannedFault, record: FaultRecord, runtime: Runtime, load: TsdbDriver | None, t0: float
    ) -> None:
        injector = injector_for(planned.spec)
        record.below_prometheus = injector.below_prometheus
        if load is not None:
            url = runtime.base_url()
            if url is None:
                raise InfraError(f"Prometheus has no address before fault {planned.index}")
            load.before_fault(url, int(time.time() * 1000))
            if not injector.keeps_instance:
                load.set_endpoint(None)
                # This process' count ends here: the fault replaces it, and the load no longer reaches it.
                label = f"before fault {planned.index} ({planned.action})"
                self._read_acks(runtime, load, label, settled=load.detached(DETACH_TIMEOUT_S))
        try:
            self._inject(planned, record, runtime, load, t0)
        finally:
            if record.below_prometheus:
                self._what_it_saw(record, runtime, load, t0)

    def _inject(
        self, planned: PlannedFault, record: FaultRecord, runtime: Runtime, load: TsdbDriver | None, t0: float
    ) -> None:
        injection = injector_for(planned.spec).inject(planned.spec, runtime, self.undo)
        record.injected_at_s = injection.injected_at_unix_s - t0
        record.instance_after = injection.instance_after
        record.detail = injection.detail
        if injection.last_wal_fsync_unix_s is not None:
            record.last_wal_fsync_at_s = round(injection.last_wal_fsync_unix_s - t0, 3)
        if injection.lifted_at_unix_s is not None:
            record.lifted_at_s = injection.lifted_at_unix_s - t0
        self.event("fault", f"fault {planned.index} ({planned.action}): {injection.detail}")
        timeout_s = self.scenario.prometheus.ready_timeout_s
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
        self._read_acks(runtime, load, f"after fault {planned.index} ({planned.action})", settled=False)
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

    def _what_it_saw(self, record: FaultRecord, runtime: Runtime, load: TsdbDriver | None, t0: float) -> None:
        """For a fault below Prometheus: what the load saw fail and what Prometheus logged, from the injection to the
        first sample after it (or to now, when none came)."""
        since = t0 + record.injected_at_s
        until = time.time() if record.first_sample_at_s is None else t0 + record.first_sample_at_s
        if load is not None:
            failures = load.failures(since, until)
            record.write_failures, record.write_errors = failures.samples, failures.errors
        record.prometheus_log = warnings_between(runtime.log_text(), since, until)

    def _read_acks(self, runtime: Runtime, load: TsdbDriver, label: str, *, settled: bool) -> None:
        """Remote write: Prometheus' own count of the remote writes it has answered so far, from its ``/metrics``;
        ``settled`` when the load can no longer reach this process. A failed reading is kept with its error: it
        leaves the comparison incomplete, it does not stop the run."""
        if load.mode != "remote_write":
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
            self.event("warning", f"could not read Prometheus' count of the remote writes it answered ({label}): {e}")
        self.ack_readings.append(reading)

    def _count_acks(self, load: TsdbDriver) -> None:
        """The ledger beside Prometheus' count, once the load has stopped (the ledger is final)."""
        counts = load.ledger_counts()
        if counts is None:
            return
        acks = self.result.server_acks = count_acks(
            self.ack_readings,
            ledger_requests=counts.requests,
            ledger_samples=counts.samples,
            unanswered_attempts=counts.unanswered_attempts,
        )
        if acks.server_requests is not None:
            self.event(
                "phase",
                f"Prometheus answered {acks.server_requests:,} remote writes 2xx over {acks.lifetimes} process "
                f"lifetime(s); the ledger holds {acks.ledger_requests:,} acknowledged requests",
            )

    def _checkpoint(
        self, runtime: Runtime, load: TsdbDriver, label: str, cutoff_unix_ms: int, after_fault: int | None = None
    ) -> None:
        url = runtime.base_url()
        if url is None:
            raise InfraError(f"Prometheus has no address for the history check {label}")
        started = time.monotonic()
        with PromClient(url, timeout_s=60) as client:
            checkpoint = check_history(
                client,
                load.expected(url),
                cutoff_unix_ms=cutoff_unix_ms,
                label=label,
                checked_at_s=time.time() - self.result.origin_unix_s,
                run_id=self.run_id,
            )
        checkpoint.check_duration_s = round(time.monotonic() - started, 3)
        checkpoint.after_fault = after_fault
        self.result.durability.append(checkpoint)
        kind = "phase" if checkpoint.lost == 0 else "warning"
        self.event(
            kind,
            f"history {label}: {checkpoint.present:,} of {checkpoint.acknowledged:,} acknowledged "
            f"samples present, {checkpoint.lost:,} lost",
        )

    def cleanup(self) -> None:
        """Unwind everything recorded, newest first; one failing step skips nothing else."""
        for problem in self.undo.unwind():
            self.event("error", f"cleanup: {problem}")

    def mark(self, workdir: Path) -> None:
        """The marker that makes the work directory this run's, locked until the run ends; a warning about earlier
        runs that were killed (their leftovers are only ever removed by `harness cleanup`)."""
        from harness.cleanup.notice import earlier_leftovers

        storage = self.scenario.storage
        marker = new_marker(
            run_id=self.run_id,
            owner=self.owner,
            workdir=workdir,
            scenario_file=str(self.options.scenario_path),
            scenario_name=self.scenario.name,
            runtime=self.options.runtime,
            reports_dir=str(self.run_dir),
            kube_context=self.context,
            kubeconfig=self.options.kubeconfig,
            host_paths=[str(p) for p in backend_for(storage).host_paths(storage)],
        )
        self.lock = RunLock.create(workdir, marker)
        try:
            notices = earlier_leftovers(
                self.options.workdir_root,
                self.owner,
                current_run=self.run_id,
                kubeconfig=self.options.kubeconfig,
                context=self.context,
            )
        except (HarnessError, OSError) as e:  # a look around, not part of the run
            log.debug("could not look for earlier runs' leftovers: %s", e)
            notices = []
        for message in notices:
            self.event("warning", message)

    def unmark(self) -> None:
        """The run is over: a work directory kept on purpose (--keep-data) says so, and the lock goes."""
        if self.lock is None:
            return
        if self.options.keep_data:
            self.lock.update(state="kept")
        self.lock.release()


def previous_wal_replay_s(scenario_reports: Path, current: Path) -> float | None:
    """The longest WAL replay of the newest earlier run of this scenario: what the probes must outlast."""
    for run_dir in sorted(scenario_reports.iterdir(), reverse=True) if scenario_reports.is_dir() else []:
        if run_dir == current or not (run_dir / RESULT_FILE).is_file():
            continue
        try:
            previous = load_result(run_dir)
        except UsageError:  # another schema version or a broken file: not evidence either way
            continue
        replays = [f.wal_replay_s for f in previous.faults if f.wal_replay_s is not None]
        if replays:
            return max(replays)
    return None


FIRST_SAMPLE_SOURCE = "harness: the first sample of the write load acknowledged after the fault"


def _record_recovery(record: FaultRecord, injection: Injection, recovery: Recovery, t0: float) -> None:
    record.process_up_at_s = None if recovery.process_up_at_unix_s is None else recovery.process_up_at_unix_s - t0
    record.ready_at_s = None if recovery.ready_at_unix_s is None else recovery.ready_at_unix_s - t0
    record.wal_replay_s = recovery.wal_replay_s
    record.stages = _stages(injection, recovery, t0)


def _stages(injection: Injection, recovery: Recovery, t0: float) -> list[RecoveryStage]:
    """The fault's stages in order: the injection, what the fault saw (a lost node marked NotReady), what the
    runtime saw (a new pod scheduled, its volumes mounted, the container started), then /-/healthy and /-/ready
    as the harness polled them."""
    marks = [
        StageMark("injected", injection.injected_at_unix_s, "harness: the fault was injected"),
        *injection.stages,
        *recovery.stages,
    ]
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


def _refuse_missing_workdir(root: Path | None) -> None:
    if root is not None and not root.is_dir():
        raise UsageError(f"--workdir {root}: no such directory (the run makes its own directory in it)")


def execute(options: RunOptions) -> RunOutcome:
    """Run one scenario end to end. Bad input raises UsageError before anything is created."""
    scenario = with_host_defaults(load_scenario(options.scenario_path, options.overrides), options.settings)
    refuse_unsupported(options.runtime, scenario)
    refuse_faults(options.runtime, scenario)
    config = load_user_config(options.settings)
    context = _allowed_context(options, config)
    planned = plan_faults(scenario.faults, scenario.duration_s)
    _refuse_missing_workdir(options.workdir_root)
    run_id, run_dir = new_run_dir(options.reports_root, scenario.name)
    result = RunResult(
        run_id=run_id,
        scenario_name=scenario.name,
        scenario_file=str(options.scenario_path),
        scenario=scenario.model_dump(mode="json", by_alias=True),
        overrides=list(options.overrides),
        runtime=options.runtime,
        started_at=datetime.now(UTC),
        environment=envinfo.collect(options.runtime),
    )
    run = Run(options, scenario, run_id, run_dir, result, planned, owner=config.effective_owner(), context=context)
    save_result(run_dir, result)
    ui.info(ui.markup("run {r}: scenario [bold]{n}[/bold] -> {d}", r=run_id, n=scenario.name, d=run_dir))
    exit_code = EXIT_ERROR
    with handled_signals(interrupt=True), proc.labelled_children(run_id):
        try:
            workdir = Path(tempfile.mkdtemp(prefix=f"{WORKDIR_PREFIX}{run_id}-", dir=options.workdir_root))
            if not options.keep_data:
                run.undo.record("remove the work directory", lambda: shutil.rmtree(workdir, ignore_errors=True))
            # Prometheus may run as the scenario's uid: it must be able to reach its config and data.
            workdir.chmod(0o755)
            run.mark(workdir)
            run.step_servers(workdir)
            runtime = run.step_runtime(workdir)
            if options.doctor and not run.step_doctor(runtime):
                run.result.complete = True
            else:
                run.step_provision(runtime)
                run.step_benchmark(runtime)
                load = run.step_prometheus(runtime)
                run.step_check(runtime, load)
        except Interrupted as e:
            run.result.interrupted = True
            run.event("error", f"interrupted ({e}); cleaning up and keeping the partial result")
            exit_code = EXIT_INTERRUPTED
        except HarnessError as e:
            run.result.error = str(e)
            run.event("error", str(e))
        finally:
            with handled_signals(interrupt=False):
                run.cleanup()
                run.unmark()
                run.result.finished_at = datetime.now(UTC)
                run.result.verdict = run.result.overall()
                run.save()
                if options.render_report:
                    _render(run)
    if not run.result.interrupted:
        exit_code = {Status.PASSED: EXIT_PASSED, Status.FAILED: EXIT_FAILED}.get(run.result.verdict, EXIT_ERROR)
    return RunOutcome(exit_code, run_dir, run.result)


def refuse_faults(runtime: str, scenario: Scenario) -> None:
    """UsageError, before anything is created, for a fault the runtime cannot play or the scenario under-specifies."""
    offers = runtime_offers(runtime)
    for i, spec in enumerate(scenario.faults):
        injector = injector_for(spec)
        # Each capability says why a run cannot have it (the runtime lacks it, the storage does not give it).
        lacking = capability_refusal(injector.needs, runtime, offers, scenario)
        if lacking is not None:
            raise UsageError(f"faults[{i}] ({spec.action}) {lacking}")
        refusal = injector.refusal(spec)
        if refusal is not None:
            raise UsageError(f"faults[{i}] ({spec.action}): {refusal}")


def _allowed_context(options: RunOptions, config: UserConfig) -> str | None:
    """The kube context a kubernetes run may use; UsageError, before anything is created, when it may use none."""
    if options.runtime != "kubernetes":
        return None
    return choose_context(options.kubeconfig, options.context, config)


def _render(run: Run) -> None:
    try:
        from harness.report import render_report

        path = render_report(run.run_dir)
        ui.info(f"report: {path.resolve()}")
    except (HarnessError, OSError, ValueError) as e:
        # A report that cannot be drawn must not cost the run: result.json is saved and `harness report` retries.
        ui.error(f"could not render the report: {e}")
