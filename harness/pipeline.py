"""The ordered steps of a run: load -> plan -> doctor -> provision -> benchmark -> execute -> check -> store -> report.

Each step is a method of ``Run`` that reads what earlier steps left in it and fills ``self.result``; the result is
saved atomically after every step that changes it, so an interrupted or broken run still leaves a result (marked
incomplete) and a report. Cleanup (load, Prometheus, storage) happens exactly once, in ``_cleanup``, whatever
happened before.
"""

from __future__ import annotations

import logging
import shutil
import signal
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

from harness import ui
from harness.checks.history import check_history, history_check_result
from harness.checks.verdicts import fio_iops_check, recovery_check
from harness.errors import HarnessError, InfraError, UsageError
from harness.faults.timeline import PlannedFault, plan_faults
from harness.loads import fio
from harness.loads.driver import TsdbDriver
from harness.prom import PromClient
from harness.results import env as envinfo
from harness.results.model import CheckResult, Event, FaultRecord, RunResult, Severity, Status
from harness.results.store import RESULT_FILE, load_result, new_run_dir, save_result
from harness.runtime.base import Runtime
from harness.scenario.loader import load_scenario
from harness.scenario.model import Scenario
from harness.storage import provision
from harness.storage.base import ProvisionedStorage
from harness.wait import wait_for

log = logging.getLogger(__name__)

EXIT_PASSED, EXIT_FAILED, EXIT_ERROR, EXIT_INTERRUPTED = 0, 1, 2, 130


@dataclass
class RunOptions:
    scenario_path: Path
    runtime: str = "local"
    reports_root: Path = Path("reports")
    workdir_root: Path | None = None  # default: the system temp dir
    render_report: bool = True
    doctor: bool = True  # run the storage doctor first; a blocker stops the run
    keep_data: bool = False  # keep the TSDB and fio files this run created (for inspection)
    kubeconfig: str | None = None  # kubernetes runtime; None: $KUBECONFIG or ~/.kube/config


@dataclass
class RunOutcome:
    exit_code: int
    run_dir: Path | None
    result: RunResult | None


class Interrupted(Exception):
    """Ctrl-C (SIGINT) or SIGTERM arrived; raised where the run was, so cleanup runs in order."""


@dataclass
class Run:
    options: RunOptions
    scenario: Scenario
    run_id: str
    run_dir: Path
    result: RunResult
    planned: list[PlannedFault]
    workdir: Path = field(default_factory=Path)
    storage: ProvisionedStorage | None = None
    runtime: Runtime | None = None
    load: TsdbDriver | None = None
    _events_t0: float = field(default_factory=time.time)

    # --- bookkeeping -------------------------------------------------------------------------------------------

    def event(self, kind: str, message: str) -> None:
        t0 = self.result.t0_unix_s or self._events_t0
        self.result.events.append(Event(t_s=round(time.time() - t0, 3), kind=kind, message=message))
        if kind == "warning":
            ui.warn(message)
        elif kind == "error":
            ui.error(message)
        else:
            ui.info(f"[dim]{message}[/dim]" if kind == "phase" else message)

    def save(self) -> None:
        if self.load is not None and self.result.t0_unix_s:
            self.result.ingest = self.load.ingest(self.result.t0_unix_s)
        save_result(self.run_dir, self.result)

    # --- steps -------------------------------------------------------------------------------------------------

    def step_doctor(self) -> bool:
        """Run the storage doctor; False when it found something that would make the run fail before it starts.

        A blocker is an ERROR, not a FAILED: the storage did not lose data, the run could not be set up on it.
        """
        from harness.doctor import blocking, run_doctor

        findings = run_doctor(
            self.scenario,
            runtime=self.options.runtime,
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

    def step_provision(self) -> None:
        if self.options.runtime == "kubernetes":
            # The cluster holds the storage: the runtime creates the PV (or emptyDir) with the StatefulSet.
            self.result.environment.data_path = f"{self.scenario.storage.backend} volume in the cluster"
            return
        self.event("phase", f"provisioning {self.scenario.storage.backend} storage")
        self.storage = provision(self.scenario.storage, self.workdir, self.run_id)
        described = self.storage.describe()
        self.result.environment.data_path = described["path"]
        self.result.environment.data_filesystem = described["filesystem"]
        self.result.environment.data_device = described["device"]
        self.save()

    def step_benchmark(self) -> None:
        jobs = self.scenario.loads.fio
        if not jobs:
            return
        if self.storage is None:
            # One scenario file runs on both runtimes: the durability part still runs, the gap is said loudly.
            self.event(
                "warning",
                f"{len(jobs)} fio job(s) skipped: fio on the {self.options.runtime} runtime is not "
                "available yet (run the scenario on the local runtime on a node's mount to measure the disk)",
            )
            return
        self.result.environment.fio_version = fio.fio_version()
        total = sum(j.runtime_s for j in jobs)
        with ui.phase(f"fio: {len(jobs)} job(s) on {self.storage.root}", total) as bar:
            done = 0.0
            for job in jobs:
                bar.update(done, f"fio {job.name or job.profile}")
                job_result = fio.run_fio_job(job, self.storage.fio_dir(), self.run_dir)
                self.result.fio.append(job_result)
                done += job.runtime_s
                self.save()
        for r in self.result.fio:
            if r.write is not None:
                ui.info(f"  {r.name}: write {r.write.bw_bytes_per_s / 1e6:.1f} MB/s, {r.write.iops:.0f} IOPS")
            if r.read is not None:
                ui.info(f"  {r.name}: read {r.read.bw_bytes_per_s / 1e6:.1f} MB/s, {r.read.iops:.0f} IOPS")

    def step_start(self) -> None:
        spec = self.scenario.loads.tsdb
        scrape_configs = []
        if spec is not None:
            self.load = TsdbDriver(spec, self.run_id)
            scrape_configs = self.load.prepare()
        self.runtime = make_runtime(self.options.runtime, self, scrape_configs)
        self.event("phase", f"starting Prometheus ({self.options.runtime} runtime)")
        self.runtime.start()
        self.result.environment.prometheus_version = self.runtime.version()
        self.event("phase", f"Prometheus {self.result.environment.prometheus_version} ready: {self.runtime.instance()}")

    def step_execute(self) -> None:
        assert self.runtime is not None
        self.result.t0_unix_s = t0 = time.time()
        if self.load is not None:
            self.load.start(self.runtime.base_url())
        self.save()
        duration = self.scenario.duration_s
        with ui.phase(f"load and faults for {duration:g} s", duration) as bar:
            for planned in self.planned:
                self._sleep_until(t0 + planned.at_s, bar)
                record = self._inject(planned, t0, bar)
                self.result.faults.append(record)
                if record.error is None and self.scenario.checks.history_survival.after_each_fault:
                    cutoff_unix_ms = int((t0 + record.injected_at_s) * 1000)
                    self._checkpoint(f"after fault {planned.index} ({planned.action})", cutoff_unix_ms)
                self.save()
            self._sleep_until(t0 + duration, bar)
        if self.load is not None:
            self.load.stop()
            if self.scenario.checks.history_survival.enabled:
                self._checkpoint("final", int(time.time() * 1000))
            ledger = self.load.save(self.run_dir)
            if ledger:
                self.event("phase", f"ledger of acknowledged samples saved as {ledger}")
        self.save()

    def step_check(self) -> None:
        checks = self.scenario.checks
        if checks.history_survival.enabled and self.load is not None:
            self.result.checks.append(
                history_check_result(self.result.durability, checks.history_survival.max_samples_lost)
            )
        self.result.checks.append(recovery_check(self.result.faults, checks.max_recovery_s))
        if checks.min_fio_write_iops is not None:
            self.result.checks.append(fio_iops_check(self.result.fio, checks.min_fio_write_iops))
        self.result.complete = True

    # --- helpers -----------------------------------------------------------------------------------------------

    def _sleep_until(self, deadline_unix_s: float, bar: ui.PhaseBar) -> None:
        assert self.runtime is not None
        while (left := deadline_unix_s - time.time()) > 0:
            time.sleep(min(0.5, left))
            bar.update(time.time() - self.result.t0_unix_s)

    def _inject(self, planned: PlannedFault, t0: float, bar: ui.PhaseBar) -> FaultRecord:
        assert self.runtime is not None
        bar.note(f"fault {planned.index}: {planned.action} at {time.time() - t0:.1f} s")
        if self.load is not None:
            url = self.runtime.base_url()
            assert url is not None
            self.load.before_fault(url, int(time.time() * 1000))
            self.load.set_endpoint(None)
        injection = self.runtime.inject(planned.action)
        record = FaultRecord(
            index=planned.index,
            action=planned.action,
            scheduled_at_s=planned.at_s,
            injected_at_s=injection.injected_at_unix_s - t0,
            instance_before=injection.instance_before,
            instance_after=injection.instance_after,
            detail=injection.detail,
        )
        self.event("fault", f"fault {planned.index} ({planned.action}): {injection.detail}")
        try:
            recovery = self.runtime.wait_recovered(self.scenario.prometheus.ready_timeout_s)
        except InfraError as e:
            record.error = str(e)
            self.event("error", f"fault {planned.index}: Prometheus did not recover: {e}")
            raise
        record.process_up_at_s = None if recovery.process_up_at_unix_s is None else recovery.process_up_at_unix_s - t0
        record.ready_at_s = None if recovery.ready_at_unix_s is None else recovery.ready_at_unix_s - t0
        record.wal_replay_s = recovery.wal_replay_s
        if self.load is not None:
            self.load.set_endpoint(self.runtime.base_url())
            injected = injection.injected_at_unix_s
            load = self.load
            first = wait_for(
                lambda: load.first_sample_after(injected),
                what=f"the first sample acknowledged after fault {planned.index}",
                timeout_s=self.scenario.prometheus.ready_timeout_s,
                interval_s=0.05,
            )
            record.first_sample_at_s = first - t0
        bar.note(
            f"fault {planned.index}: ready after {_fmt(record.ready_at_s, record.injected_at_s)}, first sample after "
            f"{_fmt(record.first_sample_at_s, record.injected_at_s)}, WAL replay {record.wal_replay_s or 0:.2f} s"
        )
        return record

    def _checkpoint(self, label: str, cutoff_unix_ms: int) -> None:
        assert self.runtime is not None and self.load is not None
        url = self.runtime.base_url()
        assert url is not None
        started = time.monotonic()
        with PromClient(url, timeout_s=60) as client:
            checkpoint = check_history(
                client,
                self.load.expected(url),
                cutoff_unix_ms=cutoff_unix_ms,
                label=label,
                checked_at_s=time.time() - self.result.t0_unix_s,
                run_id=self.run_id,
            )
        checkpoint.check_duration_s = round(time.monotonic() - started, 3)
        self.result.durability.append(checkpoint)
        kind = "phase" if checkpoint.lost == 0 else "warning"
        self.event(
            kind,
            f"history {label}: {checkpoint.present:,} of {checkpoint.acknowledged:,} acknowledged "
            f"samples present, {checkpoint.lost:,} lost",
        )

    def _cleanup(self) -> None:
        """Stop what we started and remove what we created, each step on its own so one failure skips nothing."""
        steps: list[tuple[str, Callable[[], None]]] = []
        if self.load is not None:
            steps.append(("stop the TSDB load", self.load.stop))
        if self.runtime is not None:
            steps.append(("stop Prometheus", self.runtime.stop))
        if self.storage is not None and not self.options.keep_data:
            steps.append(("remove the storage this run created", self.storage.teardown))
        if not self.options.keep_data:
            steps.append(("remove the work directory", lambda: shutil.rmtree(self.workdir, ignore_errors=True)))
        for what, action in steps:
            try:
                action()
            except (HarnessError, OSError) as e:
                self.event("error", f"cleanup: could not {what}: {e}")


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


def make_runtime(name: str, run: Run, scrape_configs: list[dict[str, Any]]) -> Runtime:
    if name == "kubernetes":
        from harness.runtime.kubernetes import KubernetesRuntime

        return KubernetesRuntime(
            run.scenario,
            run.run_id,
            logs_dir=run.run_dir / "logs",
            kubeconfig=run.options.kubeconfig,
            extra_scrape_configs=scrape_configs,
        )
    assert run.storage is not None
    if name == "local":
        from harness.runtime.local import LocalRuntime

        return LocalRuntime(
            run.scenario.prometheus,
            run.storage,
            workdir=run.workdir,
            logs_dir=run.run_dir / "logs",
            extra_scrape_configs=scrape_configs,
        )
    raise UsageError(f"unknown runtime {name!r}; use --runtime local or kubernetes")


def _fmt(at_s: float | None, since_s: float) -> str:
    return "n/a" if at_s is None else f"{at_s - since_s:.2f} s"


@contextmanager
def _signals(handler: Callable[[int, FrameType | None], None]) -> Iterator[None]:
    """Handle SIGINT and SIGTERM with ``handler`` inside the block, restoring the old handlers after."""
    old_int = signal.signal(signal.SIGINT, handler)
    old_term = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old_int)
        signal.signal(signal.SIGTERM, old_term)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    """Turn Ctrl-C/SIGTERM into ``Interrupted`` raised where the run was, so cleanup runs in order."""
    raise Interrupted(signal.Signals(signum).name)


def _shield(signum: int, frame: FrameType | None) -> None:
    """During cleanup a second Ctrl-C must not leave mounts and processes behind: say so and carry on."""
    ui.warn("cleaning up (stopping Prometheus, removing what this run created); please wait")


def _kubernetes_supports(scenario: Scenario) -> None:
    """What the kubernetes runtime cannot do yet, refused before anything is created (fio jobs are skipped with a
    warning instead, so the shipped scenarios with fio profiles still run their durability part there)."""
    if scenario.loads.tsdb is not None and scenario.loads.tsdb.mode == "scrape":
        raise UsageError(
            "loads.tsdb.mode scrape on the kubernetes runtime is not available yet (the exporter listens on "
            "127.0.0.1 of the harness host, which a pod cannot scrape); use mode: remote_write"
        )


def execute(options: RunOptions) -> RunOutcome:
    """Run one scenario end to end. Bad input raises UsageError before anything is created."""
    scenario = load_scenario(options.scenario_path)
    if options.runtime == "kubernetes":
        _kubernetes_supports(scenario)
    elif options.runtime != "local":
        raise UsageError(f"unknown runtime {options.runtime!r}; use --runtime local or kubernetes")
    planned = plan_faults(scenario.faults, scenario.duration_s)
    run_id, run_dir = new_run_dir(options.reports_root, scenario.name)
    result = RunResult(
        run_id=run_id,
        scenario_name=scenario.name,
        scenario_file=str(options.scenario_path),
        scenario=scenario.model_dump(mode="json", by_alias=True),
        runtime=options.runtime,
        started_at=datetime.now(UTC),
        t0_unix_s=0.0,
        environment=envinfo.collect(options.runtime),
    )
    run = Run(options, scenario, run_id, run_dir, result, planned)
    save_result(run_dir, result)
    ui.info(f"run {run_id}: scenario [bold]{scenario.name}[/bold] -> {run_dir}")
    exit_code = EXIT_ERROR
    with _signals(_interrupt):
        try:
            run.workdir = Path(tempfile.mkdtemp(prefix=f"prom-harness-{run_id}-", dir=options.workdir_root))
            # Prometheus may run as the scenario's uid: it must be able to reach its config and data.
            run.workdir.chmod(0o755)
            if options.doctor and not run.step_doctor():
                run.result.complete = True
            else:
                run.step_provision()
                run.step_benchmark()
                run.step_start()
                run.step_execute()
                run.step_check()
        except Interrupted as e:
            run.result.interrupted = True
            run.event("error", f"interrupted ({e}); cleaning up and keeping the partial result")
            exit_code = EXIT_INTERRUPTED
        except HarnessError as e:
            run.result.error = str(e)
            run.event("error", str(e))
        finally:
            with _signals(_shield):
                run._cleanup()
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
