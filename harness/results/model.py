"""The versioned result of one run. Reports and comparisons read only this, so any old run can be re-rendered.

Times of the load phase (faults, ingest, checkpoints: the ``*_s`` fields) are seconds since ``t0_unix_s``, the start
of the load phase, so charts line up without timezone arithmetic; events carry absolute Unix times, since they also
happen before the load phase starts (or when it never does: ``t0_unix_s`` is then None). Sample timestamps are Unix
milliseconds, as Prometheus stores them.

Bump ``RESULT_SCHEMA_VERSION`` on every change of the format and add a migration from the previous version to
``harness.results.migrate``: older files are read by migrating them, newer ones are refused with a clear message.

Format history:
  1  first release.
  2  ``Event.t_s`` (relative to t0, or to an earlier origin before the load phase) became ``Event.at_unix_s``;
     ``t0_unix_s`` is None when the load phase never started (it was 0.0, shown as 1970); ``load`` added (what the
     write load sent, with the ticks it skipped when it fell behind); ``environment.data_access`` added.
  3  ``FaultRecord.stages``: the recovery by stage (``harness.stages``), each with its time and where that time
     comes from (version 2 files get the stages the harness observed: injected, healthy, ready, first sample);
     ``FioJobResult.measured_on``: what ran fio where (this host, or a pod on a node and volume); ``cluster``: the
     facts of a kubernetes run (server version, the nodes Prometheus ran on, the PV's source and class);
     ``FaultRecord.last_wal_fsync_at_s`` (power_loss: the last fsync under the WAL directory before the cut).
  4  ``DurabilityCheckpoint.after_fault`` (the fault a checkpoint follows; its cut-off is the end of a fault that
     lasts, so what was acknowledged during the fault is checked too). Faults below Prometheus:
     ``FaultRecord.below_prometheus``, ``lifted_at_s`` (a fault that lasts: when its
     condition was lifted), ``write_failures`` and ``write_errors`` (what the load saw fail from the injection to
     the first sample after it), ``prometheus_log`` (Prometheus' warnings and errors in that window, quoted).
  5  ``FioJobResult.job`` and ``repetition``: a scenario's fio job may be repeated (``repeat: N``); each
     repetition is a result of its own (named ``<job>.r<k>`` from the second on), ``job`` names the scenario's job
     and ``repetition`` counts from 1. ``harness compare`` takes the repetitions as independent values.
  6  ``FioJobResult.cpu_pct``: fio's own CPU use (user + system, % of one CPU, per job), so the report can say when a
     job was bound by the CPU rather than the storage.
  7  ``VolumeFacts.volume_binding_mode``: the class's binding mode (Immediate, WaitForFirstConsumer), beside its
     provisioner and parameters, so a run on a dynamic StorageClass says how its volume was made.
  8  ``LoadStats.shards``: how many writers the TSDB load was split over (``load.tsdb.shards``); 1 before.
  9  ``Status.PARTIAL`` for a check (``history_survival`` when the checkpoints taken held but a later fault was never
     recovered from); earlier versions wrote such a check PASSED with "so its history since is unknown" in its reason,
     and the migration makes it PARTIAL.
  10 ``server_acks``: the ledger's acknowledged remote-write requests beside Prometheus' own count of the requests it
     answered 2xx (read from its ``/metrics`` at the end of each of its process lifetimes), and the ``ack_count``
     check comparing them; older files have none (None).
  11 ``overrides``: the ``KEY.PATH=VALUE`` settings (``harness run --set``, ``harness nightly --override``) the
     scenario file was run with, so a run of a modified file never passes for the file as written; older files had
     none (``[]``).
  12 ``FaultRecord.stages_note``: why stages the runtime looks for are missing from a fault's stages (the CSI
     driver's ``volume_staged`` and ``volume_published``, read from the kubelet's metrics: no CSI volume, a kubelet
     that serves no metrics); older files did not look for those stages (``""``).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

RESULT_SCHEMA_VERSION = 12


class Status(StrEnum):
    PASSED = "PASSED"  # the storage did what the scenario demands
    FAILED = "FAILED"  # the storage lost data or was too slow: exit 1
    ERROR = "ERROR"  # the harness or the environment broke; says nothing about the storage: exit 2
    SKIPPED = "SKIPPED"  # not run (disabled, or an earlier step failed)
    # Only part of what the check covers was checked; the reason says which part was not. It is given only when the
    # part left unchecked could not be checked because of the storage or Prometheus (it did not come back after a
    # fault, so there was nothing to ask), never because the harness broke (that is ERROR). So it is a finding
    # about the storage, like FAILED, and never a pass: a run with a PARTIAL check is FAILED (exit 1), even if no
    # check failed outright (today it cannot happen alone: Prometheus not recovering also fails the recovery check).
    # It is a check's status only, never a run's verdict.
    PARTIAL = "PARTIAL"


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Environment(Model):
    hostname: str
    kernel: str
    os: str
    python: str
    harness_version: str
    runtime: str  # "local" or "kubernetes"
    cpu_count: int
    memory_bytes: int | None = None
    prometheus_version: str | None = None
    fio_version: str | None = None
    data_path: str | None = None
    data_filesystem: str | None = None  # e.g. ext4, xfs, nfs4, overlay, tmpfs
    data_device: str | None = None
    # How this host reaches the storage, e.g. "kernel NFS client, vers=4.1" or "iSCSI via user-space initiator
    # (qemu-storage-daemon, libiscsi) + loop device": fio and Prometheus measured through it.
    data_access: str | None = None
    extra: dict[str, str] = Field(default_factory=dict)


class FioPoint(Model):
    t_s: float  # since the fio job started
    bw_bytes_per_s: float
    iops: float
    lat_ns_mean: float | None = None


class FioDirection(Model):
    io_bytes: int
    bw_bytes_per_s: float
    iops: float
    runtime_s: float
    clat_ns_mean: float | None = None
    # keys "p50", "p90", "p99", "p99.9", "p99.99"
    clat_percentiles_ns: dict[str, float] = Field(default_factory=dict)
    timeseries: list[FioPoint] = Field(default_factory=list)


class FioJobResult(Model):
    name: str
    profile: str
    argv: list[str]
    directory: str
    size_bytes: int
    runtime_s: float
    read: FioDirection | None = None
    write: FioDirection | None = None
    sync_lat_ns_percentiles: dict[str, float] = Field(default_factory=dict)  # fsync latency (wal-append)
    raw_json_file: str | None = None  # relative to the run directory
    error: str | None = None
    # What ran fio where: "this host (name)", or "pod ns/name on node N, claim ns/c (pv/p)": the node and volume.
    measured_on: str | None = None
    # What the profile resolved to, for the report's table (argv holds the same, less readably).
    block_size_bytes: int | None = None
    ioengine: str | None = None
    direct: bool | None = None
    iodepth: int | None = None
    numjobs: int = 1
    sync_every_bytes: int | None = None  # wal-append: bytes appended between two fsyncs (the scaled WAL segment)
    sync_count: int = 0  # syncs measured: few syncs make the high sync percentiles just the maximum
    sync_lat_ns_mean: float | None = None
    # The scenario's job this is a repetition of (its name), and which one (1..repeat): compare's sample unit.
    job: str | None = None  # None: written before version 5 or by hand; the name is the job
    repetition: int = 1
    cpu_pct: float | None = None  # fio's usr_cpu + sys_cpu, averaged over its jobs; None: before version 6

    @property
    def job_key(self) -> str:
        return self.job or self.name


class IngestPoint(Model):
    t_s: float  # start of a one-second bucket
    acked_samples: int
    failed_samples: int


class NodeFacts(Model):
    """A node Prometheus ran on, from its status.nodeInfo."""

    name: str
    kernel: str = ""
    kubelet: str = ""
    container_runtime: str = ""
    os_image: str = ""


class VolumeFacts(Model):
    """The volume Prometheus' claim was bound to, and its class."""

    claim: str
    pv: str | None = None  # None: not bound (the run ended before)
    source: str | None = (
        None  # "local /path", "nfs server:/path", "iscsi portal iqn lun N", "csi driver volumeHandle h"
    )
    capacity_bytes: int | None = None
    reclaim_policy: str | None = None
    storage_class: str | None = None
    provisioner: str | None = None
    class_parameters: dict[str, str] = Field(default_factory=dict)
    volume_binding_mode: str | None = None  # the class's; None: no class, or a version 6 result


class ClusterFacts(Model):
    server_version: str
    nodes: list[NodeFacts] = Field(default_factory=list)  # the nodes Prometheus ran on, in the order it got there
    volume: VolumeFacts | None = None  # None: no claim (an emptyDir)


class RecoveryStage(Model):
    stage: str  # a ``harness.stages`` id: pod_created, scheduled, volumes_mounted, container_started, ready, ...
    at_s: float  # since t0, like the fault's other times
    source: str  # where the time comes from: "API: condition PodScheduled", "harness: polled /-/ready", ...
    # Reached within [at_s, at_s + resolution_s]: 1.0 for the API's whole-second timestamps (truncated, so up to 1 s
    # early); a kubelet metric polled: from the reading before the one that counted it to that one.
    resolution_s: float = 0.0


class FaultRecord(Model):
    index: int
    action: str
    parameters: dict[str, Any] = Field(default_factory=dict)  # the scenario's entry for this fault, as written
    # PASSED: Prometheus recovered; FAILED: it did not (NotRecovered); ERROR: the harness broke during the fault;
    # None: the run was interrupted during it.
    status: Status | None = None
    scheduled_at_s: float
    injected_at_s: float
    instance_before: str
    instance_after: str | None = None
    process_up_at_s: float | None = None
    ready_at_s: float | None = None
    first_sample_at_s: float | None = None  # first sample acknowledged after the fault
    wal_replay_s: float | None = None  # from Prometheus' own log line
    detail: str = ""
    error: str | None = None
    stages: list[RecoveryStage] = Field(default_factory=list)  # in the order they happened
    stages_note: str = ""  # why stages the runtime looked for are not among ``stages`` ("" when none is missing)
    # power_loss: when the power-loss layer last saw an fsync under the WAL directory before the cut (since t0; may
    # be negative). Acknowledged samples lost to the cut were written after it: the loss window starts no earlier.
    # None: another fault, or no fsync under the WAL since the layer was mounted.
    last_wal_fsync_at_s: float | None = None
    below_prometheus: bool = False  # a fault in the storage under Prometheus (disk full, I/O errors, power loss)
    lifted_at_s: float | None = None  # a fault that lasts: when its condition was lifted (its window's end)
    # From the injection to the first sample acknowledged after it (or to the check when there was none): samples
    # whose remote write failed, by outcome (rejected: Prometheus answered an error; unreachable; unknown), the
    # distinct errors the load got, and the warnings and errors Prometheus logged, quoted.
    write_failures: dict[str, int] = Field(default_factory=dict)
    write_errors: list[str] = Field(default_factory=list)
    prometheus_log: list[str] = Field(default_factory=list)

    def stage_s(self, stage: str) -> float | None:
        """Seconds from the injection to ``stage``; None when the fault did not pass through it."""
        at = next((s.at_s for s in self.stages if s.stage == stage), None)
        return None if at is None else at - self.injected_at_s

    @property
    def recovery_s(self) -> float | None:
        if self.first_sample_at_s is None:
            return None
        return self.first_sample_at_s - self.injected_at_s


class DurabilityCheckpoint(Model):
    label: str  # "after fault 1 (sigkill)" or "final"
    after_fault: int | None = None  # the index of the fault this checkpoint follows; None: the final one
    checked_at_s: float
    acknowledged: int  # samples acknowledged before the checkpoint's cut-off
    present: int  # of those, found with exact timestamp and value
    lost: int
    cutoff_unix_ms: int  # samples acknowledged up to this time were checked
    loss_window_start_unix_ms: int | None = None
    loss_window_end_unix_ms: int | None = None
    lost_series_count: int = 0
    lost_series: list[str] = Field(default_factory=list)  # the first few, as PromQL selectors
    mismatched_values: int = 0  # present at the timestamp but with another value
    check_duration_s: float | None = None  # how long the check itself took (the harness's own speed)


class CheckResult(Model):
    name: str
    status: Status
    reason: str
    details: dict[str, Any] = Field(default_factory=dict)


class Event(Model):
    at_unix_s: float  # absolute: events happen before the load phase (t0) too
    kind: str  # "phase", "fault", "warning", "error"
    message: str


class LoadStats(Model):
    """What the TSDB write load did, beyond the per-second ingest series."""

    mode: str  # "remote_write" or "scrape"
    series: int
    interval_s: float
    acked_samples: int = 0
    failed_samples: int = 0
    # Ticks never sent because the writer fell behind its schedule (Prometheus answered too slowly: an overloaded
    # host, or slow storage under it): those samples were never promised, so the history check cannot see a loss
    # there; the report warns. With shards, each writer's ticks are counted: compare the samples, not the ticks.
    skipped_ticks: int = 0
    skipped_samples: int = 0
    shards: int = 1  # writers the load was split over (load.tsdb.shards)


class AckReading(Model):
    """Prometheus' own count of the remote writes it had answered, read from its ``/metrics`` at one moment: at the
    load's start, before and after each fault, and at the load's end. Its counters start at 0 with each process."""

    label: str  # "start", "before fault 1 (sigkill)", "after fault 1 (sigkill)", "end of the load"
    at_unix_s: float  # absolute, like events: the first reading comes before the load phase (t0)
    instance: str  # the runtime's name for the instance read
    process_start_unix_s: float | None = None  # the process read (its process_start_time_seconds)
    write_requests: dict[str, int] = Field(default_factory=dict)  # remote writes answered so far, by HTTP status
    # No request of the load could reach this process any more (the writers were detached, or stopped): if it is the
    # process' last reading, its count is final. Readings at a start or after a recovery are never settled.
    settled: bool = False
    error: str | None = None  # the reading failed: the count is unknown

    @property
    def accepted(self) -> int:
        return sum(n for code, n in self.write_requests.items() if code.startswith("2"))


class AckCount(Model):
    """The ledger beside something it is not fed by: Prometheus' own count of the remote-write requests it answered
    2xx, summed over its process lifetimes (each one's last reading). The writer holds one request in flight, so
    with every lifetime read once the load could no longer reach it, the two agree exactly, but for attempts that got
    no answer: Prometheus may have committed and counted those unseen (``ledger <= server <= ledger + unanswered``)."""

    ledger_requests: int  # acknowledged requests in the ledger (a batch at a tick each)
    ledger_samples: int  # the samples they carried
    unanswered_attempts: int  # attempts that timed out or broke after sending
    server_requests: int | None = None  # None: Prometheus' count is incomplete (``incomplete`` says why)
    lifetimes: int = 0  # Prometheus processes counted
    incomplete: str | None = None
    readings: list[AckReading] = Field(default_factory=list)


class RunResult(Model):
    schema_version: int = RESULT_SCHEMA_VERSION
    run_id: str
    scenario_name: str
    scenario_file: str | None = None
    scenario: dict[str, Any]  # the validated scenario, dumped by alias (as written in files)
    # KEY.PATH=VALUE settings applied to the file before it was validated (``scenario`` has their values): a run of
    # the file as written has none.
    overrides: list[str] = Field(default_factory=list)
    runtime: str
    started_at: datetime
    finished_at: datetime | None = None
    t0_unix_s: float | None = None  # start of the load phase (None: it never started); *_s fields are relative to it
    complete: bool = False
    interrupted: bool = False
    error: str | None = None
    environment: Environment
    cluster: ClusterFacts | None = None  # kubernetes runs
    fio: list[FioJobResult] = Field(default_factory=list)
    ingest: list[IngestPoint] = Field(default_factory=list)
    load: LoadStats | None = None
    server_acks: AckCount | None = None  # remote write: the ledger against Prometheus' own count (version 10 on)
    faults: list[FaultRecord] = Field(default_factory=list)
    durability: list[DurabilityCheckpoint] = Field(default_factory=list)
    checks: list[CheckResult] = Field(default_factory=list)
    events: list[Event] = Field(default_factory=list)
    doctor: list[DoctorFinding] = Field(default_factory=list)
    verdict: Status = Status.ERROR

    @property
    def origin_unix_s(self) -> float:
        """Where run-relative times count from: the load phase's start, or the run's start when it never began."""
        return self.t0_unix_s if self.t0_unix_s is not None else self.started_at.timestamp()

    def overall(self) -> Status:
        """ERROR beats FAILED beats PASSED; a PARTIAL check counts as FAILED (see ``Status``); an incomplete run is
        never PASSED."""
        statuses = {c.status for c in self.checks}
        if self.error or Status.ERROR in statuses:
            return Status.ERROR
        if Status.FAILED in statuses or Status.PARTIAL in statuses:
            return Status.FAILED
        if not self.complete:
            return Status.ERROR
        return Status.PASSED


class Severity(StrEnum):
    BLOCKER = "BLOCKER"  # the run (or the deployment) will fail; `harness run` stops before starting
    WARNING = "WARNING"  # it will work but is risky or slow (e.g. Prometheus on NFS is unsupported)
    INFO = "INFO"  # evidence that a check passed, worth showing


class DoctorFinding(Model):
    """One finding of the storage doctor: what is wrong, the evidence, why it matters, the fix."""

    check: str  # e.g. "nfs.writable", "iscsi.layout", "k8s.binding"
    severity: Severity
    title: str
    evidence: str = ""
    why: str = ""
    fix: str = ""


RunResult.model_rebuild()
