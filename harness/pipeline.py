"""The ordered steps of a run: load -> plan -> doctor -> provision -> benchmark -> start -> execute -> check -> store
-> report.

Each step of ``Run`` takes what it needs from the step before it (the runtime, the load) as arguments and fills
``self.result``; the result is saved atomically after every step that changes it, so an interrupted or broken run
still leaves a result (marked incomplete) and a report. Whatever a step starts or creates registers its undo in
``Run.undo`` *before* acting; cleanup unwinds it newest first, exactly once, whatever happened before (Ctrl-C too).

The rooms the steps use: the refusals made before anything is created (``harness.refusals``), the load-and-faults
phase with its verdicts (``harness.fault_phase``), the run's marks on its work directory (``harness.run_marks``).

Ownership: the work directory carries the run's marker, locked for the run's life (``harness.ownership``), and every
child process the run's id, so ``harness cleanup`` can tell a killed run's leftovers from a live run's; a cluster run
uses only a kube context it was allowed (``harness.config``), checked before anything is created.
"""

from __future__ import annotations

import shutil
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness import proc, run_marks, ui
from harness.checks.acks import ack_count_check
from harness.checks.history import history_check_result, history_check_unrecovered
from harness.checks.verdicts import fio_iops_check, recovery_check
from harness.config import load_user_config
from harness.datapath.kept_server import SERVER_DIR, record_path
from harness.errors import HarnessError, InfraError, NotRecovered
from harness.fault_phase import FaultPhase
from harness.faults import needed_capabilities
from harness.faults.timeline import PlannedFault, plan_faults
from harness.loads.driver import TsdbDriver
from harness.loads.fio import job_name
from harness.ownership import WORKDIR_PREFIX, RunLock, RunOwner
from harness.refusals import allowed_context, refuse_faults, refuse_missing_workdir
from harness.results import env as envinfo
from harness.results.model import CheckResult, Event, RunResult, Severity, Status
from harness.results.query import earlier_results, previous_wal_replay_s
from harness.results.store import new_run_dir, save_result
from harness.runtime import RuntimeContext, create_runtime, refuse_unsupported
from harness.runtime.base import Runtime
from harness.scenario.host_defaults import with_host_defaults
from harness.scenario.loader import load_scenario
from harness.scenario.model import Scenario
from harness.settings import Settings
from harness.signals import Interrupted, handled_signals
from harness.storage import backend_for
from harness.storage.base import EmbeddedServer
from harness.undo import UndoLog

EXIT_PASSED, EXIT_FAILED, EXIT_ERROR, EXIT_INTERRUPTED = 0, 1, 2, 130


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

    # --- bookkeeping -------------------------------------------------------------------------------------------

    def event(self, kind: str, message: str) -> None:
        self.result.events.append(Event(at_unix_s=round(time.time(), 3), kind=kind, message=message))
        if kind == "warning":
            ui.warn(message)
        elif kind == "error":
            ui.error(message)
        else:
            ui.info(message, style="dim" if kind == "phase" else None)

    def steps(self, workdir: Path) -> None:
        """The run's steps in their order: servers, runtime, doctor (which may end the run there), storage, fio,
        Prometheus with its load and faults, checks."""
        self.step_servers(workdir)
        runtime = self.step_runtime(workdir)
        if self.options.doctor and not self.step_doctor(runtime):
            self.result.complete = True
            return
        self.step_provision(runtime)
        self.step_benchmark(runtime)
        load = self.step_prometheus(runtime)
        self.step_check(runtime, load)

    def internal_error(self, e: Exception) -> None:
        """A bug (ours, or a library's under us) ends the run as an ERROR, cleaned up and with its partial result;
        the traceback goes to the run's logs, not the terminal."""
        where = self.run_dir / "logs" / "traceback.txt"
        where.parent.mkdir(parents=True, exist_ok=True)
        where.write_text(traceback.format_exc())
        self.result.error = f"internal error: {type(e).__name__}: {e} (a bug of the harness; traceback in {where})"
        self.event("error", self.result.error)

    def save(self) -> None:
        if self.load is not None and self.result.t0_unix_s is not None:
            self.result.ingest = self.load.ingest(self.result.t0_unix_s)
            self.result.load = self.load.stats()
        save_result(self.run_dir, self.result)

    # --- steps -------------------------------------------------------------------------------------------------

    def step_servers(self, workdir: Path) -> None:
        """Start the storage server the scenario asks the run to bring (``embedded``); later steps see its address."""
        server = backend_for(self.scenario.storage).embedded_server(self.scenario.storage, workdir / SERVER_DIR)
        if server is None:
            return
        self.undo.record(f"stop the {server.description}", server.stop)
        self.server = server
        self.event("phase", f"starting the {server.description}")
        # A cluster's node will mount the PV from it: a SIGKILL of this process must not leave that node with a
        # dead server, so the server outlives it, and `harness cleanup` stops it after the run's cluster objects.
        if self.options.runtime == "kubernetes" and server.keep_past_run(record_path(workdir)):
            self.event(
                "phase",
                f"the {server.description} does not die with this process: were it killed, `harness cleanup --run "
                f"{self.run_id}` stops the server once the run's cluster objects are gone",
            )
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
        from harness.doctor.probes import replay_rate

        earlier = self.options.reports_root / self.scenario.name
        # The replay rate of the newest earlier run on this storage as the scenario wrote it (the stored scenario,
        # not self.scenario: an embedded server's start filled in its address).
        written = self.result.scenario.get("storage", {})
        rates = (replay_rate(r, written) for r in earlier_results(earlier, self.run_dir))
        findings = run_doctor(
            self.scenario,
            runtime=self.options.runtime,
            kube=runtime.doctor_inventory(),
            previous_wal_replay_s=previous_wal_replay_s(earlier, self.run_dir),
            replay_rate=next((r for r in rates if r is not None), None),
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
        """The load from t0 and the planned faults at their times, then the last readings (``harness.fault_phase``)."""
        FaultPhase(self, runtime, load).execute()

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

    def cleanup(self) -> None:
        """Unwind everything recorded, newest first; one failing step skips nothing else."""
        for problem in self.undo.unwind():
            self.event("error", f"cleanup: {problem}")

    def mark(self, workdir: Path) -> None:
        """The marker that makes the work directory this run's, locked until the run ends; a warning about earlier
        runs that were killed (their leftovers are only ever removed by `harness cleanup`)."""
        self.lock = run_marks.lock_workdir(
            workdir,
            run_id=self.run_id,
            owner=self.owner,
            scenario_file=self.options.scenario_path,
            scenario=self.scenario,
            runtime=self.options.runtime,
            run_dir=self.run_dir,
            kube_context=self.context,
            kubeconfig=self.options.kubeconfig,
        )
        notices = run_marks.leftover_notices(
            self.options.workdir_root,
            self.owner,
            current_run=self.run_id,
            kubeconfig=self.options.kubeconfig,
            context=self.context,
        )
        for message in notices:
            self.event("warning", message)

    def remove_workdir(self, workdir: Path) -> None:
        """The work directory goes, and its marker with it, only once nothing of the run is mounted or attached
        there: a mount whose undo failed (a busy or dead FUSE data path) keeps both, so `harness cleanup` still
        finds the run and removes it; the run says so. (rmtree would also walk into a live mount's data.)"""
        from harness.cleanup.local import still_held

        held = still_held(self.lock.marker, workdir) if self.lock is not None else []
        if held:
            raise InfraError(
                f"{workdir} stays, with the run's marker, because {len(held)} thing(s) of this run could not be "
                f"undone: {'; '.join(held)}. `harness cleanup --run {self.run_id}"
                + (f" --workdir {self.options.workdir_root}" if self.options.workdir_root is not None else "")
                + "` removes them"
            )
        shutil.rmtree(workdir, ignore_errors=True)

    def unmark(self) -> None:
        """The run is over: a work directory kept on purpose (--keep-data) says so, and the lock goes."""
        run_marks.release(self.lock, kept=self.options.keep_data)


def execute(options: RunOptions) -> RunOutcome:
    """Run one scenario end to end. Bad input raises UsageError before anything is created."""
    scenario = with_host_defaults(load_scenario(options.scenario_path, options.overrides), options.settings)
    refuse_unsupported(options.runtime, scenario)
    refuse_faults(options.runtime, scenario)
    config = load_user_config(options.settings)
    context = allowed_context(options.runtime, options.kubeconfig, options.context, config)
    planned = plan_faults(scenario.faults, scenario.duration_s)
    refuse_missing_workdir(options.workdir_root)
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
                run.undo.record("remove the work directory", lambda: run.remove_workdir(workdir))
            # Prometheus may run as the scenario's uid: it must be able to reach its config and data.
            workdir.chmod(0o755)
            run.mark(workdir)
            run.steps(workdir)
        except Interrupted as e:
            run.result.interrupted = True
            run.event("error", f"interrupted ({e}); cleaning up and keeping the partial result")
            exit_code = EXIT_INTERRUPTED
        except HarnessError as e:
            run.result.error = str(e)
            run.event("error", str(e))
        except Exception as e:  # noqa: BLE001 - a bug of the harness or of a library under it: an ERROR, not FAILED
            run.internal_error(e)
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


def _render(run: Run) -> None:
    try:
        from harness.report import render_report

        path = render_report(run.run_dir)
        ui.info(f"report: {path.resolve()}")
    except (HarnessError, OSError, ValueError) as e:
        # A report that cannot be drawn must not cost the run: result.json is saved and `harness report` retries.
        ui.error(f"could not render the report: {e}")
